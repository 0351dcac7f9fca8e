"""Bad command lines for every main subcommand of `secretstore` and for `secretstore-substrate` (issue 13's sweep):
a non-zero exit, exactly one line on stderr saying what is wrong, no traceback, nothing on stdout and no file
created. Most cases run the commands' entry points in this process (a process start costs more than a second
here); a few run the real console scripts to show the same from the outside."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from secretstore.cli import substrate
from secretstore.cli.main import main

SECRET = "0x" + "01" * 32
KEY = "0x" + "ab" * 32
D = "{tmp}"  # replaced by the test's own empty directory

# (arguments, exit code, a fragment of the one stderr line)
CASES = [
    # the command itself
    ([], 2, "required: COMMAND"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["--no-such-flag", "generate-key-pair"], 2, "unrecognized arguments: --no-such-flag"),
    (["generate-key-pair", "extra"], 2, "unrecognized arguments: extra"),
    # keys and documents
    (["sign-request"], 2, "required: --requester-secret, --key-id"),
    (["sign-request", "--key-id", "0x12", "--requester-secret", SECRET], 1, "--key-id: expected 32 bytes, got 1"),
    (["sign-request", "--key-id", KEY, "--requester-secret", "0xzz"], 1, "--requester-secret: not valid hex"),
    (["sign-request", "--key-id", KEY, "--requester-secret", "0x" + "00" * 32], 1, "range 1..n-1"),
    (["sign-request", "--key-id", KEY, "--requester-secret", "0x" + "ff" * 32], 1, "range 1..n-1"),
    (["sign-request", "--key-id", KEY, "--requester-secret", "0x123"], 1, "odd number of hex digits"),
    (["generate-document-key"], 2, "required: --server-key, --author-key"),
    (["generate-document-key", "--server-key", "zz", "--author-key", "zz"], 1, "--server-key: not valid hex"),
    (["generate-document-key", "--server-key", "0x" + "00" * 65, "--author-key", "0x" + "00" * 64], 1,
     "--server-key: expected 64 bytes, got 65"),
    (["encrypt-message", "--encrypted-document-key", "0x" + "00" * 200, "--author-secret", SECRET, "--message", "x"],
     1, "not an ECIES ciphertext"),
    (["decrypt-message", "--encrypted-document-key", "0x", "--requester-secret", SECRET, "--encrypted-message", "0x"],
     1, "not an ECIES ciphertext"),
    (["shadow-decrypt-message", "--common-point", "0x" + "11" * 64, "--decrypted-secret", "0x" + "11" * 64,
      "--decrypt-shadows", "0x00", "--requester-secret", SECRET, "--encrypted-message", "0x00"], 1,
     "--common-point: not a point on the secp256k1 curve"),
    # the HTTP API client
    (["http"], 2, "required: CALL"),
    (["http", "nope"], 2, "invalid choice: 'nope'"),
    (["http", "server-key"], 2, "required: --key-id, --requester-secret"),
    (["http", "--url", "notaurl", "server-key", "--key-id", KEY, "--requester-secret", SECRET], 1,
     "--url must be an http:// or https:// URL"),
    (["http", "--url", "ftp://x", "server-key", "--key-id", KEY, "--requester-secret", SECRET], 1, "--url must be"),
    (["http", "--timeout", "-1", "server-key", "--key-id", KEY, "--requester-secret", SECRET], 1, "--timeout must"),
    (["http", "--timeout", "nan", "server-key", "--key-id", KEY, "--requester-secret", SECRET], 1, "--timeout must"),
    (["http", "--timeout", "abc", "server-key", "--key-id", KEY, "--requester-secret", SECRET], 2,
     "invalid float value: 'abc'"),
    (["http", "server-key", "--key-id", "0x12", "--requester-secret", SECRET], 1, "--key-id: expected 32 bytes"),
    (["http", "ecdsa", "--key-id", KEY, "--requester-secret", SECRET, "--message-hash", "0x12"], 1,
     "--message-hash: expected 32 bytes"),
    (["http", "generate-server-key", "--key-id", KEY, "--requester-secret", SECRET, "--threshold", "-1"], 1,
     "--threshold: expected a non-negative integer"),
    (["http", "store-document-key", "--key-id", KEY, "--requester-secret", SECRET, "--common-point", "0x00",
      "--encrypted-point", "0x00"], 1, "--common-point: expected 64 bytes"),
    # the node
    (["node"], 2, "required: --base-path"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "99999"], 1, "--rpc-port must be a TCP port"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "-5"], 1, "--rpc-port must be a TCP port"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "x"], 2, "invalid int value: 'x'"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "1", "--block-time", "0"], 1, "--block-time must be"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "1", "--block-time", "nan"], 1, "--block-time must be"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "1", "--block-time", "inf"], 1, "--block-time must be"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "1", "--block-time", "1", "--seal-per-transaction"], 1,
     "cannot be combined with --block-time"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "1", "--rpc-host", "256.0.0.1"], 1,
     "--rpc-host: cannot listen on '256.0.0.1'"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "1", "--prometheus-port", "0"], 1, "--prometheus-port must"),
    (["node", "--base-path", f"{D}/chain", "--rpc-port", "1", "--chain-spec", f"{D}/missing.json"], 1,
     "cannot read chain spec"),
    # a key server
    (["key-server"], 2, "one of the arguments --self-secret --self-secret-file is required"),
    (["key-server", "--self-secret", SECRET, "--self-secret-file", f"{D}/s", "--db-path", f"{D}/db"], 2,
     "not allowed with argument --self-secret"),
    (["key-server", "--self-secret", "zz", "--db-path", f"{D}/db"], 1, "--self-secret: not valid hex"),
    (["key-server", "--self-secret", "0x01", "--db-path", f"{D}/db"], 1, "--self-secret: expected 32 bytes"),
    (["key-server", "--self-secret-file", f"{D}/missing", "--db-path", f"{D}/db"], 1, "--self-secret-file"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--net-port", "99999"], 1, "TCP ports"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--net-port", "abc"], 2, "invalid int value"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--sub-port", "0"], 1, "TCP ports"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--http-port", "70000"], 1, "--http-port must"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--http-cors", "*"], 1, "needs --http-port"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--http-port", "8", "--http-cors", "bad origin"],
     1, "--http-cors: 'bad origin' is not an origin"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--sub-signer", "not a suri!!"], 1,
     "--sub-signer: not a valid secret URI"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--net-host", "256.1.1.1"], 1,
     "--net-host: cannot listen on '256.1.1.1'"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--metrics-port", "70000"], 1,
     "--metrics-port must"),
    (["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--faults", "corrupt:dkg"], 1, "SECRETSTORE_FAULTS"),
    # status, submit-transaction, dev
    (["status", "--sub-port", "99999"], 1, "--sub-port must be a TCP port"),
    (["status", "--url", "http://x"], 1, "--url must be a ws:// or wss:// URL"),
    (["status", "--watch", "-1"], 1, "--watch must be a positive number of seconds"),
    (["status", "--watch", "nan"], 1, "--watch must be a positive number of seconds"),
    (["submit-transaction"], 2, "required: --transaction"),
    (["submit-transaction", "--transaction", "ClaimKey(", "--sub-port", "1"], 1, "expected Name(arg, ...)"),
    (["submit-transaction", "--transaction", "Frobnicate(1)", "--sub-port", "1"], 1, "unknown call"),
    (["submit-transaction", "--transaction", f"ClaimKey({KEY})", "--sub-port", "99999"], 1, "--sub-port must be"),
    (["submit-transaction", "--transaction", f"ClaimKey({KEY})", "--sub-port", "1", "--timeout", "0"], 1,
     "--timeout must be"),
    (["submit-transaction", "--transaction", f"ClaimKey({KEY})", "--sub-port", "1", "--sub-signer", "bad suri"], 1,
     "--sub-signer: not a valid secret URI"),
    (["dev", "--key-servers", "0", "--base-path", f"{D}/dev"], 1, "--key-servers must be between 1 and 255"),
    (["dev", "--key-servers", "x"], 2, "invalid int value: 'x'"),
    (["dev", "--key-servers", "3", "--threshold", "3", "--base-path", f"{D}/dev"], 1, "--threshold must be below"),
]

# Parity's bin/substrate command line: no subcommand means a key server
SUBSTRATE_CASES = [
    (["--self-secret=zz", f"--db-path={D}/db"], 1, "--self-secret: not valid hex"),
    (["--self-secret=" + "01" * 32, "--net-port=99999", f"--db-path={D}/db"], 1, "TCP ports"),
    (["--self-secret=" + "01" * 32, "--sub-port=abc", f"--db-path={D}/db"], 2, "invalid int value: 'abc'"),
    (["--nope"], 2, "is required"),
    (["generate-document-key", "--server-key=0x12", "--author-key=0x12"], 1, "--server-key: expected 64 bytes"),
    (["submit-transaction", "--transaction=ClaimKey(0x12)", "--sub-port=1"], 1, "expected 32 bytes"),
]


def fill(args: list[str], tmp: Path) -> list[str]:
    return [a.replace(D, str(tmp)) for a in args]


def check(code: int, err: str, out: str, expected_code: int, fragment: str, tmp: Path) -> None:
    lines = err.strip().splitlines()
    assert code == expected_code, (code, err)
    assert len(lines) == 1 and fragment in lines[0], err
    assert lines[0].startswith(("error: ", "secretstore")), err
    assert "Traceback" not in err and out == ""
    assert SECRET[2:] not in err and "01" * 31 not in err  # a secret given on the command line is never echoed
    assert list(tmp.iterdir()) == [], list(tmp.iterdir())  # nothing created


def run_in_process(entry, args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = entry(args)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.err, captured.out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, code, fragment", CASES, ids=[" ".join(c[0])[:60] or "(none)" for c in CASES])
def test_bad_secretstore_command_lines(tmp_path, capsys, monkeypatch, args, code, fragment):
    monkeypatch.delenv("SECRETSTORE_FAULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    check(*run_in_process(main, fill(args, tmp_path), capsys), code, fragment, tmp_path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, code, fragment", SUBSTRATE_CASES, ids=[" ".join(c[0])[:60] for c in SUBSTRATE_CASES])
def test_bad_secretstore_substrate_command_lines(tmp_path, capsys, monkeypatch, args, code, fragment):
    monkeypatch.chdir(tmp_path)
    check(*run_in_process(substrate.main, fill(args, tmp_path), capsys), code, fragment, tmp_path)


def test_the_console_scripts_say_the_same(tmp_path):
    """The real executables, for one usage error, one value error and one of each kind of failure to start."""
    bin_dir = Path(sys.executable).parent
    picked = [(bin_dir / "secretstore", CASES[1]), (bin_dir / "secretstore", CASES[29]),
              (bin_dir / "secretstore", CASES[51]), (bin_dir / "secretstore-substrate", SUBSTRATE_CASES[0])]
    assert "--rpc-port must" in picked[1][1][2] and "--net-host" in picked[2][1][2]

    def run(index_and_case):
        index, (script, (args, code, fragment)) = index_and_case
        directory = tmp_path / str(index)
        directory.mkdir()
        result = subprocess.run([str(script), *fill(args, directory)], capture_output=True, text=True, timeout=60,
                                cwd=directory)
        return result, code, fragment, directory

    with ThreadPoolExecutor(len(picked)) as pool:
        for result, code, fragment, directory in pool.map(run, enumerate(picked)):
            check(result.returncode, result.stderr, result.stdout, code, fragment, directory)


@pytest.mark.timeout(60)
def test_a_taken_port_is_refused_before_any_database_is_made(tmp_path, capsys, monkeypatch):
    """The node's RPC port and a key server's cluster port are bound before the chain or share database is opened."""
    import socket

    monkeypatch.chdir(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        for args in (["node", "--base-path", f"{D}/chain", "--rpc-port", port],
                     ["key-server", "--self-secret", SECRET, "--db-path", f"{D}/db", "--net-port", port,
                      "--sub-port", "1"]):
            check(*run_in_process(main, fill(args, tmp_path), capsys), 1, "in use", tmp_path)
