"""Signed extrinsics per second through JSON-RPC into blocks, next to raw sr25519 verification measured in this run.

Run: ./run bench node [COUNT]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import sr25519
from substrateinterface import Keypair, SubstrateInterface

from secretstore.node.testing import NodeProcess, free_port, rpc_call


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    alice = Keypair.create_from_uri("//Alice")
    message = b"x" * 120
    signature = alice.sign(message)
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < 1.0:
        sr25519.verify(signature, message, alice.public_key)
        n += 1
    verify_rate = n / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp, NodeProcess(Path(tmp), free_port()) as node:
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        nonce = api.get_account_nonce(alice.ss58_address)
        print(f"signing {count} extrinsics ...", file=sys.stderr)
        extrinsics = [str(api.create_signed_extrinsic(api.compose_call("System", "remark", {"remark": f"0x{i:08x}"}),
                                                      alice, nonce=nonce + i).data) for i in range(count)]
        start_head = int(rpc_call(node.http_url, "chain_getHeader")["result"]["number"], 16)
        started = time.perf_counter()
        for ext in extrinsics:
            api.rpc_request("author_submitExtrinsic", [ext])
        while api.get_account_nonce(alice.ss58_address) < nonce + count:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        blocks = int(rpc_call(node.http_url, "chain_getHeader")["result"]["number"], 16) - start_head
        api.close()
    rate = count / elapsed
    print(f"raw sr25519 verification: {verify_rate:,.0f}/s")
    print(f"extrinsics through RPC into blocks: {rate:,.0f}/s ({count} in {elapsed:.2f}s, {blocks} blocks)")
    print(f"ratio node/verify: {rate / verify_rate:.3f}")


if __name__ == "__main__":
    main()
