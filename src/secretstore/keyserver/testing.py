"""Key server processes for tests, benchmarks and `secretstore dev`: the dev identities and one real key server
process each (`secretstore.devnet.LocalNetwork` puts them together with a node)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from substrateinterface import Keypair

from ..crypto import Secret
from ..process import stop_process_group

# Dev accounts that claimed the dev key server ids, in order; further key servers get accounts of their own.
DEV_SIGNERS = ["//Alice", "//Bob", "//Charlie", "//Dave"]


def key_server_secret(index: int) -> Secret:
    """Key server i (0-based) has the dev secret 0x0101.., 0x0202.., ... as in the Parity dev chain."""
    return Secret(bytes([index + 1]) * 32)


def signer_suri(index: int) -> str:
    return DEV_SIGNERS[index] if index < len(DEV_SIGNERS) else f"//KeyServer{index + 1}"


@dataclass
class KeyServerProcess:
    index: int
    secret: Secret
    db_path: Path
    net_port: int
    node_port: int
    signer: str
    process: subprocess.Popen | None = None
    host: str = "127.0.0.1"  # the cluster binds this address, and the chain lists it
    node_host: str = "127.0.0.1"
    metrics_port: int | None = None
    http_port: int | None = None  # Parity's HTTP API, when set
    faults: str | None = None  # test-only fault plan (keyserver.faults), started with SECRETSTORE_FAULTS=1
    share_refresh_blocks: int = 0  # --share-refresh-blocks (0: off)

    @property
    def http_url(self) -> str | None:
        return f"http://127.0.0.1:{self.http_port}" if self.http_port is not None else None

    @property
    def id(self):
        return self.secret.public().address()

    @property
    def address(self) -> str:
        """The network address the chain holds for this key server ("host:port")."""
        return f"{self.host}:{self.net_port}"

    @property
    def log_path(self) -> Path:
        return self.db_path / "key-server.log"

    def start(self) -> "KeyServerProcess":
        self.db_path.mkdir(parents=True, exist_ok=True)
        secret_file = self.db_path / "self-secret"
        if not secret_file.exists():  # readable by this user only; never on a command line
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.secret.to_int().to_bytes(32, "big").hex())
        signer_file = self.db_path / "signer"  # the signer's SURI too (it may change between starts)
        with os.fdopen(os.open(signer_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.signer)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "secretstore.cli.main", "-v", "key-server", "--self-secret-file", str(secret_file),
             "--db-path", str(self.db_path), "--net-host", self.host, "--net-port", str(self.net_port),
             "--sub-host", self.node_host, "--sub-port", str(self.node_port), "--sub-signer-file", str(signer_file)]
            + (["--http-port", str(self.http_port)] if self.http_port is not None else [])
            + (["--metrics-port", str(self.metrics_port)] if self.metrics_port else [])
            + (["--faults", self.faults] if self.faults else [])
            + (["--share-refresh-blocks", str(self.share_refresh_blocks)] if self.share_refresh_blocks else []),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, SECRETSTORE_FAULTS="1") if self.faults else None)
        log.close()
        return self

    def connected_peers(self) -> int:
        """Peers currently connected, as this key server's log tells."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        peers: dict[str, bool] = {}
        for line in text.splitlines():
            if "peer connected" in line or "peer disconnected" in line:
                peer = line.rsplit("peer=", 1)[-1].split()[0]
                peers[peer] = "peer connected" in line
        return sum(peers.values())

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, kill: bool = False) -> None:
        stop_process_group(self.process, kill)
