"""The JavaScript clients the tests drive: installed once from tests/js/package-lock.json into .cache/npm-clients/
(reused by later runs while the lock file is unchanged), with the scripts of tests/js copied beside them so that
their imports resolve there."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent
CACHE = SOURCE.parents[1] / ".cache" / "npm-clients"
RESULT_PREFIX = "RESULT "


def npm_clients() -> Path:
    """The directory holding node_modules and the scripts; skips the test where node or npm is missing."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("node and npm are not installed: the JavaScript client checks need them")
    CACHE.mkdir(parents=True, exist_ok=True)
    manifest = (SOURCE / "package.json").read_bytes()
    lock = (SOURCE / "package-lock.json").read_bytes()
    digest = hashlib.sha256(manifest + b"\0" + lock).hexdigest()
    stamp = CACHE / ".installed"
    # several pytest processes may start at once: one installs, the others wait for it
    with open(CACHE / ".lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text() == digest and (CACHE / "node_modules").is_dir()):
            stamp.unlink(missing_ok=True)
            (CACHE / "package.json").write_bytes(manifest)
            (CACHE / "package-lock.json").write_bytes(lock)
            # exact versions from the lock; no install scripts (nothing used here needs one)
            installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                                       cwd=CACHE, capture_output=True, text=True, timeout=900)
            if installed.returncode != 0:
                raise RuntimeError(f"npm ci failed in {CACHE}:\n{installed.stdout}\n{installed.stderr}")
            stamp.write_text(digest)
        for script in SOURCE.glob("*.mjs"):
            staged = CACHE / f".{script.name}.tmp"
            shutil.copyfile(script, staged)
            os.replace(staged, CACHE / script.name)  # a script another process is running stays whole
    return CACHE


def node_command() -> list[str]:
    """node, with the global WebSocket the new clients expect (built in from Node.js 22, behind a flag before)."""
    node = shutil.which("node") or "node"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    return [node, "--experimental-websocket"] if major < 22 else [node]


def run_script(directory: Path, script: str, *args: str, timeout: float = 120) -> dict:
    """Run a script with node and return the JSON it printed after RESULT_PREFIX (its last such line)."""
    done = subprocess.run([*node_command(), str(directory / script), *args], cwd=directory,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert done.returncode == 0 and lines, (
        f"{script} exited with {done.returncode}\nstdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])
