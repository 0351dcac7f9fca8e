"""The pending-request limit under load (issue 13), on a real network: one node and three key server processes, with
fees switched on. One account fires more generation requests than the queue holds, at once, through the async SDK.
Requests beyond the limit fail with TooManyPendingRequests in the block that includes them, paying only the
transaction fee (docs/architecture.md, "Fees"); every accepted request gets its ServerKeyGenerated event, the
network drains the queue without stalling, and new requests are accepted again afterwards.

To make "beyond the limit" exact rather than a race with the key servers, the key server processes are paused
(SIGSTOP) while the burst is submitted, as if they were slow, and resumed (SIGCONT) once every request is in a block.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time

import pytest
from substrateinterface import Keypair, SubstrateInterface

from secretstore.chain.client import ChainEvent, DispatchFailed
from secretstore.client import AsyncSecretStoreClient
from secretstore.codec.hashing import blake2_256
from secretstore.crypto import Public, ServerKeyId
from secretstore.devnet import LocalNetwork

BASE_FEE, BYTE_FEE, GENERATION_FEE = 1_000, 10, 1_000_000
EXTRA = 12  # requests beyond the limit
USER = "//Dave"  # a plain user of the network (claimed an id, answers nothing)


class NetworkWithFees(LocalNetwork):
    def chain_spec(self, ports: list[int]) -> dict:
        spec = super().chain_spec(ports)
        spec.update(base_fee=BASE_FEE, byte_fee=BYTE_FEE, server_key_generation_fee=GENERATION_FEE)
        return spec


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with NetworkWithFees(tmp_path_factory.mktemp("queue-limit")) as started:
        yield started


@pytest.fixture(scope="module")
def substrate(network):
    api = SubstrateInterface(url=network.node.ws_url, use_remote_preset=False)
    yield api
    api.close()


def free_balance(substrate, who: str) -> int:
    return substrate.query("System", "Account", [Keypair.create_from_uri(who).ss58_address]).value["data"]["free"]


def pause(network, stop: bool) -> None:
    for ks in network.servers:
        os.kill(ks.process.pid, signal.SIGSTOP if stop else signal.SIGCONT)


def as_bytes(value) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return bytes(value)


def transfers(events) -> list:
    return [e for e in events if e.pallet == "Balances" and e.name == "Transfer"]


def result_of(key_id: ServerKeyId):
    def match(event: ChainEvent) -> bool:
        return (event.pallet == "SecretStore" and event.name in ("ServerKeyGenerated", "ServerKeyGenerationError")
                and isinstance(event.attributes, dict)
                and as_bytes(event.attributes.get("id", b"")) == bytes(key_id))
    return match


def fee_paid(events) -> int:
    found = [e for e in events if e.pallet == "TransactionPayment" and e.name == "TransactionFeePaid"]
    assert len(found) == 1, events
    return int(found[0].attributes["actual_fee"])


def extrinsic_length(substrate, block_hash: str, extrinsic_hash: str) -> int:
    block = substrate.rpc_request("chain_getBlock", [block_hash])["result"]["block"]
    for extrinsic in block["extrinsics"]:
        raw = bytes.fromhex(extrinsic[2:])
        if "0x" + blake2_256(raw).hex() == extrinsic_hash:
            return len(raw)
    raise AssertionError(f"{extrinsic_hash} is not in block {block_hash}")


def test_requests_beyond_the_limit_are_refused_at_once_and_the_queue_drains(network, substrate):
    limit = substrate.query("SecretStore", "MaxPendingRequests").value
    assert limit >= 64  # the spec's minimum default; the burst below is limit + EXTRA requests
    balance_before = free_balance(substrate, USER)

    async def burst() -> dict:
        async with AsyncSecretStoreClient(network.node.ws_url, USER, timeout=240) as client:
            assert await client.runtime_api.tasks("server_key_generation") == []
            keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(limit + EXTRA)]
            refused_at: dict[int, float] = {}
            done_at: dict[int, float] = {}

            async def one(i: int, key_id: ServerKeyId):
                try:
                    receipt, events = await client.request("generate_server_key", {"id": key_id.hex(), "threshold": 1},
                                                           match=result_of(key_id), finished=bool)
                except DispatchFailed as exc:
                    refused_at[i] = time.monotonic()
                    return exc
                done_at[i] = time.monotonic()
                return receipt, events

            pause(network, True)
            resumed = None
            try:
                submitted = time.monotonic()
                tasks = [asyncio.create_task(one(i, k)) for i, k in enumerate(keys)]
                # every request is in a block once the queue is full and the rest were refused
                async with asyncio.timeout(120):
                    while len(refused_at) < EXTRA or len(await client.runtime_api.tasks("server_key_generation")) < limit:
                        assert all(not t.done() or i in refused_at for i, t in enumerate(tasks)), "a request ended early"
                        await asyncio.sleep(0.05)
                full = time.monotonic()
            finally:
                pause(network, False)
                resumed = time.monotonic()
            async with asyncio.timeout(240):
                outcomes = await asyncio.gather(*tasks)
            pending_after = await client.runtime_api.tasks("server_key_generation")
            # the queue takes requests again, and they are served
            again = [ServerKeyId(secrets.token_bytes(32)) for _ in range(3)]
            publics_again = await asyncio.gather(*(client.request(
                "generate_server_key", {"id": k.hex(), "threshold": 1}, match=result_of(k), finished=bool)
                for k in again))
            return {"keys": keys, "outcomes": outcomes, "refused_at": refused_at, "done_at": done_at,
                    "submitted": submitted, "full": full, "resumed": resumed, "pending_after": pending_after,
                    "again": publics_again}

    run = asyncio.run(burst())
    outcomes = run["outcomes"]
    refused = {i: o for i, o in enumerate(outcomes) if isinstance(o, DispatchFailed)}
    accepted = {i: o for i, o in enumerate(outcomes) if not isinstance(o, DispatchFailed)}

    # exactly the limit was accepted; the rest were refused with the named error, in their own inclusion block, all
    # while the key servers were paused (so without waiting for any of them)
    assert len(accepted) == limit and len(refused) == EXTRA
    assert {exc.error for exc in refused.values()} == {"TooManyPendingRequests"}
    assert all(at < run["resumed"] for at in run["refused_at"].values())
    for exc in refused.values():
        assert exc.receipt.block_number is not None and exc.receipt.success is False
    # the queue filled in inclusion order: every accepted request went in before every refused one
    position = {i: (o.receipt.block_number, o.receipt.events[0].extrinsic_index) for i, o in refused.items()}
    position.update({i: (r.block_number, r.events[0].extrinsic_index) for i, (r, _) in accepted.items()})
    assert max(position[i] for i in accepted) < min(position[i] for i in refused)

    # every accepted request got its server key, each a different one, and nothing stayed pending
    publics = []
    for i, (receipt, events) in accepted.items():
        assert [e.name for e in events] == ["ServerKeyGenerated"], events
        publics.append(Public(as_bytes(events[0].attributes["public"])))
    assert len(set(publics)) == limit
    assert run["pending_after"] == []
    assert [[e.name for e in events] for _, events in run["again"]] == [["ServerKeyGenerated"]] * 3
    # the network drained the queue without stalling: generous bounds for a loaded two-core machine (a stalled
    # request would wait for a 15 s cluster timeout or be answered by nobody at all)
    finish = sorted(run["done_at"].values())
    assert finish[-1] - run["resumed"] < 150, finish[-1] - run["resumed"]
    gaps = [b - a for a, b in zip([run["resumed"]] + finish, finish)]
    assert max(gaps) < 30, max(gaps)

    # fees: a refused request paid the transaction fee only (base + per byte, as documented), no generation fee;
    # an accepted one paid both
    tx_fees = 0
    for exc in refused.values():
        receipt = exc.receipt
        length = extrinsic_length(substrate, receipt.block_hash, receipt.extrinsic_hash)
        assert fee_paid(receipt.events) == BASE_FEE + BYTE_FEE * length
        assert transfers(receipt.events) == [], receipt.events  # no generation fee moved
        tx_fees += fee_paid(receipt.events)
    for receipt, _ in list(accepted.values()) + run["again"]:
        length = extrinsic_length(substrate, receipt.block_hash, receipt.extrinsic_hash)
        assert fee_paid(receipt.events) == BASE_FEE + BYTE_FEE * length
        # the generation fee, split among the key servers' accounts
        assert sum(int(e.attributes["amount"]) for e in transfers(receipt.events)) == GENERATION_FEE
        tx_fees += fee_paid(receipt.events)
    # and nothing else left the account
    assert balance_before - free_balance(substrate, USER) == tx_fees + (limit + 3) * GENERATION_FEE
