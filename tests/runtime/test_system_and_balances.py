import pytest
from substrateinterface import Keypair

from secretstore.runtime import DEV_ACCOUNTS, InvalidTransaction

from .conftest import ALICE, BOB, Failed, make_chain


@pytest.mark.parametrize("name", list(DEV_ACCOUNTS))
def test_dev_accounts_are_the_well_known_keys(name):
    assert Keypair.create_from_uri("//" + name).public_key == DEV_ACCOUNTS[name]


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
