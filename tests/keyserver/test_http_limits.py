"""The key server's limits under abuse, each hit and answered as documented while other clients go on: the HTTP API's
bound per requester address and in all (429, a JSON string, at once), malformed paths and bad signatures refused
before any work, the per-request deadline (504, the session kept to its end), and the session router's bound on the
sessions one cluster peer opens here. The HTTP API runs in process over a core whose sessions wait on a gate."""

import asyncio
import json
import secrets
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer

from secretstore.client.http import request_signature
from secretstore.crypto import Address, KeyPair, Public, Secret, ServerKeyId
from secretstore.keyserver.audit import AuditLog, read_entries
from secretstore.keyserver.http import HttpApi
from secretstore.keyserver.limits import Admission, HttpLimits, PeerSessions, TooManyRequests
from secretstore.keyserver.sessions.core import SessionContext, SessionError, ThresholdProtocol

ALICE, BOB, CAROL = Secret(b"\x01" * 32), Secret(b"\x02" * 32), Secret(b"\x03" * 32)
SERVERS = [Address(bytes([i]) * 20) for i in range(1, 4)]


@dataclass
class Share:
    public: Public
    author: Address
    common_point: Public | None


class Shares:
    def __init__(self) -> None:
        self.shares: dict[ServerKeyId, Share] = {}

    def get(self, key_id):
        return self.shares.get(key_id)


class GatedCore:
    """The session side of the HTTP API: records each session started and holds it until the gate opens."""

    def __init__(self) -> None:
        self.storage = Shares()
        self.gate = asyncio.Event()
        self.started: list[tuple[str, ServerKeyId]] = []

    async def _session(self, name: str, key_id: ServerKeyId) -> None:
        self.started.append((name, key_id))
        await self.gate.wait()

    async def retrieve_document_key(self, key_id, signature, among):
        await self._session("retrieve_document_key", key_id)
        return b"\x01" * 113

    async def sign(self, kind, key_id, signature, message_hash, among):
        await self._session(kind, key_id)
        return b"\x02" * 64


class Api:
    def __init__(self, client: TestClient, core: GatedCore, checks: list) -> None:
        self.client, self.core, self.checks = client, core, checks

    def path(self, secret: Secret, key_id: ServerKeyId) -> str:
        return f"/{key_id.hex()}/{request_signature(secret, key_id).hex()}"

    async def get(self, path: str):
        response = await self.client.get(path)
        return response.status, json.loads(await response.text()), response.headers


@pytest.fixture
async def api(tmp_path):
    async def run(limits: HttpLimits, audit: AuditLog | None = None):
        core = GatedCore()
        checks: list = []

        async def check_access(key_id, requester):
            checks.append((key_id, requester))
            return True

        http = HttpApi(core, check_access, lambda: SERVERS, limits=limits, audit=audit)  # type: ignore[arg-type]
        client = TestClient(TestServer(http.app()))
        await client.start_server()
        opened.append(client)
        return Api(client, core, checks), http

    opened: list[TestClient] = []
    yield run
    for client in opened:
        await client.close()


def document_key(core: GatedCore, owner: Secret) -> ServerKeyId:
    key_id = ServerKeyId(secrets.token_bytes(32))
    core.storage.shares[key_id] = Share(KeyPair.generate().public, owner.public().address(), KeyPair.generate().public)
    return key_id


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_bound_per_requester_answers_429_at_once_and_others_go_on(api, tmp_path):
    audit = AuditLog(tmp_path / "audit.log")
    client, http = await api(HttpLimits(max_sessions=10, per_requester=2), audit)
    key = document_key(client.core, ALICE)
    held = [asyncio.create_task(client.get(client.path(ALICE, key))) for _ in range(2)]
    await until(lambda: len(client.core.started) == 2)
    status, body, headers = await asyncio.wait_for(client.get(client.path(ALICE, key)), 2)
    assert status == 429 and isinstance(body, str) and "too many requests" in body
    assert ALICE.public().address().hex() in body and headers["Retry-After"] == "1"
    assert len(client.core.started) == 2  # the refused request started nothing
    # another requester is served meanwhile
    bobs = document_key(client.core, BOB)
    other = asyncio.create_task(client.get(client.path(BOB, bobs)))
    await until(lambda: len(client.core.started) == 3)
    client.core.gate.set()
    assert [(await t)[0] for t in held] == [200, 200] and (await other)[0] == 200
    assert http.admission.total == 0 and not http.admission.by_requester
    assert (await client.get(client.path(ALICE, key)))[0] == 200  # places free again
    audit.close()
    lines = list(read_entries(tmp_path / "audit.log", requester=ALICE.public().address().hex()))
    assert sorted(line["status"] for line in lines) == [200, 200, 200, 429]
    assert [line["outcome"] for line in lines if line["status"] == 429] == ["too_many_requests"]


async def test_bound_in_all_answers_429_for_a_newcomer(api):
    client, http = await api(HttpLimits(max_sessions=3, per_requester=2))
    keys = {who: document_key(client.core, who) for who in (ALICE, BOB, CAROL)}
    held = [asyncio.create_task(client.get(client.path(who, keys[who]))) for who in (ALICE, ALICE, BOB)]
    await until(lambda: len(client.core.started) == 3)
    status, body, _ = await client.get(client.path(CAROL, keys[CAROL]))
    assert status == 429 and "this key server has 3 in progress" in body
    client.core.gate.set()
    assert [(await t)[0] for t in held] == [200] * 3
    assert (await client.get(client.path(CAROL, keys[CAROL])))[0] == 200


async def test_malformed_paths_and_bad_signatures_cost_no_work_and_no_place(api):
    client, http = await api(HttpLimits(max_sessions=1, per_requester=1))
    key = document_key(client.core, ALICE)
    held = asyncio.create_task(client.get(client.path(ALICE, key)))  # every place taken
    await until(lambda: len(client.core.started) == 1)
    good_sig = request_signature(ALICE, key)
    bad = [f"/{key.hex()}", f"/nope/{key.hex()}/{good_sig.hex()}", f"/{key.hex()[:-2]}/{good_sig.hex()}",
           f"/{key.hex()}/{good_sig.hex()[:-2]}", f"/{key.hex()}/{good_sig[:64].hex()}05", f"/{key.hex()}/{'00' * 65}",
           f"/{key.hex()}/{'zz' * 65}", f"/schnorr/{key.hex()}/{good_sig.hex()}/{'00' * 31}",
           f"/shadow/{key.hex()}/{good_sig.hex()}/{'00' * 64}/{'00' * 64}", "/" + "a/" * 200]
    for path in bad:
        status, body, _ = await client.get(path)
        assert status == 400 and isinstance(body, str), path  # not 429: they never reach the limits
    response = await client.client.post(f"/shadow/{key.hex()}/{good_sig.hex()}/x")
    assert response.status == 400
    assert len(client.core.started) == 1 and client.checks == []  # no session, not even an ACL read
    assert http.admission.total == 1
    client.core.gate.set()
    assert (await held)[0] == 200


async def test_deadline_answers_504_and_the_session_keeps_its_place(api, tmp_path):
    audit = AuditLog(tmp_path / "audit.log")
    client, http = await api(HttpLimits(max_sessions=4, per_requester=1, timeout=0.2), audit)
    key = document_key(client.core, ALICE)
    message = client.path(ALICE, key).replace("/", "/schnorr/", 1) + "/" + "ab" * 32
    status, body, _ = await asyncio.wait_for(client.get(message), 5)
    assert status == 504 and "deadline" in body and "0.2 s" in body
    # the session runs on and keeps the requester's place until it ends
    assert (await client.get(client.path(ALICE, key)))[0] == 429
    client.core.gate.set()
    await until(lambda: http.admission.total == 0)
    assert (await client.get(client.path(ALICE, key)))[0] == 200
    audit.close()
    lines = list(read_entries(tmp_path / "audit.log"))
    # the 429 is written at once, the signing when its session ended: with the answer it got and its real outcome
    assert [(line["operation"], line["status"], line["outcome"]) for line in lines] == [
        ("document_key_retrieval", 429, "too_many_requests"), ("schnorr_signing", 504, "ok"),
        ("document_key_retrieval", 200, "ok")]
    assert lines[1]["duration_ms"] >= 200


def test_admission_counts():
    admission = Admission(HttpLimits(max_sessions=2, per_requester=1))
    a, b = Address(b"\x0a" * 20), Address(b"\x0b" * 20)
    admission.admit(a)
    with pytest.raises(TooManyRequests, match="per requester"):
        admission.admit(a)
    admission.admit(b)
    with pytest.raises(TooManyRequests, match="its limit"):
        admission.admit(Address(b"\x0c" * 20))
    admission.release(a)
    admission.release(b)
    assert admission.total == 0 and admission.by_requester == {}
    with pytest.raises(RuntimeError):
        admission.release(a)
    for bad in (dict(max_sessions=0), dict(per_requester=0), dict(timeout=0)):
        with pytest.raises(ValueError):
            HttpLimits(**bad)


# ------------------------------------------------------------------------------------------------ cluster side
class Sessions(ThresholdProtocol):
    """A protocol of the test's own: "open" starts a session that stays in its table, "step" continues one, "close"
    ends it; "slow" is a one-message session that waits on a gate."""

    HANDLERS = {"open": "_open", "step": "_step", "close": "_close", "slow": "_slow"}

    def __init__(self, context: SessionContext) -> None:
        super().__init__(context)
        self.sessions: dict = {}
        self.gate = asyncio.Event()
        context.router.track_sessions(self.sessions)

    async def _open(self, peer, body):
        self.sessions[body["session"]] = type("State", (), {"started": asyncio.get_running_loop().time()})()
        return {}

    async def _step(self, peer, body):
        if body["session"] not in self.sessions:
            raise SessionError("unknown session")
        return {"stepped": True}

    async def _close(self, peer, body):
        self.sessions.pop(body["session"], None)
        return {}

    async def _slow(self, peer, body):
        await self.gate.wait()
        return {}


def router_with_bound(limit: int) -> tuple[SessionContext, Sessions]:
    context = SessionContext(KeyPair.generate(), None, None, None)  # type: ignore[arg-type]
    protocol = Sessions(context)
    context.router.peer_sessions.limit = limit
    return context, protocol


async def test_peer_bound_refuses_new_sessions_of_that_peer_only():
    context, protocol = router_with_bound(3)
    router = context.router
    a, b = Address(b"\x0a" * 20), Address(b"\x0b" * 20)
    for i in range(3):
        await router.handle(a, {"type": "open", "session": f"a{i}"})
    with pytest.raises(SessionError, match="busy"):
        await router.handle(a, {"type": "open", "session": "a3"})
    with pytest.raises(SessionError, match="busy"):  # a one-message session counts as well
        await router.handle(a, {"type": "slow"})
    assert "a3" not in protocol.sessions
    # steps of its open sessions go on, and other peers (and this server itself) are not affected
    assert (await router.handle(a, {"type": "step", "session": "a1"})) == {"stepped": True}
    await router.handle(b, {"type": "open", "session": "b0"})
    await router.handle(context.self_id, {"type": "open", "session": "own"})
    # a session that ends frees its place
    await router.handle(a, {"type": "close", "session": "a0"})
    await router.handle(a, {"type": "open", "session": "a3"})
    assert router.peer_sessions.open_count(a) == 3 and router.peer_sessions.open_count(b) == 1


async def test_peer_bound_counts_messages_being_handled():
    context, protocol = router_with_bound(2)
    router = context.router
    a = Address(b"\x0a" * 20)
    slow = [asyncio.create_task(router.handle(a, {"type": "slow"})) for _ in range(2)]
    await until(lambda: router.peer_sessions.open_count(a) == 2)
    with pytest.raises(SessionError, match="busy"):
        await router.handle(a, {"type": "open", "session": "x"})
    protocol.gate.set()
    await asyncio.gather(*slow)
    assert router.peer_sessions.open_count(a) == 0
    await router.handle(a, {"type": "open", "session": "x"})  # a refused or failed message leaves nothing counted
    with pytest.raises(SessionError):
        await router.handle(a, {"type": "step", "session": "nope"})
    assert router.peer_sessions.open_count(a) == 1


def test_peer_sessions_bookkeeping():
    live = {"s1", "s2"}
    bound = PeerSessions(live.__contains__, limit=2)
    peer = Address(b"\x0a" * 20)
    assert bound.open(peer) and bound.open(peer) and not bound.open(peer)
    bound.close(peer, "s1")
    bound.close(peer, "s2")
    assert not bound.open(peer)
    live.discard("s1")  # its session ended: looked up again only at the bound
    assert bound.open(peer) and bound.open_count(peer) == 2


@pytest.mark.parametrize("flags, message", [
    (["--http-max-sessions", "8"], "need --http-port"),
    (["--http-port", "18082", "--http-max-sessions", "0"], "at least 1"),
    (["--http-port", "18082", "--http-max-sessions-per-requester", "0"], "at least 1"),
    (["--http-port", "18082", "--http-request-timeout", "0"], "--http-request-timeout"),
])
def test_bad_limit_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    from secretstore.cli.main import main

    db = tmp_path / "db"
    assert main(["key-server", "--self-secret", "01" * 32, "--db-path", str(db), *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not db.exists()  # refused before anything was made
