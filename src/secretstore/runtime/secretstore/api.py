"""The runtime's implementation of the SecretStore runtime API traits declared in `secretstore.interface.apis`.

Each declared method is served by the pallet's read surface (`check_key_access`, `key_server_set_snapshot`,
`current_set_with_indices`, `<service>_tasks`, `is_<service>_response_required`) over the state `state_call` reads.
Unknown methods raise KeyError, undecodable or trailing argument bytes CodecError.
"""

from __future__ import annotations

from typing import Any, Callable

from ...interface import (
    ACL_API, API_TRAITS, KEY_SERVER_SET_API, SERVICES, ApiMethod, api_method, response_required_method, tasks_method,
)
from ..storage import Storage
from .pallet import SecretStore

# trait name -> method name -> declaration, in declaration order (the order Core_version lists the traits in)
TRAITS: dict[str, dict[str, ApiMethod]] = {trait.name: trait.by_name for trait in API_TRAITS}
TRAIT_VERSION = 1  # every trait's (Core_version lists them with it)
if any(trait.version != TRAIT_VERSION for trait in API_TRAITS):
    raise ImportError("a SecretStore runtime API trait changed its version: list it with its own")

method = api_method

Implementation = Callable[[SecretStore, Storage, tuple], Any]


def _service_implementations() -> dict[str, Implementation]:
    found: dict[str, Implementation] = {}
    for service in SERVICES:
        found[tasks_method(service).full_name] = \
            lambda p, s, a, service=service: p.service_tasks(s, service, a[0], a[1])
        found[response_required_method(service).full_name] = \
            lambda p, s, a, service=service: p.is_response_required(s, service, *a)
    return found


IMPLEMENTATIONS: dict[str, Implementation] = {
    ACL_API.by_name["check"].full_name: lambda p, s, a: p.check_key_access(s, a[1], a[0]),
    KEY_SERVER_SET_API.by_name["snapshot"].full_name: lambda p, s, a: p.key_server_set_snapshot(s, a[0]),
    KEY_SERVER_SET_API.by_name["current_set_with_indices"].full_name: lambda p, s, a: p.current_set_with_indices(s),
    **_service_implementations(),
}
if set(IMPLEMENTATIONS) != {m.full_name for trait in API_TRAITS for m in trait.methods}:
    raise ImportError("the runtime must serve exactly the declared SecretStore runtime API methods")


def call(pallet: SecretStore, storage: Storage, name: str, args: bytes) -> bytes:
    spec = method(name)
    return spec.result.encode(IMPLEMENTATIONS[name](pallet, storage, spec.args.decode(args)))
