"""`secretstore dev` takes Substrate's RPC port and Parity's HTTP port when they are free, says so and uses free ports
when they are taken, and refuses ports asked for explicitly that are taken (the README test runs it on 9944)."""

import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from secretstore.cli.commands.dev import choose_ports, port_free
from secretstore.process import free_port

SCRIPT = str(Path(sys.executable).with_name("secretstore"))


@contextmanager
def listening(port: int):
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        yield


def consecutive_free(count: int) -> int:
    for _ in range(50):
        first = free_port()
        if first + count <= 65535 and all(port_free(p) for p in range(first, first + count)):
            return first
    pytest.skip("no run of free ports found")


def test_the_default_ports_when_free():
    first = consecutive_free(3)
    assert choose_ports(None, first, 3, "HTTP", "--http-port") == ([first, first + 1, first + 2], None)
    assert choose_ports(first, 9944, 1, "RPC", "--rpc-port") == ([first], None)


def test_a_taken_default_is_said_and_replaced_by_free_ports():
    first = consecutive_free(3)
    with listening(first + 1):
        ports, note = choose_ports(None, first, 3, "the key servers' HTTP APIs listen", "--http-port")
        assert note is not None and f"port {first + 1} is already in use" in note
        assert ", ".join(map(str, ports)) in note
        assert len(set(ports)) == 3 and first + 1 not in ports and all(port_free(p) for p in ports)
    with listening(first):
        [port], note = choose_ports(None, first, 1, "the node's RPC listens", "--rpc-port")
        assert port != first and port_free(port) and f"listens on {port} instead" in note


def test_a_taken_port_asked_for_is_refused():
    port = free_port()
    with listening(port):
        assert not port_free(port)
        with pytest.raises(ValueError, match=f"--rpc-port: port {port} is already in use"):
            choose_ports(port, 9944, 1, "RPC", "--rpc-port")
        done = subprocess.run([SCRIPT, "dev", "--rpc-port", str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"--rpc-port: port {port} is already in use" in done.stderr
    assert "starting the chain node" not in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--rpc-port", "0"], "--rpc-port must be a TCP port"),
    (["--rpc-port", "65536"], "--rpc-port must be a TCP port"),
    (["--http-port", "65535"], "--http-port must be a TCP port (1-65533)"),  # three key servers need three ports
])
def test_ports_out_of_range(args, message, tmp_path):
    done = subprocess.run([SCRIPT, "dev", "--base-path", str(tmp_path / "dev"), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and message in done.stderr
