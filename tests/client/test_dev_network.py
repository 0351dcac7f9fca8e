"""`secretstore dev` as users run it, driven by the CLI and the SDK; Ctrl-C leaves no process behind."""

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from secretstore.client import AsyncSecretStoreClient, DispatchFailed, SecretStoreClient
from secretstore.crypto import Public, Secret, ServerKeyId
from secretstore.crypto.document import generate_document_key

SCRIPT = str(Path(sys.executable).with_name("secretstore"))
ALICE = Secret(b"\x01" * 32)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    base = tmp_path_factory.mktemp("dev")
    process = subprocess.Popen([SCRIPT, "dev", "--base-path", str(base)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url, lines = None, []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        lines.append(line)
        if match := re.search(r"node RPC: (ws://\S+)", line):
            url = match.group(1)
        if "Ctrl-C stops everything" in line:
            break
    assert url, "".join(lines)
    yield process, url, base, lines
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def cli(url, *args, timeout=120):
    port = url.rsplit(":", 1)[1]
    return subprocess.run([SCRIPT, "submit-transaction", "--sub-port", port, *args], capture_output=True, text=True,
                          timeout=timeout)


def test_dev_prints_progress_and_endpoints(dev):
    _, url, _, lines = dev
    text = "".join(lines)
    assert "cluster links up: 6/6" in text
    assert len(re.findall(r"key server \d: id 0x[0-9a-f]{40}", text)) == 3


def test_submit_transaction_flow(dev):
    _, url, _, _ = dev
    key = "0x" + secrets.token_hex(32)
    claimed = cli(url, f"--transaction=ClaimKey({key})", "--wait-mined")
    assert claimed.returncode == 0, claimed.stderr
    generated = cli(url, f"--transaction=GenerateServerKey({key}, 1)", "--wait-processed")
    assert generated.returncode == 0, generated.stderr
    public = re.search(r"ServerKeyGenerated: .*public=(0x[0-9a-f]{128})", generated.stdout).group(1)
    retrieved = cli(url, f"--transaction=RetrieveServerKey({key})", "--wait-processed")
    assert f"public={public}" in retrieved.stdout
    doc = generate_document_key(Public.from_hex(public), ALICE.public())
    stored = cli(url, f"--transaction=StoreDocumentKey({key}, {doc.common_point.hex()}, {doc.encrypted_point.hex()})",
                 "--wait-processed")
    assert "DocumentKeyStored" in stored.stdout, stored.stdout + stored.stderr
    shadow = cli(url, f"--transaction=RetrieveDocumentKeyShadow({key}, {ALICE.public().hex()})", "--wait-processed")
    assert shadow.returncode == 0, shadow.stderr
    assert "DocumentKeyCommonRetrieved" in shadow.stdout and shadow.stdout.count("DocumentKeyPersonalRetrieved") >= 2
    # the printed values decrypt with the shadow-decrypt command
    common = re.search(r"common_point=(0x[0-9a-f]+)", shadow.stdout).group(1)
    personal = re.findall(r"decrypted_secret=(0x[0-9a-f]+), shadow=(0x[0-9a-f]+)", shadow.stdout)
    encrypted = subprocess.run([SCRIPT, "encrypt-message", f"--encrypted-document-key=0x{doc.encrypted_key.hex()}",
                                f"--author-secret=0x{'01' * 32}", "--message=via the CLI"], capture_output=True, text=True)
    message = re.search(r"Encrypted message: (0x[0-9a-f]+)", encrypted.stdout).group(1)
    decrypted = subprocess.run(
        [SCRIPT, "shadow-decrypt-message", f"--common-point={common}", f"--decrypted-secret={personal[0][0]}",
         *[f"--decrypt-shadows={s}" for d, s in personal if d == personal[0][0]][:2],
         f"--requester-secret=0x{'01' * 32}", f"--encrypted-message={message}"], capture_output=True, text=True)
    assert decrypted.stdout.strip() == 'Decrypted message: "via the CLI"', decrypted.stderr


def test_submit_transaction_errors_are_one_line(dev):
    _, url, _, _ = dev
    result = cli(url, "--transaction=RemoveKeyServer(0x" + "00" * 20 + ")", "--wait-mined")
    assert result.returncode == 1
    assert "UnknownKeyServer" in result.stderr and "Traceback" not in result.stderr
    result = cli(url, "--transaction=ChangeOwner(5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty)",
                 "--sub-signer=//Bob", "--wait-mined")
    assert "NotOwner" in result.stderr


def test_sdk_sync_and_async(dev):
    _, url, _, _ = dev
    key_id = ServerKeyId(secrets.token_bytes(32))
    with SecretStoreClient(url, "//Alice") as client:
        client.claim_key(key_id)
        with pytest.raises(DispatchFailed) as info:
            client.claim_key(key_id)
        assert info.value.error == "KeyAlreadyClaimed"

    async def flow():
        client = AsyncSecretStoreClient(url, "//Alice")
        try:
            server_key = await client.generate_server_key(key_id, 1)
            assert await client.retrieve_server_key(key_id) == server_key
            generated = await client.store_new_document_key(key_id, server_key, ALICE)
            assert await client.retrieve_document_key(key_id, ALICE) == generated.document_key
        finally:
            await client.aclose()

    asyncio.run(flow())


def test_many_concurrent_requests_from_one_account(dev):
    """One account, many requests in flight at once (local nonces, one block feed): every generation, store and
    shadow retrieval completes, each with its own correct result."""
    _, url, _, _ = dev
    count = 12

    async def flow() -> None:
        # //Dave is a plain user of the dev chain (its claimed id is the address of secret 0x04..04); no key server
        # signs with it, so its nonce counts exactly this test's transactions
        dave_secret = Secret(b"\x04" * 32)
        async with AsyncSecretStoreClient(url, "//Dave", timeout=120) as dave:
            before = await dave.chain.account_next_index(dave.keypair.ss58_address)
            keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(count)]
            await asyncio.gather(*(dave.claim_key(k) for k in keys))
            publics = await asyncio.gather(*(dave.generate_server_key(k, 1) for k in keys))
            assert len(set(publics)) == count  # one distinct server key each
            assert await asyncio.gather(*(dave.retrieve_server_key(k) for k in keys)) == publics
            generated = await asyncio.gather(*(dave.store_new_document_key(k, p, dave_secret)
                                               for k, p in zip(keys, publics)))
            documents = await asyncio.gather(*(dave.retrieve_document_key(k, dave_secret) for k in keys))
            assert documents == [g.document_key for g in generated]
            # one nonce per transaction: none was lost or signed twice
            after = await dave.chain.account_next_index(dave.keypair.ss58_address)
            assert after - before == 5 * count

    asyncio.run(flow())


def test_ctrl_c_stops_everything(dev):
    process, _, base, _ = dev
    children = subprocess.run(["pgrep", "-f", str(base)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 4  # the node and three key servers run with this base path
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", str(base)], capture_output=True, text=True).stdout.split() == []
