"""Proactive share refresh of K keys (default 1000) on real processes, end to end: a node and n = 5 key servers
(t = 2) hold K keys (generated through the chain and, for a few that also get a document key, over the HTTP API);
then the key servers are restarted with a refresh epoch that begins a few blocks ahead, and blocks are sealed until
it begins. Timed from the moment the block that opens the epoch is final until every key server reports (through
its status probe) every key at the new epoch and no old version kept: the epoch's master refreshed them in
batches, every holder activated the new versions and erased the old ones. Beside it: document key shadow retrievals over the HTTP API, one after another, while idle and
during the refresh (each checked: the document key comes back unchanged).

Ends with one JSON line: {"keys", "refresh_s", "per_key_ms", "shadow_idle_ms", "shadow_during_ms", ...}.
Run: ./run bench refresh [K]
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from secretstore import aio
from secretstore.cli.commands.status import probe
from secretstore.client import AsyncSecretStoreClient, SecretStoreClient, SecretStoreHttpClient
from secretstore.crypto import Secret, ServerKeyId
from secretstore.devnet import LocalNetwork
from secretstore.process import rpc_call

ALICE = Secret(b"\x01" * 32)  # //Alice's claimed id is this key's address on the dev chains
THRESHOLD = 2
DOCUMENTS = 5  # keys made over the HTTP API with a document key, for the retrievals
IN_FLIGHT = 48  # chain generation requests pending at once (the chain queues at most 64 per service)
MARGIN = 8  # blocks between the restart and the refresh epoch's first block
IDLE_RETRIEVALS = 40


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def generate_keys(url: str, count: int) -> None:
    async with AsyncSecretStoreClient(url, "//Dave", timeout=300) as dave:
        queue = [ServerKeyId(secrets.token_bytes(32)) for _ in range(count)]

        async def worker() -> None:
            while queue:
                await dave.generate_server_key(queue.pop(), THRESHOLD)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


def finalized(network: LocalNetwork) -> int:
    url = network.node.http_url  # type: ignore[union-attr]
    head = rpc_call(url, "chain_getHeader", [rpc_call(url, "chain_getFinalizedHead")["result"]])
    return int(head["result"]["number"], 16)


async def figures(network: LocalNetwork) -> list[dict | None]:
    found = await asyncio.gather(*(probe(ks.address.encode(), 2.0) for ks in network.servers))
    return [refresh for _, refresh in found]


class Retrievals(threading.Thread):
    """Document key shadow retrievals over the HTTP API, one after another, each checked, until stopped."""

    def __init__(self, network: LocalNetwork, documents: list[tuple[ServerKeyId, object]]) -> None:
        super().__init__(daemon=True)
        self.apis = [SecretStoreHttpClient(ks.http_url, timeout=60) for ks in network.servers]
        self.documents, self.times, self.stop = documents, [], threading.Event()

    def one(self, i: int) -> None:
        key_id, document_key = self.documents[i % len(self.documents)]
        started = time.perf_counter()
        shadow = self.apis[i % len(self.apis)].retrieve_document_key_shadow(key_id, ALICE)
        self.times.append(time.perf_counter() - started)
        assert shadow.document_key(ALICE) == document_key, "a document key changed"

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            self.one(i)
            i += 1


def main() -> None:
    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        network = LocalNetwork(Path(tmp), key_servers=5, share_refresh_blocks=1 << 30)  # no epoch while setting up
        network.start(timeout=120)
        try:
            url = network.node.ws_url  # type: ignore[union-attr]
            say(f"generating {keys - DOCUMENTS} keys through the chain and {DOCUMENTS} with document keys over HTTP "
                f"(n = 5, t = {THRESHOLD}) ...")
            started = time.perf_counter()
            aio.run(generate_keys(url, keys - DOCUMENTS))
            api = SecretStoreHttpClient(network.servers[0].http_url, timeout=60)
            documents = []
            with SecretStoreClient(url, "//Alice", timeout=60) as alice:
                for _ in range(DOCUMENTS):
                    key_id = ServerKeyId(secrets.token_bytes(32))
                    alice.claim_key(key_id)
                    documents.append((key_id, api.generate_document_key(key_id, ALICE, THRESHOLD)))
                say(f"  {keys} keys in {time.perf_counter() - started:.1f} s")
                epoch_blocks = finalized(network) + MARGIN
                say(f"restarting the key servers with --share-refresh-blocks {epoch_blocks} ...")
                for i, ks in enumerate(network.servers):
                    ks.share_refresh_blocks = epoch_blocks
                    network.restart_key_server(i, kill=False)
                network.wait_connected(120)
                idle = Retrievals(network, documents)
                for i in range(IDLE_RETRIEVALS):
                    idle.one(i)
                during = Retrievals(network, documents)
                during.start()
                while finalized(network) < epoch_blocks:
                    alice.claim_key(ServerKeyId(secrets.token_bytes(32)))
                opened = time.perf_counter()
                say(f"epoch 1 opened at block {epoch_blocks}: refreshing ...")
                while True:
                    reports = aio.run(figures(network))
                    if all(r is not None and r.get("refresh_epoch") == 1 and r.get("keys_at_epoch") == keys
                           and r.get("old_versions") == 0 for r in reports):
                        break
                    if time.perf_counter() - opened > 300:
                        raise TimeoutError(f"the refresh did not complete: {reports}")
                    time.sleep(0.02)
                elapsed = time.perf_counter() - opened
                during.stop.set()
                during.join(timeout=120)
        finally:
            network.stop()
    idle_ms = statistics.median(idle.times) * 1e3
    during_ms = statistics.median(during.times) * 1e3 if during.times else float("nan")
    print(f"n = 5, t = {THRESHOLD}, {keys} keys: refresh {elapsed:.2f} s end to end "
          f"({elapsed / keys * 1e3:.2f} ms/key) | shadow retrieval (HTTP) median {idle_ms:.1f} ms idle, "
          f"{during_ms:.1f} ms during the refresh ({len(during.times)} retrievals, max "
          f"{max(during.times, default=0) * 1e3:.1f} ms)")
    print(json.dumps({"keys": keys, "refresh_s": round(elapsed, 2), "per_key_ms": round(elapsed / keys * 1e3, 3),
                      "shadow_idle_ms": round(idle_ms, 1), "shadow_during_ms": round(during_ms, 1),
                      "shadow_during_max_ms": round(max(during.times, default=0) * 1e3, 1),
                      "retrievals_during": len(during.times)}))


if __name__ == "__main__":
    main()
