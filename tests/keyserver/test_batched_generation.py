"""Batched server key generation (the path chain requests take) between real key server cores over loopback: many
keys per cluster message, one share check per key and receiver, and the one-key protocol for every key that leaves
a batch (refused, or a dealer's shares that do not check)."""

import logging
import secrets

import pytest

from secretstore.crypto import Address, ServerKeyId
from secretstore.crypto import math as m
from secretstore.keyserver.faults import FaultPlan
from secretstore.keyserver.net import RemoteError
from secretstore.keyserver.sessions import KEY_EXISTS, SessionError, generation_batch_size

from .test_byzantine_dkg import assert_consistent
from .test_direct_sessions import Net

AUTHOR = Address(b"\x11" * 20)


def new_requests(count: int, t: int) -> list[tuple[ServerKeyId, Address, int]]:
    return [(ServerKeyId(secrets.token_bytes(32)), AUTHOR, t) for _ in range(count)]


def count_requests(net: Net) -> dict[str, int]:
    """Cluster requests sent by every core from now on, by type."""
    counts: dict[str, int] = {}
    for cluster in net.clusters:
        original = cluster.request

        async def counted(peer, body, timeout=15.0, original=original):
            counts[body.get("type")] = counts.get(body.get("type"), 0) + 1
            return await original(peer, body, timeout=timeout)

        cluster.request = counted
    return counts


async def test_a_batch_generates_every_key_with_as_many_messages_as_one_key(tmp_path):
    net = Net(4, tmp_path)
    async with net.running():
        counts = count_requests(net)
        single = await net.cores[0].generate_server_keys(new_requests(1, 1), net.ids)
        one_key = dict(counts)
        counts.clear()
        requests = new_requests(30, 1)
        results = await net.cores[0].generate_server_keys(requests, net.ids)
        assert counts == one_key  # 30 keys cost the messages of one
        assert {k for k, _, _ in requests} == set(results)
        for key_id, _, t in requests:
            assert_consistent(net, key_id, results[key_id], t)
            share = net.cores[2].storage.get(key_id)
            assert share.author == AUTHOR and share.holders == tuple(net.ids)
        assert not any(core.batches or core.dkg for core in net.cores)
    assert [c for c, _ in net.results].count("server_key_generated") == 4 * 31  # every holder reports every key
    reported = {(p["id"], p["server_key_public"]) for _, p in net.results}
    assert reported == {(k.hex(), v.hex()) for k, v in {**single, **results}.items()}


async def test_keys_of_a_corrupt_dealer_go_one_by_one_and_leave_it_out(tmp_path, caplog):
    net = Net(4, tmp_path)
    net.cores[3].faults = FaultPlan.parse("corrupt=dkg", environ={"SECRETSTORE_FAULTS": "1"})
    caplog.set_level(logging.INFO)
    async with net.running():
        requests = new_requests(3, 1)
        results = await net.cores[0].generate_server_keys(requests, net.ids)
        for key_id, _, t in requests:
            assert_consistent(net, key_id, results[key_id], t)
    assert any(r.getMessage() == "keys left a batched generation, they go one by one" and r.keys == 3
               for r in caplog.records)
    named = [r for r in caplog.records if r.getMessage() == "server key generated without faulty dealers"]
    assert len(named) == 3 and all(net.ids[3].hex() in r.faulty for r in named)


async def test_a_refused_key_gets_the_one_key_error_and_the_others_are_generated(tmp_path):
    net = Net(3, tmp_path)
    async with net.running():
        existing = new_requests(1, 1)
        await net.cores[0].generate_server_keys(existing, net.ids)
        fresh = new_requests(2, 1)
        bad_threshold = new_requests(1, 3)
        results = await net.cores[1].generate_server_keys(existing + fresh + bad_threshold, net.ids)
        assert isinstance(results[existing[0][0]], SessionError) and results[existing[0][0]].code == KEY_EXISTS
        assert "threshold" in str(results[bad_threshold[0][0]])
        for key_id, _, t in fresh:
            assert_consistent(net, key_id, results[key_id], t)
        assert net.cores[2].storage.get(bad_threshold[0][0]) is None


async def test_a_batch_with_an_unreachable_participant_fails_every_key_clearly(tmp_path, monkeypatch):
    from secretstore.keyserver import sessions
    monkeypatch.setattr(sessions, "CONNECT_GRACE", 0.2)
    net = Net(3, tmp_path)
    async with net.running(stopped=(2,)):
        requests = new_requests(2, 1)
        results = await net.cores[0].generate_server_keys(requests, net.ids)
        assert all(isinstance(r, SessionError) and "not connected" in str(r) for r in results.values())
        assert all(core.storage.get(k) is None for core in net.cores for k, _, _ in requests)


async def test_malformed_batch_messages_are_refused_and_change_nothing(tmp_path):
    net = Net(3, tmp_path)
    async with net.running():
        master, other = net.clusters[0], net.cores[1]
        key = "0x" + "22" * 32
        ids = [i.hex() for i in net.ids]
        bad = [
            {"type": "dkgb_init", "session": "short", "participants": ids, "items": []},
            {"type": "dkgb_init", "session": "ab" * 16, "participants": ids, "items": []},
            {"type": "dkgb_init", "session": "ab" * 16, "participants": ids[:1], "items": [{"key_id": key}]},
            {"type": "dkgb_init", "session": "ab" * 16, "participants": ids, "items": ["x"]},
            {"type": "dkgb_init", "session": "ab" * 16, "participants": ids, "items": [{"key_id": "0x12"}]},
            {"type": "dkgb_init", "session": "zz" * 16, "participants": ids, "items": [{"key_id": key}]},
            {"type": "dkgb_share", "session": "cd" * 16, "items": ["not", "an", "object"]},
            {"type": "dkgb_verify", "session": "ef" * 16, "phase": "check", "items": {}},
            {"type": "dkgb_verify", "session": "ef" * 16, "phase": "commit", "keys": [key]},
        ]
        for body in bad:
            with pytest.raises(RemoteError):
                await master.request(other.self_id, body, timeout=5)
        assert not other.batches and other.storage.key_ids() == []
        # only the master drives a batch; a bad check request is refused and the batch can still be aborted
        session = "12" * 16
        await master.request(other.self_id, {"type": "dkgb_init", "session": session, "participants": ids,
                                             "items": [{"key_id": key, "author": ids[0], "threshold": 1}]})
        with pytest.raises(RemoteError, match="only the session's master"):
            await net.clusters[2].request(other.self_id, {"type": "dkgb_verify", "session": session, "phase": "check",
                                                          "items": {}})
        with pytest.raises(RemoteError, match="malformed commitment sums"):
            await master.request(other.self_id, {"type": "dkgb_verify", "session": session, "phase": "check",
                                                 "items": {key: ["0x00"]}})
        await master.request(other.self_id, {"type": "dkgb_abort", "session": "34" * 16})  # unknown: nothing
        assert list(other.batches) == [session]
        with pytest.raises(RemoteError, match="did not check"):  # and the batch ends
            await master.request(other.self_id, {"type": "dkgb_verify", "session": session, "phase": "commit",
                                                 "keys": [key]})
        assert not other.batches and other.storage.key_ids() == []
        # and a batch still works afterwards
        requests = new_requests(2, 1)
        results = await net.cores[0].generate_server_keys(requests, net.ids)
        for key_id, _, t in requests:
            assert m.base_mul(1) != results[key_id]
            assert_consistent(net, key_id, results[key_id], t)


def test_batches_stay_well_inside_the_frame_limit():
    for t in (0, 1, 2, 5, 20, 100):
        size = generation_batch_size(t)
        assert size >= 1 and size * (268 * (t + 1) + 250) <= 400_000 or size == 1
