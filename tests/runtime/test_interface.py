"""The pallet's interface (`secretstore.interface`): the runtime API declarations as the spec gives them, the runtime
publishing exactly them, and the chain layer reading them without the runtime."""

import subprocess
import sys

from secretstore.codec.primitives import H160, H256
from secretstore.codec.scale import U8, U32, Bool, Sequence, Tuple
from secretstore.interface import (
    API_TRAITS, EVENTS, PALLET, SERVICES, KeyServerSetSnapshot, ServiceTask, api_method,
)
from secretstore.runtime.secretstore.api import IMPLEMENTATIONS

# interop.md §1: name(param: type, ...) -> result, per trait, in declaration order
SPEC = {
    "SecretStoreAclApi": [("check", [("requester", H160), ("key", H256)], Bool)],
    "SecretStoreKeyServerSetApi": [("snapshot", [("key_server", H160)], KeyServerSetSnapshot),
                                   ("current_set_with_indices", [], Sequence(Tuple(H160, U8)))],
    "SecretStoreServiceApi": [
        entry for service in SERVICES for entry in (
            (f"{service}_tasks", [("begin", U32), ("end", U32)], Sequence(ServiceTask)),
            (f"is_{service}_response_required", [("key_server", H160), ("key", H256)]
             + ([("requester", H160)] if service == "document_key_shadow_retrieval" else []), Bool))],
}


def test_declared_methods_are_the_specs():
    declared = {trait.name: [(m.name, [(p.name, p.type) for p in m.params], m.result) for m in trait.methods]
                for trait in API_TRAITS}
    assert declared == SPEC
    assert all(trait.version == 1 and trait.docs for trait in API_TRAITS)
    assert all(m.docs and m.trait == trait.name for trait in API_TRAITS for m in trait.methods)


def test_arguments_are_the_params_one_after_another():
    method = api_method("SecretStoreServiceApi_is_document_key_shadow_retrieval_response_required")
    assert method.full_name == "SecretStoreServiceApi_is_document_key_shadow_retrieval_response_required"
    assert method.args.encode((b"\x01" * 20, b"\x02" * 32, b"\x03" * 20)) == b"\x01" * 20 + b"\x02" * 32 + b"\x03" * 20
    assert api_method("SecretStoreKeyServerSetApi_current_set_with_indices").args.encode(()) == b""


def test_the_runtime_serves_every_declared_method_and_publishes_the_declared_events(chain):
    assert set(IMPLEMENTATIONS) == {m.full_name for trait in API_TRAITS for m in trait.methods}
    declaration = next(p for p in chain.runtime.pallets if p.name == PALLET)
    assert declaration.events is EVENTS


def test_the_chain_layer_loads_without_the_runtime():
    code = ("import sys, secretstore.chain.client, secretstore.chain.secretstore_api, secretstore.chain.connection\n"
            "print(sorted(m for m in sys.modules if m.startswith(('secretstore.runtime', 'secretstore.node'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
