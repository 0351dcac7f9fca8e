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
key exists / document key exists (and a refused Origin), 500 otherwise. Nothing secret goes into a message.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from ..chain.errors import ChainError
from ..crypto import Address, CryptoError, Public, ServerKeyId, ecies, parse_hex
from ..crypto.signing import ecdsa_recover
from . import sessions as ss
from .sessions import KeyServerCore, SessionError

log = logging.getLogger(__name__)

AccessChecker = Callable[[ServerKeyId, Address], Awaitable[bool]]

STATUS = {
    ss.ACCESS_DENIED: 403, ss.CONSENSUS_UNREACHABLE: 403,
    ss.UNKNOWN_KEY: 404, ss.UNKNOWN_DOCUMENT_KEY: 404,
    ss.BAD_REQUEST: 400, ss.KEY_EXISTS: 400, ss.DOCUMENT_KEY_EXISTS: 400,
}
SET_MANAGED_ON_CHAIN = ("the key server set is managed on chain: submit SecretStore add_key_server / remove_key_server "
                        "(the key servers then migrate every key to the new set themselves)")


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


def parse_threshold(text: str, servers: int) -> int:
    if not text.isdigit() or len(text) > 3:
        raise BadRequest("threshold: expected a non-negative integer")
    threshold = int(text)
    if threshold + 1 > servers:
        raise BadRequest(f"threshold: {threshold} needs {threshold + 1} key servers, the set has {servers}")
    return threshold


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


def json_response(value: object, status: int = 200, origin: str | None = None) -> web.Response:
    response = web.Response(status=status, body=json.dumps(value).encode(),
                            content_type="application/json", charset="utf-8")
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


class HttpApi:
    """The HTTP front of one key server. It needs only the session core, the chain ACL check and the current key
    server set (so it stays independent of how the chain service reads the chain)."""

    def __init__(self, core: KeyServerCore, check_access: AccessChecker, current_set: Callable[[], list[Address]],
                 cors: Cors | None = None, migrating: Callable[[], bool] = lambda: False) -> None:
        self.core = core
        self.check_access = check_access
        self.current_set = current_set
        self.cors = cors or Cors()
        self.migrating = migrating

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_route("*", "/{path:.*}", self.serve)
        return app

    async def serve(self, request: web.Request) -> web.StreamResponse:
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
            result = await self.dispatch(request)
            if result is None:
                response = web.Response(status=200)
                if origin is not None:
                    response.headers["Access-Control-Allow-Origin"] = origin
                return response
            return json_response(result, origin=origin)
        except BadRequest as exc:
            return json_response(str(exc), 400, origin)
        except SessionError as exc:
            status = STATUS.get(exc.code, 500)
            log.info("http request failed", extra={"method": request.method, "status": status, "error": str(exc)})
            return json_response(str(exc), status, origin)
        except ChainError:  # the node is down or restarting: the ACL cannot be read, so nothing is served
            log.info("http request failed: chain unavailable", extra={"method": request.method})
            return json_response("the chain is unavailable; try again", 500, origin)
        except Exception as exc:  # never a traceback (or anything it might hold) in an answer
            log.warning("http request failed unexpectedly", extra={"error": type(exc).__name__})
            return json_response("internal error", 500, origin)

    def _servers(self) -> list[Address]:
        servers = list(self.current_set())
        if not servers:
            raise SessionError("this key server has not read the key server set from the chain yet")
        return servers

    async def dispatch(self, request: web.Request) -> object:
        path = unquote(request.rel_url.raw_path).lstrip("/").split("/")
        method = request.method
        if path[0] == "admin":
            if method == "POST" and len(path) == 4 and path[1] == "servers_set_change":
                raise BadRequest(SET_MANAGED_ON_CHAIN)
            raise BadRequest("failed to parse request")
        prefix = path[0] if path[0] in ("shadow", "schnorr", "ecdsa", "server") else ""
        args = path[1:] if prefix else path
        if len(args) < 2 or not args[0] or not args[1]:
            raise BadRequest("failed to parse request")
        key_id = parse_key_id(args[0])
        signature, requester = parse_request_signature(args[1], key_id)
        core = self.core
        route = (prefix, len(args), method)
        if route == ("shadow", 3, "POST"):
            self._not_migrating()
            threshold = parse_threshold(args[2], len(self._servers()))
            public = await core.generate_server_key(key_id, requester.address(), threshold, self._servers(),
                                                    request_signature=signature)
            return public.hex()
        if route == ("shadow", 4, "POST"):
            self._not_migrating()
            await core.store_document_key(key_id, signature, parse_point(args[2], "common point"),
                                          parse_point(args[3], "encrypted point"))
            return None
        if route == ("", 3, "POST"):
            self._not_migrating()
            threshold = parse_threshold(args[2], len(self._servers()))
            encrypted = await core.generate_document_key(key_id, signature, threshold, self._servers())
            return "0x" + encrypted.hex()
        if route == ("server", 2, "GET"):
            share = core.storage.get(key_id)
            if not await self.check_access(key_id, requester.address()):
                raise SessionError(f"requester {requester.address().hex()} may not access key {key_id.hex()}",
                                   ss.ACCESS_DENIED)
            if share is None:
                raise SessionError(f"server key {key_id.hex()} is not known", ss.UNKNOWN_KEY)
            return share.public.hex()
        if route == ("", 2, "GET"):
            encrypted = await core.retrieve_document_key(key_id, signature, self._servers())
            return "0x" + encrypted.hex()
        if route == ("shadow", 2, "GET"):
            return await core.retrieve_document_key_shadow_direct(key_id, signature, self._servers())
        if route in (("schnorr", 3, "GET"), ("ecdsa", 3, "GET")):
            raw = await core.sign(prefix, key_id, signature, parse_message_hash(args[2]), self._servers())
            return "0x" + ecies.encrypt(requester, raw).hex()
        raise BadRequest("failed to parse request")

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
