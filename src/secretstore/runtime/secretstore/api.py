"""The runtime APIs of the SecretStore, exactly as MathChain's runtime implements them for Parity's pallet.

Served through `state_call` as `<Trait>_<method>`, SCALE arguments in, SCALE result out:

| trait and method | arguments | result |
|---|---|---|
| SecretStoreAclApi_check | requester: EntityId, key: ServerKeyId | bool |
| SecretStoreKeyServerSetApi_snapshot | key_server: KeyServerId | KeyServerSetSnapshot |
| SecretStoreKeyServerSetApi_current_set_with_indices | — | Vec<(KeyServerId, u8)> |
| SecretStoreServiceApi_<service>_tasks | begin: u32, end: u32 | Vec<ServiceTask> |
| SecretStoreServiceApi_is_<service>_response_required | key_server: KeyServerId, key: ServerKeyId | bool |
| SecretStoreServiceApi_is_document_key_shadow_retrieval_response_required | key_server, key, requester: EntityId | bool |

with <service> one of server_key_generation, server_key_retrieval, document_key_store, document_key_shadow_retrieval.
Key servers need nothing else from the chain (besides standard RPC and events), so the same key server processes
serve our node and a MathChain node. Semantics are the pallet's read surface (`SecretStore.service_tasks`,
`is_response_required`, `key_server_set_snapshot`, `current_set_with_indices`, `check_key_access`). Unknown
methods raise KeyError, undecodable or trailing argument bytes CodecError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ...codec.primitives import H160, H256
from ...codec.scale import U8, U32, Bool, ScaleType, Sequence, Tuple
from .pallet import SERVICES, SecretStore
from .types import KeyServerSetSnapshot, ServiceTask

ACL_API = "SecretStoreAclApi"
KEY_SERVER_SET_API = "SecretStoreKeyServerSetApi"
SERVICE_API = "SecretStoreServiceApi"
TRAIT_VERSION = 1  # sp-api's default for a trait declared without #[api_version]


@dataclass(frozen=True)
class ApiMethod:
    args: ScaleType  # a Tuple of the arguments, in declaration order
    result: ScaleType
    fn: Callable[[SecretStore, Any, tuple], Any]


def _service_methods() -> dict[str, ApiMethod]:
    methods = {}
    for service in SERVICES:
        methods[f"{service}_tasks"] = ApiMethod(
            Tuple(U32, U32), Sequence(ServiceTask),
            lambda p, s, a, service=service: p.service_tasks(s, service, a[0], a[1]))
        key_args = (H160, H256, H160) if service == "document_key_shadow_retrieval" else (H160, H256)
        methods[f"is_{service}_response_required"] = ApiMethod(
            Tuple(*key_args), Bool,
            lambda p, s, a, service=service: p.is_response_required(s, service, *a))
    return methods


TRAITS: dict[str, dict[str, ApiMethod]] = {
    ACL_API: {
        "check": ApiMethod(Tuple(H160, H256), Bool, lambda p, s, a: p.check_key_access(s, a[1], a[0])),
    },
    KEY_SERVER_SET_API: {
        "snapshot": ApiMethod(Tuple(H160), KeyServerSetSnapshot, lambda p, s, a: p.key_server_set_snapshot(s, a[0])),
        "current_set_with_indices": ApiMethod(Tuple(), Sequence(Tuple(H160, U8)),
                                              lambda p, s, a: p.current_set_with_indices(s)),
    },
    SERVICE_API: _service_methods(),
}


def method(name: str) -> ApiMethod:
    """The method of a full runtime API name such as 'SecretStoreAclApi_check' (KeyError if there is none)."""
    trait, _, method_name = name.partition("_")
    spec = TRAITS.get(trait, {}).get(method_name)
    if spec is None:
        raise KeyError(f"unknown runtime API method {name}")
    return spec


def call(pallet: SecretStore, storage, name: str, args: bytes) -> bytes:
    spec = method(name)
    return spec.result.encode(spec.fn(pallet, storage, spec.args.decode(args)))
