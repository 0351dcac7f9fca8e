"""Time to migrate K keys (K = 10, 100, 1000) to a grown key server set, per key, next to the DKG cost per key
measured in the same run. Key servers run in-process here (real TCP on loopback, real SQLite files) so that the
protocol cost is measured without chain polling latency.

Run: ./run bench migration [K ...]
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path

from secretstore.crypto import Address, KeyPair, Secret, ServerKeyId
from secretstore.keyserver.net import Cluster, KeyServerDirectory
from secretstore.keyserver.sessions import KeyServerCore
from secretstore.keyserver.storage import KeyStorage
from secretstore.node.testing import free_port


async def allow_all(key_id: ServerKeyId, requester: Address) -> bool:
    return True


async def run(k: int, base: Path) -> tuple[float, float]:
    pairs = [KeyPair(Secret(bytes([i + 1]) * 32)) for i in range(4)]
    ports = [free_port() for _ in pairs]
    cores, tasks = [], []
    for i, (pair, port) in enumerate(zip(pairs, ports)):
        directory = KeyServerDirectory()
        directory.update({p.address: ("127.0.0.1", q) for p, q in zip(pairs, ports) if p is not pair})
        core = KeyServerCore(pair, KeyStorage(base / f"ks{i}.sqlite"), allow_all, lambda call, params: None)
        core.cluster = Cluster(pair, "127.0.0.1", port, directory, core.handle)
        cores.append(core)
        tasks.append(asyncio.create_task(core.cluster.run()))
    try:
        async with asyncio.timeout(30):
            while not all(len(c.cluster.connections) == 3 for c in cores):
                await asyncio.sleep(0.05)
        old = [p.address for p in pairs[:3]]
        new = [p.address for p in pairs]
        started = time.perf_counter()
        for i in range(k):
            await cores[i % 3].generate_server_key(ServerKeyId(secrets.token_bytes(32)), pairs[0].address, 1, old)
            if k >= 100 and i % (k // 10) == 0:
                print(f"  generated {i}/{k}", file=sys.stderr)
        dkg = (time.perf_counter() - started) / k
        started = time.perf_counter()
        moved = await cores[0].migrate(secrets.token_bytes(32), old, new)
        migration = (time.perf_counter() - started) / k
        assert moved == k
        return dkg, migration
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in cores:
            c.storage.close()


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 1000]
    print("3 -> 4 key servers, threshold 1, loopback TCP, SQLite (synchronous=FULL)")
    for k in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            dkg, migration = asyncio.run(run(k, Path(tmp)))
        print(f"K={k:<5} migration {migration * 1000:7.2f} ms/key | DKG {dkg * 1000:7.2f} ms/key | "
              f"ratio {migration / dkg:5.2f}")


if __name__ == "__main__":
    main()
