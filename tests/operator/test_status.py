"""`secretstore status` against a live network: the sets, a migration as key servers confirm it, pending requests."""

import http.server
import io
import re
import secrets
import subprocess
import threading
import time

from secretstore.cli.commands.demo import ProgressLine
from secretstore.cli.commands.status import render
from secretstore.client import SecretStoreClient
from secretstore.crypto import ServerKeyId
from secretstore.devnet import LocalNetwork
from secretstore.node.testing import NodeProcess, free_port

from .helpers import SCRIPT, StatusWatch, status

ALICE_ENTITY = "0x1a642f0e3c3af545e7acbd38b07251b3990914f1"  # //Alice's claimed id on the dev chain


def test_status_follows_sets_migration_and_requests(tmp_path):
    network = LocalNetwork(tmp_path, key_servers=4, initial_set=3).start()
    watch = None
    try:
        url = network.node.ws_url
        original, extra = network.servers[:3], network.servers[3]
        ids = [ks.id.hex() for ks in original]

        shown = status(url)
        assert [(ks["id"], ks["address"], ks["reachable"]) for ks in shown["key_servers"]["current"]] == \
            [(ks.id.hex(), ks.address, True) for ks in original]
        assert shown["key_servers"]["new"] == shown["key_servers"]["current"]
        assert shown["key_servers"]["migration"] is None and shown["migration"] is None
        assert all(entries == [] for entries in shown["pending"].values()) and len(shown["pending"]) == 4
        assert shown["head"]["best"]["number"] == shown["head"]["finalized"]["number"] >= 0
        assert shown["head"]["best"]["hash"].startswith("0x") and len(shown["head"]["best"]["hash"]) == 66

        # the fourth key server signs with an account that claimed no key server id: its confirmation is refused
        # on chain, so the migration stays at 3 of 4 confirmations until it runs with its own account again
        extra.stop()
        extra.signer = "//Ferdie"
        extra.start()
        watch = StatusWatch(url)
        with SecretStoreClient(url, "//Alice", timeout=60) as alice:
            alice.submit("add_key_server", id=extra.id.hex(), network_address=extra.address)
            during = watch.until(lambda s: s["migration"] is not None and s["migration"]["confirmed"] == 3, 60,
                                 "three confirmations")
            migration = during["migration"]
            assert migration["master"] in ids
            assert migration["id"].startswith("0x") and len(migration["id"]) == 66
            assert [(m["id"], m["confirmed"], m["reachable"]) for m in migration["members"]] == \
                [(i, True, True) for i in ids] + [(extra.id.hex(), False, True)]
            assert [ks["id"] for ks in during["key_servers"]["new"]] == ids + [extra.id.hex()]
            assert [ks["id"] for ks in during["key_servers"]["current"]] == ids

            # a generation requested now waits for the migration: it shows as pending, with its age
            key_id = ServerKeyId(secrets.token_bytes(32))
            alice.claim_key(key_id)
            requested = alice.submit("generate_server_key", id=key_id.hex(), threshold=1)
            pending = watch.until(lambda s: s["pending"]["server_key_generation"], 30, "the pending generation")
            [entry] = pending["pending"]["server_key_generation"]
            assert entry["key_id"] == key_id.hex() and entry["author"] == ALICE_ENTITY and entry["threshold"] == 1
            assert entry["requested_block"] == requested.block_number
            assert entry["age_blocks"] == pending["head"]["best"]["number"] - requested.block_number
            assert pending["scanned_blocks"] >= entry["age_blocks"] + 1
            # the same state as people read it
            lines = render(pending).splitlines()
            assert f"migration {migration['id']}, master {migration['master']}: 3/4 confirmed" in lines
            assert f"  {extra.id.hex()}  not confirmed yet" in lines
            assert "migration set: same as new set" in lines and "pending requests: 1" in lines
            assert any(line.startswith(f"    {key_id.hex()}  requested at #{requested.block_number}, ")
                       and line.endswith(f"(author {ALICE_ENTITY}, threshold 1)") for line in lines)

            # the key server that has not confirmed goes down: its cluster port stops answering
            extra.stop()
            down = watch.until(lambda s: s["migration"] and not s["migration"]["members"][3]["reachable"], 30,
                               "the fourth key server unreachable")
            assert down["migration"]["confirmed"] == 3
            assert down["pending"]["server_key_generation"][0]["observed_seconds"] > 0  # --watch saw it wait
            assert [m["reachable"] for m in down["migration"]["members"]] == [True, True, True, False]

            # back with its own account: the master asks again, it confirms, the set grows, the key is generated
            extra.signer = "//Dave"
            extra.start()
            done = watch.until(lambda s: s["migration"] is None and len(s["key_servers"]["current"]) == 4
                               and not s["pending"]["server_key_generation"], 90, "the completed migration")
            assert [ks["id"] for ks in done["key_servers"]["current"]] == ids + [extra.id.hex()]
            assert all(ks["reachable"] for ks in done["key_servers"]["current"])
            assert alice.retrieve_server_key(key_id)  # the waiting generation went through after the migration
        assert watch.stop() == 0  # Ctrl-C ends --watch quietly
    finally:
        if watch is not None and watch.process.poll() is None:
            watch.process.kill()
        network.stop()


def test_status_bad_input_is_one_line():
    port = free_port()  # nothing listens there
    result = subprocess.run([SCRIPT, "status", "--sub-port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot read the status from ws://localhost:{port}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    # something that is not a WebSocket endpoint at all: still one line, without the HTTP page it answered
    web = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        result = subprocess.run([SCRIPT, "status", "--url", f"ws://127.0.0.1:{web.server_port}"], capture_output=True,
                                text=True, timeout=60)
    finally:
        web.shutdown()
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot read the status from ws://127.0.0.1:{web.server_port}: cannot "
                                    f"connect to ws://127.0.0.1:{web.server_port}: ")
    assert "501" in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    for args, message in ((["--url", "http://x:1"], "--url must be a ws:// or wss:// URL"),
                          (["--watch", "0"], "--watch must be a positive"),
                          (["--sub-port", "70000"], "--sub-port must be a TCP port")):
        result = subprocess.run([SCRIPT, "status", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and result.stderr.startswith(f"error: {message}"), result.stderr


def test_metrics_flags_bad_input_is_one_line(tmp_path):
    for args, message in ((["node", "--base-path", str(tmp_path), "--prometheus-port", "70000"],
                           "--prometheus-port must be a TCP port"),
                          (["key-server", "--self-secret", "01" * 32, "--metrics-port", "0"],
                           "--metrics-port must be a TCP port")):
        result = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and result.stderr == f"error: {message} (1..65535)\n", result.stderr


def test_signer_file_bad_input_is_one_line(tmp_path):
    signer = tmp_path / "signer"
    signer.write_text("not a suri at all, with a secret word in it\n")
    for args, message in (([f"--sub-signer-file={tmp_path / 'missing'}"], "--sub-signer-file: No such file or directory"),
                          ([f"--sub-signer-file={signer}"], "--sub-signer-file: not a valid secret URI"),
                          ([f"--sub-signer-file={signer}", "--sub-signer=//Bob"],
                           "--sub-signer-file replaces --sub-signer and --sub-signer-password")):
        result = subprocess.run([SCRIPT, "key-server", "--self-secret", "01" * 32, f"--db-path={tmp_path}", *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and result.stderr.startswith(f"error: {message}"), result.stderr
        assert result.stderr.count("\n") == 1 and "secret word" not in result.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_demo_progress_is_one_line_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        progress = ProgressLine(stream)
        LocalNetwork(tmp_path / str(id(stream)), key_servers=2).start(progress=progress).stop()
        progress.close()
    shown = terminal.getvalue()
    assert shown.count("\n") == 1 and shown.endswith("\n")  # one line, rewritten in place
    frames = shown.rstrip("\n").split("\r")[1:]
    assert "starting the chain node" in frames[0] and "cluster links up: 2/2" in frames[-1]
    assert all(re.match(r" {4}\[ *\d+\.\d s\] ", frame) for frame in frames)
    # each frame covers the previous one's text, so no tail of a longer message stays visible
    assert all(len(later) >= len(earlier.rstrip()) for earlier, later in zip(frames, frames[1:]))
    assert all(len(frame) < 80 for frame in frames)  # cut to the terminal's width: no wrap
    lines = log.getvalue().splitlines()  # not a terminal: every message on its own line
    assert lines[0] == "    starting the chain node" and lines[-1] == "    cluster links up: 2/2"


def test_watch_goes_on_through_a_node_restart(tmp_path):
    node = NodeProcess(tmp_path / "node", free_port()).start()
    watch = StatusWatch(node.ws_url)
    try:
        first = watch.until(lambda s: True, 30, "anything")
        node.stop()
        time.sleep(2)  # a few rounds of --watch meet no node
        node.start()
        with SecretStoreClient(node.ws_url, "//Alice") as alice:  # a new block after the restart
            alice.claim_key(ServerKeyId(secrets.token_bytes(32)))
        watch.until(lambda s: s["head"]["best"]["number"] > first["head"]["best"]["number"], 30, "the new block")
        assert watch.stop() == 0
        errors = watch.process.stderr.read().splitlines()
        assert errors and all(line.startswith(f"error: cannot read the status from {node.ws_url}: ")
                              for line in errors), errors
    finally:
        if watch.process.poll() is None:
            watch.process.kill()
        node.stop()
