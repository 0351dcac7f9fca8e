"""Starting real node processes for tests, benchmarks and `secretstore dev`: free ports, readiness, clean shutdown."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..process import free_port, free_ports, rpc_call, stop_process_group

__all__ = ["NodeProcess", "free_port", "free_ports", "rpc_call", "stop_process_group"]


@dataclass
class NodeProcess:
    base_path: Path
    port: int
    process: subprocess.Popen | None = None
    block_time: float | None = None
    chain_spec: Path | None = None
    log_path: Path | None = None
    seal_per_transaction: bool = False
    host: str = "127.0.0.1"
    prometheus_port: int | None = None
    rpc_args: tuple[str, ...] = ()  # more flags, e.g. the RPC limits; with --rpc-external, `host` is only dialled

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self, timeout: float = 30.0) -> "NodeProcess":
        args = [sys.executable, "-m", "secretstore.cli.main", "node", "--dev", "--base-path", str(self.base_path),
                "--rpc-port", str(self.port), *self.rpc_args]
        if "--rpc-external" not in self.rpc_args:
            args += ["--rpc-host", self.host]
        if self.prometheus_port:
            args += ["--prometheus-port", str(self.prometheus_port)]
        if self.block_time:
            args += ["--block-time", str(self.block_time)]
        if self.chain_spec:
            args += ["--chain-spec", str(self.chain_spec)]
        if self.seal_per_transaction:
            args += ["--seal-per-transaction"]
        self.log_path = self.log_path or Path(self.base_path) / "node.log"
        Path(self.base_path).mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited with {self.process.returncode}: {Path(self.log_path).read_text()[-2000:]}")
            try:
                if "result" in rpc_call(self.http_url, "system_health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"node did not answer on port {self.port} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        stop_process_group(self.process, kill)

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
