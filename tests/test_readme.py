"""README.md's code blocks run as written against `secretstore dev`.

Blocks fenced `python`, `sh` and `js` are run (each on its own, from the repository root; the JavaScript one with the
clients tests/js installs); blocks fenced `text` are command synopses and are not. Every block is one or the other.
`secretstore dev` is started as users start it: on 9944 and 8082.. when those are free (checked here), otherwise on
the free ports it prints, which are then put into the blocks in place of the defaults.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from secretstore.cli.commands.dev import HTTP_PORT, RPC_PORT, port_free
from secretstore.client import SecretStoreClient
from secretstore.crypto import ServerKeyId

from .js.npm import node_command, npm_clients

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(Path(sys.executable).with_name("secretstore"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
RUNNABLE = ("python", "sh", "js")
SYNOPSIS = "text"
BLOCKS = FENCE.findall((ROOT / "README.md").read_text())
RUN = [(index, lang) for index, (lang, _) in enumerate(BLOCKS) if lang in RUNNABLE]


def test_every_block_is_runnable_or_a_synopsis():
    assert all(lang in RUNNABLE + (SYNOPSIS,) for lang, _ in BLOCKS), [lang for lang, _ in BLOCKS]
    languages = [lang for _, lang in RUN]
    assert languages.count("python") >= 3 and languages.count("sh") >= 2 and languages.count("js") == 1


@dataclass
class Dev:
    url: str
    http_url: str
    output: str

    def substitute(self, text: str) -> str:
        port = self.url.rsplit(":", 1)[1]
        return (text.replace(f"ws://127.0.0.1:{RPC_PORT}", self.url)
                .replace(f"--sub-port {RPC_PORT}", f"--sub-port {port}")
                .replace(f"http://127.0.0.1:{HTTP_PORT}", self.http_url)
                .replace("secretstore http ", f"secretstore http --url {self.http_url} "))


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    defaults_free = port_free(RPC_PORT) and all(port_free(HTTP_PORT + i) for i in range(3))
    process = subprocess.Popen([SCRIPT, "dev", "--base-path", str(tmp_path_factory.mktemp("dev"))],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, url, http_url = [], None, None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        lines.append(line)
        url = (match := re.search(r"node RPC: (ws://\S+)", line)) and match.group(1) or url
        http_url = (match := re.search(r"key server 1: .* HTTP API (http://\S+)", line)) and match.group(1) or http_url
        if "Ctrl-C stops everything" in line:
            break
    output = "".join(lines)
    try:
        assert url and http_url, output
        if defaults_free:  # another test or a developer's `secretstore dev` may hold them; then a NOTE says so
            assert (url, http_url) == (f"ws://127.0.0.1:{RPC_PORT}", f"http://127.0.0.1:{HTTP_PORT}"), output
        else:
            assert "NOTE: port" in output
        yield Dev(url, http_url, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # as Ctrl-C: the network stops and the command exits
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise


def run(command: list[str], cwd: Path) -> str:
    # in a session of its own: a block that starts something long-running is stopped whole when it times out
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{command} ran for more than 120 s\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}")
    assert process.returncode == 0, f"{command}\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
    return stdout


@pytest.mark.parametrize("index, lang", RUN, ids=[f"{lang}-block-{index}" for index, lang in RUN])
def test_block_runs_as_written(dev, index, lang, tmp_path):
    code = dev.substitute(BLOCKS[index][1])
    if lang == "python":
        path = tmp_path / "block.py"
        path.write_text(code)
        output = run([sys.executable, str(path)], ROOT)
        if "asyncio.run" in code:  # the asynchronous block prints the four server keys it generated
            assert len(re.findall(r"'0x[0-9a-f]{128}'", output)) == 4, output
    elif lang == "sh":
        path = tmp_path / "block.sh"
        path.write_text(code)
        output = run(["bash", "-euo", "pipefail", str(path)], ROOT)
        if "GenerateServerKey" in code:
            assert "ServerKeyGenerated" in output, output
        if "http schnorr" in code:
            assert "Valid: yes" in output, output
    else:
        clients = npm_clients()
        path = clients / f"readme-block-{index}.mjs"  # beside node_modules, where its imports resolve
        path.write_text(code)
        output = run([*node_command(), str(path)], clients)
        found = re.search(r"key (0x[0-9a-f]{64}): server key (0x[0-9a-f]{128})", output)
        assert found and "pending generations: []" in output, output
        # the server key it saw in ServerKeyGenerated is the one the key servers hold
        with SecretStoreClient(dev.url, "//Bob", timeout=40) as bob:
            assert bob.retrieve_server_key(ServerKeyId.from_hex(found.group(1))).hex() == found.group(2)
