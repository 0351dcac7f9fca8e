"""Runtime APIs served through state_call: SCALE in, SCALE out; unknown names and bad arguments are refused."""

import pytest

from secretstore.codec.primitives import AccountId32, H160
from secretstore.codec.scale import U32, CodecError
from secretstore.runtime.secretstore.api import TRAITS
from secretstore.runtime.version import RuntimeVersion, api_id

from .conftest import ALICE, DAVE, KEY, KS_IDS, ss

SECRETSTORE_TRAITS = ("SecretStoreAclApi", "SecretStoreKeyServerSetApi", "SecretStoreServiceApi")


def test_core_version_lists_the_three_secretstore_traits(chain):
    version = RuntimeVersion.decode(chain.runtime.api_call("Core_version", b""))
    assert version["spec_name"] == "secretstore"
    assert version["spec_version"] == chain.runtime.spec_version
    apis = {bytes(a[0]).hex(): a[1] for a in version["apis"]}
    # the ids clients look for, as published by every Substrate runtime
    assert {"df6acb689907609b", "37e397fc7c91f5e4", "bc9d89904f5b923f", "37c8bb1350a9a2a8"} <= set(apis)
    for trait in SECRETSTORE_TRAITS:
        assert apis[api_id(trait).hex()] == 1
    assert api_id("SecretStoreRuntimeApi").hex() not in apis  # the old private API is gone
    assert set(TRAITS) == set(SECRETSTORE_TRAITS)


def test_account_nonce(chain):
    assert U32.decode(chain.runtime.api_call("AccountNonceApi_account_nonce", AccountId32.encode(ALICE))) == 0
    chain.call(ALICE, "System", "remark", remark=b"")
    assert U32.decode(chain.runtime.api_call("AccountNonceApi_account_nonce", AccountId32.encode(ALICE))) == 1


def test_current_set_with_indices(chain):
    assert chain.api("SecretStoreKeyServerSetApi_current_set_with_indices") == [(ks, i) for i, ks in enumerate(KS_IDS)]


def test_check_is_the_key_ownership_acl(chain):
    assert not chain.api("SecretStoreAclApi_check", KS_IDS[0], KEY)
    ss(chain, DAVE, "claim_key", id=KEY)
    assert chain.api("SecretStoreAclApi_check", bytes.fromhex("c48b812bb43401392c037381aca934f4069c0517"), KEY)
    assert not chain.api("SecretStoreAclApi_check", KS_IDS[0], KEY)


@pytest.mark.parametrize("name", ["SecretStoreRuntimeApi_check_key_access", "SecretStoreAclApi_nope",
                                  "SecretStoreServiceApi_", "Nope_nothing", "Core", "SecretStoreAclApi"])
def test_unknown_api_method(chain, name):
    with pytest.raises(KeyError):
        chain.runtime.api_call(name, b"")


@pytest.mark.parametrize("name, args", [
    ("SecretStoreKeyServerSetApi_snapshot", b"\x01" * 19),
    ("SecretStoreKeyServerSetApi_snapshot", b"\x01" * 21),
    ("SecretStoreKeyServerSetApi_current_set_with_indices", b"\x00"),
    ("SecretStoreAclApi_check", b"\x01" * 51),
    ("SecretStoreServiceApi_server_key_generation_tasks", b"\x00" * 7),
    ("SecretStoreServiceApi_is_document_key_shadow_retrieval_response_required", b"\x00" * 52),
])
def test_bad_arguments_are_codec_errors(chain, name, args):
    with pytest.raises(CodecError):
        chain.runtime.api_call(name, args)


def test_snapshot_of_an_unknown_server_still_shows_the_sets(chain):
    snapshot = chain.api("SecretStoreKeyServerSetApi_snapshot", b"\x09" * 20)
    assert [ks_id for ks_id, _ in snapshot["current_set"]] == KS_IDS
    assert snapshot["migration"] is None
    assert H160.encode(b"\x09" * 20)  # the argument is a bare H160, no tuple prefix


def test_system_constants(chain):
    from secretstore.codec.scale import U16

    system = next(p for p in chain.runtime.pallets if p.name == "System")
    constants = {c.name: c.type.decode(c.value) for c in system.constants}
    assert constants["SS58Prefix"] == 42
    assert constants["Version"] == chain.runtime.version()
    assert constants["BlockHashCount"] == 4096
    assert U16.decode(next(c for c in system.constants if c.name == "SS58Prefix").value) == 42
