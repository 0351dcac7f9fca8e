"""Typed client of the SecretStore runtime APIs that MathChain's runtime implements (Parity's pallet):
`SecretStoreAclApi`, `SecretStoreKeyServerSetApi` and `SecretStoreServiceApi`, called through `state_call`.

These three traits, standard RPC and events are all that key servers and the SDK read from a chain, so the same
processes serve our node and a MathChain node (MathChain's pallet does not even publish its storage in metadata).
Arguments and results are encoded as the pallet's interface (`secretstore.interface`) declares the traits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Union

from .. import interface
from ..crypto import Address, ServerKeyId, keccak256
from ..interface import ACL_API, KEY_SERVER_SET_API, ApiMethod, Service, response_required_method, tasks_method

SERVICES = interface.SERVICES  # key servers and the CLI take the service names from here

TASK_PAGE = 64  # tasks read per state_call; a short page ends the list
_CHECK = ACL_API.by_name["check"]
_SNAPSHOT = KEY_SERVER_SET_API.by_name["snapshot"]
_CURRENT_SET_WITH_INDICES = KEY_SERVER_SET_API.by_name["current_set_with_indices"]


# ------------------------------------------------------------------------------------------------ key server set
@dataclass(frozen=True)
class KeyServerSetMigration:
    id: bytes  # MigrationId
    set: dict[Address, bytes]  # key server -> network address ("host:port"), in the chain's order
    master: Address
    is_confirmed: bool  # by the key server the snapshot was asked for


@dataclass(frozen=True)
class KeyServerSetSnapshot:
    current_set: dict[Address, bytes]
    new_set: dict[Address, bytes]
    migration: KeyServerSetMigration | None

    def members(self) -> dict[Address, bytes]:
        """Everyone who may take part in cluster traffic now: current, new and migration sets."""
        return {**self.current_set, **self.new_set, **(self.migration.set if self.migration else {})}


def _servers(entries: list[tuple[bytes, bytes]]) -> dict[Address, bytes]:
    return {Address(ks_id): address for ks_id, address in entries}


def snapshot_from(value: dict) -> KeyServerSetSnapshot:
    migration = value["migration"]
    return KeyServerSetSnapshot(
        _servers(value["current_set"]), _servers(value["new_set"]),
        None if migration is None else KeyServerSetMigration(
            migration["id"], _servers(migration["set"]), Address(migration["master"]), migration["is_confirmed"]))


# ----------------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class GenerateServerKey:
    key_id: ServerKeyId
    author: Address
    threshold: int


@dataclass(frozen=True)
class RetrieveServerKey:
    key_id: ServerKeyId


@dataclass(frozen=True)
class StoreDocumentKey:
    key_id: ServerKeyId
    author: Address
    common_point: bytes  # validated by the key server that stores it: a bad point is a store error, not a crash
    encrypted_point: bytes


@dataclass(frozen=True)
class RetrieveShadowDocumentKeyCommon:
    key_id: ServerKeyId
    requester: Address


@dataclass(frozen=True)
class RetrieveShadowDocumentKeyPersonal:
    key_id: ServerKeyId
    requester_public: bytes  # 64 bytes; a chain that does not check the curve may hold a bad one (then: an error)

    @functools.cached_property
    def requester(self) -> Address:
        # the pallet keys the request by the requester's entity id: the address (keccak) of these 64 bytes
        return Address(keccak256(self.requester_public)[12:])


ServiceTask = Union[GenerateServerKey, RetrieveServerKey, StoreDocumentKey, RetrieveShadowDocumentKeyCommon,
                    RetrieveShadowDocumentKeyPersonal]


def task_from_event(name: str, attributes: Any) -> ServiceTask | None:
    """The task a *Requested event of the pallet announces (None for any other event, or fields it lacks): the same
    task the service API lists from that block on, known without reading it."""
    if not isinstance(attributes, dict):
        return None
    try:
        def raw(field: str) -> bytes:
            value = attributes[field]
            if not isinstance(value, str) or not value.startswith("0x"):
                raise ValueError(field)
            return bytes.fromhex(value[2:])

        if name == "ServerKeyGenerationRequested":
            return GenerateServerKey(ServerKeyId(raw("id")), Address(raw("author")), int(attributes["threshold"]))
        if name == "ServerKeyRetrievalRequested":
            return RetrieveServerKey(ServerKeyId(raw("id")))
        if name == "DocumentKeyStoreRequested":
            return StoreDocumentKey(ServerKeyId(raw("id")), Address(raw("author")), raw("common_point"),
                                    raw("encrypted_point"))
        if name == "DocumentKeyShadowRetrievalRequested":
            return RetrieveShadowDocumentKeyCommon(ServerKeyId(raw("id")), Address(raw("requester")))
        if name == "DocumentKeyPersonalRetrievalRequested":
            public = raw("requester_public")
            return RetrieveShadowDocumentKeyPersonal(ServerKeyId(raw("id")), public) if len(public) == 64 else None
    except (KeyError, TypeError, ValueError):
        return None
    return None


SERVICE_OF_TASK: dict[type, Service] = {
    GenerateServerKey: "server_key_generation", RetrieveServerKey: "server_key_retrieval",
    StoreDocumentKey: "document_key_store", RetrieveShadowDocumentKeyCommon: "document_key_shadow_retrieval",
    RetrieveShadowDocumentKeyPersonal: "document_key_shadow_retrieval",
}


def task_identity(task: ServiceTask) -> tuple:
    """What a pending request is keyed by on chain, with its kind: (task type, key id, requester or None)."""
    requester = task.requester if isinstance(task, (RetrieveShadowDocumentKeyCommon,
                                                    RetrieveShadowDocumentKeyPersonal)) else None
    return type(task), task.key_id, requester


# The pallet's events that add or remove pending requests of a service (a personal part may remove one too).
SERVICE_OF_EVENT: dict[str, Service] = {
    **dict.fromkeys(("ServerKeyGenerationRequested", "ServerKeyGenerated", "ServerKeyGenerationError"),
                    "server_key_generation"),
    **dict.fromkeys(("ServerKeyRetrievalRequested", "ServerKeyRetrieved", "ServerKeyRetrievalError"),
                    "server_key_retrieval"),
    **dict.fromkeys(("DocumentKeyStoreRequested", "DocumentKeyStored", "DocumentKeyStoreError"), "document_key_store"),
    **dict.fromkeys(("DocumentKeyShadowRetrievalRequested", "DocumentKeyCommonRetrieved",
                     "DocumentKeyPersonalRetrievalRequested", "DocumentKeyPersonalRetrieved",
                     "DocumentKeyShadowRetrievalError"), "document_key_shadow_retrieval"),
}
# The result events, with the kinds of pending task each removes for its id (and requester).
TASKS_ENDED_BY: dict[str, tuple[type, ...]] = {
    "ServerKeyGenerated": (GenerateServerKey,), "ServerKeyGenerationError": (GenerateServerKey,),
    "ServerKeyRetrieved": (RetrieveServerKey,), "ServerKeyRetrievalError": (RetrieveServerKey,),
    "DocumentKeyStored": (StoreDocumentKey,), "DocumentKeyStoreError": (StoreDocumentKey,),
    "DocumentKeyCommonRetrieved": (RetrieveShadowDocumentKeyCommon,),
    "DocumentKeyShadowRetrievalError": (RetrieveShadowDocumentKeyCommon, RetrieveShadowDocumentKeyPersonal),
}


def tasks_ended_by_event(name: str, attributes: Any) -> list[tuple] | None:
    """The identities of the pending tasks a result event of the pallet removes ([] for an event that removes
    none for sure — a personal part, which ends the request only once enough have come — and None for one this
    cannot read: then the caller reads the lists again)."""
    kinds = TASKS_ENDED_BY.get(name)
    if kinds is None:
        return []
    try:
        key_id = ServerKeyId.from_hex(attributes["id"])
        shadow = kinds[0] is RetrieveShadowDocumentKeyCommon
        requester = Address.from_hex(attributes["requester"]) if shadow else None
    except (KeyError, TypeError, ValueError):
        return None
    return [(kind, key_id, requester) for kind in kinds]


class PersonalPartTally:
    """The personal parts of shadow retrievals seen in events, to know when the pallet removes a request: once t + 1
    key servers reported the same decrypted secret (one session's participants all report the same), t coming with
    the common part's event. No event says so; without this a finished retrieval would stay in a follower's task
    list until its next full scan. Bounded: past LIMIT open retrievals it starts over (the scan catches up)."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self.thresholds: dict[tuple[ServerKeyId, Address], int] = {}
        self.reports: dict[tuple[ServerKeyId, Address], dict[str, int]] = {}

    def observe(self, name: str, attributes: Any) -> tuple | None:
        """Take one event of the pallet; the identity of the personal-part task it ends, if it ends one."""
        if name not in ("DocumentKeyCommonRetrieved", "DocumentKeyPersonalRetrieved",
                        "DocumentKeyShadowRetrievalError") or not isinstance(attributes, dict):
            return None
        try:
            retrieval = (ServerKeyId.from_hex(attributes["id"]), Address.from_hex(attributes["requester"]))
            if name == "DocumentKeyCommonRetrieved":
                if len(self.thresholds) >= self.LIMIT:
                    self.thresholds.clear()
                    self.reports.clear()
                self.thresholds[retrieval] = int(attributes["threshold"])
                return None
            if name == "DocumentKeyShadowRetrievalError":
                self.forget(*retrieval)
                return None
            decrypted = str(attributes["decrypted_secret"])
        except (KeyError, TypeError, ValueError):
            return None
        threshold = self.thresholds.get(retrieval)
        if threshold is None:
            return None
        counts = self.reports.setdefault(retrieval, {})
        counts[decrypted] = counts.get(decrypted, 0) + 1
        if counts[decrypted] < threshold + 1:
            return None
        self.forget(*retrieval)
        return (RetrieveShadowDocumentKeyPersonal, *retrieval)

    def forget(self, key_id: ServerKeyId, requester: Address) -> None:
        self.thresholds.pop((key_id, requester), None)
        self.reports.pop((key_id, requester), None)


def task_from(value: tuple[str, Any]) -> ServiceTask:
    """A decoded `ServiceTask` enum value as its typed task."""
    name, fields = value
    if name == "GenerateServerKey":
        return GenerateServerKey(ServerKeyId(fields[0]), Address(fields[1]), fields[2])
    if name == "RetrieveServerKey":
        return RetrieveServerKey(ServerKeyId(fields))
    if name == "StoreDocumentKey":
        return StoreDocumentKey(ServerKeyId(fields[0]), Address(fields[1]), fields[2], fields[3])
    if name == "RetrieveShadowDocumentKeyCommon":
        return RetrieveShadowDocumentKeyCommon(ServerKeyId(fields[0]), Address(fields[1]))
    return RetrieveShadowDocumentKeyPersonal(ServerKeyId(fields[0]), fields[1])


# ---------------------------------------------------------------------------------------------------- client
StateCall = Callable[[str, bytes, "str | None"], Awaitable[bytes]]


class SecretStoreRuntimeApi:
    """The three traits over an async `state_call(method, args, at) -> result bytes`. Every read takes `at`, a block
    hash (None: the best block), so that one scan sees one state."""

    def __init__(self, state_call: StateCall) -> None:
        self._state_call = state_call

    async def _call(self, method: ApiMethod, *args: Any, at: str | None = None) -> Any:
        return method.result.decode(await self._state_call(method.full_name, method.args.encode(args), at))

    async def check(self, requester: Address, key_id: ServerKeyId, at: str | None = None) -> bool:
        """The ACL: may `requester` use the key?"""
        return await self._call(_CHECK, bytes(requester), bytes(key_id), at=at)

    async def snapshot(self, key_server: Address, at: str | None = None) -> KeyServerSetSnapshot:
        return snapshot_from(await self._call(_SNAPSHOT, bytes(key_server), at=at))

    async def current_set_with_indices(self, at: str | None = None) -> dict[Address, int]:
        """The current set with the indices that response masks (e.g. shadow retrieval participants) use."""
        return {Address(ks_id): index for ks_id, index in await self._call(_CURRENT_SET_WITH_INDICES, at=at)}

    async def tasks(self, service: Service, page: int = TASK_PAGE, at: str | None = None) -> list[ServiceTask]:
        """Every pending request of `service`, read page by page."""
        method = tasks_method(service)
        found: list[ServiceTask] = []
        while True:
            batch = await self._call(method, len(found), len(found) + page, at=at)
            found.extend(task_from(value) for value in batch)
            if len(batch) < page:
                return found

    async def is_response_required(self, service: Service, key_server: Address, key_id: ServerKeyId,
                                   requester: Address | None = None, at: str | None = None) -> bool:
        args = (bytes(key_server), bytes(key_id)) + ((bytes(requester),) if requester is not None else ())
        return await self._call(response_required_method(service), *args, at=at)
