"""Running `secretstore status` and scraping /metrics the way an operator does: real processes, real sockets."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

from prometheus_client.parser import text_string_to_metric_families

SCRIPT = str(Path(sys.executable).with_name("secretstore"))


def status(url: str, *args: str) -> dict:
    result = subprocess.run([SCRIPT, "status", "--url", url, "--json", *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class StatusWatch:
    """`secretstore status --json --watch`: one JSON document per line, read until a condition holds."""

    def __init__(self, url: str, every: float = 0.5) -> None:
        # PYTHONFAULTHANDLER: a watch that does not stop on Ctrl-C is aborted and shows where each thread was
        self.process = subprocess.Popen([SCRIPT, "status", "--url", url, "--json", "--watch", str(every)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=dict(os.environ, PYTHONFAULTHANDLER="1"))
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.last: dict | None = None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def until(self, condition: Callable[[dict], bool], timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.last = json.loads(line)
            if condition(self.last):
                return self.last
        raise AssertionError(f"status never showed {what}; last: {json.dumps(self.last, indent=1)}; "
                             f"stderr: {self.stderr_if_exited()}")

    def stderr_if_exited(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def stop(self) -> int:
        """Ctrl-C, as an operator leaves --watch; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # the fault handler prints every thread's stack to stderr
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            stderr = self.process.stderr.read() if self.process.stderr is not None else ""
            raise AssertionError(f"status --watch did not stop within 15 s of Ctrl-C; stderr:\n{stderr[-6000:]}")


def scrape(port: int, host: str = "127.0.0.1") -> dict[tuple[str, tuple], float]:
    """GET /metrics over HTTP: {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def can_bind(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False
