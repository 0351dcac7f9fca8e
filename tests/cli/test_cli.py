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
