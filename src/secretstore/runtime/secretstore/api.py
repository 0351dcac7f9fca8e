"""The SecretStore read API for key servers, served through `state_call` as `SecretStoreRuntimeApi_<name>`.

Arguments and results are SCALE, with the descriptors below (key servers decode with the same ones):

| name | arguments | result |
|---|---|---|
| key_server_set_snapshot | key_server: H160 | KeyServerSetSnapshot |
| key_server_set_with_indices | — | Vec<IndexedKeyServer> |
| check_key_access | key: H256, requester: H160 | bool |
| server_key_generation_tasks | begin: u32, end: u32 | Vec<ServerKeyGenerationTask> |
| server_key_retrieval_tasks | begin: u32, end: u32 | Vec<H256> |
| document_key_store_tasks | begin: u32, end: u32 | Vec<DocumentKeyStoreTask> |
| document_key_shadow_retrieval_tasks | begin: u32, end: u32 | Vec<DocumentKeyShadowRetrievalTask> |
| is_server_key_generation_response_required | key_server: H160, key: H256 | bool |
| is_server_key_retrieval_response_required | key_server: H160, key: H256 | bool |
| is_document_key_store_response_required | key_server: H160, key: H256 | bool |
| is_document_key_shadow_retrieval_response_required | key_server: H160, key: H256, requester: H160 | bool |

Task lists page over pending requests in storage order: `begin` inclusive, `end` exclusive. A shadow retrieval task
carries `requester_public` only once the common part is agreed (the personal part is due); until then, and again after
a change of the current key server set, it is None. `is_*_response_required` is false for a key server outside the
current set and for a request that is not pending. Unknown names raise KeyError, undecodable arguments CodecError.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Callable

from ...codec.primitives import H160, H256
from ...codec.scale import U32, Bool, ScaleType, Sequence, Tuple
from . import responses as rs
from .pallet import SecretStore
from .types import (
    DocumentKeyShadowRetrievalTask, DocumentKeyStoreTask, IndexedKeyServer, KeyServerSetSnapshot,
    ServerKeyGenerationTask,
)

API_NAME = "SecretStoreRuntimeApi"
PAGE = Tuple(U32, U32)


class ApiMethod:
    def __init__(self, args: ScaleType, result: ScaleType, fn: Callable[[SecretStore, Any, Any], Any]) -> None:
        self.args, self.result, self.fn = args, result, fn


def _page(items, page: tuple[int, int]) -> list:
    begin, end = page
    return list(islice(items, begin, max(begin, end)))


def snapshot(pallet: SecretStore, storage, key_server: bytes) -> dict:
    migration = pallet.MigrationInfo.get(storage)
    return {
        "current_set": pallet.current_set(storage),
        "new_set": pallet.NewKeyServers.get(storage),
        "migration": None if migration is None else {
            "id": migration["id"], "master": migration["master"], "set": pallet.MigrationKeyServers.get(storage),
            "is_confirmed": key_server in pallet.MigrationConfirmations.get(storage)},
    }


def _required(pallet: SecretStore, storage, key_server: bytes, state_of: Callable[[dict], dict], request) -> bool:
    index = pallet.current_index(storage, key_server)
    if request is None or index is None:
        return False
    state = state_of(request)
    return state["set_change_block"] != pallet._change_block(storage) or not rs.has_responded(state, index)


def shadow_required(pallet: SecretStore, storage, args: tuple) -> bool:
    key_server, key, requester = args
    index = pallet.current_index(storage, key_server)
    request = pallet._shadow_request(storage, key, requester)
    if request is None or index is None:
        return False
    if request["threshold"] is None:
        return not rs.has_responded(request["common_responses"], index)
    if request["personal_errors"] >> index & 1:
        return False
    return not any(g["reporters"] >> index & 1 for g in request["personal_responses"])


def shadow_tasks(pallet: SecretStore, storage, page: tuple[int, int]) -> list:
    requests = pallet.DocumentKeyShadowRetrievalRequests.items(storage)
    change_block = pallet._change_block(storage)

    def common_part_known(request: dict) -> bool:
        # after a set change the common part must be agreed again, even if it was known before
        return request["threshold"] is not None and request["common_responses"]["set_change_block"] == change_block

    return [{"id": key[0], "requester": key[1],
             "requester_public": request["requester_public"] if common_part_known(request) else None}
            for key, request in _page(requests, page)]


METHODS: dict[str, ApiMethod] = {
    "key_server_set_snapshot": ApiMethod(H160, KeyServerSetSnapshot, lambda p, s, a: snapshot(p, s, a)),
    "key_server_set_with_indices": ApiMethod(Tuple(), Sequence(IndexedKeyServer), lambda p, s, a: [
        {"id": ks["id"], "index": i, "address": ks["address"]} for i, ks in enumerate(p.current_set(s))]),
    "check_key_access": ApiMethod(Tuple(H256, H160), Bool, lambda p, s, a: p.check_key_access(s, a[0], a[1])),
    "server_key_generation_tasks": ApiMethod(PAGE, Sequence(ServerKeyGenerationTask), lambda p, s, a: [
        {"id": k, "author": r["author"], "threshold": r["threshold"]}
        for k, r in _page(p.ServerKeyGenerationRequests.items(s), a)]),
    "server_key_retrieval_tasks": ApiMethod(PAGE, Sequence(H256), lambda p, s, a: [
        k for k, _ in _page(p.ServerKeyRetrievalRequests.items(s), a)]),
    "document_key_store_tasks": ApiMethod(PAGE, Sequence(DocumentKeyStoreTask), lambda p, s, a: [
        {"id": k, "author": r["author"], "common_point": r["common_point"], "encrypted_point": r["encrypted_point"]}
        for k, r in _page(p.DocumentKeyStoreRequests.items(s), a)]),
    "document_key_shadow_retrieval_tasks": ApiMethod(PAGE, Sequence(DocumentKeyShadowRetrievalTask), shadow_tasks),
    "is_server_key_generation_response_required": ApiMethod(Tuple(H160, H256), Bool, lambda p, s, a: _required(
        p, s, a[0], lambda r: r["responses"], p.ServerKeyGenerationRequests.get(s, a[1]))),
    "is_server_key_retrieval_response_required": ApiMethod(Tuple(H160, H256), Bool, lambda p, s, a: _required(
        p, s, a[0], lambda r: r["threshold_responses"], p.ServerKeyRetrievalRequests.get(s, a[1]))),
    "is_document_key_store_response_required": ApiMethod(Tuple(H160, H256), Bool, lambda p, s, a: _required(
        p, s, a[0], lambda r: r["responses"], p.DocumentKeyStoreRequests.get(s, a[1]))),
    "is_document_key_shadow_retrieval_response_required": ApiMethod(Tuple(H160, H256, H160), Bool, shadow_required),
}


def call(pallet: SecretStore, storage, method: str, args: bytes) -> bytes:
    spec = METHODS.get(method)
    if spec is None:
        raise KeyError(f"unknown runtime API method {API_NAME}_{method}")
    return spec.result.encode(spec.fn(pallet, storage, spec.args.decode(args)))
