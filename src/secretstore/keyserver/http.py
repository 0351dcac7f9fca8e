"""Parity Secret Store's key server HTTP API (paths, methods, argument forms, JSON bodies and status codes).

    POST /shadow/{key_id}/{sig}/{threshold}                      generate server key       -> "0x<public>"
    POST /shadow/{key_id}/{sig}/{common_point}/{encrypted_point} store document key        -> empty
    POST /{key_id}/{sig}/{threshold}                             generate server + document key -> "0x<ECIES(doc key)>"
    GET  /server/{key_id}/{sig}                                  server key public         -> "0x<public>"
    GET  /{key_id}/{sig}                                         document key              -> "0x<ECIES(doc key)>"
    GET  /shadow/{key_id}/{sig}                                  document key shadow       -> {decrypted_secret, ...}
    GET  /schnorr/{key_id}/{sig}/{message_hash}                  Schnorr signature         -> "0x<ECIES(c ‖ s)>"
    GET  /ecdsa/{key_id}/{sig}/{message_hash}                    ECDSA signature           -> "0x<ECIES(r ‖ s ‖ v)>"
    POST /admin/servers_set_change/{old_sig}/{new_sig}           refused: the chain manages the set

{sig} is the requester's recoverable signature of the key id (used directly as the hash); every key server taking part
recovers the requester and checks the chain ACL itself. The key server that receives a request is the session master.
Errors: a JSON string; 403 access denied / consensus unreachable, 404 unknown server or document key, 400 bad request /
key exists / document key exists (and a refused Origin), 429 too many requests (limits.py), 504 past the request's
deadline, 500 otherwise. Nothing secret goes into a message.

A request is parsed completely (path, key id, signature, arguments) before anything else, then admitted under the
limits, then checked in the order Parity's key server checks it (`key_server.rs` and the sessions it starts), so each
refusal has Parity's status: a generation's existing key before its threshold; the unknown key (404) before the
requester's access (403) for the server key, document key and signing endpoints, and a document key's absence (404)
before the access check too; for a store, the unknown key, then an existing document key, then the author.
docs/architecture.md lists where this API still differs from Parity's, and why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from ..chain.errors import ChainError
from ..crypto import Address, CryptoError, Public, ServerKeyId, ecies, parse_hex
from ..crypto.signing import ecdsa_recover
from . import sessions as ss
from .audit import AuditLog
from .limits import Admission, HttpLimits, TooManyRequests
from .sessions import KeyServerCore, SessionError
from .storage import KeyShare

log = logging.getLogger(__name__)

AccessChecker = Callable[[ServerKeyId, Address], Awaitable[bool]]

STATUS = {
    ss.ACCESS_DENIED: 403, ss.CONSENSUS_UNREACHABLE: 403,
    ss.UNKNOWN_KEY: 404, ss.UNKNOWN_DOCUMENT_KEY: 404,
    ss.BAD_REQUEST: 400, ss.KEY_EXISTS: 400, ss.DOCUMENT_KEY_EXISTS: 400,
}
SET_MANAGED_ON_CHAIN = ("the key server set is managed on chain: submit SecretStore add_key_server / remove_key_server "
                        "(the key servers then migrate every key to the new set themselves)")
# (path prefix, arguments after it, method) -> the operation, as the audit log names it
ROUTES = {
    ("shadow", 3, "POST"): "server_key_generation",
    ("shadow", 4, "POST"): "document_key_store",
    ("", 3, "POST"): "document_key_generation",
    ("server", 2, "GET"): "server_key_retrieval",
    ("", 2, "GET"): "document_key_retrieval",
    ("shadow", 2, "GET"): "document_key_shadow_retrieval",
    ("schnorr", 3, "GET"): "schnorr_signing",
    ("ecdsa", 3, "GET"): "ecdsa_signing",
}
PREFIXES = ("shadow", "schnorr", "ecdsa", "server")


class BadRequest(Exception):
    """The request cannot be parsed; 400 with this message."""


@dataclass(frozen=True)
class Cors:
    """Which cross-origin callers may use the API: None = none (Parity's default), "*" = any, or a list of origins.
    A request without Origin (not from a browser) or from the API's own host is always served."""

    allowed: tuple[str, ...] | None = None
    any: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "Cors":
        if text is None or text.strip().lower() in ("", "none"):
            return cls()
        if text.strip().lower() in ("*", "all"):
            return cls(any=True)
        origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
        for origin in origins:
            if not re.fullmatch(r"(https?://[^/\s]+|null)", origin):
                raise ValueError(f"--http-cors: {origin!r} is not an origin (scheme://host[:port]), '*' or 'none'")
        return cls(allowed=origins)

    def check(self, request: web.Request) -> str | None:
        """The Access-Control-Allow-Origin value to send (None: no header); raises BadRequest for a refused Origin."""
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        host = request.headers.get("Host")
        if host is not None and re.sub(r"^https?://", "", origin) == host:
            return None  # same origin
        if self.any:
            return "*" if origin == "null" else origin
        if self.allowed is not None and origin.rstrip("/") in self.allowed:
            return origin
        raise BadRequest("request with unauthorized Origin header")


def parse_key_id(text: str) -> ServerKeyId:
    try:
        return ServerKeyId(parse_hex(text, "key id", 32))
    except CryptoError as exc:
        raise BadRequest(str(exc)) from None


def parse_request_signature(text: str, key_id: ServerKeyId) -> tuple[str, Public]:
    """{sig}: 65 bytes r ‖ s ‖ v with v in {0, 1} or {27, 28}; returns it normalized (v in {0, 1}) and the requester."""
    try:
        raw = parse_hex(text, "signature", 65)
    except CryptoError as exc:
        raise BadRequest(str(exc)) from None
    if raw[64] not in (0, 1, 27, 28):
        raise BadRequest("signature: v must be 0, 1, 27 or 28")
    normalized = raw[:64] + bytes([raw[64] % 27])
    try:
        requester = ecdsa_recover(normalized, bytes(key_id))
    except CryptoError:
        raise BadRequest("signature: not a valid signature of the key id") from None
    return "0x" + normalized.hex(), requester


def parse_threshold_text(text: str) -> int:
    if not text.isdigit() or len(text) > 3:
        raise BadRequest("threshold: expected a non-negative integer")
    return int(text)


def check_threshold(threshold: int, servers: int) -> int:
    if threshold + 1 > servers:
        raise BadRequest(f"threshold: {threshold} needs {threshold + 1} key servers, the set has {servers}")
    return threshold


def parse_threshold(text: str, servers: int) -> int:
    return check_threshold(parse_threshold_text(text), servers)


def parse_point(text: str, what: str) -> Public:
    try:
        return Public.from_hex(text, what)
    except CryptoError as exc:
        raise BadRequest(str(exc)) from None


def parse_message_hash(text: str) -> bytes:
    try:
        return parse_hex(text, "message hash", 32)
    except CryptoError as exc:
        raise BadRequest(str(exc)) from None


@dataclass(frozen=True)
class Call:
    """A request parsed completely: what it asks, of which key, by whom, with its arguments checked."""

    operation: str
    key_id: ServerKeyId
    signature: str  # {sig}, normalized
    requester: Public
    address: Address  # the requester's
    threshold: int | None = None
    common_point: Public | None = None
    encrypted_point: Public | None = None
    message_hash: bytes | None = None


def parse_call(method: str, raw_path: str) -> Call:
    """The request a method and path make, or BadRequest; no I/O (the route is matched before the signature is
    recovered, so garbage costs the least)."""
    path = unquote(raw_path).lstrip("/").split("/")
    if path[0] == "admin":
        if method == "POST" and len(path) == 4 and path[1] == "servers_set_change":
            raise BadRequest(SET_MANAGED_ON_CHAIN)
        raise BadRequest("failed to parse request")
    prefix = path[0] if path[0] in PREFIXES else ""
    args = path[1:] if prefix else path
    operation = ROUTES.get((prefix, len(args), method))
    if operation is None or not args[0] or not args[1]:
        raise BadRequest("failed to parse request")
    extra: dict = {}
    if operation in ("server_key_generation", "document_key_generation"):
        extra["threshold"] = parse_threshold_text(args[2])
    elif operation == "document_key_store":
        extra["common_point"] = parse_point(args[2], "common point")
        extra["encrypted_point"] = parse_point(args[3], "encrypted point")
    elif prefix in ("schnorr", "ecdsa"):
        extra["message_hash"] = parse_message_hash(args[2])
    key_id = parse_key_id(args[0])
    signature, requester = parse_request_signature(args[1], key_id)
    return Call(operation, key_id, signature, requester, requester.address(), **extra)


def json_response(value: object, status: int = 200, origin: str | None = None) -> web.Response:
    response = web.Response(status=status, body=json.dumps(value).encode(),
                            content_type="application/json", charset="utf-8")
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


@dataclass
class _Answered:
    """Whether the requester was already answered with the deadline error (the session's line then says 504)."""

    timed_out: bool = False


class HttpApi:
    """The HTTP front of one key server. It needs only the session core, the chain ACL check and the current key
    server set (so it stays independent of how the chain service reads the chain)."""

    def __init__(self, core: KeyServerCore, check_access: AccessChecker, current_set: Callable[[], list[Address]],
                 cors: Cors | None = None, migrating: Callable[[], bool] = lambda: False,
                 limits: HttpLimits | None = None, audit: AuditLog | None = None) -> None:
        self.core = core
        self.check_access = check_access
        self.current_set = current_set
        self.cors = cors or Cors()
        self.migrating = migrating
        self.limits = limits or HttpLimits()
        self.admission = Admission(self.limits)
        self.audit = audit
        self._running: set[asyncio.Task] = set()  # admitted requests' work (past its deadline too)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_route("*", "/{path:.*}", self.serve)
        return app

    async def serve(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        origin = None
        try:
            origin = self.cors.check(request)
            if request.method == "OPTIONS":  # CORS preflight of an allowed origin
                response = web.Response(status=200)
                if origin is not None:
                    response.headers.update({"Access-Control-Allow-Origin": origin,
                                             "Access-Control-Allow-Methods": "GET, POST",
                                             "Access-Control-Allow-Headers": "Content-Type"})
                return response
            call = parse_call(request.method, request.rel_url.raw_path)
        except BadRequest as exc:
            return json_response(str(exc), 400, origin)
        try:
            self.admission.admit(call.address)
        except TooManyRequests as exc:
            self._audit(call, "too_many_requests", 429, started)
            response = json_response(str(exc), 429, origin)
            response.headers["Retry-After"] = "1"
            return response
        answered = _Answered()
        work = asyncio.create_task(self._run(call, started, answered))
        self._running.add(work)
        work.add_done_callback(self._running.discard)
        try:
            async with asyncio.timeout(self.limits.timeout):
                status, body = await asyncio.shield(work)
        except TimeoutError:
            if work.done():
                status, body = work.result()
            else:  # the session runs on to its end (and keeps its place in the limits): see limits.py
                answered.timed_out = True
                status, body = 504, (f"deadline: the request did not complete within {self.limits.timeout:g} s; its "
                                     "session may still complete: try again later")
        if status == 200 and body is None:
            response = web.Response(status=200)
            if origin is not None:
                response.headers["Access-Control-Allow-Origin"] = origin
            return response
        return json_response(body, status, origin)

    async def _run(self, call: Call, started: float, answered: _Answered) -> tuple[int, object]:
        """The admitted request's work to its end: (status, JSON body); releases its place and writes its line."""
        outcome, status, body = "internal_error", 500, "internal error"
        try:
            body = await self._execute(call)
            outcome, status = "ok", 200
        except BadRequest as exc:
            outcome, status, body = "bad_request", 400, str(exc)
        except SessionError as exc:
            outcome, status, body = exc.code, STATUS.get(exc.code, 500), str(exc)
            log.info("http request failed", extra={"operation": call.operation, "status": status, "error": str(exc)})
        except ChainError:  # the node is down or restarting: the ACL cannot be read, so nothing is served
            outcome, body = "chain_unavailable", "the chain is unavailable; try again"
            log.info("http request failed: chain unavailable", extra={"operation": call.operation})
        except Exception as exc:  # never a traceback (or anything it might hold) in an answer
            log.warning("http request failed unexpectedly", extra={"error": type(exc).__name__})
        finally:
            self.admission.release(call.address)
            self._audit(call, outcome, 504 if answered.timed_out else status, started)
        return status, body

    def _audit(self, call: Call, outcome: str, status: int, started: float) -> None:
        if self.audit is not None:
            self.audit.record("http", call.operation, call.key_id, call.address, True, outcome,
                              time.perf_counter() - started, status)

    async def _execute(self, call: Call) -> object:
        core, key_id, operation = self.core, call.key_id, call.operation
        if operation in ("server_key_generation", "document_key_generation"):
            if core.storage.get(key_id) is not None:
                raise SessionError(f"server key {key_id.hex()} already exists", ss.KEY_EXISTS)
            servers = self._servers()
            assert call.threshold is not None
            threshold = check_threshold(call.threshold, len(servers))
            self._not_migrating()
            if operation == "document_key_generation":  # the core checks the requester first
                encrypted = await core.generate_document_key(key_id, call.signature, threshold, servers)
                return "0x" + encrypted.hex()
            await self._check_access(call)  # here, so a refused requester costs no cluster work
            public = await core.generate_server_key(key_id, call.address, threshold, servers,
                                                    request_signature=call.signature)
            return public.hex()
        if operation == "document_key_store":
            share = self._share(key_id)
            if share.common_point is not None:
                raise SessionError(f"a document key is already stored for {key_id.hex()}", ss.DOCUMENT_KEY_EXISTS)
            if call.address != share.author:
                raise SessionError("only the key's author may store its document key", ss.ACCESS_DENIED)
            self._not_migrating()
            assert call.common_point is not None and call.encrypted_point is not None
            await core.store_document_key(key_id, call.signature, call.common_point, call.encrypted_point)
            return None
        if operation == "server_key_retrieval":
            share = self._share(key_id)
            await self._check_access(call)
            return share.public.hex()
        if operation in ("document_key_retrieval", "document_key_shadow_retrieval"):
            share = self._share(key_id)
            if share.common_point is None:
                raise SessionError(f"no document key stored for {key_id.hex()}", ss.UNKNOWN_DOCUMENT_KEY)
            if operation == "document_key_retrieval":
                encrypted = await core.retrieve_document_key(key_id, call.signature, self._servers())
                return "0x" + encrypted.hex()
            return await core.retrieve_document_key_shadow_direct(key_id, call.signature, self._servers())
        kind = operation.removesuffix("_signing")
        assert call.message_hash is not None
        raw = await core.sign(kind, key_id, call.signature, call.message_hash, self._servers())
        return "0x" + ecies.encrypt(call.requester, raw).hex()

    def _share(self, key_id: ServerKeyId) -> KeyShare:
        share = self.core.storage.get(key_id)
        if share is None:
            raise SessionError(f"server key {key_id.hex()} is not known", ss.UNKNOWN_KEY)
        return share

    async def _check_access(self, call: Call) -> None:
        if not await self.check_access(call.key_id, call.address):
            raise SessionError(f"requester {call.address.hex()} may not access key {call.key_id.hex()}",
                               ss.ACCESS_DENIED)

    def _servers(self) -> list[Address]:
        servers = list(self.current_set())
        if not servers:
            raise SessionError("this key server has not read the key server set from the chain yet")
        return servers

    def _not_migrating(self) -> None:
        # keys made or changed now could miss the move to the new set
        if self.migrating():
            raise SessionError("a key server set migration is in progress; try again when it completes",
                               ss.CONSENSUS_UNREACHABLE)


async def start_http_api(api: HttpApi, host: str, port: int) -> web.AppRunner:
    """Listen on host:port; the caller cleans the runner up."""
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
