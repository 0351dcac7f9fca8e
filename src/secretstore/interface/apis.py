"""The three runtime API traits MathChain's runtime implements for Parity's pallet, and nothing else key servers
read besides standard RPC and events. Served through `state_call` as `<Trait>_<method>`, SCALE arguments in (the
arguments encoded one after another, as a tuple), SCALE result out:

| trait and method | arguments | result |
|---|---|---|
| SecretStoreAclApi_check | requester: EntityId, key: ServerKeyId | bool |
| SecretStoreKeyServerSetApi_snapshot | key_server: KeyServerId | KeyServerSetSnapshot |
| SecretStoreKeyServerSetApi_current_set_with_indices | — | Vec<(KeyServerId, u8)> |
| SecretStoreServiceApi_<service>_tasks | begin: u32, end: u32 | Vec<ServiceTask> |
| SecretStoreServiceApi_is_<service>_response_required | key_server: KeyServerId, key: ServerKeyId | bool |
| SecretStoreServiceApi_is_document_key_shadow_retrieval_response_required | key_server, key, requester: EntityId | bool |

with <service> one of SERVICES, in that order, each service's two methods together. Each method carries what
metadata V15 describes of it (name, named inputs, output, docs); each trait its name, version and docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from ..codec.scale import U8, U32, Bool, ScaleType, Sequence, Tuple
from .types import EntityId, KeyServerId, KeyServerSetSnapshot, ServerKeyId, ServiceTask

Service = Literal["server_key_generation", "server_key_retrieval", "document_key_store",
                  "document_key_shadow_retrieval"]
SERVICES: tuple[Service, ...] = ("server_key_generation", "server_key_retrieval", "document_key_store",
                                 "document_key_shadow_retrieval")


@dataclass(frozen=True)
class ApiParam:
    name: str
    type: ScaleType


@dataclass(frozen=True)
class ApiMethod:
    trait: str
    name: str
    params: tuple[ApiParam, ...]
    result: ScaleType
    docs: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        """The name `state_call` takes."""
        return f"{self.trait}_{self.name}"

    @cached_property
    def args(self) -> Tuple:
        """The arguments as one SCALE tuple: what the argument bytes of `state_call` decode as."""
        return Tuple(*(param.type for param in self.params))


@dataclass(frozen=True)
class ApiTrait:
    name: str
    methods: tuple[ApiMethod, ...]
    docs: tuple[str, ...] = ()
    version: int = 1  # sp-api's default for a trait declared without #[api_version]

    @cached_property
    def by_name(self) -> dict[str, ApiMethod]:
        return {method.name: method for method in self.methods}


def _trait(name: str, docs: str, methods: list[tuple[str, list[tuple[str, ScaleType]], ScaleType, str]]) -> ApiTrait:
    return ApiTrait(name, tuple(
        ApiMethod(name, method, tuple(ApiParam(p, t) for p, t in params), result, (method_docs,))
        for method, params, result, method_docs in methods), (docs,))


def _service_methods(service: Service) -> list[tuple[str, list[tuple[str, ScaleType]], ScaleType, str]]:
    kind = service.replace("_", " ")
    key = [("key_server", KeyServerId), ("key", ServerKeyId)]
    if service == "document_key_shadow_retrieval":  # pending retrievals are keyed by (key, requester)
        key.append(("requester", EntityId))
    return [
        (f"{service}_tasks", [("begin", U32), ("end", U32)], Sequence(ServiceTask),
         f"Pending {kind} requests in storage order, from `begin` (inclusive) to `end` (exclusive)."),
        (f"is_{service}_response_required", key, Bool,
         f"Whether the key server still owes an answer to this pending {kind} request."),
    ]


ACL_API = _trait("SecretStoreAclApi", "Who may use which server key.", [
    ("check", [("requester", EntityId), ("key", ServerKeyId)], Bool, "Whether the requester may use the key."),
])
KEY_SERVER_SET_API = _trait("SecretStoreKeyServerSetApi", "The key server set and its migration.", [
    ("snapshot", [("key_server", KeyServerId)], KeyServerSetSnapshot,
     "The current, new and migration sets; whether the migration is confirmed is as seen by `key_server`."),
    ("current_set_with_indices", [], Sequence(Tuple(KeyServerId, U8)),
     "The current set with each key server's index, the bit it has in response masks."),
])
SERVICE_API = _trait("SecretStoreServiceApi", "The pending requests key servers answer.",
                     [m for service in SERVICES for m in _service_methods(service)])

API_TRAITS: tuple[ApiTrait, ...] = (ACL_API, KEY_SERVER_SET_API, SERVICE_API)
METHODS: dict[str, ApiMethod] = {method.full_name: method for trait in API_TRAITS for method in trait.methods}


def api_method(full_name: str) -> ApiMethod:
    """The method of a full runtime API name such as 'SecretStoreAclApi_check' (KeyError if there is none)."""
    found = METHODS.get(full_name)
    if found is None:
        raise KeyError(f"unknown runtime API method {full_name}")
    return found


def tasks_method(service: Service) -> ApiMethod:
    return SERVICE_API.by_name[f"{service}_tasks"]


def response_required_method(service: Service) -> ApiMethod:
    return SERVICE_API.by_name[f"is_{service}_response_required"]
