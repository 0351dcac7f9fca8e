"""The outer call and event enums: every SecretStore call and event round-trips through SCALE, addressed by the
pallet's index and the variant's index, so clients can compose calls by name from metadata."""

from hypothesis import given, settings
from hypothesis import strategies as st

from secretstore.codec.primitives import AccountId32, H160, H256, H512
from secretstore.codec.scale import U8, U128, Bytes, Compact
from secretstore.runtime import RuntimeCall, RuntimeEvent
from secretstore.runtime.balances import MultiAddress
from secretstore.runtime.secretstore.pallet import CALLS, EVENTS
from secretstore.runtime.secretstore.types import KeyServersMask

STRATEGIES = {
    id(AccountId32): st.binary(min_size=32, max_size=32),
    id(H160): st.binary(min_size=20, max_size=20),
    id(H256): st.binary(min_size=32, max_size=32),
    id(H512): st.binary(min_size=64, max_size=64),
    id(U8): st.integers(0, 255),
    id(Bytes): st.binary(max_size=80),
    id(KeyServersMask): st.integers(0, 2**256 - 1),
}


def args_for(variant):
    fields = {f.name: STRATEGIES[id(f.type)] for f in variant.fields}
    return st.fixed_dictionaries(fields).map(lambda d: d or None)


calls = st.sampled_from(CALLS.variants).flatmap(lambda v: args_for(v).map(lambda a: (v, a)))
events = st.sampled_from(EVENTS.variants).flatmap(lambda v: args_for(v).map(lambda a: (v, a)))


@settings(max_examples=200)
@given(calls)
def test_secretstore_calls_round_trip(case):
    variant, args = case
    encoded = RuntimeCall.encode(("SecretStore", (variant.name, args)))
    assert encoded[:2] == bytes([3, variant.index])
    assert RuntimeCall.decode(encoded) == ("SecretStore", (variant.name, args))


@settings(max_examples=200)
@given(events)
def test_secretstore_events_round_trip(case):
    variant, fields = case
    encoded = RuntimeEvent.encode(("SecretStore", (variant.name, fields)))
    assert encoded[:2] == bytes([3, variant.index])
    assert RuntimeEvent.decode(encoded) == ("SecretStore", (variant.name, fields))


@given(st.binary(min_size=32, max_size=32), st.integers(0, 2**128 - 1))
def test_transfer_call_is_substrates_layout(dest, value):
    encoded = RuntimeCall.encode(("Balances", ("transfer_keep_alive", {"dest": ("Id", dest), "value": value})))
    # pallet 1, call 1, MultiAddress::Id, then the compact amount
    assert encoded == bytes([1, 1, 0]) + dest + Compact(U128).encode(value)
    assert MultiAddress.decode(encoded[2:2 + 33]) == ("Id", dest)


def test_every_secretstore_call_has_a_handler():
    from secretstore.runtime.secretstore.pallet import SecretStore

    assert all(callable(getattr(SecretStore, f"call_{v.name}", None)) for v in CALLS.variants)
    assert [v.index for v in CALLS.variants] == list(range(len(CALLS.variants)))


def test_every_storage_item_of_the_pallets_parts_is_published_once():
    from secretstore.runtime.frame import StorageEntry
    from secretstore.runtime.secretstore.pallet import SecretStore

    declared = {name: value for part in SecretStore.__mro__ for name, value in vars(part).items()
                if isinstance(value, StorageEntry)}
    assert sorted(e.name for e in SecretStore.STORAGE) == sorted(declared)
    assert all(declared[e.name] is e for e in SecretStore.STORAGE)
