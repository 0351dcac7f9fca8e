"""Direct (HTTP-style) sessions between real key server cores: real cluster links over loopback, real share databases,
an ACL that plays the chain's part. Signatures are checked with coincurve and an independent Schnorr formula."""

import asyncio
import contextlib
import secrets

import coincurve
import pytest
from Crypto.Hash import keccak

from secretstore.crypto import KeyPair, Public, Secret, ServerKeyId, ecies
from secretstore.crypto.document import decrypt_document_key, generate_document_key, recover_document_key
from secretstore.crypto.keys import N
from secretstore.keyserver import sessions as ss
from secretstore.keyserver.net import Cluster, KeyServerDirectory
from secretstore.keyserver.sessions import KeyServerCore, SessionError
from secretstore.keyserver.storage import KeyStorage
from secretstore.process import free_port

ALICE = Secret(b"\x01" * 32)
BOB = Secret(b"\x02" * 32)


def request_signature(secret: Secret, key_id: ServerKeyId) -> str:
    raw = coincurve.PrivateKey(bytes(secret)).sign_recoverable(bytes(key_id), hasher=None)
    return "0x" + raw.hex()


def schnorr_ok(public: Public, message_hash: bytes, signature: bytes) -> bool:
    c, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    y = coincurve.PublicKey(b"\x04" + bytes(public)).multiply(c.to_bytes(32, "big"))
    r = coincurve.PublicKey.combine_keys([coincurve.PublicKey.from_secret(s.to_bytes(32, "big")), y])
    digest = keccak.new(digest_bits=256, data=message_hash + r.format(compressed=False)[1:33]).digest()
    return int.from_bytes(digest, "big") % N == c


def ecdsa_ok(public: Public, message_hash: bytes, signature: bytes) -> bool:
    der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(signature[:64]))
    recovered = coincurve.PublicKey.from_signature_and_message(signature, message_hash, hasher=None)
    return (coincurve.PublicKey(b"\x04" + bytes(public)).verify(der, message_hash, hasher=None)
            and recovered.format(compressed=False)[1:] == bytes(public))


class Net:
    def __init__(self, n, tmp_path):
        self.pairs = [KeyPair.generate() for _ in range(n)]
        self.acl: dict[ServerKeyId, set] = {}
        ports = [free_port() for _ in range(n)]
        book = {p.address: ("127.0.0.1", port) for p, port in zip(self.pairs, ports)}
        self.cores, self.clusters, self.results = [], [], []

        async def check(key_id, requester):
            await asyncio.sleep(0)
            return requester in self.acl.get(key_id, set())

        for i, (pair, port) in enumerate(zip(self.pairs, ports)):
            storage = KeyStorage(tmp_path / f"ks{i}" / "keys.sqlite", pair.secret)
            core = KeyServerCore(pair, storage, check, lambda c, p: self.results.append((c, p)))
            directory = KeyServerDirectory()
            directory.update({a: hp for a, hp in book.items() if a != pair.address})
            core.cluster = Cluster(pair, "127.0.0.1", port, directory, core.handle)
            self.cores.append(core)
            self.clusters.append(core.cluster)
        self.ids = [p.address for p in self.pairs]

    @contextlib.asynccontextmanager
    async def running(self, stopped=()):
        tasks = [asyncio.create_task(c.run()) for i, c in enumerate(self.clusters) if i not in stopped]
        live = [c for i, c in enumerate(self.clusters) if i not in stopped]
        try:
            async with asyncio.timeout(10):
                while not all(a.is_connected(b.self_id) for a in live for b in live):
                    await asyncio.sleep(0.02)
            yield self
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for core in self.cores:
                core.storage.close()

    def allow(self, key_id, secret):
        self.acl.setdefault(key_id, set()).add(secret.public().address())


async def new_key(net, t, master=0, secret=ALICE):
    key_id = ServerKeyId(secrets.token_bytes(32))
    net.allow(key_id, secret)
    public = await net.cores[master].generate_server_key(key_id, secret.public().address(), t, net.ids,
                                                         request_signature=request_signature(secret, key_id))
    return key_id, public


@pytest.mark.parametrize("n,t", [(3, 1), (5, 2)])
async def test_schnorr_and_ecdsa_signing(tmp_path, n, t):
    net = Net(n, tmp_path)
    async with net.running():
        key_id, public = await new_key(net, t)
        assert net.results == []  # a direct generation reports nothing on chain
        sig = request_signature(ALICE, key_id)
        for master in range(n):
            message_hash = secrets.token_bytes(32)
            schnorr = await net.cores[master].sign("schnorr", key_id, sig, message_hash, net.ids)
            assert len(schnorr) == 64 and schnorr_ok(public, message_hash, schnorr)
            assert not schnorr_ok(public, secrets.token_bytes(32), schnorr)
            ecdsa = await net.cores[master].sign("ecdsa", key_id, sig, message_hash, net.ids)
            assert len(ecdsa) == 65 and ecdsa[64] <= 3 and ecdsa_ok(public, message_hash, ecdsa)
            assert not ecdsa_ok(public, secrets.token_bytes(32), ecdsa)
        assert all(not core.joint_random.sessions for core in net.cores)  # no session state is left behind


async def test_ecdsa_needs_2t_plus_1_connected_holders(tmp_path):
    net = Net(3, tmp_path)
    async with net.running():
        key_id, public = await new_key(net, 1)
    # a second run with one key server down: 2 of 3 connected, ECDSA with t = 1 needs 3, Schnorr 2
    net2 = Net.__new__(Net)
    net2.__dict__.update(net.__dict__)
    for i, core in enumerate(net.cores):
        core.storage = KeyStorage(tmp_path / f"ks{i}" / "keys.sqlite", core.keypair.secret)
    async with net2.running(stopped={2}):
        sig = request_signature(ALICE, key_id)
        with pytest.raises(SessionError, match="consensus unreachable") as info:
            await net.cores[0].sign("ecdsa", key_id, sig, bytes(32), net.ids)
        assert info.value.code == ss.CONSENSUS_UNREACHABLE
        message_hash = secrets.token_bytes(32)
        assert schnorr_ok(public, message_hash, await net.cores[0].sign("schnorr", key_id, sig, message_hash, net.ids))


async def test_access_unknown_key_and_existing_key(tmp_path):
    net = Net(3, tmp_path)
    async with net.running():
        key_id, _ = await new_key(net, 1)
        bob_sig = request_signature(BOB, key_id)
        for kind in ("schnorr", "ecdsa"):
            with pytest.raises(SessionError) as info:
                await net.cores[1].sign(kind, key_id, bob_sig, bytes(32), net.ids)
            assert info.value.code == ss.ACCESS_DENIED
        unknown = ServerKeyId(secrets.token_bytes(32))
        net.allow(unknown, ALICE)
        with pytest.raises(SessionError) as info:
            await net.cores[0].sign("schnorr", unknown, request_signature(ALICE, unknown), bytes(32), net.ids)
        assert info.value.code == ss.UNKNOWN_KEY
        with pytest.raises(SessionError) as info:
            await net.cores[2].generate_server_key(key_id, ALICE.public().address(), 1, net.ids,
                                                   request_signature(ALICE, key_id))
        assert info.value.code == ss.KEY_EXISTS
        # generation for a key the requester may not use is refused by the participants
        other = ServerKeyId(secrets.token_bytes(32))
        with pytest.raises(SessionError) as info:
            await net.cores[0].generate_server_key(other, BOB.public().address(), 1, net.ids,
                                                   request_signature(BOB, other))
        assert info.value.code == ss.ACCESS_DENIED
        assert all(core.storage.get(other) is None for core in net.cores)
        # a signature that is not over this key id recovers someone else: no access
        with pytest.raises(SessionError) as info:
            await net.cores[0].sign("schnorr", key_id, request_signature(ALICE, other), bytes(32), net.ids)
        assert info.value.code == ss.ACCESS_DENIED
        with pytest.raises(SessionError) as info:
            await net.cores[0].sign("schnorr", key_id, "0x" + "00" * 65, bytes(32), net.ids)
        assert info.value.code == ss.BAD_REQUEST


async def test_document_key_store_generate_and_retrieve(tmp_path):
    net = Net(3, tmp_path)
    async with net.running():
        key_id, public = await new_key(net, 1)
        sig = request_signature(ALICE, key_id)
        with pytest.raises(SessionError) as info:
            await net.cores[0].retrieve_document_key(key_id, sig, net.ids)
        assert info.value.code == ss.UNKNOWN_DOCUMENT_KEY
        generated = generate_document_key(public, ALICE.public())
        # Bob is not the author: refused, nothing stored
        net.allow(key_id, BOB)
        with pytest.raises(SessionError) as info:
            await net.cores[1].store_document_key(key_id, request_signature(BOB, key_id), generated.common_point,
                                                  generated.encrypted_point)
        assert info.value.code == ss.ACCESS_DENIED
        assert all(core.storage.get(key_id).common_point is None for core in net.cores)
        await net.cores[1].store_document_key(key_id, sig, generated.common_point, generated.encrypted_point)
        with pytest.raises(SessionError) as info:
            await net.cores[2].store_document_key(key_id, sig, generated.common_point, generated.encrypted_point)
        assert info.value.code == ss.DOCUMENT_KEY_EXISTS
        for master in range(3):
            encrypted = await net.cores[master].retrieve_document_key(key_id, sig, net.ids)
            assert decrypt_document_key(encrypted, ALICE) == generated.document_key
            shadow = await net.cores[master].retrieve_document_key_shadow_direct(key_id, sig, net.ids)
            assert len(shadow["decrypt_shadows"]) == 2
            key = recover_document_key(Public.from_hex(shadow["common_point"]),
                                       Public.from_hex(shadow["decrypted_secret"]),
                                       [bytes.fromhex(s[2:]) for s in shadow["decrypt_shadows"]], ALICE)
            assert key == generated.document_key
            # Bob may access the key now, and gets the same document key encrypted to him
            assert decrypt_document_key(
                await net.cores[master].retrieve_document_key(key_id, request_signature(BOB, key_id), net.ids),
                BOB) == generated.document_key
        assert net.results == []  # no on-chain reports for direct requests

        # server-side document key generation
        key2 = ServerKeyId(secrets.token_bytes(32))
        net.allow(key2, ALICE)
        sig2 = request_signature(ALICE, key2)
        encrypted = await net.cores[2].generate_document_key(key2, sig2, 1, net.ids)
        document_key = decrypt_document_key(encrypted, ALICE)
        assert decrypt_document_key(await net.cores[0].retrieve_document_key(key2, sig2, net.ids), ALICE) == document_key
        with pytest.raises(ValueError):
            ecies.decrypt(BOB, encrypted)
        with pytest.raises(SessionError) as info:
            await net.cores[0].generate_document_key(key2, sig2, 1, net.ids)
        assert info.value.code == ss.KEY_EXISTS


async def test_concurrent_signing_sessions_on_one_key(tmp_path):
    net = Net(3, tmp_path)
    async with net.running():
        key_id, public = await new_key(net, 1)
        sig = request_signature(ALICE, key_id)
        hashes = [secrets.token_bytes(32) for _ in range(6)]
        kinds = ["schnorr", "ecdsa"] * 3
        results = await asyncio.gather(*(net.cores[i % 3].sign(kind, key_id, sig, h, net.ids)
                                         for i, (kind, h) in enumerate(zip(kinds, hashes))))
        for kind, h, signature in zip(kinds, hashes, results):
            assert (schnorr_ok if kind == "schnorr" else ecdsa_ok)(public, h, signature)
