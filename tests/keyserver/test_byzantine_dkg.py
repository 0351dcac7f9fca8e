"""The complaint rule of the DKG with lying participants, on real key server cores over loopback (in process), and
the Chaum-Pedersen proofs the retrieval checks rely on."""

import itertools
import logging

import pytest

from secretstore.crypto import keccak256
from secretstore.crypto import math as m
from secretstore.crypto import proofs
from secretstore.keyserver.faults import FaultPlan
from secretstore.keyserver.sessions import SessionError, dispute_statement

from .test_direct_sessions import Net, new_key


def assert_consistent(net, key_id, public, t):
    shares = [core.storage.get(key_id) for core in net.cores]
    assert all(s is not None and s.public == public for s in shares)
    points = [(m.id_number(core.self_id), s.secret_share) for core, s in zip(net.cores, shares)]
    for subset in itertools.combinations(points, t + 1):
        assert m.base_mul(m.reconstruct(dict(subset))) == public
    # the stored commitments give every holder's public share
    commitments = net.cores[0].storage.commitments(shares[0])
    assert commitments[0] == public
    assert all(m.commitment_at(commitments, x) == m.base_mul(s) for x, s in points)


async def test_a_false_pedersen_complaint_is_refuted_by_the_reveal(tmp_path, caplog):
    net = Net(4, tmp_path)
    liar, accused = net.cores[1], net.cores[2]
    original = liar.generation._dkg_finish

    async def lying_finish(peer, body):
        reply = await original(peer, body)
        who = accused.self_id.hex()
        reply["complaints"][who] = "pedersen"  # a liar signs its lie: the dealer reveals, which refutes it
        reply["signatures"][who] = "0x" + bytes(liar.keypair.sign(dispute_statement(
            body["session"], accused.self_id, reply["views"][who], "pedersen"))).hex()
        return reply

    liar.generation._dkg_finish = lying_finish
    caplog.set_level(logging.WARNING)
    async with net.running():
        key_id, public = await new_key(net, 1)
        assert_consistent(net, key_id, public, 1)
    refuted = [r for r in caplog.records if r.getMessage() == "dkg complaint refuted: the revealed share checks"]
    assert [(r.dealer, r.accuser) for r in refuted] == [(accused.self_id.hex(), liar.self_id.hex())]
    assert not any("without faulty dealers" in r.getMessage() for r in caplog.records)


async def test_a_false_feldman_complaint_names_the_accuser(tmp_path, caplog):
    net = Net(4, tmp_path)
    liar, accused = net.cores[3], net.cores[0]
    original = liar.generation._dkg_verify

    async def lying_verify(peer, body):
        reply = await original(peer, body)
        if body.get("phase") == "check":
            state = liar.generation.sessions[body["session"]]
            share = state.received[accused.self_id][0]
            reply["complaints"][accused.self_id.hex()] = {"check": "feldman", "share": "0x" + share.to_bytes(32, "big").hex(),
                                                          "blinding": "0x" + state.received[accused.self_id][1].to_bytes(32, "big").hex()}
        return reply

    liar.generation._dkg_verify = lying_verify
    caplog.set_level(logging.WARNING)
    async with net.running():
        key_id, public = await new_key(net, 1)
        assert_consistent(net, key_id, public, 1)  # the accuser still holds a share of the qualified dealers' sum
    done = next(r for r in caplog.records if r.getMessage() == "server key generated without faulty dealers")
    assert liar.self_id.hex() in done.faulty and "false complaint" in done.faulty
    assert f"{accused.self_id.hex()} (" not in done.faulty  # named only as the one falsely accused


async def test_more_than_t_faulty_dealers_is_an_error_naming_them(tmp_path):
    net = Net(4, tmp_path)
    for core in net.cores[2:]:
        core.faults = FaultPlan.parse("corrupt=dkg", environ={"SECRETSTORE_FAULTS": "1"})
    async with net.running():
        with pytest.raises(SessionError) as info:
            await new_key(net, 1)
        assert "2 faulty key servers, at most 1" in str(info.value)
        assert all(core.self_id.hex() in str(info.value) for core in net.cores[2:])
        assert all(not core.generation.sessions for core in net.cores)  # aborted everywhere, nothing stored
        # with t = 2 two faulty are tolerated in number, but only 2 dealers qualify, fewer than t + 1 = 3
        with pytest.raises(SessionError, match="faulty key servers"):
            await new_key(net, 2)


def test_dleq_proofs_accept_only_the_statement_proven():
    s, b = m.random_scalar(), m.base_mul(m.random_scalar())
    g = m.base_mul(1)
    p1, p2 = m.base_mul(s), m.point_mul(b, s)
    proof = proofs.prove_dleq(s, g, p1, b, p2)
    assert proofs.verify_dleq(proof, g, p1, b, p2)
    assert not proofs.verify_dleq(proof, g, p1, b, m.point_add(p2, g))  # another point
    assert not proofs.verify_dleq(proof, g, m.base_mul(s + 1), b, p2)  # another public share
    assert not proofs.verify_dleq(proof[:32] + bytes(32), g, p1, b, p2)
    assert not proofs.verify_dleq(proof[:-1], g, p1, b, p2)
    assert not proofs.verify_dleq(proofs.prove_dleq(s + 1, g, p1, b, p2), g, p1, b, p2)  # a lie cannot be proven


async def test_a_dealer_reveals_only_on_its_receivers_signed_word(tmp_path):
    """Reveals make shares public: only the session's master may ask, and only with the receiver's own signed
    complaint or differing view, so nobody can collect a dealer's shares through reveals."""
    from secretstore.keyserver.net import RemoteError

    net = Net(3, tmp_path)
    async with net.running():
        master, dealer, receiver = net.cores
        session = "ab" * 16
        await master.cluster.request(dealer.self_id, {
            "type": "dkg_init", "session": session, "key_id": "0x" + "33" * 32, "author": net.ids[0].hex(),
            "threshold": 1, "participants": [i.hex() for i in net.ids]})
        view = "0x" + "00" * 32
        unsigned = {"type": "dkg_reveal", "session": session, "receiver": receiver.self_id.hex(), "view": view,
                    "complaint": "pedersen", "signature": "0x" + "00" * 65}
        with pytest.raises(RemoteError, match="not signed by its receiver"):
            await master.cluster.request(dealer.self_id, unsigned)
        signed = dict(unsigned, signature="0x" + bytes(receiver.keypair.sign(
            dispute_statement(session, dealer.self_id, view, "pedersen"))).hex())
        with pytest.raises(RemoteError, match="only the session's master"):
            await receiver.cluster.request(dealer.self_id, signed)  # not the master
        published = "0x" + keccak256(b"".join(bytes(p) for p in dealer.generation.sessions[session].pedersen)).hex()
        no_word = dict(unsigned, complaint="", view=published)  # the receiver saw the published commitments
        no_word["signature"] = "0x" + bytes(receiver.keypair.sign(
            dispute_statement(session, dealer.self_id, no_word["view"], ""))).hex()
        with pytest.raises(RemoteError, match="neither complains"):
            await master.cluster.request(dealer.self_id, no_word)
        reply = await master.cluster.request(dealer.self_id, signed)
        x = m.id_number(receiver.self_id)
        assert int(reply["share"], 16) == m.poly_eval(dealer.generation.sessions[session].poly, x)


async def test_malformed_session_messages_are_refused_and_change_nothing(tmp_path):
    """After the handshake a peer may still send anything: every malformed message of the DKG and retrieval steps is
    a RemoteError for that peer, and the key server keeps serving (a generation still works afterwards)."""
    from secretstore.keyserver.net import RemoteError

    net = Net(3, tmp_path)
    async with net.running():
        a, b = net.clusters[0], net.cores[1]
        bad = [
            {"type": "no_such_step"},
            {"type": "dkg_init", "key_id": "0x12", "participants": [], "threshold": 1},
            {"type": "dkg_init", "key_id": "0x" + "11" * 32, "participants": [i.hex() for i in net.ids],
             "threshold": 7, "session": "x" * 32, "author": net.ids[0].hex()},
            {"type": "dkg_share", "session": "nope" * 8, "share": "0x00", "blinding": 5},
            {"type": "dkg_reveal", "session": "nope" * 8, "receiver": "0x" + "00" * 20},
            {"type": "dkg_verify", "session": "nope" * 8, "phase": "commit", "qualified": "all"},
            {"type": "shadow_part", "key_id": "0x" + "22" * 32, "participants": ["0x1"], "access_key": "0x"},
            {"type": "sign_init", "kind": "rsa", "key_id": "0x" + "22" * 32},
        ]
        for body in bad:
            with pytest.raises(RemoteError):
                await a.request(b.self_id, body, timeout=5)
        assert not b.generation.sessions and not b.joint_random.sessions and b.storage.key_ids() == []
        key_id, public = await new_key(net, 1)
        assert_consistent(net, key_id, public, 1)
