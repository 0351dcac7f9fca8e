"""The key servers' audit logs: the whole demo story (`secretstore demo`'s) on a live network, then every request of
it found in the logs as it happened (chain tasks and HTTP requests, who led them, their outcomes), and none of the
secrets involved in any log: requester and key server secrets, the key shares, the document key, the {sig} of each
HTTP request. Then the log file's own behaviour (buffered, flushed soon, a torn line skipped) and `secretstore audit`."""

import asyncio
import json
import time
from datetime import datetime

import pytest

from secretstore.cli.commands.demo import story
from secretstore.cli.main import main
from secretstore.client import SecretStoreHttpClient
from secretstore.client.http import request_signature
from secretstore.crypto import Secret, ServerKeyId
from secretstore.devnet import LocalNetwork
from secretstore.keyserver import audit
from secretstore.keyserver.audit import AuditLog, read_entries
from secretstore.keyserver.testing import key_server_secret

from .helpers import shares_of

ALICE, BOB = Secret(b"\x01" * 32), Secret(b"\x02" * 32)  # //Alice's and //Bob's entities on the dev chain
FIELDS = {"time", "via", "operation", "key_id", "requester", "master", "outcome", "duration_ms"}


def entries(network: LocalNetwork) -> list[list[dict]]:
    return [list(read_entries(ks.db_path / "audit.log")) for ks in network.servers]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with LocalNetwork(tmp_path_factory.mktemp("audit"), key_servers=4, initial_set=3) as network:
        assert story(network, 1) == 0
        time.sleep(audit.FLUSH_AFTER * 3)  # the last lines flushed
        yield network, entries(network)


def test_every_request_of_the_demo_is_in_the_logs(demo):
    network, logs = demo
    alice, bob = ALICE.public().address().hex(), BOB.public().address().hex()
    for line in (line for log in logs for line in log):
        assert set(line) == FIELDS | ({"status"} if line["via"] == "http" else set()), line
        datetime.fromisoformat(line["time"])
        assert line["via"] in ("http", "chain") and isinstance(line["master"], bool)
    generated = [(i, line) for i, log in enumerate(logs) for line in log if line["operation"] == "server_key_generation"]
    key_id = generated[0][1]["key_id"]
    assert {i for i, _ in generated} == {0, 1, 2}  # every key server of the set took part and answered
    assert all(line["key_id"] == key_id and line["requester"] == alice and line["outcome"] == "ok"
               and line["via"] == "chain" for _, line in generated)
    assert sum(line["master"] for _, line in generated) == 1
    assert all(line["duration_ms"] is not None and line["duration_ms"] >= 0 for _, line in generated if line["master"])

    def chain(operation: str, requester: str, outcome: str) -> list[tuple[int, dict]]:
        return [(i, line) for i, log in enumerate(logs) for line in log if line["operation"] == operation
                and line["requester"] == requester and line["outcome"] == outcome and line["key_id"] == key_id]

    assert len(chain("document_key_store", alice, "ok")) == 3
    # Alice's shadow retrieval: n / 2 + 1 common parts, t + 1 personal parts, one of them by the session's master
    assert len(chain("document_key_shadow_retrieval_common", alice, "ok")) >= 2
    personal = chain("document_key_shadow_retrieval_personal", alice, "ok")
    assert len(personal) >= 2 and sum(line["master"] for _, line in personal) == 1
    # after the transfer Alice is refused and Bob served, three times (before, during and after the grown set)
    assert chain("document_key_shadow_retrieval_common", alice, "error")
    assert len(chain("document_key_shadow_retrieval_personal", bob, "ok")) >= 2 * 3
    # Bob's signatures over the HTTP API of key server 1, which led them
    http = [line for line in logs[0] if line["via"] == "http"]
    assert [(line["operation"], line["requester"], line["master"], line["outcome"], line["status"]) for line in http] \
        == [("schnorr_signing", bob, True, "ok", 200), ("ecdsa_signing", bob, True, "ok", 200)]
    assert not any(line["via"] == "http" for log in logs[1:] for line in log)  # the servers it asked write nothing


def test_no_secret_in_any_log(demo):
    network, logs = demo
    key_id = ServerKeyId.from_hex(next(line["key_id"] for line in logs[0] if line["operation"] == "schnorr_signing"))
    api = SecretStoreHttpClient(network.servers[1].http_url, timeout=60)
    document_key = api.retrieve_document_key(key_id, BOB)
    time.sleep(audit.FLUSH_AFTER * 3)
    secrets_hex = [bytes(document_key).hex()]
    secrets_hex += [s.to_int().to_bytes(32, "big").hex() for s in (ALICE, BOB)]
    secrets_hex += [key_server_secret(i).to_int().to_bytes(32, "big").hex() for i in range(len(network.servers))]
    shares = [share for share in shares_of(network, key_id) if share is not None]
    assert len(shares) == 3
    secrets_hex += [share.secret_share.to_bytes(32, "big").hex() for share in shares]
    secrets_hex += [request_signature(BOB, key_id).hex()]  # the {sig} of Bob's requests
    texts = [(ks.db_path / "audit.log").read_text() for ks in network.servers]
    assert "document_key_retrieval" in texts[1]
    for text in texts:
        for secret in secrets_hex:  # whole, and any 16-byte piece of its start
            assert secret not in text and secret[:32] not in text


def test_audit_command_filters(demo, capsys):
    network, logs = demo
    path = network.servers[0].db_path / "audit.log"
    bob = BOB.public().address().hex()
    key_id = next(line["key_id"] for line in logs[0] if line["requester"] == bob)
    assert main(["audit", str(path), "--requester", bob.upper().replace("0X", "")]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed and all(line["requester"] == bob for line in printed)
    assert main(["audit", str(path), "--key-id", key_id, "--requester", bob]) == 0
    both = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert both == [line for line in read_entries(path) if line["key_id"] == key_id and line["requester"] == bob]
    assert main(["audit", str(path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(list(read_entries(path)))
    assert main(["audit", str(path), "--key-id", "0x1234"]) == 1
    assert "--key-id" in capsys.readouterr().err
    assert main(["audit", str(path.with_name("nope.log"))]) == 1


async def test_lines_are_buffered_and_flushed_soon(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    key_id = ServerKeyId(b"\x07" * 32)
    log.record("http", "server_key_retrieval", key_id, ALICE.public().address(), True, "ok", 0.0123, 200)
    assert path.read_text() == ""  # not written line by line
    await asyncio.sleep(audit.FLUSH_AFTER * 2)
    [line] = read_entries(path)
    assert line["key_id"] == key_id.hex() and line["duration_ms"] == 12.3 and line["status"] == 200
    log.record("chain", "server_key_retrieval", key_id, None, False, "error", None)
    log.close()  # flushes
    assert [line["requester"] for line in read_entries(path)] == [ALICE.public().address().hex(), None]
    assert path.stat().st_mode & 0o777 == 0o600
    with open(path, "a") as f:
        f.write('{"time": "2025-01-01T00:00:00.000Z", "via": "ht')  # a line cut short by a crash
    bad: list[int] = []
    assert len(list(read_entries(path, on_bad_line=bad.append))) == 2 and bad == [3]
