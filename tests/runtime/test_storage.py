"""Storage: sorted prefix iteration, the transactional overlay, and typed storage entries with Substrate keys."""

from hypothesis import given, settings
from hypothesis import strategies as st

from secretstore.codec.hashing import twox128
from secretstore.codec.primitives import AccountId32, H160, H256
from secretstore.codec.scale import U32, Tuple
from secretstore.runtime import MemoryStorage, Overlay
from secretstore.runtime.frame import StorageEntry

keys = st.binary(min_size=0, max_size=4)
values = st.binary(min_size=0, max_size=3)
ops = st.lists(st.one_of(st.tuples(st.just("set"), keys, values), st.tuples(st.just("del"), keys, st.none())),
               max_size=40)


def apply(model: dict, store, operations) -> None:
    for op, key, value in operations:
        if op == "set":
            store.set(key, value)
            model[key] = value
        else:
            store.delete(key)
            model.pop(key, None)


def expected_prefix(model: dict, prefix: bytes, start_after: bytes | None) -> list:
    return sorted((k, v) for k, v in model.items()
                  if k.startswith(prefix) and (start_after is None or k > start_after))


@settings(max_examples=150)
@given(ops, keys, st.one_of(st.none(), keys))
def test_memory_storage_behaves_like_a_sorted_dict(operations, prefix, start_after):
    model: dict = {}
    store = MemoryStorage()
    apply(model, store, operations)
    assert list(store.iter_prefix(prefix, start_after)) == expected_prefix(model, prefix, start_after)
    assert all(store.get(k) == v for k, v in model.items())


@settings(max_examples=150)
@given(ops, ops, keys, st.one_of(st.none(), keys), st.booleans())
def test_overlay_reads_through_and_commits_or_discards(below, above, prefix, start_after, commit):
    base_model: dict = {}
    base = MemoryStorage()
    apply(base_model, base, below)
    snapshot = base.items()
    merged = dict(base_model)
    overlay = Overlay(base)
    apply(merged, overlay, above)
    # reads see the overlay's changes on top of the backend, in key order, deletions hidden
    assert list(overlay.iter_prefix(prefix, start_after)) == expected_prefix(merged, prefix, start_after)
    for key in set(merged) | set(base_model):
        assert overlay.get(key) == merged.get(key)
    assert base.items() == snapshot  # nothing reaches the backend before commit
    if commit:
        overlay.commit()
        assert base.items() == merged
    else:
        del overlay
        assert base.items() == snapshot


def test_nested_overlays_discard_only_the_inner_changes():
    base = MemoryStorage({b"a": b"1"})
    outer = Overlay(base)
    outer.set(b"b", b"2")
    inner = Overlay(outer)
    inner.set(b"c", b"3")
    inner.delete(b"a")
    assert list(inner.iter_prefix(b"")) == [(b"b", b"2"), (b"c", b"3")]
    outer.commit()  # the inner overlay was dropped: only b is written
    assert base.items() == {b"a": b"1", b"b": b"2"}


MAP = StorageEntry("SecretStore", "ClaimedId", H160, ("Blake2_128Concat",), AccountId32)
DOUBLE = StorageEntry("SecretStore", "Pairs", U32, ("Blake2_128Concat", "Twox64Concat"), Tuple(H256, H160))


@given(st.binary(min_size=32, max_size=32))
def test_map_keys_round_trip(account):
    key = MAP.storage_key(account)
    assert key.startswith(twox128(b"SecretStore") + twox128(b"ClaimedId"))
    assert len(key) == 32 + 16 + 32
    assert MAP.decode_key(key) == account


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=20, max_size=20), st.integers(0, 2**32 - 1))
def test_double_map_entries_round_trip(first, second, value):
    store = MemoryStorage()
    DOUBLE.put(store, value, (first, second))
    assert DOUBLE.get(store, (first, second)) == value
    assert list(DOUBLE.items(store)) == [((first, second), value)]
    DOUBLE.remove(store, (first, second))
    assert DOUBLE.get(store, (first, second)) is None and not DOUBLE.contains(store, (first, second))


def test_system_account_key_is_substrates(chain):
    # the key every Substrate client computes for System.Account(//Alice)
    from .conftest import ALICE
    key = chain.runtime.system.Account.storage_key(ALICE)
    assert key.hex() == ("26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9"
                         "de1e86a9a8c739864cf3cc5ec2bea59f" + ALICE.hex())
    assert chain.storage.get(key) is not None


@given(st.binary(max_size=3), st.lists(st.binary(max_size=4), max_size=30))
def test_prefix_iteration_at_the_edges_of_the_key_space(prefix, extra):
    # prefixes of 0xff bytes have no upper bound; keys just past the prefix must not leak in
    keys = set(extra) | {prefix + b"\xff", prefix + b"\xff\xff", prefix, b"\xff" * 4}
    store = MemoryStorage({k: b"v" for k in keys})
    assert [k for k, _ in store.iter_prefix(prefix)] == sorted(k for k in keys if k.startswith(prefix))
    assert [k for k, _ in store.iter_prefix(b"\xff")] == sorted(k for k in keys if k.startswith(b"\xff"))
