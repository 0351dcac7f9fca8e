"""Proactive share refresh between real key server cores (real cluster links, real sealed share databases): the
shares change and the key does not; old and new shares do not mix; sessions run on either version while a refresh
is half done; a Byzantine dealer is named and left out."""

from __future__ import annotations

import itertools
import logging
import secrets
import sqlite3

import pytest

from secretstore.crypto import ServerKeyId
from secretstore.crypto import math as m
from secretstore.crypto.document import generate_document_key
from secretstore.keyserver.faults import FaultPlan
from secretstore.keyserver.sessions import SessionError

from .test_direct_sessions import ALICE, Net, ecdsa_ok, new_key, request_signature, schnorr_ok


def shares_of(net: Net, key_id: ServerKeyId) -> dict[int, int]:
    return {m.id_number(core.self_id): core.storage.get(key_id).secret_share for core in net.cores}


async def refresh(net: Net, epoch: int, key_ids: list[ServerKeyId], master: int = 0):
    storage = net.cores[master].storage
    keys = [(k, storage.get(k).version, storage.get(k).threshold) for k in key_ids]
    return await net.cores[master].refresh_shares(epoch, keys, net.ids)


async def check_sessions(net: Net, key_id: ServerKeyId, public, document_key=None, masters=None) -> None:
    """Schnorr and ECDSA signatures verify and the document key comes back, led by each given master."""
    sig = request_signature(ALICE, key_id)
    for master in masters if masters is not None else range(len(net.cores)):
        message_hash = secrets.token_bytes(32)
        assert schnorr_ok(public, message_hash, await net.cores[master].sign("schnorr", key_id, sig, message_hash,
                                                                            net.ids))
        assert ecdsa_ok(public, message_hash, await net.cores[master].sign("ecdsa", key_id, sig, message_hash,
                                                                          net.ids))
        if document_key is not None:
            encrypted = await net.cores[master].retrieve_document_key(key_id, sig, net.ids)
            from secretstore.crypto import ecies
            assert ecies.decrypt(ALICE, encrypted) == document_key


async def stored_document(net: Net, key_id: ServerKeyId, public) -> bytes:
    generated = generate_document_key(public, ALICE.public())
    await net.cores[0].store_document_key(key_id, request_signature(ALICE, key_id), generated.common_point,
                                          generated.encrypted_point)
    from secretstore.crypto import ecies
    return ecies.decrypt(ALICE, generated.encrypted_key)


def sealed_share(core, key_id: ServerKeyId) -> bytes:
    with sqlite3.connect(core.storage.path) as conn:
        return conn.execute("SELECT secret_share FROM key_shares WHERE key_id = ?", (bytes(key_id),)).fetchone()[0]


def interpolates(points: dict[int, int], public) -> bool:
    return m.base_mul(m.reconstruct(points)) == public


async def test_a_refresh_changes_every_share_and_keeps_the_key(tmp_path):
    net = Net(5, tmp_path)
    async with net.running():
        key_id, public = await new_key(net, 2)
        other, other_public = await new_key(net, 2)
        document_key = await stored_document(net, key_id, public)
        before = shares_of(net, key_id)
        old_version = net.cores[0].storage.get(key_id).version
        old_boxes = [sealed_share(core, key_id) for core in net.cores]
        result = await refresh(net, 1, [key_id, other])
        assert result == {key_id: None, other: None}
        after = shares_of(net, key_id)
        assert all(after[x] != before[x] for x in before)
        for core in net.cores:
            share = core.storage.get(key_id)
            assert share.public == public and share.version != old_version
            assert core.storage.refresh_epoch_of(key_id) == 1
            commitments = core.storage.commitments(share)
            assert commitments[0] == public and m.commitment_at(commitments, m.id_number(core.self_id)) \
                == m.base_mul(share.secret_share)  # the stored commitments follow the new sharing
            assert core.storage.share_version(key_id, old_version) is None  # the old version is erased ...
        for core, box in zip(net.cores, old_boxes):  # ... from the file and its log too, not only from the table
            assert box not in b"".join(f.read_bytes() for f in core.storage.path.parent.glob("keys.sqlite*"))
        xs = sorted(before)
        assert interpolates({x: after[x] for x in xs[:3]}, public)
        for subset in itertools.combinations(xs, 3):  # t shares from before and one from after: not the key
            for fresh in subset:
                mixed = {x: (after if x == fresh else before)[x] for x in subset}
                assert not interpolates(mixed, public)
        await check_sessions(net, key_id, public, document_key, masters=[0, 3])
        assert (await refresh(net, 1, [key_id]))[key_id].startswith("refused: ")  # once per epoch
        assert await refresh(net, 2, [key_id], master=2) == {key_id: None}
        await check_sessions(net, key_id, public, document_key, masters=[4])
        assert all(not core.share_refresh.batches and not core.share_refresh.unfinished for core in net.cores)


async def test_sessions_run_on_either_version_while_activation_is_half_done(tmp_path):
    net = Net(3, tmp_path)
    async with net.running():
        key_id, public = await new_key(net, 1)
        document_key = await stored_document(net, key_id, public)
        old_version = net.cores[0].storage.get(key_id).version
        lagging = net.cores[2].share_refresh

        async def lost(peer, body):  # the activation never reaches this holder (it crashed, say)
            raise SessionError("stopped")

        activate, lagging._activate = lagging._activate, lost
        assert await refresh(net, 1, [key_id]) == {key_id: None}  # staged everywhere: decided
        assert net.cores[0].share_refresh.unfinished  # activation is retried later
        versions = [core.storage.get(key_id).version for core in net.cores]
        assert versions[0] == versions[1] != old_version and versions[2] == old_version
        await check_sessions(net, key_id, public, document_key, masters=[0, 2])  # new and old version masters
        lagging._activate = activate
        await net.cores[0].share_refresh.finish_unfinished()
        assert not net.cores[0].share_refresh.unfinished
        assert len({core.storage.get(key_id).version for core in net.cores}) == 1
        assert all(core.storage.share_version(key_id, old_version) is None for core in net.cores)
        await check_sessions(net, key_id, public, document_key, masters=[1])


async def test_a_byzantine_dealer_is_named_and_left_out(tmp_path, caplog):
    net = Net(5, tmp_path)
    async with net.running():
        key_id, public = await new_key(net, 2)
        before = shares_of(net, key_id)
        liar = net.cores[3]
        liar.faults = FaultPlan.parse("corrupt=dkg", {"SECRETSTORE_FAULTS": "1"})
        caplog.set_level(logging.WARNING)
        assert await refresh(net, 1, [key_id]) == {key_id: None}
        after = shares_of(net, key_id)
        assert all(after[x] != before[x] for x in before)
        assert interpolates({x: after[x] for x in sorted(after)[1:4]}, public)
        upheld = [r for r in caplog.records if r.getMessage() == "refresh complaint upheld"]
        assert upheld and {r.dealer for r in upheld} == {liar.self_id.hex()}
        named = [r for r in caplog.records if r.getMessage() == "share refreshed without faulty dealers"]
        assert named and liar.self_id.hex() in named[0].faulty
        liar.faults = None
        await check_sessions(net, key_id, public, masters=[3])


async def test_more_than_t_byzantine_dealers_leave_the_key_as_it_was(tmp_path):
    net = Net(3, tmp_path)
    async with net.running():
        key_id, public = await new_key(net, 1)
        before = shares_of(net, key_id)
        for liar in net.cores[1:]:
            liar.faults = FaultPlan.parse("corrupt=dkg", {"SECRETSTORE_FAULTS": "1"})
        result = await refresh(net, 1, [key_id])
        assert "faulty key servers, at most 1 tolerated" in result[key_id]
        assert shares_of(net, key_id) == before
        assert all(core.storage.refresh_epoch_of(key_id) is None for core in net.cores)


@pytest.mark.parametrize("keys", [30])
async def test_many_keys_refresh_in_batches(tmp_path, keys, monkeypatch):
    from secretstore.keyserver.sessions import share_refresh_master
    monkeypatch.setattr(share_refresh_master, "refresh_batch_size", lambda t: 7)  # several batches, some at once
    net = Net(3, tmp_path)
    async with net.running():
        created = [await new_key(net, 1) for _ in range(keys)]
        result = await refresh(net, 1, [k for k, _ in created])
        assert result == {k: None for k, _ in created}
        for key_id, public in created:
            shares = shares_of(net, key_id)
            assert interpolates(dict(list(shares.items())[:2]), public)
        assert net.cores[1].storage.refresh_epochs() == {1: keys}
