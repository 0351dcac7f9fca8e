import pytest

from secretstore.runtime import InvalidTransaction

from .conftest import ALICE, BOB, Failed, make_chain


def test_transfer_moves_balance_and_emits_events(chain):
    balances = chain.runtime.balances
    a, b = balances.free(chain.storage, ALICE), balances.free(chain.storage, BOB)
    events = chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", BOB), value=1234)
    assert ("Balances", "Transfer", {"from": ALICE, "to": BOB, "amount": 1234}) in events
    assert balances.free(chain.storage, ALICE) == a - 1234
    assert balances.free(chain.storage, BOB) == b + 1234


def test_transfer_beyond_balance_fails_and_changes_nothing_but_nonce(chain):
    balances = chain.runtime.balances
    before = balances.free(chain.storage, ALICE)
    with pytest.raises(Failed) as info:
        chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", BOB), value=before + 1)
    assert info.value.name == "InsufficientBalance"
    assert balances.free(chain.storage, ALICE) == before
    assert chain.runtime.system.nonce(chain.storage, ALICE) == 1


def test_fees_are_charged_and_reported():
    chain = make_chain(base_fee=1000, byte_fee=2)
    balances = chain.runtime.balances
    before = balances.free(chain.storage, ALICE)
    call = chain.runtime.RuntimeCall.encode(("System", ("remark", {"remark": b"hi"})))
    outcome = chain.runtime.apply_extrinsic(0, ALICE, 0, 5, call, 150)
    assert outcome.success and outcome.fee == 1000 + 300 + 5
    assert balances.free(chain.storage, ALICE) == before - outcome.fee
    events = [e["event"] for e in chain.runtime.system.events(chain.storage)]
    assert ("TransactionPayment", ("TransactionFeePaid", {"who": ALICE, "actual_fee": 1305, "tip": 5})) in events
    assert chain.runtime.query_info(call, 150)["partial_fee"] == 1300


def test_nonces_stale_and_future():
    chain = make_chain()
    rt = chain.runtime
    call = rt.RuntimeCall.encode(("System", ("remark", {"remark": b""})))
    assert rt.validate_transaction(ALICE, 0, 0, call, 10).ready
    future = rt.validate_transaction(ALICE, 3, 0, call, 10)
    assert not future.ready and future.requires == (ALICE, 2)
    rt.apply_extrinsic(0, ALICE, 0, 0, call, 10)
    with pytest.raises(InvalidTransaction) as info:
        rt.validate_transaction(ALICE, 0, 0, call, 10)
    assert info.value.kind == "Stale"
    with pytest.raises(InvalidTransaction) as info:
        rt.apply_extrinsic(1, ALICE, 5, 0, call, 10)
    assert info.value.kind == "Future"


def test_a_nonce_too_far_ahead_is_refused_not_held():
    from secretstore.runtime.runtime import MAX_NONCE_AHEAD

    chain = make_chain()
    rt = chain.runtime
    call = rt.RuntimeCall.encode(("System", ("remark", {"remark": b""})))
    rt.apply_extrinsic(0, ALICE, 0, 0, call, 10)  # the next nonce is 1
    held = rt.validate_transaction(ALICE, MAX_NONCE_AHEAD, 0, call, 10)
    assert not held.ready and held.requires == (ALICE, MAX_NONCE_AHEAD - 1)
    with pytest.raises(InvalidTransaction, match="too far ahead of the account's next nonce 1") as info:
        rt.validate_transaction(ALICE, MAX_NONCE_AHEAD + 1, 0, call, 10)
    assert info.value.kind == "Future"


def test_unfunded_account_cannot_pay():
    chain = make_chain(base_fee=10)
    call = chain.runtime.RuntimeCall.encode(("System", ("remark", {"remark": b""})))
    with pytest.raises(InvalidTransaction) as info:
        chain.runtime.validate_transaction(b"\x99" * 32, 0, 0, call, 10)
    assert info.value.kind == "Payment"


def test_undecodable_call_is_invalid(chain):
    for bad in (b"", b"\x07\x00", b"\x03\xff", b"\x03\x07" + b"\x00" * 3):
        with pytest.raises(InvalidTransaction) as info:
            chain.runtime.validate_transaction(ALICE, 0, 0, bad, 10)
        assert info.value.kind == "Call"


def test_events_carry_phase_and_are_cleared_each_block(chain):
    chain.call(ALICE, "System", "remark", remark=b"x")
    chain.call(BOB, "System", "remark", remark=b"y")
    phases = [e["phase"] for e in chain.runtime.system.events(chain.storage)]
    assert ("ApplyExtrinsic", 0) in phases and ("ApplyExtrinsic", 1) in phases
    chain.next_block()
    assert chain.runtime.system.events(chain.storage) == []


def test_keep_alive_refuses_to_empty_the_sender(chain):
    newcomer = b"\x61" * 32
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", newcomer), value=1000)
    with pytest.raises(Failed) as info:
        chain.call(newcomer, "Balances", "transfer_keep_alive", dest=("Id", BOB), value=1000)
    assert info.value.name == "Expendability"
    chain.call(newcomer, "Balances", "transfer_keep_alive", dest=("Id", BOB), value=999)
    assert chain.runtime.balances.free(chain.storage, newcomer) == 1


def test_emptied_account_is_reaped_but_keeps_its_nonce(chain):
    newcomer = b"\x62" * 32
    events = chain.runtime.system.events
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", newcomer), value=500)
    assert ("System", ("NewAccount", {"account": newcomer})) in [e["event"] for e in events(chain.storage)]
    assert ("Balances", ("Endowed", {"account": newcomer, "free_balance": 500})) in [
        e["event"] for e in events(chain.storage)]
    chain.call(newcomer, "Balances", "transfer_allow_death", dest=("Id", BOB), value=500)
    assert ("System", ("KilledAccount", {"account": newcomer})) in [e["event"] for e in events(chain.storage)]
    info = chain.runtime.system.account(chain.storage, newcomer)
    assert info["data"]["free"] == 0 and info["providers"] == 0 and info["nonce"] == 1


def test_only_account_id_destinations_are_supported(chain):
    with pytest.raises(Failed) as info:
        chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Raw", b"\x01\x02"), value=1)
    assert info.value.name == "UnsupportedAddress"
    with pytest.raises(Failed) as info:
        chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Address20", b"\x01" * 20), value=1)
    assert info.value.name == "UnsupportedAddress"


def test_existential_deposit_is_enforced(chain, monkeypatch):
    from secretstore.runtime import balances as balances_module

    monkeypatch.setattr(balances_module, "EXISTENTIAL_DEPOSIT", 100)
    with pytest.raises(Failed) as info:
        chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", b"\x63" * 32), value=99)
    assert info.value.name == "ExistentialDeposit"
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", b"\x63" * 32), value=100)


def test_failed_call_still_pays_and_bumps_nonce_but_writes_nothing_else():
    chain = make_chain(base_fee=50)
    rt = chain.runtime
    before = rt.balances.free(chain.storage, BOB)
    call = rt.RuntimeCall.encode(("SecretStore", ("change_owner", {"new_owner": BOB})))
    outcome = rt.apply_extrinsic(0, BOB, 0, 0, call, 10)
    assert not outcome.success and outcome.error.name == "NotOwner"
    assert outcome.error.value == ("Module", {"index": 3, "error": bytes([0, 0, 0, 0])})
    assert rt.secretstore.Owner.get(chain.storage) == ALICE
    assert rt.balances.free(chain.storage, BOB) == before - 50
    assert rt.system.nonce(chain.storage, BOB) == 1
    kinds = [e["event"][1][0] for e in rt.system.events(chain.storage)]
    assert kinds[-1] == "ExtrinsicFailed" and "OwnerChanged" not in kinds


def test_direct_dispatch_is_transactional(chain):
    from secretstore.runtime import BadOrigin, ModuleError

    rt = chain.runtime
    before = chain.storage.items()
    with pytest.raises(BadOrigin):
        rt.dispatch(None, rt.RuntimeCall.encode(("System", ("remark", {"remark": b""}))))
    with pytest.raises(ModuleError):
        rt.dispatch(BOB, rt.RuntimeCall.encode(("SecretStore", ("change_owner", {"new_owner": BOB}))))
    assert chain.storage.items() == before
    rt.dispatch(ALICE, rt.RuntimeCall.encode(("SecretStore", ("change_owner", {"new_owner": BOB}))))
    assert rt.secretstore.Owner.get(chain.storage) == BOB


def test_oversized_transactions_exhaust_resources(chain):
    from secretstore.runtime.runtime import MAX_TRANSACTION_LENGTH

    call = chain.runtime.RuntimeCall.encode(("System", ("remark", {"remark": b""})))
    with pytest.raises(InvalidTransaction) as info:
        chain.runtime.validate_transaction(ALICE, 0, 0, call, MAX_TRANSACTION_LENGTH + 1)
    assert info.value.kind == "ExhaustsResources"


def test_block_hashes_are_kept_for_block_hash_count_blocks(chain):
    from secretstore.runtime.system import BLOCK_HASH_COUNT

    system, storage = chain.runtime.system, chain.storage
    last = BLOCK_HASH_COUNT + 3
    for number in range(2, last + 1):
        system.initialize(storage, number, number.to_bytes(32, "big"))  # records BlockHash[number - 1]
    stored = {number for number, _ in system.BlockHash.items(storage)}
    # the newest BlockHashCount hashes, and the genesis hash
    assert stored == {0} | set(range(last - BLOCK_HASH_COUNT, last))
    assert system.BlockHash.get(storage, last - 1) == last.to_bytes(32, "big")
    assert system.BlockHash.get(storage, 1) == bytes(32)  # pruned: reads as the default
