"""The real console script, run as a subprocess."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.crypto.test_ecies_and_documents import SPEC_ENCRYPTED_KEY, SPEC_MESSAGE

SCRIPT = str(Path(sys.executable).with_name("secretstore"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60)


def field(output: str, name: str) -> str:
    match = re.search(rf"^{name}: (0x[0-9a-f]+)$", output, re.M)
    assert match, output
    return match.group(1)


def test_spec_example_through_the_cli():
    result = run("decrypt-message", f"--encrypted-document-key=0x{SPEC_ENCRYPTED_KEY.hex()}",
                 "--requester-secret=0x" + "01" * 32, f"--encrypted-message=0x{SPEC_MESSAGE.hex()}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'Decrypted message: "Hello, world!"'


def test_generate_encrypt_decrypt_round_trip():
    author = run("generate-key-pair")
    server = run("generate-key-pair")
    doc = run("generate-document-key", f"--server-key={field(server.stdout, 'Public')}",
              f"--author-key={field(author.stdout, 'Public')}")
    assert doc.returncode == 0, doc.stderr
    key = field(doc.stdout, "Encrypted document key")
    enc = run("encrypt-message", f"--encrypted-document-key={key}",
              f"--author-secret={field(author.stdout, 'Secret')}", "--message=secret plans")
    dec = run("decrypt-message", f"--encrypted-document-key={key}", f"--requester-secret={field(author.stdout, 'Secret')}",
              f"--encrypted-message={field(enc.stdout, 'Encrypted message')}", "--raw")
    assert dec.stdout.strip() == "secret plans"


@pytest.mark.parametrize("args, fragment", [
    (["generate-document-key", "--server-key=0x12", "--author-key=0x12"], "--server-key: expected 64 bytes"),
    (["generate-document-key", "--server-key=0x" + "00" * 64, "--author-key=0x" + "00" * 64], "curve"),
    (["decrypt-message", f"--encrypted-document-key=0x{SPEC_ENCRYPTED_KEY.hex()}", "--requester-secret=0x" + "02" * 32,
      f"--encrypted-message=0x{SPEC_MESSAGE.hex()}"], "authentication failed"),
    (["shadow-decrypt-message", "--common-point=0xzz", "--decrypted-secret=0x00", "--decrypt-shadows=0x00",
      "--requester-secret=0x01", "--encrypted-message=0x00"], "--common-point: not valid hex"),
])
def test_bad_input_is_one_line_and_exit_1(args, fragment):
    result = run(*args)
    assert result.returncode == 1
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_live_demo_runs_the_whole_story():
    result = subprocess.run([SCRIPT, "demo"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refused: DocumentKeyShadowRetrievalError" in result.stdout
    assert "Schnorr (c, s) and ECDSA 0x" in result.stdout and "verified locally" in result.stdout
    assert "migration completed: 4 key servers hold the keys" in result.stdout
    assert "migration completed: back to 3 key servers" in result.stdout
    assert 'Decrypted message: "Hello, world!"' in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--self-secret=0x00"], "--self-secret: expected 32 bytes"),
    (["--self-secret-file=/nonexistent/secret"], "--self-secret-file: No such file"),
    (["--self-secret=0x" + "00" * 32], "range"),
])
def test_key_server_refuses_bad_secrets(tmp_path, args, fragment):
    result = run("key-server", *args, f"--db-path={tmp_path}", "--sub-port=1")
    assert result.returncode == 1 and fragment in result.stderr and "Traceback" not in result.stderr


def test_key_server_runs_with_parity_flags(tmp_path):
    """Parity's key server command line (with our binary name): the process connects to the chain and serves its
    cluster port until stopped."""
    import socket
    import time

    from secretstore.node.testing import NodeProcess, free_port, stop_process_group

    net_port = free_port()
    with NodeProcess(tmp_path / "node", free_port()) as node:
        log = open(tmp_path / "key-server.log", "wb")
        process = subprocess.Popen(
            [SCRIPT, "key-server", "--self-secret", "0x" + "01" * 32, "--db-path", str(tmp_path / "db"),
             "--net-port", str(net_port), "--sub-host", "127.0.0.1", "--sub-port", str(node.port),
             "--sub-signer", "//Alice"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (tmp_path / "key-server.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", net_port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the cluster port never opened"
                    time.sleep(0.2)
            # the cluster port is bound first, the start line printed once storage and chain link are set up
            while "0x1a642f0e3c3af545e7acbd38b07251b3990914f1" not in (tmp_path / "key-server.log").read_text():
                assert process.poll() is None and time.monotonic() < deadline, "no start line"
                time.sleep(0.1)
            started = (tmp_path / "key-server.log").read_text()
            assert f"127.0.0.1:{node.port}" in started
            assert "01" * 32 not in started  # the secret is never echoed
            time.sleep(1.0)
            assert process.poll() is None
            assert (tmp_path / "db" / "keys.sqlite").exists()
        finally:
            stop_process_group(process)
            log.close()


@pytest.mark.parametrize("text, call, params", [
    (f"GenerateServerKey({'01' * 32}, 1)", "generate_server_key", {"id": "0x" + "01" * 32, "threshold": 1}),
    (f"ClaimKey(0x{'AB' * 32})", "claim_key", {"id": "0x" + "ab" * 32}),
    (f"TransferKey({'01' * 32},  {'50' * 20})", "transfer_key", {"id": "0x" + "01" * 32, "new_claimant": "0x" + "50" * 20}),
    (f"AddKeyServer(0x{'c4' * 20},127.0.0.1:10003)", "add_key_server",
     {"id": "0x" + "c4" * 20, "network_address": "127.0.0.1:10003"}),
    (f"RemoveKeyServer({'c4' * 20})", "remove_key_server", {"id": "0x" + "c4" * 20}),
])
def test_transactions_take_hex_with_or_without_0x(text, call, params):
    from secretstore.cli.commands.submit import parse_transaction

    assert parse_transaction(text) == (call, params)


@pytest.mark.parametrize("text, fragment", [
    (f"GenerateServerKey({'01' * 31}, 1)", "expected 32 bytes"),
    (f"GenerateServerKey({'01' * 32}, 255)", "threshold must be an integer"),
    (f"StoreDocumentKey({'01' * 32}, 0x{'00' * 64}, 0x{'00' * 64})", "common_point"),
    (f"TransferKey({'01' * 32}, 0xzz)", "new_claimant"),
    ("Frobnicate(1)", "unknown call"),
    (f"ClaimKey({'01' * 32}, 2)", "takes 1 argument"),
])
def test_bad_transactions_are_refused_before_anything_is_sent(text, fragment):
    result = run("submit-transaction", f"--transaction={text}", "--sub-port=1")
    assert result.returncode == 1 and fragment in result.stderr and "Traceback" not in result.stderr, result.stderr
