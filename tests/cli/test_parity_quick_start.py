"""Parity's quick start (paritytech/secret-store, bin/substrate/README.md), replayed command by command.

Each command line is the README's with only the binary names changed (`parity-secretstore-substrate-node` ->
`secretstore node`, `./parity-secretstore-substrate` -> `secretstore-substrate`) and the log piping dropped. Values the
README copies from an earlier command's output (the server key, points, shadows) are taken from our own earlier
output. The README uses fixed ports (node 9944, key servers 10000-10003, as the dev chain's genesis names them).
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ALICE_PUBLIC = ("0x1b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"
                "70beaf8f588b541507fed6a642c5ab42dfdf8120a7f639de5122d47a69a8e8d1")
KEY = "0101010101010101010101010101010101010101010101010101010101010101"

NODE = "./parity-secretstore-substrate-node --dev --base-path db"
KEY_SERVERS = [
    "./parity-secretstore-substrate --self-secret=0101010101010101010101010101010101010101010101010101010101010101 "
    "--db-path=ssdb.1 --net-port=10000 --sub-signer=//Alice",
    "./parity-secretstore-substrate --self-secret=0202020202020202020202020202020202020202020202020202020202020202 "
    "--db-path=ssdb.2 --net-port=10001 --sub-signer=//Bob",
    "./parity-secretstore-substrate --self-secret=0303030303030303030303030303030303030303030303030303030303030303 "
    "--db-path=ssdb.3 --net-port=10002 --sub-signer=//Charlie",
    "./parity-secretstore-substrate --self-secret=0404040404040404040404040404040404040404040404040404040404040404 "
    "--db-path=ssdb.4 --net-port=10003 --sub-signer=//Dave",
]


def command(line: str) -> list[str]:
    """The README's command line with our binary names."""
    words = shlex.split(line)
    if words[0] == "./parity-secretstore-substrate-node":
        return [str(BIN / "secretstore"), "node", *words[1:]]
    assert words[0] == "./parity-secretstore-substrate"
    return [str(BIN / "secretstore-substrate"), *words[1:]]


def ports_free() -> bool:
    for host, port in [("127.0.0.1", 9944)] + [("0.0.0.0", p) for p in range(10000, 10004)]:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def field(output: str, pattern: str) -> str:
    match = re.search(pattern, output, re.M)
    assert match, output
    return match.group(1)


@pytest.fixture
def quick_start_network(tmp_path):
    if not ports_free():
        pytest.skip("the quick start needs ports 9944 and 10000-10003 free")
    processes = []
    logs = []

    def start(line: str) -> None:
        log = open(tmp_path / f"process-{len(processes)}.log", "wb")
        logs.append(log)
        processes.append(subprocess.Popen(command(line), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))

    try:
        start(NODE)
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request("http://127.0.0.1:9944", json.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []}).encode(),
                    {"Content-Type": "application/json"})
                urllib.request.urlopen(request, timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "process-0.log").read_text()
                time.sleep(0.2)
        for line in KEY_SERVERS:
            start(line)
        for port in range(10000, 10004):  # every key server listens on its cluster port
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"key server on port {port} did not start"
                    time.sleep(0.2)
        yield tmp_path
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def test_parity_quick_start_verbatim(quick_start_network):
    cwd = quick_start_network

    def run(line: str) -> str:
        result = subprocess.run(command(line), cwd=cwd, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    # --- Quick start: generating, storing and retrieving keys
    out = run('./parity-secretstore-substrate submit-transaction --wait-processed '
              f'--transaction="ClaimKey(0x{KEY})"')
    assert "KeyClaimed" in out

    out = run('./parity-secretstore-substrate submit-transaction --wait-processed '
              f'--transaction="GenerateServerKey({KEY}, 1)"')
    server_key = field(out, r"^ServerKeyGenerated: .*public=(0x[0-9a-f]{128})")

    out = run(f"./parity-secretstore-substrate generate-document-key --server-key={server_key} "
              f"--author-key={ALICE_PUBLIC}")
    common_point = field(out, r"^Common point: (0x[0-9a-f]+)")
    encrypted_point = field(out, r"^Encrypted point: (0x[0-9a-f]+)")
    encrypted_key = field(out, r"^Encrypted document key: (0x[0-9a-f]+)")

    out = run(f"./parity-secretstore-substrate encrypt-message --encrypted-document-key={encrypted_key} "
              f"--author-secret=0x{KEY} --message=\"Hello, world!\"")
    encrypted_message = field(out, r"^Encrypted message: (0x[0-9a-f]+)")

    out = run(f"./parity-secretstore-substrate decrypt-message --encrypted-document-key={encrypted_key} "
              f"--requester-secret=0x{KEY} --encrypted-message={encrypted_message}")
    assert out.strip() == 'Decrypted message: "Hello, world!"'

    out = run('./parity-secretstore-substrate submit-transaction --wait-processed '
              f'--transaction="StoreDocumentKey({KEY}, {common_point}, {encrypted_point})"')
    assert re.search(r"^DocumentKeyStored", out, re.M), out

    out = run('./parity-secretstore-substrate submit-transaction --wait-processed '
              f'--transaction="RetrieveDocumentKeyShadow({KEY}, {ALICE_PUBLIC})"')
    shadow_common_point = field(out, r"^DocumentKeyCommonRetrieved: .*common_point=(0x[0-9a-f]+)")
    assert field(out, r"^DocumentKeyCommonRetrieved: .*threshold=(\d+)") == "1"
    personal = re.findall(r"^DocumentKeyPersonalRetrieved: .*decrypted_secret=(0x[0-9a-f]+), shadow=(0x[0-9a-f]+)",
                          out, re.M)
    decrypted_secret = personal[-1][0]
    shadows = [shadow for secret, shadow in personal if secret == decrypted_secret]
    assert len(shadows) == 2, out

    out = run(f"./parity-secretstore-substrate shadow-decrypt-message --common-point={shadow_common_point} "
              f"--decrypted-secret={decrypted_secret} --decrypt-shadows={shadows[0]} --decrypt-shadows={shadows[1]} "
              f"--requester-secret=0x{KEY} --encrypted-message={encrypted_message}")
    assert out.strip() == 'Decrypted message: "Hello, world!"'

    out = run('./parity-secretstore-substrate submit-transaction --wait-processed '
              f'--transaction="TransferKey(0x{KEY}, 0x5050a4f4b3f9338c3472dcc01a87c76a144b3c9c)"')
    assert "KeyTransferred" in out

    # --- Quick start: adding and removing key servers
    out = run('./parity-secretstore-substrate submit-transaction --wait-processed '
              '--transaction="AddKeyServer(0xc48b812bb43401392c037381aca934f4069c0517,127.0.0.1:10003)"')
    assert "KeyServerAdded" in out and "MigrationStarted" in out and "MigrationCompleted" in out, out

    out = run('./parity-secretstore-substrate submit-transaction --wait-processed '
              '--transaction="RemoveKeyServer(0xc48b812bb43401392c037381aca934f4069c0517)"')
    assert "KeyServerRemoved" in out and "MigrationStarted" in out and "MigrationCompleted" in out, out

    # the keys survived both migrations: //Bob (the owner now) retrieves the shadow and decrypts
    out = run('./parity-secretstore-substrate submit-transaction --wait-processed --sub-signer=//Bob '
              '--transaction="RetrieveDocumentKeyShadow(0101010101010101010101010101010101010101010101010101010101010101, '
              '0x4d4b6cd1361032ca9bd2aeb9d900aa4d45d9ead80ac9423374c451a7254d07662a3eada2d0fe208b6d257ceb0f064284662e'
              '857f57b66b54c198bd310ded36d0)"')
    personal = re.findall(r"^DocumentKeyPersonalRetrieved: .*decrypted_secret=(0x[0-9a-f]+), shadow=(0x[0-9a-f]+)",
                          out, re.M)
    decrypted_secret = personal[-1][0]
    shadows = [shadow for secret, shadow in personal if secret == decrypted_secret]
    out = run(f"./parity-secretstore-substrate shadow-decrypt-message "
              f"--common-point={field(out, r'^DocumentKeyCommonRetrieved: .*common_point=(0x[0-9a-f]+)')} "
              f"--decrypted-secret={decrypted_secret} --decrypt-shadows={shadows[0]} --decrypt-shadows={shadows[1]} "
              f"--requester-secret=0x{'02' * 32} --encrypted-message={encrypted_message}")
    assert out.strip() == 'Decrypted message: "Hello, world!"'
