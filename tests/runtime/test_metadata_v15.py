"""Metadata V15 as typed clients read it: the runtime APIs it describes are exactly what `state_call` answers, with
the types it answers in; the extrinsic, outer enum and custom fields point where Substrate's do.

The live checks encode arguments and decode results from the metadata's own portable type registry (a small codec
written here that knows only scale-info's type definitions), as polkadot-api and dedot do, never through the
runtime's ScaleType objects.
"""

from __future__ import annotations

import pytest
from substrateinterface import Keypair, SubstrateInterface

from secretstore.codec.metadata import RuntimeMetadataV15
from secretstore.codec.scale import Bytes, Option, Reader, decode_compact, encode_compact
from secretstore.process import rpc_call
from secretstore.runtime import MemoryStorage, Runtime
from secretstore.runtime.runtime import RUNTIME_APIS
from secretstore.runtime.version import api_id

_INTS = {"U8": 1, "U16": 2, "U32": 4, "U64": 8, "U128": 16, "U256": 32}


class PortableCodec:
    """SCALE by scale-info type id. Values: ints, bools, str; bytes for u8 sequences and arrays; dicts for named
    fields; the bare value for a single unnamed field; tuples for several; (name, value) for enum variants."""

    def __init__(self, types: list[dict]) -> None:
        self.types = {entry["id"]: entry["type"] for entry in types}

    def _is_u8(self, type_id: int) -> bool:
        return self.types[type_id]["def"] == ("Primitive", ("U8", None))

    def encode(self, type_id: int, value) -> bytes:
        kind, body = self.types[type_id]["def"]
        if kind == "Primitive":
            name = body[0]
            if name == "Bool":
                return b"\x01" if value else b"\x00"
            if name == "Str":
                return encode_compact(len(value.encode())) + value.encode()
            return value.to_bytes(_INTS[name], "little")
        if kind == "Compact":
            return encode_compact(value)
        if kind == "Array":
            if self._is_u8(body["type_param"]):
                assert len(value) == body["len"]
                return bytes(value)
            return b"".join(self.encode(body["type_param"], v) for v in value)
        if kind == "Sequence":
            if self._is_u8(body["type_param"]):
                return encode_compact(len(value)) + bytes(value)
            return encode_compact(len(value)) + b"".join(self.encode(body["type_param"], v) for v in value)
        if kind == "Tuple":
            return b"".join(self.encode(t, v) for t, v in zip(body, value, strict=True))
        if kind == "Composite":
            return self._encode_fields(body["fields"], value)
        if kind == "Variant":
            name, payload = value
            variant = next(v for v in body["variants"] if v["name"] == name)
            return bytes([variant["index"]]) + self._encode_fields(variant["fields"], payload)
        raise AssertionError(f"unexpected type definition {kind}")

    def _encode_fields(self, fields: list[dict], value) -> bytes:
        if not fields:
            return b""
        if fields[0]["name"] is not None:
            return b"".join(self.encode(f["ty"], value[f["name"]]) for f in fields)
        if len(fields) == 1:
            return self.encode(fields[0]["ty"], value)
        return b"".join(self.encode(f["ty"], v) for f, v in zip(fields, value, strict=True))

    def decode(self, type_id: int, data: bytes):
        r = Reader(data)
        value = self._decode(type_id, r)
        assert r.remaining == 0, f"{r.remaining} bytes left after type {type_id}"
        return value

    def _decode(self, type_id: int, r: Reader):
        kind, body = self.types[type_id]["def"]
        if kind == "Primitive":
            name = body[0]
            if name == "Bool":
                flag = r.byte()
                assert flag in (0, 1)
                return flag == 1
            if name == "Str":
                return r.read(decode_compact(r)).decode()
            return int.from_bytes(r.read(_INTS[name]), "little")
        if kind == "Compact":
            return decode_compact(r)
        if kind in ("Array", "Sequence"):
            count = body["len"] if kind == "Array" else decode_compact(r)
            if self._is_u8(body["type_param"]):
                return r.read(count)
            return [self._decode(body["type_param"], r) for _ in range(count)]
        if kind == "Tuple":
            return tuple(self._decode(t, r) for t in body)
        if kind == "Composite":
            return self._decode_fields(body["fields"], r)
        if kind == "Variant":
            index = r.byte()
            variant = next((v for v in body["variants"] if v["index"] == index), None)
            assert variant is not None, f"type {type_id} has no variant {index}"
            return variant["name"], self._decode_fields(variant["fields"], r)
        raise AssertionError(f"unexpected type definition {kind}")

    def _decode_fields(self, fields: list[dict], r: Reader):
        if not fields:
            return None
        if fields[0]["name"] is not None:
            return {f["name"]: self._decode(f["ty"], r) for f in fields}
        if len(fields) == 1:
            return self._decode(fields[0]["ty"], r)
        return tuple(self._decode(f["ty"], r) for f in fields)

    def path(self, type_id: int) -> list[str]:
        return self.types[type_id]["path"]


def decode_v15(prefixed: bytes) -> dict:
    assert prefixed[:5] == b"meta\x0f"
    return RuntimeMetadataV15.decode(prefixed[5:])


@pytest.fixture(scope="module")
def in_process():
    runtime = Runtime(MemoryStorage())
    metadata = decode_v15(runtime.metadata(15))
    return runtime, metadata, PortableCodec(metadata["types"])


def test_v14_is_untouched_by_the_runtime_apis(in_process):
    runtime, _, _ = in_process
    v14 = runtime.metadata(14)
    assert v14[:5] == b"meta\x0e" and b"SecretStoreServiceApi" not in v14


def test_described_traits_are_published_by_core_version(in_process):
    runtime, metadata, _ = in_process
    published = {bytes(i): v for i, v in runtime.version()["apis"]}
    described = [api["name"] for api in metadata["apis"]]
    assert described == ["Core", "Metadata", "TaggedTransactionQueue", "AccountNonceApi", "TransactionPaymentApi",
                         "SecretStoreAclApi", "SecretStoreKeyServerSetApi", "SecretStoreServiceApi"]
    for name in described:
        assert api_id(name) in published, name
    # BlockBuilder is published (its id is what every runtime lists) but none of its methods is served
    assert {name for name, _ in RUNTIME_APIS} - set(described) == {"BlockBuilder"}


def test_secretstore_traits_as_declared(in_process):
    _, metadata, codec = in_process
    service = next(api for api in metadata["apis"] if api["name"] == "SecretStoreServiceApi")
    methods = {m["name"]: m for m in service["methods"]}
    tasks = methods["server_key_generation_tasks"]
    assert [(p["name"], codec.types[p["ty"]]["def"]) for p in tasks["inputs"]] == [
        ("begin", ("Primitive", ("U32", None))), ("end", ("Primitive", ("U32", None)))]
    output = codec.types[tasks["output"]]["def"]
    assert output[0] == "Sequence"
    assert codec.path(output[1]["type_param"]) == ["secretstore_runtime_primitives", "service", "ServiceTask"]
    shadow = methods["is_document_key_shadow_retrieval_response_required"]
    assert [p["name"] for p in shadow["inputs"]] == ["key_server", "key", "requester"]
    assert [codec.path(p["ty"]) for p in shadow["inputs"]] == [["primitive_types", "H160"],
                                                               ["primitive_types", "H256"], ["primitive_types", "H160"]]
    assert len(methods) == 8 and all(m["docs"] for m in methods.values())


def test_extrinsic_and_outer_enums(in_process):
    _, metadata, codec = in_process
    ext, outer = metadata["extrinsic"], metadata["outer_enums"]
    assert ext["version"] == 4
    assert codec.path(ext["address_ty"]) == ["sp_runtime", "multiaddress", "MultiAddress"]
    assert codec.path(ext["signature_ty"]) == ["sp_runtime", "MultiSignature"]
    assert ext["call_ty"] == outer["call_enum_ty"]
    # the extra type is the tuple of the signed extensions' extra types, in their order
    extra = codec.types[ext["extra_ty"]]["def"]
    assert extra == ("Tuple", [e["ty"] for e in ext["signed_extensions"]])
    assert [e["identifier"] for e in ext["signed_extensions"]][-1] == "CheckMetadataHash"
    pallets = {p["name"]: p for p in metadata["pallets"]}
    for field, part in (("call_enum_ty", "calls"), ("event_enum_ty", "event"), ("error_enum_ty", "error")):
        enum = codec.types[outer[field]]
        assert enum["path"][0] == "secretstore_runtime" and enum["path"][1].startswith("Runtime")
        # one variant per pallet that has one, at the pallet's index, wrapping the pallet's own enum
        variants = {v["name"]: v for v in enum["def"][1]["variants"]}
        having = {name: p for name, p in pallets.items() if p[part] is not None}
        assert set(variants) == set(having)
        for name, pallet in having.items():
            assert variants[name]["index"] == pallet["index"]
            assert [f["ty"] for f in variants[name]["fields"]] == [pallet[part]["ty"]]
    assert metadata["custom"] == []


# --------------------------------------------------------------------------------------------------- live node
@pytest.fixture(scope="module")
def live(node):
    answer = rpc_call(node.http_url, "state_call", ["Metadata_metadata_at_version", "0x0f000000"])["result"]
    metadata = decode_v15(Option(Bytes).decode(bytes.fromhex(answer[2:])))
    apis = {(api["name"], m["name"]): m for api in metadata["apis"] for m in api["methods"]}
    return metadata, PortableCodec(metadata["types"]), apis


@pytest.fixture(scope="module")
def extrinsics(node):
    """The bodies of a valid signed remark by //Alice and of the same with a broken signature: UncheckedExtrinsic is
    described as a wrapped Vec<u8>, whose compact length is the extrinsic's own length prefix."""
    substrate = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
    try:
        call = substrate.compose_call("System", "remark", {"remark": "0x01"})
        good = bytes(substrate.create_signed_extrinsic(call, Keypair.create_from_uri("//Alice")).data.data)
    finally:
        substrate.close()
    r = Reader(good)
    assert decode_compact(r) == r.remaining
    body = good[r.pos:]
    bad = bytearray(body)
    bad[40] ^= 0xFF  # inside the signature (after the version byte, the 33-byte address and the type byte)
    return body, bytes(bad)


def call_api(node, live, trait: str, method: str, *args):
    _, codec, apis = live
    described = apis[(trait, method)]
    data = b"".join(codec.encode(p["ty"], a) for p, a in zip(described["inputs"], args, strict=True))
    answer = rpc_call(node.http_url, "state_call", [f"{trait}_{method}", "0x" + data.hex()])
    assert "result" in answer, answer
    return codec.decode(described["output"], bytes.fromhex(answer["result"][2:]))


def test_every_described_method_answers_in_its_described_types(node, live, extrinsics):
    _, codec, apis = live
    good, bad = extrinsics
    alice = Keypair.create_from_uri("//Alice").public_key
    genesis = bytes.fromhex(rpc_call(node.http_url, "chain_getBlockHash", [0])["result"][2:])
    ks_id = bytes.fromhex("1a642f0e3c3af545e7acbd38b07251b3990914f1")
    answered = set()

    def check(trait, method, *args):
        answered.add((trait, method))
        return call_api(node, live, trait, method, *args)

    version = check("Core", "version")
    assert version["spec_name"] == "secretstore" and version["apis"]
    assert check("Metadata", "metadata")[:5] == b"meta\x0e"
    found = check("Metadata", "metadata_at_version", 15)
    assert found[0] == "Some" and found[1][:5] == b"meta\x0f"
    assert check("Metadata", "metadata_at_version", 16) == ("None", None)
    assert check("Metadata", "metadata_versions") == [14, 15]
    nonce = rpc_call(node.http_url, "system_accountNextIndex", ["0x" + alice.hex()])["result"]
    assert check("AccountNonceApi", "account_nonce", alice) == nonce
    valid = check("TaggedTransactionQueue", "validate_transaction", ("External", None), good, genesis)
    assert valid[0] == "Ok" and valid[1]["provides"] == [alice + nonce.to_bytes(4, "little")]
    invalid = check("TaggedTransactionQueue", "validate_transaction", ("External", None), bad, genesis)
    assert invalid == ("Err", ("Invalid", ("Custom", 0)))  # the reason itself travels in author_submitExtrinsic's error
    length = len(encode_compact(len(good))) + len(good)  # the whole extrinsic's, as the fee counts it
    info = check("TransactionPaymentApi", "query_info", good, length)
    assert info["class"] == ("Normal", None) and info["partial_fee"] == 0  # the dev chain has no fees
    details = check("TransactionPaymentApi", "query_fee_details", good, length)
    assert details["tip"] == 0 and details["inclusion_fee"][0] == "Some"
    assert check("SecretStoreAclApi", "check", ks_id, b"\x42" * 32) is False
    snapshot = check("SecretStoreKeyServerSetApi", "snapshot", ks_id)
    assert [entry[0] for entry in snapshot["current_set"]][:1] == [ks_id] and snapshot["migration"] == ("None", None)
    assert check("SecretStoreKeyServerSetApi", "current_set_with_indices")[0] == (ks_id, 0)
    for service in ("server_key_generation", "server_key_retrieval", "document_key_store",
                    "document_key_shadow_retrieval"):
        assert check("SecretStoreServiceApi", f"{service}_tasks", 0, 10) == []
        key = (ks_id, b"\x42" * 32) + ((ks_id,) if service == "document_key_shadow_retrieval" else ())
        assert check("SecretStoreServiceApi", f"is_{service}_response_required", *key) is False
    assert answered == set(apis), "every described method is checked here"


@pytest.mark.parametrize("name", ["Core_execute_block", "Core_initialize_block", "BlockBuilder_apply_extrinsic",
                                  "BlockBuilder_finalize_block", "TransactionPaymentApi_query_weight_to_fee"])
def test_undescribed_methods_are_not_served(node, live, name):
    _, _, apis = live
    assert tuple(name.split("_", 1)) not in apis
    assert "error" in rpc_call(node.http_url, "state_call", [name, "0x"])
