"""A whole local network in real processes: one node and N key servers, on free ports, cleaned up on exit.

Used by the tests, the benchmarks and `secretstore dev`. It sits above both the node and the key server packages
(it starts each as a process and imports neither's internals), beside the client and the command line.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from substrateinterface import Keypair

from .keyserver.testing import KeyServerProcess, key_server_secret, signer_suri
from .node.testing import NodeProcess
from .process import free_ports

USER_ACCOUNTS = ["//Alice", "//Bob", "//Charlie", "//Dave", "//Eve", "//Ferdie"]


@dataclass
class LocalNetwork:
    base_path: Path
    key_servers: int = 3
    initial_set: int | None = None  # how many of them the genesis set lists (the rest can be added later)
    # each key server on a loopback address of its own (127.0.0.2, 127.0.0.3, ...; Linux routes all of 127/8 to lo),
    # as on separate hosts: it binds only that address and the chain lists that address
    separate_hosts: bool = False
    node_host: str = "127.0.0.1"
    metrics: bool = False  # node and key servers serve Prometheus /metrics on free ports
    block_time: float | None = None  # None: instant seal
    faults: dict[int, str] = field(default_factory=dict)  # key server index -> test-only fault plan
    node_port: int | None = None  # the node's RPC port (`secretstore dev`: 9944); None: a free one
    http_ports: list[int] | None = None  # each key server's HTTP API port; None: free ones
    share_refresh_blocks: int = 0  # every key server's --share-refresh-blocks (0: off)
    node: NodeProcess | None = None
    servers: list[KeyServerProcess] = field(default_factory=list)

    def host_of(self, index: int) -> str:
        if not self.separate_hosts:
            return "127.0.0.1"
        if index > 250:
            raise ValueError("separate_hosts supports up to 251 key servers (127.0.0.2 .. 127.0.0.252)")
        return f"127.0.0.{index + 2}"

    def chain_spec(self, ports: list[int]) -> dict:
        claims, endowed = {}, {}
        for name in USER_ACCOUNTS + [signer_suri(i) for i in range(self.key_servers)]:
            endowed["0x" + Keypair.create_from_uri(name).public_key.hex()] = 1 << 60
        for i in range(self.key_servers):
            claims["0x" + Keypair.create_from_uri(signer_suri(i)).public_key.hex()] = key_server_secret(i).public().address().hex()
        if self.key_servers < 4:  # Dave keeps his dev claim (the id of secret 0x04..04) as a plain user
            claims["0x" + Keypair.create_from_uri("//Dave").public_key.hex()] = key_server_secret(3).public().address().hex()
        return {
            "name": "SecretStore Local",
            "key_servers": [{"id": key_server_secret(i).public().address().hex(), "address": f"{self.host_of(i)}:{ports[i]}"}
                            for i in range(self.initial_set or self.key_servers)],
            "key_server_ports": ports,
            "claims": claims,
            "endowed": endowed,
        }

    def start(self, progress=None, timeout: float = 60.0) -> "LocalNetwork":
        say = progress or (lambda message: None)
        self.base_path.mkdir(parents=True, exist_ok=True)
        n = self.key_servers
        # cluster, HTTP, node and metrics (node, then each key server) ports, all distinct; with separate hosts free
        # on every local address, since each key server binds its own
        picked = free_ports(3 * n + 2, "0.0.0.0" if self.separate_hosts else "127.0.0.1")
        ports, http_ports = picked[:n], picked[n:2 * n]
        if self.http_ports is not None:
            if len(self.http_ports) != n:
                raise ValueError(f"http_ports lists {len(self.http_ports)} ports for {n} key servers")
            http_ports = list(self.http_ports)
        spec_path = self.base_path / "chain-spec.json"
        http_ports_path = self.base_path / "http-ports.json"  # kept apart: the chain spec refuses unknown fields
        if not spec_path.exists():
            spec_path.write_text(json.dumps(self.chain_spec(ports), indent=2))
            http_ports_path.write_text(json.dumps(http_ports))
        else:  # a restart of an existing network keeps its key servers' addresses
            ports = json.loads(spec_path.read_text())["key_server_ports"]
            http_ports = json.loads(http_ports_path.read_text())
        say("starting the chain node")
        rest = [p for p in picked if p not in ports + http_ports]
        node_port, metrics_ports = rest[0], rest[1:n + 2]
        if self.node_port is not None:
            node_port = self.node_port
        self.node = NodeProcess(self.base_path / "node", node_port, chain_spec=spec_path, block_time=self.block_time,
                                host=self.node_host, prometheus_port=metrics_ports[0] if self.metrics else None).start()
        say(f"node ready at {self.node.ws_url}")
        self.servers = [KeyServerProcess(i, key_server_secret(i), self.base_path / f"key-server-{i + 1}", ports[i],
                                         self.node.port, signer_suri(i), host=self.host_of(i), node_host=self.node_host,
                                         metrics_port=metrics_ports[i + 1] if self.metrics else None,
                                         http_port=http_ports[i], faults=self.faults.get(i),
                                         share_refresh_blocks=self.share_refresh_blocks)
                        for i in range(self.key_servers)]
        for ks in self.servers:
            ks.start()
            say(f"key server {ks.index + 1} ({ks.id.hex()}) starting on {ks.address}, HTTP {ks.http_url}")
        self.wait_connected(timeout, say)
        return self

    def wait_connected(self, timeout: float = 60.0, say=None, servers: list[KeyServerProcess] | None = None) -> None:
        """Until every pair of the given (default: the genesis set's) running key servers is linked."""
        deadline = time.monotonic() + timeout
        members = servers if servers is not None else self.servers[: self.initial_set or self.key_servers]
        alive = [ks for ks in members if ks.alive()]
        shown = -1
        while time.monotonic() < deadline:
            for ks in self.servers:
                if ks.process is not None and ks.process.poll() is not None and ks in alive:
                    raise RuntimeError(f"key server {ks.index + 1} exited: {ks.log_path.read_text()[-2000:]}")
            links = sum(min(ks.connected_peers(), len(alive) - 1) for ks in alive)
            if say and links != shown:
                say(f"cluster links up: {links}/{len(alive) * (len(alive) - 1)}")
                shown = links
            if links >= len(alive) * (len(alive) - 1):
                return
            time.sleep(0.1)
        raise TimeoutError("key servers did not connect to each other in time")

    # ------------------------------------------------------------------ faults and crashes (tests, benchmarks/chaos)
    def restart_key_server(self, index: int, faults: str | None = None, kill: bool = True) -> KeyServerProcess:
        """Stop key server `index` (SIGKILL by default: a crash) and start it again on its ports and database, with
        the given fault plan (None: an honest server)."""
        ks = self.servers[index]
        ks.stop(kill=kill)
        ks.faults = faults
        return ks.start()

    def kill_node(self) -> None:
        assert self.node is not None
        self.node.stop(kill=True)

    def restart_node(self) -> None:
        """Start the node again on its port and database (key servers reconnect to the same address)."""
        assert self.node is not None
        self.node.stop(kill=True)
        self.node.start()

    def stop(self) -> None:
        for ks in self.servers:
            ks.stop()
        if self.node is not None:
            self.node.stop()

    def __enter__(self) -> "LocalNetwork":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
