"""The SCALE codec against known encodings and against scalecodec, the codec Substrate clients use."""

import pytest
from hypothesis import given, strategies as st
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from secretstore.codec import hashing
from secretstore.codec.metadata import encode_prefixed
from secretstore.codec.primitives import AccountInfo, DispatchError, H256
from secretstore.codec.scale import (
    U8, U32, U128, Bytes, CodecError, Compact, Option, Reader, Sequence, Str, Tuple, TypeRegistry, decode_compact,
    encode_compact,
)


@pytest.mark.parametrize("value, encoded", [
    (0, "00"), (1, "04"), (63, "fc"), (64, "0101"), (16383, "fdff"), (16384, "02000100"),
    (1073741823, "feffffff"), (1073741824, "0300000040"), (2**64 - 1, "13ffffffffffffffff"),
])
def test_compact_known_encodings(value, encoded):
    assert encode_compact(value).hex() == encoded
    assert decode_compact(Reader(bytes.fromhex(encoded))) == value


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_compact_round_trip(value):
    assert Compact(U128).decode(Compact(U128).encode(value)) == value


@pytest.mark.parametrize("encoded", ["0100", "020000", "03ffffff3f", "0400000000"])
def test_non_canonical_or_truncated_compact_is_rejected(encoded):
    with pytest.raises(CodecError):
        Compact(U128).decode(bytes.fromhex(encoded))


def test_trailing_and_missing_bytes_are_errors():
    with pytest.raises(CodecError, match="trailing"):
        U32.decode(b"\x01\x00\x00\x00\x00")
    with pytest.raises(CodecError, match="end of input"):
        U32.decode(b"\x01\x00")
    with pytest.raises(CodecError, match="exceeds"):
        Sequence(U32).decode(encode_compact(10**6) + b"\x00")


def test_values_out_of_range_are_refused():
    with pytest.raises(CodecError):
        U8.encode(256)
    with pytest.raises(CodecError):
        H256.encode(b"\x00" * 31)
    with pytest.raises(CodecError):
        Option(U8).decode(b"\x02")


@given(st.lists(st.tuples(st.binary(max_size=40), st.text(max_size=10), st.none() | st.integers(0, 2**32 - 1))))
def test_nested_round_trip(items):
    t = Sequence(Tuple(Bytes, Str, Option(U32)))
    assert t.decode(t.encode(items)) == [tuple(i) for i in items]


def test_storage_hashers_match_substrate():
    # Well-known: twox128("System") ++ twox128("Account")
    assert hashing.storage_prefix("System", "Account").hex() == (
        "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9")
    assert hashing.twox128(b"Sudo").hex() == "5c0d1176a568c1f92944340dbfed9e9c"


def test_metadata_structures_decode_with_scalecodec():
    registry = TypeRegistry()
    error_id = registry.register(DispatchError)
    registry.register(AccountInfo)
    encoded = encode_prefixed(14, {"types": registry.portable(), "pallets": [],
                                   "extrinsic": {"ty": error_id, "version": 4, "signed_extensions": []}, "ty": error_id})
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    decoded = config.create_scale_object("MetadataVersioned", data=ScaleBytes(encoded))
    decoded.decode()
    types = decoded.value[1]["V14"]["types"]["types"]
    assert [t["type"]["path"] for t in types][:1] == [["sp_runtime", "DispatchError"]]
    assert any(t["type"]["path"] == ["frame_system", "AccountInfo"] for t in types)


@given(st.binary(min_size=80, max_size=80))
def test_fixed_size_structs_decode_as_the_field_by_field_path(raw):
    """AccountInfo decodes through one compiled expression; it must agree with decoding each field in turn."""
    from secretstore.codec.primitives import AccountId32, H160
    from secretstore.codec.scale import I32, Array, Composite, Field, newtype
    from secretstore.codec.scale.composite import _decode_fields

    mixed = Composite(("t", "Mixed"), [Field("a", U8), Field("b", I32), Field("c", newtype(("t", "N"), Array(U8, 3))),
                                       Field("d", Composite(("t", "Pair"), [Field(None, U32), Field(None, U128)]))])
    for struct in (AccountInfo, AccountId32, H160, mixed):
        assert struct.fixed_layout(0) is not None
        size = struct.fixed_layout(0)[0]
        assert struct.decode(raw[:size]) == _decode_fields(struct.fields, Reader(raw[:size]))
        assert struct.encode(struct.decode(raw[:size])) == raw[:size]
        with pytest.raises(CodecError):
            struct.decode(raw[:size - 1])
    assert Composite(("t", "WithBytes"), [Field("x", Bytes)]).fixed_layout(0) is None
