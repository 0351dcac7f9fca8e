"""A network laid out as on separate hosts (each key server on its own loopback address, the node on another), the
whole document key flow over it, and Prometheus metrics of the node and key servers scraped before and after a flow."""

import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

from secretstore.client import SecretStoreClient
from secretstore.client.http import SecretStoreHttpClient
from secretstore.crypto import Secret, ServerKeyId
from secretstore.devnet import LocalNetwork
from secretstore.keyserver.testing import key_server_secret

from .helpers import SCRIPT, can_bind, scrape, status, value

ALICE = Secret(b"\x01" * 32)
NODE_HOST = "127.0.0.10"

pytestmark = pytest.mark.skipif(not (can_bind("127.0.0.2") and can_bind(NODE_HOST) and Path("/proc/net/tcp").exists()),
                                reason="needs the whole 127.0.0.0/8 on the loopback interface, and /proc (Linux)")


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    # the fourth key server runs outside the set until the last test adds it
    net = LocalNetwork(tmp_path_factory.mktemp("hosts"), key_servers=4, initial_set=3, separate_hosts=True,
                       node_host=NODE_HOST, metrics=True).start()
    yield net
    net.stop()


def listeners() -> dict[int, set[str]]:
    """Listening TCP sockets (IPv4) of this machine: port -> addresses, from /proc/net/tcp."""
    found: dict[int, set[str]] = {}
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                found.setdefault(int(port, 16), set()).add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


STORED: list[tuple[ServerKeyId, bytes, bytes]] = []  # (key id, encrypted, plaintext) of the flows that ran


def document_flow(url: str, text: bytes) -> None:
    """Generate a server key, store a document key, retrieve its shadow and decrypt — via the SDK."""
    with SecretStoreClient(url, "//Alice", timeout=60) as alice:
        key_id = ServerKeyId(secrets.token_bytes(32))
        alice.claim_key(key_id)
        server_key = alice.generate_server_key(key_id, threshold=1)
        generated = alice.store_new_document_key(key_id, server_key, ALICE)
        encrypted = alice.encrypt_document(generated.document_key, text)
        shadow = alice.retrieve_document_key_shadow(key_id, ALICE)
        assert len(shadow.shadows) == 2
        assert alice.decrypt_document(shadow.document_key(ALICE), encrypted) == text
    STORED.append((key_id, encrypted, text))


def test_key_servers_on_their_own_addresses(network):
    assert network.node.ws_url.startswith(f"ws://{NODE_HOST}:")
    hosts = [ks.host for ks in network.servers]
    assert hosts == ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    # each cluster port is bound to its key server's address only, not to every interface
    listening = listeners()
    for ks in network.servers:
        assert listening.get(ks.net_port) == {ks.host}
    # the chain lists those addresses, and status finds each reachable there
    shown = status(network.node.ws_url)
    assert [(ks["id"], ks["address"], ks["reachable"]) for ks in shown["key_servers"]["current"]] == \
        [(key_server_secret(i).public().address().hex(), f"127.0.0.{i + 2}:{network.servers[i].net_port}", True)
         for i in range(3)]
    document_flow(network.node.ws_url, b"across hosts")


def test_status_for_people(network):
    result = subprocess.run([SCRIPT, "status", "--sub-host", NODE_HOST, "--sub-port", str(network.node.port)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"chain      ws://{NODE_HOST}:{network.node.port}"
    assert lines[1].startswith("best       #") and lines[2].startswith("finalized  #")
    assert "current set (3):" in lines
    for ks in network.servers[:3]:
        assert f"  {ks.id.hex()}  {ks.address:<24} reachable" in lines
    assert "new set: same as current" in lines and "migration: none running" in lines
    assert "pending requests: 0" in lines


def test_metrics_follow_a_flow(network):
    node_port = network.node.prometheus_port
    ks_ports = [ks.metrics_port for ks in network.servers[:3]]
    node_before = scrape(node_port)
    ks_before = [scrape(p) for p in ks_ports]

    document_flow(network.node.ws_url, b"counted")

    node_after = scrape(node_port)
    ks_after = [scrape(p) for p in ks_ports]

    def grew(before, after, name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    # node: blocks sealed with the flow's transactions (claim, request, key server responses, ...)
    blocks = grew(node_before, node_after, "secretstore_node_blocks_produced_total")
    assert blocks >= 4
    assert grew(node_before, node_after, "secretstore_node_extrinsics_included_total") >= blocks
    best = value(node_after, "substrate_block_height", status="best")
    assert best == value(node_after, "substrate_block_height", status="finalized")
    assert best - value(node_before, "substrate_block_height", status="best") == blocks
    assert grew(node_before, node_after, "secretstore_node_rpc_calls_total", method="state_call") > 0
    assert sum(grew(node_before, node_after, "secretstore_node_rpc_calls_total", method=method)
               for method in ("author_submitExtrinsic", "author_submitAndWatchExtrinsic")) >= 4
    assert value(node_after, "substrate_ready_transactions_number") >= 0
    assert value(node_after, "secretstore_node_rpc_connections") >= 3  # each key server holds a WebSocket

    # key servers: one generation and one shadow retrieval were led (by whichever server was master), each stored
    # its share of the new key and answered on chain
    def total(samples, name, **labels):
        return sum(value(s, name, **labels) for s in samples)

    for kind in ("server_key_generation", "document_key_shadow_retrieval"):
        assert total(ks_after, "secretstore_keyserver_sessions_started_total", kind=kind) - \
            total(ks_before, "secretstore_keyserver_sessions_started_total", kind=kind) == 1
        assert total(ks_after, "secretstore_keyserver_sessions_succeeded_total", kind=kind) - \
            total(ks_before, "secretstore_keyserver_sessions_succeeded_total", kind=kind) == 1
        assert total(ks_after, "secretstore_keyserver_session_duration_seconds_count", kind=kind) - \
            total(ks_before, "secretstore_keyserver_session_duration_seconds_count", kind=kind) == 1
        assert total(ks_after, "secretstore_keyserver_sessions_failed_total", kind=kind) == \
            total(ks_before, "secretstore_keyserver_sessions_failed_total", kind=kind)
    for before, after in zip(ks_before, ks_after):
        assert value(after, "secretstore_keyserver_shares_stored") - value(before, "secretstore_keyserver_shares_stored") == 1
        assert value(after, "secretstore_keyserver_peers_connected") == 2
        assert grew(before, after, "secretstore_keyserver_responses_submitted_total", call="server_key_generated") == 1
        assert grew(before, after, "secretstore_keyserver_responses_submitted_total", call="document_key_stored") <= 1
        assert value(after, "secretstore_keyserver_chain_head") > value(before, "secretstore_keyserver_chain_head")
        assert value(after, "secretstore_keyserver_chain_lag_blocks") >= 0
    assert total(ks_after, "secretstore_keyserver_responses_submitted_total", call="document_key_stored") > \
        total(ks_before, "secretstore_keyserver_responses_submitted_total", call="document_key_stored")
    # two of the three servers took part in the retrieval and reported a personal part
    assert total(ks_after, "secretstore_keyserver_responses_submitted_total", call="document_key_personal_retrieved") - \
        total(ks_before, "secretstore_keyserver_responses_submitted_total", call="document_key_personal_retrieved") == 2


def test_metrics_count_http_api_sessions(network):
    """Parity's HTTP API runs direct sessions on the key server it reaches: counted by kind there too."""
    api = SecretStoreHttpClient(network.servers[0].http_url, timeout=60)
    ports = [ks.metrics_port for ks in network.servers[:3]]
    before = [scrape(p) for p in ports]
    key_id = ServerKeyId(secrets.token_bytes(32))
    with SecretStoreClient(network.node.ws_url, "//Alice", timeout=60) as alice:
        alice.claim_key(key_id)
    api.generate_server_key(key_id, ALICE, 1)
    api.sign_schnorr(key_id, ALICE, secrets.token_bytes(32))
    after = [scrape(p) for p in ports]

    def total(samples, name, kind):
        return sum(value(s, name, kind=kind) for s in samples)

    for kind in ("server_key_generation", "signing"):
        assert total(after, "secretstore_keyserver_sessions_succeeded_total", kind) - \
            total(before, "secretstore_keyserver_sessions_succeeded_total", kind) == 1
    assert total(after, "secretstore_keyserver_session_duration_seconds_count", "signing") - \
        total(before, "secretstore_keyserver_session_duration_seconds_count", "signing") == 1


def test_no_secret_in_metrics_or_process_list_and_metrics_on_127_0_0_1_only(network):
    listening = listeners()
    for port in [network.node.prometheus_port] + [ks.metrics_port for ks in network.servers]:
        assert listening.get(port) == {"127.0.0.1"}  # by default, not on every interface
    assert listening.get(network.node.port) == {NODE_HOST}
    for ks in network.servers:
        secret = ks.secret.to_int().to_bytes(32, "big").hex()
        text = "\n".join(f"{name} {labels} {v}" for (name, labels), v in scrape(ks.metrics_port).items())
        assert secret not in text
        # key server secret and signer SURI come from files: other local users cannot read them off `ps`
        command_line = Path(f"/proc/{ks.process.pid}/cmdline").read_bytes().decode()
        assert secret not in command_line and ks.signer not in command_line and "--sub-signer-file" in command_line


def test_restart_from_a_copy_of_the_share_database(network, tmp_path):
    """docs/deployment.md's backup and restore: stop the key server, copy its --db-path, start it from the copy."""
    document_flow(network.node.ws_url, b"kept in the backup")
    ks = network.servers[2]
    shares = value(scrape(ks.metrics_port), "secretstore_keyserver_shares_stored")
    assert shares >= len(STORED)
    ks.stop()
    backup = tmp_path / "backup"
    subprocess.run(["cp", "-a", str(ks.db_path), str(backup)], check=True)
    for path in ks.db_path.glob("keys.sqlite*"):  # the share database is lost ...
        path.unlink()
    subprocess.run(["cp", "-a", f"{backup}/.", str(ks.db_path)], check=True)  # ... and restored from the copy
    ks.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            samples = scrape(ks.metrics_port)
            if value(samples, "secretstore_keyserver_peers_connected") == 2:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the restarted key server did not reconnect"
        time.sleep(0.2)
    assert value(samples, "secretstore_keyserver_shares_stored") == shares  # every share came back
    with SecretStoreClient(network.node.ws_url, "//Alice", timeout=60) as alice:
        for key_id, encrypted, text in STORED:  # every key still decrypts, whichever servers take part
            assert alice.decrypt_document(alice.retrieve_document_key(key_id, ALICE), encrypted) == text


def test_add_a_key_server_on_another_host(network):
    """docs/deployment.md's "adding a key server", with the commands it lists."""
    if not STORED:
        document_flow(network.node.ws_url, b"before the set grows")
    extra = network.servers[3]
    result = subprocess.run([SCRIPT, "submit-transaction", "--sub-host", NODE_HOST, "--sub-port", str(network.node.port),
                             f"--transaction=AddKeyServer({extra.id.hex()},{extra.address})", "--wait-processed"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Migration has completed" in result.stdout
    shown = status(network.node.ws_url)
    assert [(ks["address"], ks["reachable"]) for ks in shown["key_servers"]["current"]] == \
        [(f"127.0.0.{i + 2}:{network.servers[i].net_port}", True) for i in range(4)]
    assert shown["migration"] is None
    with SecretStoreClient(network.node.ws_url, "//Alice", timeout=60) as alice:
        key_id, encrypted, text = STORED[0]
        assert alice.decrypt_document(alice.retrieve_document_key(key_id, ALICE), encrypted) == text


def test_key_servers_ride_out_a_node_restart(network):
    """docs/deployment.md's upgrade of the node: stopped and started again, the key servers reconnect by themselves."""
    network.node.stop()
    time.sleep(3)  # the key servers meet no node for a while
    network.node.start()
    assert all(ks.alive() for ks in network.servers)
    document_flow(network.node.ws_url, b"after the node restarted")
