"""Bad input at a real key server process's boundaries (issue 13's sweep): its cluster port, before and after the
handshake, and Parity's HTTP API. Each connection or request is refused with a clear reason, the key server keeps
serving (real requests succeed afterwards) and its key share database is unchanged.

One node and three key server processes (t = 1). The cluster tests handshake as a legitimate member with the
project's own transport code, using the dev secret of key server 3 (every key server's secret is known here), so
the victim really decrypts what they send; the real key server 3 gets its link back afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import socket
import sqlite3
import struct
import time
import urllib.error
import urllib.request

import pytest

from secretstore.client import SecretStoreClient
from secretstore.client.http import SecretStoreHttpClient, request_signature
from secretstore.crypto import KeyPair, Secret
from secretstore.keyserver import net
from secretstore.devnet import LocalNetwork
from secretstore.keyserver.testing import key_server_secret

from .helpers import new_key_id

ALICE = Secret(b"\x01" * 32)  # //Alice's entity: she claims the keys here


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with LocalNetwork(tmp_path_factory.mktemp("bad-input")) as started:
        yield started


@pytest.fixture(scope="module")
def alice(network):
    with SecretStoreClient(network.node.ws_url, "//Alice", timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def existing_key(network, alice):
    """A key generated before the sweep: the databases hold something that must stay exactly as it is."""
    key_id = new_key_id()
    alice.claim_key(key_id)
    public = SecretStoreHttpClient(network.servers[0].http_url, timeout=60).generate_server_key(key_id, ALICE, 1)
    return key_id, public


def database_digest(ks) -> str:
    """Every row of every table of a key server's share database (read-only, beside the running process)."""
    conn = sqlite3.connect(f"file:{ks.db_path / 'keys.sqlite'}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            digest.update(table.encode())
            for row in sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr):
                digest.update(repr(row).encode())
        return digest.hexdigest()
    finally:
        conn.close()


def databases(network) -> list[str]:
    return [database_digest(ks) for ks in network.servers]


def log_of(ks) -> str:
    return ks.log_path.read_text(errors="replace")


def wait_for_log(ks, *fragments: str, after: int, timeout: float = 20.0) -> str:
    """The first log line past offset `after` that contains every fragment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_of(ks)[after:].splitlines():
            if all(f in line for f in fragments):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line with {fragments!r}; log tail: {log_of(ks)[after:][-2000:]}")


def still_serving(network, alice) -> None:
    """A real request through the whole cluster: generation needs every key server, retrieval t + 1 of them."""
    network.wait_connected(60)
    key_id = new_key_id()
    alice.claim_key(key_id)
    api = SecretStoreHttpClient(network.servers[0].http_url, timeout=60)
    public = api.generate_server_key(key_id, ALICE, 1)
    assert SecretStoreHttpClient(network.servers[1].http_url, timeout=60).retrieve_server_key(key_id, ALICE) == public
    assert all(ks.alive() for ks in network.servers)


# ------------------------------------------------------------------------------------------- before the handshake

def read_until_closed(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """Everything the key server sends until it closes the connection (an error if it keeps it open)."""
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def hello(public: bytes, ephemeral: bytes | None = None) -> bytes:
    ephemeral = ephemeral if ephemeral is not None else bytes(Secret.random().public())
    return net.MAGIC + public + ephemeral + secrets.token_bytes(32)


OUTSIDER = KeyPair(Secret(b"\x09" * 32))  # a valid key, not in the key server set


HANDSHAKE_CASES = [
    ("garbage", lambda victim: secrets.token_bytes(net.HELLO_LEN), "not a SecretStore cluster peer"),
    ("http request", lambda victim: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(200), "not a SecretStore cluster peer"),
    ("huge garbage", lambda victim: b"\xff" * (3 * net.MAX_FRAME), "not a SecretStore cluster peer"),
    ("length prefix over the limit", lambda victim: struct.pack(">I", 0xFFFFFFFF) + bytes(net.HELLO_LEN),
     "not a SecretStore cluster peer"),
    ("key not in the set", lambda victim: hello(bytes(OUTSIDER.public)), "is not in the key server set"),
    ("public not on the curve", lambda victim: hello(b"\x00" * 63 + b"\x07"), "invalid public key"),
    ("ephemeral not on the curve", lambda victim: hello(bytes(key_server_secret(2).public()), bytes(64)),
     "invalid public key"),
    ("itself", lambda victim: hello(bytes(victim.secret.public())), "is not in the key server set"),
    ("truncated hello", lambda victim: hello(bytes(key_server_secret(2).public()))[:100],
     "100 bytes read on a total of 164"),
    ("member without its secret", lambda victim: hello(bytes(key_server_secret(2).public())) + bytes(65),
     "failed to prove possession"),
    ("member with a wrong signature", lambda victim: hello(bytes(key_server_secret(2).public()))
     + bytes(OUTSIDER.sign(b"\x11" * 32)), "failed to prove possession"),
]


@pytest.mark.parametrize("case, send, reason", HANDSHAKE_CASES, ids=[c[0] for c in HANDSHAKE_CASES])
def test_bad_handshakes_are_refused_with_a_logged_reason(network, existing_key, silent_connection, case, send,
                                                         reason):
    victim = network.servers[0]
    before = databases(network)
    offset = len(log_of(victim))
    with socket.create_connection(("127.0.0.1", victim.net_port), timeout=10) as sock:
        try:
            sock.sendall(send(victim))
            sock.shutdown(socket.SHUT_WR)  # a truncated handshake ends here
        except OSError:
            pass  # the key server may close before reading everything
        received = read_until_closed(sock)
    # the key server sends its own HELLO first (and its AUTH only after checking the peer's HELLO), never more; when
    # it closes with input left unread the reset may discard what was in flight
    assert len(received) <= net.HELLO_LEN + 65 and received[:4] in (net.MAGIC, b""), received[:8]
    wait_for_log(victim, "refused cluster connection", reason, after=offset)
    assert databases(network) == before
    assert victim.alive()


@pytest.fixture(scope="module")
def silent_connection(network, existing_key):
    """A connection that never says anything, opened before the handshake sweep so that its timeout runs meanwhile."""
    victim = network.servers[1]
    offset = len(log_of(victim))
    sock = socket.create_connection(("127.0.0.1", victim.net_port), timeout=10)
    yield victim, sock, offset, time.monotonic()
    sock.close()


# -------------------------------------------------------------------------------------------- after the handshake

IMPERSONATED = 2  # the member whose identity the tests below take


@pytest.fixture(scope="class")
def member_stopped(network, existing_key):
    """The real key server 3 is stopped while the tests below speak with its identity: its reconnection (or the
    victim's re-dial) would otherwise replace their connection. Started again afterwards."""
    network.servers[IMPERSONATED].stop()
    yield
    network.servers[IMPERSONATED].start()
    network.wait_connected(60)


async def connect_as_member(victim, member_index: int) -> net.Connection:
    """A real handshake with the victim as key server `member_index` (its dev secret), using net.handshake."""
    reader, writer = await asyncio.open_connection("127.0.0.1", victim.net_port, limit=net.MAX_FRAME + 64)
    directory = net.KeyServerDirectory()
    directory.update({victim.id: ("127.0.0.1", victim.net_port)})
    return await net.handshake(KeyPair(key_server_secret(member_index)), reader, writer, directory, victim.id)


def encrypt_frame(conn: net.Connection, plaintext: bytes) -> bytes:
    """What Connection.send writes, for any plaintext (it only sends JSON objects)."""
    from Crypto.Cipher import ChaCha20_Poly1305

    header = struct.pack(">I", len(plaintext) + 16)
    cipher = ChaCha20_Poly1305.new(key=conn.send_key, nonce=struct.pack(">4xQ", conn.send_counter))
    cipher.update(header)
    body, tag = cipher.encrypt_and_digest(plaintext)
    conn.send_counter += 1
    return header + body + tag


async def closed_by_peer(conn: net.Connection, timeout: float = 15.0) -> bool:
    async with asyncio.timeout(timeout):
        while True:
            try:
                await conn.recv()  # pings and anything else the victim still sends
            except (asyncio.IncompleteReadError, ConnectionError):
                return True


FRAME_CASES = {
    "flipped bit": (lambda conn: (lambda f: f[:-1] + bytes([f[-1] ^ 1]))(encrypt_frame(conn, b'{"kind":"ping"}')),
                    "frame failed authentication"),
    "replayed frame": (lambda conn: (lambda f: f + f)(encrypt_frame(conn, b'{"kind":"ping"}')),
                       "frame failed authentication"),
    "wrong key": (lambda conn: struct.pack(">I", 40) + secrets.token_bytes(40), "frame failed authentication"),
    "length over the limit": (lambda conn: struct.pack(">I", net.MAX_FRAME + 17) + bytes(64), "outside the limit"),
    "length under a tag": (lambda conn: struct.pack(">I", 15) + bytes(15), "outside the limit"),
    "length 2^32 - 1": (lambda conn: b"\xff\xff\xff\xff", "outside the limit"),
    "truncated frame": (lambda conn: encrypt_frame(conn, b'{"kind":"ping"}')[:-5], "bytes read on a total of 31"),
    "not JSON": (lambda conn: encrypt_frame(conn, b"\x00\x01 not json"), "not a JSON message"),
    "not UTF-8": (lambda conn: encrypt_frame(conn, b'{"kind":"\xff"}'), "not a JSON message"),
    "JSON list": (lambda conn: encrypt_frame(conn, b'["request"]'), "malformed cluster message"),
    "unknown kind": (lambda conn: encrypt_frame(conn, b'{"kind":"shutdown"}'), "malformed cluster message"),
    "no kind": (lambda conn: encrypt_frame(conn, b'{"id":1,"body":{}}'), "malformed cluster message"),
}


@pytest.mark.usefixtures("member_stopped")
class TestAfterTheHandshake:
    @pytest.mark.parametrize("case", list(FRAME_CASES))
    async def test_bad_frames_after_the_handshake_end_the_connection(self, network, existing_key, case):
        make, reason = FRAME_CASES[case]
        victim = network.servers[0]
        before = databases(network)
        offset = len(log_of(victim))
        conn = await connect_as_member(victim, IMPERSONATED)
        try:
            await asyncio.to_thread(wait_for_log, victim, "peer connected", after=offset)
            conn.writer.write(make(conn))
            if case == "truncated frame":
                conn.writer.write_eof()
            await conn.writer.drain()
            assert await closed_by_peer(conn)
        finally:
            conn.close()
        # (the real key server 3's link, replaced by this one, is logged as disconnected too, with another reason)
        await asyncio.to_thread(wait_for_log, victim, "peer disconnected", reason,
                                f"peer={key_server_secret(IMPERSONATED).public().address().hex()}", after=offset)
        assert databases(network) == before
        assert victim.alive()


    async def test_well_encrypted_malformed_requests_are_answered_with_errors(self, network, existing_key):
        """Frames that decrypt and parse but carry requests no key server would send: each gets an error response on the
        same connection (which stays usable), and nothing is stored."""
        key_id, _ = existing_key
        victim = network.servers[0]
        before = databases(network)
        conn = await connect_as_member(victim, IMPERSONATED)
        bodies = [
            "not an object", None, [], {}, {"type": None}, {"type": "no_such_step"}, {"type": "dkg_init"},
            {"type": "dkg_init", "key_id": "0xzz", "participants": "all", "threshold": -1},
            {"type": "dkg_init", "key_id": key_id.hex(), "participants": [key_server_secret(i).public().address().hex()
                                                                           for i in range(3)], "threshold": 1,
             "session": "s" * 32, "author": "0x" + "00" * 20},  # a key that exists already
            {"type": "dkg_share", "session": "nope", "share": "0x" + "ff" * 64, "blinding": []},
            {"type": "dkg_verify", "session": "nope", "phase": "commit", "qualified": 5},
            {"type": "shadow_part", "key_id": key_id.hex(), "participants": ["0x1"], "access_key": "0x"},
            {"type": "sign_init", "kind": "rsa", "key_id": key_id.hex()},
            {"type": "doc_store", "key_id": key_id.hex(), "common_point": "0x" + "00" * 63 + "07",
             "encrypted_point": "0x" + "00" * 64},
            {"type": ["dkg_init"]},
            {"type": "x" * 10_000},
        ]
        try:
            for i, body in enumerate(bodies):
                await conn.send({"kind": "request", "id": i, "body": body})
                while True:
                    reply = await asyncio.wait_for(conn.recv(), 20)
                    if reply.get("kind") == "response":
                        break
                assert reply["id"] == i and reply["ok"] is False, (body, reply)
                assert isinstance(reply["error"], str) and reply["error"], reply
                assert "Traceback" not in reply["error"]
            # responses nobody asked for are ignored, and the link still works
            await conn.send({"kind": "response", "id": 424242, "ok": True, "body": {"x": 1}})
            await conn.send({"kind": "ping"})
            while (await asyncio.wait_for(conn.recv(), 20))["kind"] != "pong":
                pass
        finally:
            conn.close()
        assert databases(network) == before
        assert victim.alive()


def test_after_the_sweep_the_cluster_still_serves(network, alice, existing_key):
    """Runs after the sweep above (module order): the impersonated key server has its link back, every key server
    serves a new generation and the existing key, and only the new key was added to the databases."""
    key_id, public = existing_key
    before = databases(network)
    still_serving(network, alice)
    for ks in network.servers:
        assert SecretStoreHttpClient(ks.http_url, timeout=60).retrieve_server_key(key_id, ALICE) == public
    assert databases(network) != before  # the new key
    secrets_hex = [key_server_secret(i).to_int().to_bytes(32, "big").hex() for i in range(3)]
    for ks in network.servers:
        log = log_of(ks)
        assert "Traceback" not in log
        assert not [s for s in secrets_hex if s in log.lower()]  # no secret in any log line, whatever came in


# ------------------------------------------------------------------------------------------------------- HTTP API

def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_http_api_bad_requests_are_4xx_with_a_message_and_store_nothing(network, alice, existing_key):
    key_id, public = existing_key
    fresh = new_key_id()
    alice.claim_key(fresh)  # claimed, never generated: a bad request must not generate it
    sig = request_signature(ALICE, fresh).hex()
    other_v = "1c" if sig[-2:] == "00" else "1b"  # v as 27 / 28
    kid = fresh.hex()[2:]
    point = bytes(Secret.random().public()).hex()
    off_curve = "00" * 63 + "07"
    base = network.servers[2].http_url
    before = databases(network)
    cases = [
        ("GET", "/nope"), ("GET", "/a/b/c/d/e/f"), ("GET", "//"), ("GET", f"/{kid}/{sig}/1/2/3/4"),
        ("DELETE", f"/server/{kid}/{sig}"), ("PATCH", f"/shadow/{kid}/{sig}/1"), ("PUT", f"/{kid}/{sig}/1"),
        ("GET", f"/shadow/{kid}/{sig}/1"),  # generation is a POST
        ("POST", f"/server/{kid}/{sig}"),
        ("POST", f"/shadow/{kid[:-2]}/{sig}/1"), ("POST", f"/shadow/{kid}00/{sig}/1"), ("POST", f"/shadow/0x/{sig}/1"),
        ("POST", f"/shadow/{'zz' * 32}/{sig}/1"), ("POST", f"/shadow/{kid}/{sig[:-2]}/1"),
        ("POST", f"/shadow/{kid}/{sig}00/1"), ("POST", f"/shadow/{kid}/{'zz' * 65}/1"),
        ("POST", f"/shadow/{kid}/{'00' * 65}/1"),
        ("POST", f"/shadow/{kid}/{sig[:-2]}{other_v}/1"),  # the other recovery id: someone else, who has no access
        ("POST", f"/shadow/{kid}/{sig[:-2]}05/1"),
        ("POST", f"/shadow/{kid}/{sig}/-1"), ("POST", f"/shadow/{kid}/{sig}/3"), ("POST", f"/shadow/{kid}/{sig}/999"),
        ("POST", f"/shadow/{kid}/{sig}/1000000000000"), ("POST", f"/shadow/{kid}/{sig}/one"),
        ("POST", f"/shadow/{kid}/{sig}/1.0"), ("POST", f"/shadow/{kid}/{sig}/%20"), ("POST", f"/shadow/{kid}/{sig}/"),
        ("POST", f"/{kid}/{sig}/9"),
        ("POST", f"/shadow/{kid}/{sig}/{off_curve}/{point}"), ("POST", f"/shadow/{kid}/{sig}/{point}/{off_curve}"),
        ("POST", f"/shadow/{kid}/{sig}/{point[:-2]}/{point}"), ("POST", f"/shadow/{kid}/{sig}/0x/{point}"),
        ("GET", f"/schnorr/{kid}/{sig}/zz"), ("GET", f"/ecdsa/{kid}/{sig}/{'00' * 33}"), ("GET", f"/ecdsa/{kid}/{sig}"),
        ("GET", f"/%ff%fe/{sig}"), ("GET", f"/{kid}%2F{sig}"), ("GET", "/" + "a" * 4000),
        ("POST", "/admin/servers_set_change"), ("GET", f"/admin/servers_set_change/{sig}/{sig}"),
    ]
    for method, path in cases:
        status, body = http(method, base + path)
        assert 400 <= status < 500, (method, path, status, body)
        message = json.loads(body)
        assert isinstance(message, str) and message and "Traceback" not in message, (method, path, body)
    # bodies: the API takes none; a big one is refused (or ignored) without a 500, a small one is ignored
    for size in (10, 70 * 1024, 2 * 1024 * 1024):
        status, body = http("POST", f"{base}/shadow/{kid}/{sig}/9", body=b"x" * size)
        assert 400 <= status < 500, (size, status, body)
    # nothing was generated or stored by any of it
    assert databases(network) == before
    # and the server still serves: the fresh key generates now, and the existing key is still served
    assert SecretStoreHttpClient(base, timeout=60).generate_server_key(fresh, ALICE, 1) != public
    assert SecretStoreHttpClient(base, timeout=60).retrieve_server_key(key_id, ALICE) == public
    for ks in network.servers:
        assert "http request failed unexpectedly" not in log_of(ks)


def test_http_api_garbage_on_the_socket(network, existing_key):
    """Not HTTP at all, or HTTP with broken framing: the server answers 4xx or closes; it keeps serving."""
    ks = network.servers[1]
    key_id, public = existing_key
    for raw in (b"\x16\x03\x01\x02\x00" + secrets.token_bytes(200),  # a TLS ClientHello
                b"GET /server HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                b"GET / HTTP/9.9\r\n\r\n",
                b"POST /shadow/x/y/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nshort",
                b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", ks.http_port), timeout=10) as sock:
            try:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            answer = read_until_closed(sock)
        if answer:
            status = int(answer.split(b" ", 2)[1])
            assert 400 <= status < 500, answer[:200]
    assert SecretStoreHttpClient(ks.http_url, timeout=60).retrieve_server_key(key_id, ALICE) == public
    assert ks.alive()


def test_key_id_argument_forms(network, existing_key):
    """The key id with 0x, without, and in upper case is the same key; one byte more or less is a 400, not another
    key."""
    key_id, public = existing_key
    base = network.servers[0].http_url
    sig = request_signature(ALICE, key_id).hex()
    for form in (key_id.hex(), key_id.hex()[2:], key_id.hex()[2:].upper()):
        status, body = http("GET", f"{base}/server/{form}/{sig}")
        assert status == 200 and json.loads(body) == public.hex(), (form, status, body)
    for form in (key_id.hex()[:-2], key_id.hex() + "00", "0x0x" + key_id.hex()[2:]):
        status, body = http("GET", f"{base}/server/{form}/{sig}")
        assert status == 400 and "key id" in json.loads(body), (form, status, body)


def test_a_silent_connection_is_dropped_after_the_handshake_timeout(silent_connection):
    """Last in the module: the connection was opened before the handshake sweep, its timeout has run meanwhile."""
    victim, sock, offset, started = silent_connection
    received = read_until_closed(sock, timeout=net.HANDSHAKE_TIMEOUT + 20)
    assert received[:4] == net.MAGIC and len(received) == net.HELLO_LEN
    assert time.monotonic() - started >= net.HANDSHAKE_TIMEOUT - 0.5
    wait_for_log(victim, "refused cluster connection", "reason=TimeoutError", after=offset)
