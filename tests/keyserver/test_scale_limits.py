"""What `./run bench scale` found growing with the keys held or the set: a migration's listing of every key in one
cluster message (past a frame at about 15,000 keys), a new migration master that was not linked yet and moved
nothing, the share cache that kept every share a migration read, the metrics gauge that listed every key id per
scrape, a key server outside the set that answered requests the chain would not take from it, and the batched
generation's commitments parsed one `Public` at a time (now summed straight from the wire: the same checks)."""

import logging
import secrets

import pytest

from substrateinterface import Keypair

from secretstore.client import SecretStoreClient
from secretstore.crypto import Address, CryptoError, Public, Secret, ServerKeyId
from secretstore.crypto import math as m
from secretstore.crypto.keys import InvalidPublic
from secretstore.devnet import LocalNetwork
from secretstore.keyserver import storage as storage_module
from secretstore.keyserver.sessions import servers_set_change
from secretstore.keyserver.storage import KeyShare, KeyStorage
from secretstore.process import rpc_call

from .test_batched_generation import left_the_batch, new_requests
from .test_byzantine_dkg import assert_consistent
from .test_direct_sessions import Net

ALICE = Secret(b"\x01" * 32)
AUTHOR = Address(b"\x11" * 20)


def share(threshold: int = 1) -> KeyShare:
    return KeyShare(ServerKeyId(secrets.token_bytes(32)), AUTHOR, threshold, Secret.random().public(),
                    secrets.token_bytes(16), (AUTHOR,), 5)


def test_keys_are_listed_in_pages_with_their_thresholds(tmp_path):
    storage = KeyStorage(tmp_path / "keys.sqlite", ALICE)
    try:
        shares = [share(threshold=i % 3) for i in range(7)]
        for item in shares:
            storage.insert(item)
        assert storage.key_count() == 7
        pages, after = [], None
        while page := storage.key_page(after, 3):
            pages.append(page)
            after = page[-1][0]
        assert [len(p) for p in pages] == [3, 3, 1]
        listed = [entry for page in pages for entry in page]
        assert [k for k, _ in listed] == storage.key_ids()
        assert dict(listed) == {s.key_id: s.threshold for s in shares}
    finally:
        storage.close()


def test_the_share_cache_keeps_only_the_latest_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(storage_module, "MAX_CACHED_SHARES", 4)
    storage = KeyStorage(tmp_path / "keys.sqlite", ALICE)
    try:
        shares = [share() for _ in range(10)]
        for item in shares:
            storage.insert(item)
        for item in shares:
            assert storage.get(item.key_id) == item
        assert len(storage._cache) == 4  # a read of every share keeps the bound, not every share
        assert list(storage._cache) == [bytes(s.key_id) for s in shares[-4:]]
        assert storage.get(shares[0].key_id) == shares[0]  # evicted ones are read again
    finally:
        storage.close()


async def test_a_migration_lists_the_keys_in_pages_and_its_new_master_waits_for_its_links(tmp_path, monkeypatch):
    """Eight keys of three servers move to a fourth that leads the change: each old server lists them three at a
    time, and the new master, whose links to the old servers come up only after it started, still moves them all
    (it used to take the old servers for empty and complete the change with nothing moved)."""
    monkeypatch.setattr(servers_set_change, "LIST_PAGE", 3)
    net = Net(4, tmp_path)
    async with net.running():
        old = net.ids[:3]
        results = await net.cores[0].generate_server_keys([(ServerKeyId(secrets.token_bytes(32)), AUTHOR, 1)
                                                          for _ in range(8)], old)
        assert all(isinstance(public, Public) for public in results.values())
        master = net.clusters[3]
        listings = []
        request, linked = master.request, master.is_connected

        async def counted(peer, body, timeout=15.0):
            if body.get("type") == "list_keys":
                listings.append(peer)
            return await request(peer, body, timeout=timeout)

        late = {"left": 5}  # the first looks at each old server's link find it down

        def slow_links(peer):
            if peer in old and late["left"] > 0:
                late["left"] -= 1
                return False
            return linked(peer)

        master.request, master.is_connected = counted, slow_links
        migration_id = secrets.token_bytes(32)
        assert await net.cores[3].migrate(migration_id, old, net.ids) == 8
        assert sorted(listings, key=bytes) == sorted(old * 3, key=bytes)  # 3 + 3 + 2 keys, from each
        for core in net.cores:
            assert core.storage.promote(migration_id) == 8


def test_a_key_server_outside_the_set_answers_nothing(tmp_path):
    """The fourth key server is running but not in the set: requests of every kind are served by the three, and it
    submits no transaction (it used to answer stores and shadow retrievals with errors the chain refused)."""
    network = LocalNetwork(tmp_path, key_servers=4, initial_set=3).start()
    try:
        with SecretStoreClient(network.node.ws_url, "//Alice", timeout=60) as alice:
            key_id = ServerKeyId(secrets.token_bytes(32))
            alice.claim_key(key_id)
            public = alice.generate_server_key(key_id, threshold=1)
            generated = alice.store_new_document_key(key_id, public, ALICE)
            assert alice.retrieve_document_key(key_id, ALICE) == generated.document_key
            assert alice.retrieve_server_key(key_id) == public
        outsider = Keypair.create_from_uri(network.servers[3].signer).ss58_address
        assert rpc_call(network.node.http_url, "system_accountNextIndex", [outsider])["result"] == 0
    finally:
        network.stop()


def test_column_sums_add_each_column_of_encoded_points():
    rows = [[Secret.random().public() for _ in range(3)] for _ in range(4)]
    encoded = b"".join(bytes(p) for row in rows for p in row)
    assert m.column_sums(encoded, 3) == [m.point_add(*column) for column in zip(*rows)]
    assert m.column_sums(bytes(rows[0][0]), 1) == [rows[0][0]]
    with pytest.raises(InvalidPublic):
        m.column_sums(encoded[:64] + bytes(63) + b"\x07" + encoded[128:], 3)  # (0, 7) is not on the curve
    with pytest.raises(CryptoError):
        m.column_sums(encoded[:-1], 3)
    with pytest.raises(CryptoError):
        m.column_sums(bytes(rows[0][0]) + bytes(m.point_neg(rows[0][0])), 1)  # P + (-P) is at infinity


OFF_CURVE = "0x" + "00" * 63 + "07"


@pytest.mark.parametrize("where", ["dealing", "answer"])
async def test_a_commitment_off_the_curve_sends_its_key_one_by_one(tmp_path, caplog, where):
    """Dealer 2 deals (or publishes to the master) one commitment that is no point, for one key of three: that key
    leaves the batch, the others are generated by it, and all three are held consistently by every server."""
    net = Net(3, tmp_path)
    caplog.set_level(logging.INFO)
    requests = new_requests(3, 1)
    spoiled = requests[0][0].hex()
    async with net.running():
        dealer = net.cores[2]
        if where == "dealing":
            notify = dealer.cluster.notify

            async def spoil_dealing(peer, body):
                if body.get("type") == "dkgb_share" and peer != dealer.self_id and spoiled in body["items"]:
                    share, blinding, commitments = body["items"][spoiled]
                    items = dict(body["items"], **{spoiled: [share, blinding, [commitments[0], OFF_CURVE,
                                                                                *commitments[2:]]]})
                    body = dict(body, items=items)
                await notify(peer, body)

            dealer.cluster.notify = spoil_dealing
        else:
            answer = dealer.batched_generation._batch_commitments

            def spoil_answer(batch):
                answers = answer(batch)
                if spoiled in answers:
                    answers[spoiled]["feldman"][1] = OFF_CURVE
                return answers

            dealer.batched_generation._batch_commitments = spoil_answer
        results = await net.cores[0].generate_server_keys(requests, net.ids)
        for key_id, _, t in requests:
            assert_consistent(net, key_id, results[key_id], t)
    assert left_the_batch(caplog, 1)


async def test_a_re_shared_value_off_its_commitments_fails_the_move_naming_its_dealer(tmp_path):
    """New holders check each key's summed share against the summed commitments (one check per key instead of one
    per dealer); when that fails, each dealer is checked to name the one at fault."""
    net = Net(4, tmp_path)
    async with net.running():
        old = net.ids[:3]
        results = await net.cores[0].generate_server_keys(new_requests(2, 1), old)
        assert all(isinstance(public, Public) for public in results.values())
        liar = net.clusters[1]
        request = liar.request

        async def off_by_one(peer, body, timeout=15.0):
            if body.get("type") == "reshare_share" and peer == net.ids[3]:
                entries = [dict(e, share="0x" + ((int(e["share"], 16) + 1) % m.N).to_bytes(32, "big").hex())
                           for e in body["entries"]]
                body = dict(body, entries=entries)
            return await request(peer, body, timeout=timeout)

        liar.request = off_by_one
        migration_id = secrets.token_bytes(32)
        with pytest.raises(Exception, match=f"from {net.ids[1].hex()} do not match their commitments"):
            await net.cores[0].migrate(migration_id, old, net.ids)
        liar.request = request
        assert await net.cores[0].migrate(migration_id, old, net.ids) == 2  # an honest attempt moves them
        for core in net.cores:
            assert core.storage.promote(migration_id) == 2
        for key_id, public in results.items():
            assert_consistent(net, key_id, public, 1)
