"""Runtime APIs served through state_call: SCALE in, SCALE out; unknown names and bad arguments are refused."""

import pytest

from secretstore.codec.primitives import AccountId32, H160
from secretstore.codec.scale import U32, CodecError, Sequence, Tuple
from secretstore.runtime.runtime import RuntimeVersion, api_id
from secretstore.runtime.secretstore.types import IndexedKeyServer

from .conftest import ALICE, KS_IDS


def test_core_version_round_trips(chain):
    version = RuntimeVersion.decode(chain.runtime.api_call("Core_version", b""))
    assert version["spec_name"] == "secretstore"
    assert version["spec_version"] == chain.runtime.spec_version
    assert (api_id("SecretStoreRuntimeApi"), 1) in [tuple(a) for a in version["apis"]]
    # the ids clients look for, as published by every Substrate runtime
    ids = {bytes(a[0]).hex() for a in version["apis"]}
    assert {"df6acb689907609b", "37e397fc7c91f5e4", "bc9d89904f5b923f", "37c8bb1350a9a2a8"} <= ids


def test_account_nonce(chain):
    assert U32.decode(chain.runtime.api_call("AccountNonceApi_account_nonce", AccountId32.encode(ALICE))) == 0
    chain.call(ALICE, "System", "remark", remark=b"")
    assert U32.decode(chain.runtime.api_call("AccountNonceApi_account_nonce", AccountId32.encode(ALICE))) == 1


def test_key_server_set_with_indices(chain):
    servers = chain.api("key_server_set_with_indices", Tuple(), (), Sequence(IndexedKeyServer))
    assert [(s["id"], s["index"]) for s in servers] == [(ks, i) for i, ks in enumerate(KS_IDS)]


@pytest.mark.parametrize("name", ["SecretStoreRuntimeApi_nope", "Nope_nothing", "Core"])
def test_unknown_api_method(chain, name):
    with pytest.raises(KeyError):
        chain.runtime.api_call(name, b"")


@pytest.mark.parametrize("method, args", [
    ("key_server_set_snapshot", b"\x01" * 19),
    ("key_server_set_snapshot", b"\x01" * 21),
    ("check_key_access", b"\x01" * 40),
    ("server_key_generation_tasks", b"\x00" * 7),
])
def test_bad_arguments_are_codec_errors(chain, method, args):
    with pytest.raises(CodecError):
        chain.runtime.api_call(f"SecretStoreRuntimeApi_{method}", args)


def test_snapshot_of_an_unknown_server_still_shows_the_sets(chain):
    snapshot = chain.runtime.api_call("SecretStoreRuntimeApi_key_server_set_snapshot", H160.encode(b"\x09" * 20))
    assert len(snapshot) > 3 * 20


def test_system_constants(chain):
    from secretstore.codec.scale import U16

    system = next(p for p in chain.runtime.pallets if p.name == "System")
    constants = {c.name: c.type.decode(c.value) for c in system.constants}
    assert constants["SS58Prefix"] == 42
    assert constants["Version"] == chain.runtime.version()
    assert constants["BlockHashCount"] == 4096
    assert U16.decode(next(c for c in system.constants if c.name == "SS58Prefix").value) == 42
