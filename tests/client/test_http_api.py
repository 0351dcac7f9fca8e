"""Parity's HTTP API served by real key server processes (one node, three key servers, t = 1), driven by the HTTP
client, raw HTTP and the chain SDK. Signatures are checked by coincurve and by the Schnorr formula written out here."""

import asyncio
import json
import secrets
import time
import urllib.error
import urllib.request

import coincurve
import pytest
from Crypto.Hash import keccak

from secretstore.client import SecretStoreClient
from secretstore.client.http import (
    AccessDenied, AsyncSecretStoreHttpClient, BadRequest, HttpApiError, NotFound, SecretStoreHttpClient, request_signature,
    verify_ecdsa, verify_schnorr,
)
from secretstore.crypto import Public, Secret, ServerKeyId
from secretstore.crypto.document import decrypt_document, encrypt_document, generate_document_key
from secretstore.crypto.keys import N
from secretstore.devnet import LocalNetwork

ALICE = Secret(b"\x01" * 32)  # //Alice's entity
BOB = Secret(b"\x02" * 32)  # //Bob's


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with LocalNetwork(tmp_path_factory.mktemp("http")) as net:
        yield net


@pytest.fixture(scope="module")
def alice(network):
    with SecretStoreClient(network.node.ws_url, "//Alice", timeout=40) as client:
        yield client


@pytest.fixture(scope="module")
def apis(network):
    return [SecretStoreHttpClient(ks.http_url, timeout=40) for ks in network.servers]


def claimed_key(alice) -> ServerKeyId:
    key_id = ServerKeyId(secrets.token_bytes(32))
    alice.claim_key(key_id)
    return key_id


def raw(method, url, origin=None, body=None):
    request = urllib.request.Request(url, method=method, data=body, headers={"Origin": origin} if origin else {})
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def sig_hex(secret, key_id, v_offset=0):
    signature = request_signature(secret, key_id)
    return (signature[:64] + bytes([signature[64] + v_offset])).hex()


def schnorr_by_formula(public: Public, message_hash: bytes, c: int, s: int) -> bool:
    """interop.md §3, independently: R' = s·G + c·Y; valid iff keccak256(message_hash ‖ R'.x) mod n == c."""
    c_y = coincurve.PublicKey(b"\x04" + bytes(public)).multiply(c.to_bytes(32, "big"))
    r = coincurve.PublicKey.combine_keys([coincurve.PublicKey.from_secret(s.to_bytes(32, "big")), c_y])
    digest = keccak.new(digest_bits=256, data=message_hash + r.format(compressed=False)[1:33]).digest()
    return int.from_bytes(digest, "big") % N == c


def ecdsa_by_coincurve(public: Public, message_hash: bytes, signature: bytes) -> bool:
    der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(signature[:64]))
    recovered = coincurve.PublicKey.from_signature_and_message(signature, message_hash, hasher=None)
    return (coincurve.PublicKey(b"\x04" + bytes(public)).verify(der, message_hash, hasher=None)
            and recovered.format(compressed=False)[1:] == bytes(public))


def test_server_key_generation_and_retrieval(network, alice, apis):
    key_id = claimed_key(alice)
    public = apis[0].generate_server_key(key_id, ALICE, 1)
    # every key server serves it, and so does the chain flow
    assert all(api.retrieve_server_key(key_id, ALICE) == public for api in apis)
    assert alice.retrieve_server_key(key_id) == public
    with pytest.raises(BadRequest, match="already exists"):
        apis[1].generate_server_key(key_id, ALICE, 1)
    # raw form: key id with 0x, v as 27/28, JSON string answer
    status, body, headers = raw("GET", f"{network.servers[2].http_url}/server/{key_id.hex()}/0x{sig_hex(ALICE, key_id, 27)}")
    assert status == 200 and json.loads(body) == public.hex() and headers["Content-Type"].startswith("application/json")


def test_schnorr_and_ecdsa_signatures(network, alice, apis):
    key_id = claimed_key(alice)
    public = apis[1].generate_server_key(key_id, ALICE, 1)
    for api in apis:  # any key server can be the master
        message_hash = secrets.token_bytes(32)
        c, s = api.sign_schnorr(key_id, ALICE, message_hash)
        assert schnorr_by_formula(public, message_hash, c, s) and verify_schnorr(public, message_hash, (c, s))
        assert not schnorr_by_formula(public, secrets.token_bytes(32), c, s)
        signature = api.sign_ecdsa(key_id, ALICE, message_hash)
        assert len(signature) == 65 and signature[64] <= 3
        assert ecdsa_by_coincurve(public, message_hash, signature) and verify_ecdsa(public, message_hash, signature)
        assert not ecdsa_by_coincurve(public, secrets.token_bytes(32), signature)
    # the answer is encrypted to the requester: the raw body is an ECIES blob, not the signature
    status, body, _ = raw("GET", f"{network.servers[0].http_url}/ecdsa/{key_id.hex()[2:]}/{sig_hex(ALICE, key_id)}/"
                                 f"{'ab' * 32}")
    assert status == 200 and len(bytes.fromhex(json.loads(body)[2:])) == 113 + 65


def test_error_statuses(network, alice, apis):
    key_id = claimed_key(alice)
    base = network.servers[0].http_url
    sig = sig_hex(ALICE, key_id)
    # unknown key (claimed, never generated): 404
    with pytest.raises(NotFound):
        apis[0].retrieve_server_key(key_id, ALICE)
    with pytest.raises(NotFound):
        apis[0].sign_schnorr(key_id, ALICE, bytes(32))
    with pytest.raises(NotFound):
        apis[0].retrieve_document_key(key_id, ALICE)
    public = apis[0].generate_server_key(key_id, ALICE, 1)
    # no document key yet: 404
    with pytest.raises(NotFound, match="document key"):
        apis[1].retrieve_document_key(key_id, ALICE)
    with pytest.raises(NotFound, match="document key"):
        apis[1].retrieve_document_key_shadow(key_id, ALICE)
    # a requester without access: 403 wherever the key is there to check it against
    for call in (lambda: apis[2].retrieve_server_key(key_id, BOB), lambda: apis[2].sign_schnorr(key_id, BOB, bytes(32)),
                 lambda: apis[2].sign_ecdsa(key_id, BOB, bytes(32))):
        with pytest.raises(AccessDenied):
            call()
    # ... but with no document key stored, a retrieval is 404 before the requester is checked (Parity's decryption
    # session refuses to start without one)
    for call in (lambda: apis[2].retrieve_document_key(key_id, BOB),
                 lambda: apis[2].retrieve_document_key_shadow(key_id, BOB)):
        with pytest.raises(NotFound, match="document key"):
            call()
    generated = generate_document_key(public, BOB.public())
    with pytest.raises(AccessDenied, match="author"):
        apis[2].store_document_key(key_id, BOB, generated.common_point, generated.encrypted_point)
    # a key that does not exist is 404 whoever asks, as Parity's (its key server negotiates the key version before it
    # checks the requester); here nobody even claimed it
    unknown = ServerKeyId(secrets.token_bytes(32))
    for call in (lambda: apis[1].retrieve_server_key(unknown, BOB), lambda: apis[1].sign_schnorr(unknown, BOB, bytes(32)),
                 lambda: apis[1].sign_ecdsa(unknown, BOB, bytes(32)), lambda: apis[1].retrieve_document_key(unknown, BOB),
                 lambda: apis[1].retrieve_document_key_shadow(unknown, BOB),
                 lambda: apis[1].store_document_key(unknown, BOB, generated.common_point, generated.encrypted_point)):
        with pytest.raises(NotFound, match="not known"):
            call()
    status, body, _ = raw("GET", f"{network.servers[0].http_url}/server/{unknown.hex()}/{sig_hex(BOB, unknown)}")
    assert status == 404 and json.loads(body) == f"server key {unknown.hex()} is not known"
    bobs_key = ServerKeyId(secrets.token_bytes(32))  # nobody claimed it: Bob may not generate it
    with pytest.raises(AccessDenied):
        apis[0].generate_server_key(bobs_key, BOB, 1)
    # bad requests: 400 with a JSON string
    for method, path in [("GET", "/"), ("GET", f"/{key_id.hex()}"), ("GET", f"/nope/{key_id.hex()}/{sig}"),
                         ("GET", f"/{key_id.hex()[:-2]}/{sig}"), ("GET", f"/{key_id.hex()}/{sig[:-2]}"),
                         ("GET", f"/{key_id.hex()}/{sig[:-2]}05"), ("GET", f"/{key_id.hex()}/{'00' * 65}"),
                         ("POST", f"/shadow/{key_id.hex()}/{sig}/x"), ("POST", f"/shadow/{key_id.hex()}/{sig}/3"),
                         ("GET", f"/schnorr/{key_id.hex()}/{sig}/{'00' * 31}"),
                         ("GET", f"/schnorr/{key_id.hex()}/{sig}/{'00' * 32}/1"),
                         ("PUT", f"/server/{key_id.hex()}/{sig}"),
                         ("POST", f"/shadow/{key_id.hex()}/{sig}/{'00' * 64}/{'00' * 64}")]:
        status, body, _ = raw(method, base + path)
        assert status == 400, (method, path, status, body)
        assert isinstance(json.loads(body), str)
    # the set is the chain's business
    status, body, _ = raw("POST", f"{base}/admin/servers_set_change/{sig}/{sig}", body=b'["0x00"]')
    assert status == 400 and "add_key_server" in json.loads(body)
    # nothing changed by the refused requests
    assert apis[0].retrieve_server_key(key_id, ALICE) == public
    with pytest.raises(NotFound):
        apis[0].retrieve_document_key(key_id, ALICE)


def test_cors(network, alice, apis):
    key_id = claimed_key(alice)
    url = f"{network.servers[0].http_url}/server/{key_id.hex()}/{sig_hex(ALICE, key_id)}"
    status, body, _ = raw("GET", url, origin="http://evil.example")
    assert status == 400 and "Origin" in json.loads(body)
    status, _, _ = raw("GET", url)  # not from a browser: served (404: the key is not generated)
    assert status == 404
    with pytest.raises(BadRequest, match="Origin"):
        SecretStoreHttpClient(network.servers[0].http_url, origin="http://evil.example").retrieve_server_key(key_id, ALICE)


def test_document_keys_over_http_and_over_the_chain_are_interchangeable(network, alice, apis):
    # generated over HTTP, decrypted by the chain flow's shadow retrieval
    key_id = claimed_key(alice)
    document_key = apis[0].generate_document_key(key_id, ALICE, 1)
    encrypted = encrypt_document(document_key, b"made over HTTP")
    assert decrypt_document(alice.retrieve_document_key(key_id, ALICE), encrypted) == b"made over HTTP"
    assert apis[2].retrieve_document_key(key_id, ALICE) == document_key
    assert apis[1].retrieve_document_key_shadow(key_id, ALICE).document_key(ALICE) == document_key
    with pytest.raises(BadRequest, match="already exists"):
        apis[1].generate_document_key(key_id, ALICE, 1)

    # stored through the chain, retrieved over HTTP (plain and shadow)
    key2 = claimed_key(alice)
    server_key = alice.generate_server_key(key2, threshold=1)
    generated = alice.store_new_document_key(key2, server_key, ALICE)
    encrypted = encrypt_document(generated.document_key, b"made on chain")
    for api in apis:
        assert decrypt_document(api.retrieve_document_key(key2, ALICE), encrypted) == b"made on chain"
        shadow = api.retrieve_document_key_shadow(key2, ALICE)
        assert len(shadow.decrypt_shadows) == 2
        assert decrypt_document(shadow.document_key(ALICE), encrypted) == b"made on chain"

    # stored over HTTP (client-made document key), retrieved through the chain
    key3 = claimed_key(alice)
    server_key = apis[2].generate_server_key(key3, ALICE, 1)
    generated = generate_document_key(server_key, ALICE.public())
    apis[2].store_document_key(key3, ALICE, generated.common_point, generated.encrypted_point)
    with pytest.raises(BadRequest, match="already stored"):
        apis[0].store_document_key(key3, ALICE, generated.common_point, generated.encrypted_point)
    assert alice.retrieve_document_key(key3, ALICE) == generated.document_key
    assert apis[1].retrieve_document_key(key3, ALICE) == generated.document_key
    # after a transfer on chain, the HTTP API follows the ACL
    alice.transfer_key(key3, BOB.public().address())
    assert apis[0].retrieve_document_key(key3, BOB) == generated.document_key
    with pytest.raises(AccessDenied):
        apis[0].retrieve_document_key(key3, ALICE)
    # the masters saw these document keys; none of them is in any key server's (verbose) log
    logs = "".join(ks.log_path.read_text(errors="replace") for ks in network.servers)
    for secret_point in (document_key, generated.document_key):
        assert bytes(secret_point).hex() not in logs and bytes(secret_point)[:16].hex() not in logs


async def test_async_client(network, alice):
    key_id = await asyncio.to_thread(claimed_key, alice)
    async with AsyncSecretStoreHttpClient(network.servers[1].http_url, timeout=40) as api:
        public = await api.generate_server_key(key_id, ALICE, 1)
        assert await api.retrieve_server_key(key_id, ALICE) == public
        message_hash = secrets.token_bytes(32)
        assert schnorr_by_formula(public, message_hash, *await api.sign_schnorr(key_id, ALICE, message_hash))
        assert ecdsa_by_coincurve(public, message_hash, await api.sign_ecdsa(key_id, ALICE, message_hash))
        with pytest.raises(AccessDenied):  # an id nobody claimed on chain
            await api.generate_document_key(ServerKeyId(secrets.token_bytes(32)), ALICE, 1)
        with pytest.raises(BadRequest, match="add_key_server"):
            await api.servers_set_change(b"\x00" * 65, b"\x00" * 65, [public])


async def test_a_flooding_requester_gets_429_while_another_is_served(network, alice):
    """Past the bound per requester (2 at once by default) the answer is 429 with a JSON string, at once; another
    requester's request meanwhile is served, and the flooding one is served again once its requests are done."""
    import aiohttp

    key_id, bobs_key = await asyncio.gather(*(asyncio.to_thread(claimed_key, alice) for _ in range(2)))
    url = network.servers[0].http_url
    async with AsyncSecretStoreHttpClient(url, timeout=40) as api:
        await asyncio.gather(api.generate_server_key(key_id, ALICE, 1), api.generate_server_key(bobs_key, ALICE, 1))
    await asyncio.to_thread(alice.transfer_key, bobs_key, BOB.public().address())
    flood = f"{url}/schnorr/{key_id.hex()}/{sig_hex(ALICE, key_id)}/{'ab' * 32}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def get(target):
            async with http.get(target) as response:
                return response.status, json.loads(await response.text()), response.headers

        answers = await asyncio.gather(*(get(flood) for _ in range(24)),
                                       get(f"{url}/server/{bobs_key.hex()}/{sig_hex(BOB, bobs_key)}"))
        statuses = [status for status, _, _ in answers[:-1]]
        assert answers[-1][0] == 200  # the other requester
        assert set(statuses) == {200, 429} and statuses.count(200) >= 2, statuses
        for status, body, headers in answers[:-1]:
            if status == 429:
                assert "too many requests" in body and headers["Retry-After"] == "1"
        assert (await get(flood))[0] == 200


def test_ecdsa_with_too_few_holders_is_a_clear_error(network, alice, apis):
    """t = 1 of 3: ECDSA needs all 3 key servers, Schnorr 2. With one down, ECDSA refuses (403 consensus
    unreachable) while Schnorr still signs."""
    key_id = claimed_key(alice)
    public = apis[0].generate_server_key(key_id, ALICE, 1)
    victim = network.servers[2]
    victim.stop(kill=True)
    message_hash = secrets.token_bytes(32)
    try:
        deadline = time.monotonic() + 30
        while True:  # until the others notice the dead link (a kill closes it at once, but do not rely on that)
            try:
                apis[0].sign_ecdsa(key_id, ALICE, message_hash)
            except AccessDenied as exc:
                assert "consensus unreachable" in exc.message and "needs 3" in exc.message
                break
            except HttpApiError:
                pass
            assert time.monotonic() < deadline, "ECDSA kept working with a holder down"
            time.sleep(0.2)
        assert schnorr_by_formula(public, message_hash, *apis[1].sign_schnorr(key_id, ALICE, message_hash))
    finally:
        victim.start()
        network.wait_connected()
    deadline = time.monotonic() + 30
    while True:  # back to 3 of 3
        try:
            signature = apis[2].sign_ecdsa(key_id, ALICE, message_hash)
            break
        except HttpApiError:
            assert time.monotonic() < deadline
            time.sleep(0.3)
    assert ecdsa_by_coincurve(public, message_hash, signature)


def test_cli(network, alice):
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = str(Path(sys.executable).with_name("secretstore"))

    def run(*args):
        return subprocess.run([script, *args], capture_output=True, text=True, timeout=120)

    def field(output, name):
        match = re.search(rf"^{name}: (0x[0-9a-f]+)$", output, re.M)
        assert match, output
        return match.group(1)

    key_id = claimed_key(alice)
    secret = "0x" + "01" * 32
    made = run("sign-request", f"--requester-secret={secret}", f"--key-id={key_id.hex()}")
    assert made.returncode == 0 and field(made.stdout, "Signature") == "0x" + request_signature(ALICE, key_id).hex()
    url = network.servers[1].http_url
    common = ["http", "--url", url]
    who = [f"--key-id={key_id.hex()}", f"--requester-secret={secret}"]
    generated = run(*common, "generate-document-key", *who, "--threshold=1")
    assert generated.returncode == 0, generated.stderr
    encrypted_key = field(generated.stdout, "Encrypted document key")
    server_key = field(run(*common, "server-key", *who).stdout, "Server key")
    for kind in ("schnorr", "ecdsa"):
        signed = run(*common, kind, *who, "--message-hash=0x" + "42" * 32)
        assert signed.returncode == 0, signed.stderr
        assert "Valid: yes" in signed.stdout and field(signed.stdout, "Server key") == server_key
        raw_signature = bytes.fromhex(field(signed.stdout, "Signature")[2:])
        public = Public.from_hex(server_key)
        if kind == "ecdsa":
            assert ecdsa_by_coincurve(public, b"\x42" * 32, raw_signature)
        else:
            assert schnorr_by_formula(public, b"\x42" * 32, int.from_bytes(raw_signature[:32], "big"),
                                      int.from_bytes(raw_signature[32:], "big"))
    # the offline commands use what the HTTP commands print
    encrypted = run("encrypt-message", f"--encrypted-document-key={encrypted_key}", f"--author-secret={secret}",
                    "--message=over the CLI")
    message = field(encrypted.stdout, "Encrypted message")
    again = field(run(*common, "document-key", *who).stdout, "Encrypted document key")
    decrypted = run("decrypt-message", f"--encrypted-document-key={again}", f"--requester-secret={secret}",
                    f"--encrypted-message={message}")
    assert decrypted.stdout.strip() == 'Decrypted message: "over the CLI"'
    shadow = run(*common, "shadow", *who).stdout
    shadows = re.findall(r"^Decrypt shadow: (0x[0-9a-f]+)$", shadow, re.M)
    decrypted = run("shadow-decrypt-message", f"--common-point={field(shadow, 'Common point')}",
                    f"--decrypted-secret={field(shadow, 'Decrypted secret')}",
                    *[f"--decrypt-shadows={s}" for s in shadows], f"--requester-secret={secret}",
                    f"--encrypted-message={message}", "--raw")
    assert decrypted.stdout.strip() == "over the CLI"
    # errors are one line, with the status
    refused = run(*common, "document-key", f"--key-id={key_id.hex()}", "--requester-secret=0x" + "02" * 32)
    assert refused.returncode == 1 and refused.stderr.startswith("error: HTTP 403")
    assert "Traceback" not in refused.stderr
