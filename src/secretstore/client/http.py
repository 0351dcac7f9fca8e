"""Client of Parity's key server HTTP API (any key server of the set; it becomes the session master).

    api = SecretStoreHttpClient("http://127.0.0.1:8082")
    public = api.generate_server_key(key_id, requester_secret, threshold=1)   # the key must be claimed on chain
    document_key = api.generate_document_key(key_id, requester_secret, threshold=1)
    c, s = api.sign_schnorr(key_id, requester_secret, message_hash)
    signature = api.sign_ecdsa(key_id, requester_secret, message_hash)        # 65 bytes r ‖ s ‖ v
    assert verify_ecdsa(public, message_hash, signature)

The requester's secret never leaves this process: it signs the key id ({sig}) and decrypts the ECIES-encrypted answers.
`AsyncSecretStoreHttpClient` has the same methods as coroutines.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterable

import coincurve

from ..crypto import Public, Secret, ServerKeyId, ecies
from ..crypto import math as m
from ..crypto.document import decrypt_document_key, recover_document_key
from ..crypto.signing import ecdsa_recover, ecdsa_verify, schnorr_from_bytes

DEFAULT_TIMEOUT = 60.0


class HttpApiError(Exception):
    """The key server answered with an error status; `message` is its JSON string."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class AccessDenied(HttpApiError):
    """403: the chain ACL refused the requester, or not enough key servers could take part."""


class NotFound(HttpApiError):
    """404: unknown server key or no document key."""


class BadRequest(HttpApiError):
    """400: unparsable request, key already generated, document key already stored, refused Origin."""


def _error(status: int, message: str) -> HttpApiError:
    return {403: AccessDenied, 404: NotFound, 400: BadRequest}.get(status, HttpApiError)(status, message)


def request_signature(secret: Secret, key_id: ServerKeyId) -> bytes:
    """{sig}: the requester's recoverable signature of the key id used directly as the message hash (v in {0, 1})."""
    return coincurve.PrivateKey(bytes(secret)).sign_recoverable(bytes(key_id), hasher=None)


def verify_schnorr(public: Public, message_hash: bytes, signature: tuple[int, int] | bytes) -> bool:
    """Parity's Schnorr: R' = s·G + c·Y, valid iff keccak256(message_hash ‖ R'.x) mod n == c."""
    if isinstance(signature, (bytes, bytearray)):
        try:
            signature = schnorr_from_bytes(bytes(signature))
        except ValueError:
            return False
    return m.schnorr_verify(public, message_hash, signature)


def verify_ecdsa(public: Public, message_hash: bytes, signature: bytes) -> bool:
    """A 65-byte r ‖ s ‖ v signature of the raw 32-byte hash verifies under `public` and recovers it."""
    try:
        return ecdsa_verify(public, message_hash, signature) and ecdsa_recover(signature, message_hash) == public
    except ValueError:
        return False


@dataclass(frozen=True)
class HttpDocumentKeyShadow:
    """GET /shadow/{key_id}/{sig}: decrypt with the requester's secret (`document_key`)."""

    decrypted_secret: Public
    common_point: Public
    decrypt_shadows: tuple[bytes, ...]

    def document_key(self, requester_secret: Secret) -> Public:
        return recover_document_key(self.common_point, self.decrypted_secret, self.decrypt_shadows, requester_secret)


# ------------------------------------------------------------------------------------ requests and answers (shared)


def _path(*parts: object) -> str:
    return "/" + "/".join(p.hex()[2:] if isinstance(p, (Public, ServerKeyId)) else
                          p.hex() if isinstance(p, (bytes, bytearray)) else str(p) for p in parts)


def _hex_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise HttpApiError(200, f"malformed answer: {what} is not 0x-hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise HttpApiError(200, f"malformed answer: {what} is not 0x-hex") from None


class _Calls:
    """Each endpoint as (method, path) plus how to read its answer; shared by the sync and async clients."""

    @staticmethod
    def generate_server_key(key_id: ServerKeyId, secret: Secret, threshold: int):
        return "POST", _path("shadow", key_id, request_signature(secret, key_id), threshold), \
            lambda body: Public(_hex_bytes(body, "server key"))

    @staticmethod
    def store_document_key(key_id: ServerKeyId, secret: Secret, common_point: Public, encrypted_point: Public):
        return "POST", _path("shadow", key_id, request_signature(secret, key_id), common_point, encrypted_point), \
            lambda body: None

    @staticmethod
    def generate_document_key(key_id: ServerKeyId, secret: Secret, threshold: int):
        return "POST", _path(key_id, request_signature(secret, key_id), threshold), \
            lambda body: decrypt_document_key(_hex_bytes(body, "encrypted document key"), secret)

    @staticmethod
    def retrieve_server_key(key_id: ServerKeyId, secret: Secret):
        return "GET", _path("server", key_id, request_signature(secret, key_id)), \
            lambda body: Public(_hex_bytes(body, "server key"))

    @staticmethod
    def retrieve_document_key(key_id: ServerKeyId, secret: Secret):
        return "GET", _path(key_id, request_signature(secret, key_id)), \
            lambda body: decrypt_document_key(_hex_bytes(body, "encrypted document key"), secret)

    @staticmethod
    def retrieve_document_key_shadow(key_id: ServerKeyId, secret: Secret):
        def read(body: Any) -> HttpDocumentKeyShadow:
            if not isinstance(body, dict) or not isinstance(body.get("decrypt_shadows"), list):
                raise HttpApiError(200, "malformed document key shadow")
            return HttpDocumentKeyShadow(Public(_hex_bytes(body.get("decrypted_secret"), "decrypted_secret")),
                                         Public(_hex_bytes(body.get("common_point"), "common_point")),
                                         tuple(_hex_bytes(s, "decrypt shadow") for s in body["decrypt_shadows"]))
        return "GET", _path("shadow", key_id, request_signature(secret, key_id)), read

    @staticmethod
    def sign_schnorr(key_id: ServerKeyId, secret: Secret, message_hash: bytes):
        _check_hash(message_hash)
        return "GET", _path("schnorr", key_id, request_signature(secret, key_id), message_hash), \
            lambda body: schnorr_from_bytes(ecies.decrypt(secret, _hex_bytes(body, "signature")))

    @staticmethod
    def sign_ecdsa(key_id: ServerKeyId, secret: Secret, message_hash: bytes):
        def read(body: Any) -> bytes:
            raw = ecies.decrypt(secret, _hex_bytes(body, "signature"))
            if len(raw) != 65:
                raise HttpApiError(200, f"an ECDSA signature is 65 bytes, got {len(raw)}")
            return raw
        _check_hash(message_hash)
        return "GET", _path("ecdsa", key_id, request_signature(secret, key_id), message_hash), read

    @staticmethod
    def servers_set_change(old_set_signature: bytes, new_set_signature: bytes, new_set: Iterable[Public]):
        return "POST", _path("admin", "servers_set_change", old_set_signature, new_set_signature), lambda body: None


def _check_hash(message_hash: bytes) -> None:
    if len(message_hash) != 32:
        raise ValueError("the message hash must be 32 bytes")


ENDPOINTS = [name for name in vars(_Calls) if not name.startswith("_")]


def _body_of(name: str, args: tuple) -> bytes | None:
    if name == "servers_set_change":
        return json.dumps([p.hex() for p in args[2]]).encode()
    return None


def _decode(status: int, text: str) -> Any:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        value = text
    if status != 200:
        raise _error(status, value if isinstance(value, str) else text)
    return value


class SecretStoreHttpClient:
    """Blocking client (standard library HTTP)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, origin: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.origin = origin

    def _call(self, name: str, *args: Any, raw: bool = False) -> Any:
        method, path, read = getattr(_Calls, name)(*args)
        headers = {"Content-Type": "application/json"}
        if self.origin:
            headers["Origin"] = self.origin
        request = urllib.request.Request(self.url + path, data=_body_of(name, args), method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode(errors="replace")
        except urllib.error.URLError as exc:
            raise ConnectionError(f"cannot reach the key server at {self.url}: {exc.reason}") from None
        value = _decode(status, text)
        return value if raw else read(value)

    def call_raw(self, name: str, *args: Any) -> Any:
        """An endpoint's JSON answer as sent (e.g. the ECIES-encrypted document key, for the offline commands)."""
        return self._call(name, *args, raw=True)

    def generate_server_key(self, key_id: ServerKeyId, requester: Secret, threshold: int) -> Public:
        return self._call("generate_server_key", key_id, requester, threshold)

    def store_document_key(self, key_id: ServerKeyId, requester: Secret, common_point: Public,
                           encrypted_point: Public) -> None:
        return self._call("store_document_key", key_id, requester, common_point, encrypted_point)

    def generate_document_key(self, key_id: ServerKeyId, requester: Secret, threshold: int) -> Public:
        """Server key and document key generated by the key servers; returns the document key (decrypted here)."""
        return self._call("generate_document_key", key_id, requester, threshold)

    def retrieve_server_key(self, key_id: ServerKeyId, requester: Secret) -> Public:
        return self._call("retrieve_server_key", key_id, requester)

    def retrieve_document_key(self, key_id: ServerKeyId, requester: Secret) -> Public:
        return self._call("retrieve_document_key", key_id, requester)

    def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Secret) -> HttpDocumentKeyShadow:
        return self._call("retrieve_document_key_shadow", key_id, requester)

    def sign_schnorr(self, key_id: ServerKeyId, requester: Secret, message_hash: bytes) -> tuple[int, int]:
        """(c, s) of Parity's Schnorr variant under the server key."""
        return self._call("sign_schnorr", key_id, requester, message_hash)

    def sign_ecdsa(self, key_id: ServerKeyId, requester: Secret, message_hash: bytes) -> bytes:
        """r ‖ s ‖ v (v in 0..3) of the raw hash under the server key."""
        return self._call("sign_ecdsa", key_id, requester, message_hash)

    def servers_set_change(self, old_set_signature: bytes, new_set_signature: bytes,
                           new_set: Iterable[Public]) -> None:
        """Always refused by our key servers (the chain manages the set); kept for API completeness."""
        return self._call("servers_set_change", old_set_signature, new_set_signature, list(new_set))


class AsyncSecretStoreHttpClient:
    """The same endpoints over aiohttp; use `async with`."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, origin: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.origin = origin
        self._session = None

    async def __aenter__(self) -> "AsyncSecretStoreHttpClient":
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, name: str, *args: Any) -> Any:
        if self._session is None:
            raise RuntimeError("use `async with AsyncSecretStoreHttpClient(...)`")
        method, path, read = getattr(_Calls, name)(*args)
        headers = {"Content-Type": "application/json"}
        if self.origin:
            headers["Origin"] = self.origin
        async with self._session.request(method, self.url + path, data=_body_of(name, args),
                                         headers=headers) as response:
            return read(_decode(response.status, await response.text()))

    async def generate_server_key(self, key_id: ServerKeyId, requester: Secret, threshold: int) -> Public:
        return await self._call("generate_server_key", key_id, requester, threshold)

    async def store_document_key(self, key_id: ServerKeyId, requester: Secret, common_point: Public,
                                 encrypted_point: Public) -> None:
        return await self._call("store_document_key", key_id, requester, common_point, encrypted_point)

    async def generate_document_key(self, key_id: ServerKeyId, requester: Secret, threshold: int) -> Public:
        return await self._call("generate_document_key", key_id, requester, threshold)

    async def retrieve_server_key(self, key_id: ServerKeyId, requester: Secret) -> Public:
        return await self._call("retrieve_server_key", key_id, requester)

    async def retrieve_document_key(self, key_id: ServerKeyId, requester: Secret) -> Public:
        return await self._call("retrieve_document_key", key_id, requester)

    async def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Secret) -> HttpDocumentKeyShadow:
        return await self._call("retrieve_document_key_shadow", key_id, requester)

    async def sign_schnorr(self, key_id: ServerKeyId, requester: Secret, message_hash: bytes) -> tuple[int, int]:
        return await self._call("sign_schnorr", key_id, requester, message_hash)

    async def sign_ecdsa(self, key_id: ServerKeyId, requester: Secret, message_hash: bytes) -> bytes:
        return await self._call("sign_ecdsa", key_id, requester, message_hash)

    async def servers_set_change(self, old_set_signature: bytes, new_set_signature: bytes,
                                 new_set: Iterable[Public]) -> None:
        return await self._call("servers_set_change", old_set_signature, new_set_signature, list(new_set))
