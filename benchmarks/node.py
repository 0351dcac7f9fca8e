"""Signed extrinsics per second into blocks, through the real JSON-RPC socket, next to raw sr25519 verification.

A node process is started with instant seal (batching: every ready transaction in each block). COUNT pre-signed
System.remark extrinsics from ACCOUNTS dev accounts are submitted concurrently with author_submitExtrinsic, pipelined
over one WebSocket per account; the clock stops when a state_subscribeStorage notification shows every account's
nonce at its target, i.e. every extrinsic is in a block. In the same run, py-sr25519-bindings verifies the same COUNT
signatures (same messages, same keys), the floor of what any node must spend on them. The last line is JSON.

Run: ./run bench node [COUNT] [ACCOUNTS] [ROUNDS]     (defaults 4000, 4 and 3; the median round is reported)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import sr25519
from substrateinterface import Keypair

from secretstore import aio
from secretstore.codec.scale import encode_compact
from secretstore.node.extrinsic import Era, decode, encode_signed
from secretstore.node.testing import NodeProcess, free_port, rpc_call
from secretstore.runtime import MemoryStorage, Runtime
from secretstore.runtime.runtime import DEV_ACCOUNTS
from secretstore.runtime.system import System

WINDOW = 1024  # requests in flight per connection: pipelined, but bounded like a real client's buffer


def sign_all(keypairs: list[Keypair], nonces: range, genesis: bytes, spec: int, tx_version: int):
    """[(extrinsic bytes, signature, signing payload, public key)] for each account and nonce."""
    signed = []
    for a, kp in enumerate(keypairs):
        mine = []
        for nonce in nonces:
            remark = a.to_bytes(2, "big") + nonce.to_bytes(4, "big")
            call = bytes([0, 0]) + encode_compact(len(remark)) + remark  # System.remark
            template = decode(encode_signed(kp.public_key, 1, bytes(64), Era(), nonce, 0, call))
            payload = template.signing_payload(spec, tx_version, genesis, genesis)
            signature = sr25519.sign((kp.public_key, kp.private_key), payload)
            mine.append((encode_signed(kp.public_key, 1, signature, Era(), nonce, 0, call), signature, payload,
                         kp.public_key))
        signed.append(mine)
    return signed


def verify_rate(items: list[tuple[bytes, bytes, bytes, bytes]]) -> float:
    started = time.perf_counter()
    for _, signature, payload, public in items:
        if not sr25519.verify(signature, payload, public):
            raise AssertionError("a benchmark signature does not verify")
    return len(items) / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def submit_all(ws_url: str, batches: list[list[bytes]], account_keys: list[bytes], target_nonce: int,
                     node_pid: int) -> tuple[float, float]:
    """Submit every batch on its own connection; returns the seconds until all of them are in blocks (every
    account's nonce at `target_nonce`) and the CPU seconds the node spent meanwhile."""
    targets = {key: target_nonce for key in account_keys}
    requests = [[json.dumps({"jsonrpc": "2.0", "id": i, "method": "author_submitExtrinsic",
                             "params": ["0x" + xt.hex()]}) for i, xt in enumerate(batch)] for batch in batches]
    async with aiohttp.ClientSession() as session:
        watch = await session.ws_connect(ws_url, max_msg_size=0)
        await watch.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "state_subscribeStorage",
                                         "params": [["0x" + key.hex() for key in targets]]}))

        async def all_included() -> None:
            nonces: dict[str, int] = {}
            async for msg in watch:
                data = json.loads(msg.data)
                if "params" not in data:
                    continue
                for key, value in data["params"]["result"]["changes"]:
                    if value is not None:  # AccountInfo starts with the nonce (u32 little endian)
                        nonces[key] = int.from_bytes(bytes.fromhex(value[2:10]), "little")
                if all(nonces.get("0x" + k.hex(), 0) >= n for k, n in targets.items()):
                    return

        connections = [await session.ws_connect(ws_url, max_msg_size=0) for _ in batches]
        rejected = 0

        async def one_account(ws, lines: list[str]) -> None:
            nonlocal rejected
            window = asyncio.Semaphore(WINDOW)

            async def send() -> None:
                for line in lines:
                    await window.acquire()
                    await ws.send_str(line)

            sender = asyncio.create_task(send())
            for _ in lines:
                msg = await ws.receive()
                window.release()
                if '"error"' in msg.data:  # a cheap test: this client shares the machine with the node
                    rejected += 1
                    print(f"rejected: {msg.data}", file=sys.stderr)
            await sender

        await watch.receive()  # the subscription's reply
        await watch.receive()  # and its first notification: the state before
        started, node_cpu, own_cpu = time.perf_counter(), cpu_seconds(node_pid), time.process_time()
        done = asyncio.create_task(all_included())
        await asyncio.gather(*(one_account(ws, lines) for ws, lines in zip(connections, requests)))
        if rejected:
            raise AssertionError(f"{rejected} extrinsics were rejected")
        await asyncio.wait_for(done, 120)
        elapsed, node_cpu = time.perf_counter() - started, cpu_seconds(node_pid) - node_cpu
        print(f"  (this client used {time.process_time() - own_cpu:.2f} s CPU)", file=sys.stderr)
        for ws in connections + [watch]:
            await ws.close()
    return elapsed, node_cpu


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    accounts = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    names = ["Alice", "Bob", "Charlie", "Dave", "Alice//stash", "Bob//stash", "Charlie//stash", "Dave//stash"]
    if not 1 <= accounts <= len(names):
        raise SystemExit(f"ACCOUNTS must be 1..{len(names)}")
    keypairs = [Keypair.create_from_uri("//" + name) for name in names[:accounts]]
    assert all(kp.public_key == DEV_ACCOUNTS[name] for kp, name in zip(keypairs, names))
    per_account = count // accounts
    count = per_account * accounts
    account_keys = [System(Runtime(MemoryStorage())).Account.storage_key(kp.public_key) for kp in keypairs]

    def head(node) -> int:
        return int(rpc_call(node.http_url, "chain_getHeader")["result"]["number"], 16)

    results = []  # (xt_per_s, verify_per_s) per round
    with tempfile.TemporaryDirectory() as tmp, NodeProcess(Path(tmp), free_port()) as node:
        genesis = bytes.fromhex(rpc_call(node.http_url, "chain_getBlockHash", [0])["result"][2:])
        version = rpc_call(node.http_url, "state_getRuntimeVersion")["result"]
        print(f"{rounds} rounds of {count} extrinsics from {accounts} accounts (the machine is shared: the median "
              f"round is reported)", file=sys.stderr)
        for r in range(rounds):
            nonces = range(r * per_account, (r + 1) * per_account)
            signed = sign_all(keypairs, nonces, genesis, version["specVersion"], version["transactionVersion"])
            verify_per_s = verify_rate([item for mine in signed for item in mine])
            first = head(node)
            elapsed, node_cpu = aio.run(submit_all(node.ws_url, [[x[0] for x in mine] for mine in signed],
                                                   account_keys, nonces.stop, node.process.pid))
            last = head(node)
            in_blocks = sum(len(rpc_call(node.http_url, "chain_getBlock", [rpc_call(
                node.http_url, "chain_getBlockHash", [n])["result"]])["result"]["block"]["extrinsics"])
                for n in range(first + 1, last + 1))
            if in_blocks != count:
                raise AssertionError(f"{in_blocks} extrinsics in this round's blocks, expected {count}")
            xt_per_s = count / elapsed
            results.append((xt_per_s, verify_per_s))
            print(f"round {r + 1}: {xt_per_s:,.0f} extrinsics/s into blocks ({count} in {elapsed:.2f} s, "
                  f"{last - first} blocks, {count / max(last - first, 1):.0f} per block); node CPU "
                  f"{node_cpu / count * 1e6:.0f} us per extrinsic ({node_cpu:.2f} s); sr25519 verify "
                  f"{verify_per_s:,.0f}/s ({1e6 / verify_per_s:.0f} us)")
    xt_per_s = statistics.median(x for x, _ in results)
    verify_per_s = statistics.median(v for _, v in results)
    print(f"raw sr25519 verification: {verify_per_s:,.0f}/s (median)")
    print(f"signed extrinsics through RPC into blocks: {xt_per_s:,.0f}/s (median)")
    print(f"ratio node/verify: {xt_per_s / verify_per_s:.3f}")
    print(json.dumps({"xt_per_s": round(xt_per_s, 1), "verify_per_s": round(verify_per_s, 1)}))


if __name__ == "__main__":
    main()
