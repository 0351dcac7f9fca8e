"""Signed extrinsics per second into blocks, through the real JSON-RPC socket, next to raw sr25519 verification.

A node process is started with instant seal (batching: every ready transaction in each block). COUNT pre-signed
System.remark extrinsics from ACCOUNTS dev accounts are submitted concurrently with author_submitExtrinsic, pipelined
over one WebSocket per account; the clock stops when a state_subscribeStorage notification shows every account's
nonce at its target, i.e. every extrinsic is in a block. In the same run, py-sr25519-bindings verifies the same COUNT
signatures (same messages, same keys), the floor of what any node must spend on them. The last line is JSON.

Run: ./run bench node [COUNT] [ACCOUNTS]        (defaults 4000 and 4)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import sr25519
from substrateinterface import Keypair

from secretstore.codec.scale import encode_compact
from secretstore.node.extrinsic import Era, decode, encode_signed
from secretstore.node.testing import NodeProcess, free_port, rpc_call
from secretstore.runtime import MemoryStorage, Runtime
from secretstore.runtime.runtime import DEV_ACCOUNTS
from secretstore.runtime.system import System

WINDOW = 1024  # requests in flight per connection: pipelined, but bounded like a real client's buffer


def sign_all(keypairs: list[Keypair], per_account: int, genesis: bytes, spec: int, tx_version: int):
    """[(extrinsic bytes, signature, signing payload, public key)] for each account, nonces 0..per_account-1."""
    signed = []
    for a, kp in enumerate(keypairs):
        mine = []
        for nonce in range(per_account):
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


async def submit_all(ws_url: str, batches: list[list[bytes]], account_keys: list[bytes]) -> float:
    """Submit every batch on its own connection; returns the seconds until all of them are in blocks."""
    targets = {key: len(batch) for key, batch in zip(account_keys, batches)}
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
                reply = json.loads(msg.data)
                if "error" in reply:
                    rejected += 1
                    print(f"rejected: {reply['error']}", file=sys.stderr)
            await sender

        await watch.receive()  # the subscription's reply
        await watch.receive()  # and its first notification: the state before
        started = time.perf_counter()
        done = asyncio.create_task(all_included())
        await asyncio.gather(*(one_account(ws, lines) for ws, lines in zip(connections, requests)))
        if rejected:
            raise AssertionError(f"{rejected} extrinsics were rejected")
        await asyncio.wait_for(done, 120)
        elapsed = time.perf_counter() - started
        for ws in connections + [watch]:
            await ws.close()
    return elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    accounts = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    names = ["Alice", "Bob", "Charlie", "Dave", "Alice//stash", "Bob//stash", "Charlie//stash", "Dave//stash"]
    if not 1 <= accounts <= len(names):
        raise SystemExit(f"ACCOUNTS must be 1..{len(names)}")
    keypairs = [Keypair.create_from_uri("//" + name) for name in names[:accounts]]
    assert all(kp.public_key == DEV_ACCOUNTS[name] for kp, name in zip(keypairs, names))
    per_account = count // accounts
    count = per_account * accounts
    account_keys = [System(Runtime(MemoryStorage())).Account.storage_key(kp.public_key) for kp in keypairs]

    with tempfile.TemporaryDirectory() as tmp, NodeProcess(Path(tmp), free_port()) as node:
        genesis = bytes.fromhex(rpc_call(node.http_url, "chain_getBlockHash", [0])["result"][2:])
        version = rpc_call(node.http_url, "state_getRuntimeVersion")["result"]
        print(f"signing {count} extrinsics from {accounts} accounts ...", file=sys.stderr)
        signed = sign_all(keypairs, per_account, genesis, version["specVersion"], version["transactionVersion"])
        verify_per_s = verify_rate([item for mine in signed for item in mine])
        elapsed = asyncio.run(submit_all(node.ws_url, [[x[0] for x in mine] for mine in signed],
                                                    account_keys))
        head = int(rpc_call(node.http_url, "chain_getHeader")["result"]["number"], 16)
        in_blocks = sum(len(rpc_call(node.http_url, "chain_getBlock", [rpc_call(node.http_url, "chain_getBlockHash",
                                                                               [n])["result"]])["result"]["block"]
                            ["extrinsics"]) for n in range(1, head + 1))
    if in_blocks != count:
        raise AssertionError(f"{in_blocks} extrinsics in blocks, expected {count}")
    xt_per_s = count / elapsed
    print(f"raw sr25519 verification: {verify_per_s:,.0f}/s ({count} signatures)")
    print(f"signed extrinsics through RPC into blocks: {xt_per_s:,.0f}/s ({count} in {elapsed:.2f} s, "
          f"{head} blocks, {count / max(head, 1):.0f} extrinsics per block)")
    print(f"ratio node/verify: {xt_per_s / verify_per_s:.3f}")
    print(json.dumps({"xt_per_s": round(xt_per_s, 1), "verify_per_s": round(verify_per_s, 1)}))


if __name__ == "__main__":
    main()
