"""Threshold sessions between key servers: distributed key generation, document key store and retrieval (shadow and
plain), threshold Schnorr and ECDSA signing, and servers set change.

A session is driven by a master over the cluster's request/response messaging; every key server also answers the
participant side (`KeyServerCore.handle`, the router). Secret values travel only between the two key servers
concerned, over the encrypted cluster links (DKG shares go dealer -> receiver directly, never through the master).

Requests that come from a client directly (the HTTP API) carry the requester's signature of the key id; every
participant recovers the requester from it and checks the chain ACL itself, so a master cannot act for anyone else.

One module per protocol, each with its messages, its state, the participant's steps and the master's steps; `core`
holds what they share. This module is the composition point: `KeyServerCore` owns the shared context and one object
per protocol, and its master methods (the ones the chain service, the HTTP API and the metrics use) delegate to them.
"""

from __future__ import annotations

from typing import Callable

from ...crypto import Address, KeyPair, Public, ServerKeyId
from ...crypto.document import generate_document_key
from ..net import Handler
from ..storage import KeyStorage
from .batched_generation import (MAX_EARLY_BATCHES, SHARES_WAIT, BatchedGeneration, BatchItem, DkgBatch,
                                 generation_batch_size)
from .core import (ACCESS_DENIED, BAD_REQUEST, CONNECT_GRACE, CONSENSUS_UNREACHABLE, DOCUMENT_KEY_EXISTS, FAILED,
                   KEY_EXISTS, MAX_BATCH, MAX_PARTICIPANTS, SESSION_TIMEOUT, STEP_TIMEOUT, UNKNOWN_DOCUMENT_KEY,
                   UNKNOWN_KEY, AccessChecker, ResultSink, SessionContext, SessionError, key_rotation, parse_ids,
                   parse_point, parse_scalar, pedersen_point, public_share, requester_from, scalar_hex)
from .document_key_store import DocumentKeyStore
from .generation import MAX_EARLY_SESSIONS, DkgState, ServerKeyGeneration, dispute_statement
from .joint_random import JointRandomSharing, SigningKind, SigningState, parse_hash
from .retrieval import (MAX_PERSONAL_PARTS, PERSONAL_PART_TTL, DocumentKeyRetrieval, PersonalPart, PersonalParts,
                        check_shadow_part, shadow_base)
from .servers_set_change import RESHARE_IN_FLIGHT, ServersSetChange, reshare_batch_size
from .share_refresh import ShareRefresh
from .signing_ecdsa import EcdsaSigning
from .signing_schnorr import SchnorrSigning

__all__ = [
    "ACCESS_DENIED", "BAD_REQUEST", "CONNECT_GRACE", "CONSENSUS_UNREACHABLE", "DOCUMENT_KEY_EXISTS", "FAILED",
    "KEY_EXISTS", "MAX_BATCH", "MAX_EARLY_BATCHES", "MAX_EARLY_SESSIONS", "MAX_PARTICIPANTS", "MAX_PERSONAL_PARTS",
    "PERSONAL_PART_TTL", "RESHARE_IN_FLIGHT", "SESSION_TIMEOUT", "SHARES_WAIT", "STEP_TIMEOUT",
    "UNKNOWN_DOCUMENT_KEY", "UNKNOWN_KEY", "AccessChecker", "BatchItem", "DkgBatch", "DkgState", "KeyServerCore",
    "PersonalPart", "PersonalParts", "ResultSink", "SessionError", "SigningState", "check_shadow_part",
    "dispute_statement", "generation_batch_size", "key_rotation", "parse_hash", "parse_ids", "parse_point",
    "parse_scalar", "pedersen_point", "public_share", "requester_from", "reshare_batch_size", "scalar_hex",
    "shadow_base",
]


class KeyServerCore(SessionContext):
    """The key server's threshold logic: the shared context (key pair, cluster, storage, ACL check, result sink,
    fault plan), the router every cluster message goes through, and one protocol object per session kind."""

    def __init__(self, keypair: KeyPair, storage: KeyStorage, check_access: AccessChecker, on_result: ResultSink) -> None:
        super().__init__(keypair, storage, check_access, on_result)
        self.generation = ServerKeyGeneration(self)
        self.batched_generation = BatchedGeneration(self, self.generation)
        self.document_key_store = DocumentKeyStore(self)
        self.retrieval = DocumentKeyRetrieval(self)
        self.joint_random = JointRandomSharing(self)
        self.signing_kinds: dict[str, SigningKind] = {
            kind.KIND: kind for kind in (SchnorrSigning(self, self.joint_random), EcdsaSigning(self, self.joint_random))}
        self.servers_set_change = ServersSetChange(self)
        self.share_refresh = ShareRefresh(self)

    @property
    def handle(self) -> Handler:
        """The cluster's request handler: the router's own, so a message takes no extra hop through here."""
        return self.router.handle

    # ------------------------------------------------------------------------ chain retrievals' personal parts
    @property
    def personal_parts(self) -> PersonalParts:
        return self.retrieval.personal_parts

    @property
    def personal_part_ready(self) -> Callable[[ServerKeyId, Address], None]:
        return self.retrieval.personal_part_ready

    @personal_part_ready.setter
    def personal_part_ready(self, callback: Callable[[ServerKeyId, Address], None]) -> None:
        self.retrieval.personal_part_ready = callback  # the service hears of each part its master reported

    def personal_part(self, key_id: ServerKeyId, requester_public: Public) -> dict | None:
        return self.retrieval.personal_part(key_id, requester_public)

    # ----------------------------------------------------------------------------------- sessions led (master)
    # Each is an attribute the metrics wrap by name (metrics.SESSION_KINDS).
    async def generate_server_key(self, key_id: ServerKeyId, author: Address, threshold: int,
                                  participants: list[Address], request_signature: str | None = None) -> Public:
        """One key by the one-key protocol: direct (HTTP) requests."""
        return await self.generation.generate_server_key(key_id, author, threshold, participants, request_signature)

    async def generate_server_keys(self, requests: list[tuple[ServerKeyId, Address, int]],
                                   participants: list[Address]) -> dict[ServerKeyId, Public | SessionError]:
        """Chain requests: batched generations, the keys that leave a batch by the one-key protocol."""
        return await self.batched_generation.generate_server_keys(requests, participants)

    async def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Address,
                                           indices: dict[Address, int], block: int) -> None:
        await self.retrieval.retrieve_document_key_shadow(key_id, requester, indices, block)

    async def migrate(self, migration_id: bytes, old_set: list[Address], new_set: list[Address]) -> int:
        return await self.servers_set_change.migrate(migration_id, old_set, new_set)

    async def refresh_shares(self, epoch: int, keys: list[tuple[ServerKeyId, bytes, int]],
                             participants: list[Address]) -> dict[ServerKeyId, str | None]:
        return await self.share_refresh.refresh_keys(epoch, keys, participants)

    async def store_document_key(self, key_id: ServerKeyId, request_signature: str, common_point: Public,
                                 encrypted_point: Public) -> None:
        await self.document_key_store.store_document_key(key_id, request_signature, common_point, encrypted_point)

    async def generate_document_key(self, key_id: ServerKeyId, request_signature: str, threshold: int,
                                    participants: list[Address]) -> bytes:
        """Server-side document key generation: a server key by DKG, then a random document key stored through the
        same path as a client's store. Returns the document key ECIES-encrypted to the requester. It composes two
        protocols, so it lives here; both steps go through this object (and its metrics, if any)."""
        requester = await self.check_requester(key_id, request_signature)
        public = await self.generate_server_key(key_id, requester.address(), threshold, participants,
                                                request_signature=request_signature)
        generated = generate_document_key(public, requester)
        await self.store_document_key(key_id, request_signature, generated.common_point, generated.encrypted_point)
        return generated.encrypted_key

    async def retrieve_document_key(self, key_id: ServerKeyId, request_signature: str,
                                    among: list[Address]) -> bytes:
        return await self.retrieval.retrieve_document_key(key_id, request_signature, among)

    async def retrieve_document_key_shadow_direct(self, key_id: ServerKeyId, request_signature: str,
                                                  among: list[Address]) -> dict:
        return await self.retrieval.retrieve_document_key_shadow_direct(key_id, request_signature, among)

    async def sign(self, kind: str, key_id: ServerKeyId, request_signature: str, message_hash: bytes,
                   among: list[Address]) -> bytes:
        """Threshold signing with the server key: Schnorr by t + 1 holders (c ‖ s), ECDSA by 2t + 1 (r ‖ s ‖ v)."""
        signing = self.signing_kinds.get(kind)
        if signing is None:
            raise SessionError(f"unknown signature kind {kind!r}", BAD_REQUEST)
        return await signing.sign(key_id, request_signature, message_hash, among)
