"""Typed secp256k1 values of the Secret Store, validated when they are made.

Everything that crosses a boundary (CLI flags, RPC answers, network frames) becomes one of these types first; code inside
can then trust its inputs. Points and scalars go through libsecp256k1 (coincurve).
"""

from __future__ import annotations

import secrets
from typing import ClassVar, TypeVar

import coincurve
from Crypto.Hash import keccak

# Order of the secp256k1 group and the field prime.
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F


class CryptoError(ValueError):
    """Base of every error about keys, points, signatures and ciphertexts."""


class InvalidHex(CryptoError):
    pass


class InvalidSecret(CryptoError):
    pass


class InvalidPublic(CryptoError):
    pass


class InvalidSignature(CryptoError):
    pass


class DecryptionError(CryptoError):
    pass


def keccak256(data: bytes) -> bytes:
    """Original Keccak-256 (Ethereum's), not SHA3-256."""
    return keccak.new(digest_bits=256, data=data).digest()


def parse_hex(text: str, name: str, length: int | None = None) -> bytes:
    """Hex with or without 0x; `name` (e.g. "--server-key") appears in the error."""
    if not isinstance(text, str):
        raise InvalidHex(f"{name}: expected a hex string")
    body = text.strip()
    if body[:2].lower() == "0x":
        body = body[2:]
    if len(body) % 2:
        raise InvalidHex(f"{name}: odd number of hex digits")
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise InvalidHex(f"{name}: not valid hex") from None
    if length is not None and len(raw) != length:
        raise InvalidHex(f"{name}: expected {length} bytes, got {len(raw)}")
    return raw


V = TypeVar("V", bound="FixedBytes")


class FixedBytes:
    """An immutable value of a fixed number of bytes."""

    LENGTH: ClassVar[int]
    ERROR: ClassVar[type[CryptoError]] = CryptoError
    __slots__ = ("_raw",)

    def __init__(self, raw: bytes | bytearray | memoryview) -> None:
        raw = bytes(raw)
        if len(raw) != self.LENGTH:
            raise self.ERROR(f"{type(self).__name__}: expected {self.LENGTH} bytes, got {len(raw)}")
        self._validate(raw)
        self._raw = raw

    def _validate(self, raw: bytes) -> None:
        pass

    @classmethod
    def from_hex(cls: type[V], text: str, name: str | None = None) -> V:
        raw = parse_hex(text, name or cls.__name__, cls.LENGTH)
        try:
            return cls(raw)
        except CryptoError as exc:
            if name:
                raise type(exc)(f"{name}: {exc}") from None
            raise

    def __bytes__(self) -> bytes:
        return self._raw

    def hex(self) -> str:
        return "0x" + self._raw.hex()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._raw == self._raw  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._raw))

    def __lt__(self, other: "FixedBytes") -> bool:
        return self._raw < other._raw

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()})"

    __str__ = hex


class Secret(FixedBytes):
    """A private scalar, 0 < s < n. Its value never appears in repr() or str()."""

    LENGTH = 32
    ERROR = InvalidSecret
    __slots__ = ()

    def _validate(self, raw: bytes) -> None:
        if not 0 < int.from_bytes(raw, "big") < N:
            raise InvalidSecret("secret scalar must be in the range 1..n-1")

    @classmethod
    def from_int(cls, value: int) -> "Secret":
        if not 0 < value < N:
            raise InvalidSecret("secret scalar must be in the range 1..n-1")
        return cls(value.to_bytes(32, "big"))

    @classmethod
    def random(cls) -> "Secret":
        return cls.from_int(secrets.randbelow(N - 1) + 1)

    def to_int(self) -> int:
        return int.from_bytes(self._raw, "big")

    def public(self) -> "Public":
        return Public.from_coincurve(coincurve.PrivateKey(self._raw).public_key)

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__


class Public(FixedBytes):
    """A curve point as 64 bytes X||Y (no 0x04 prefix); never the point at infinity."""

    LENGTH = 64
    ERROR = InvalidPublic
    __slots__ = ("_point",)

    def _validate(self, raw: bytes) -> None:
        try:
            point = coincurve.PublicKey(b"\x04" + raw)
        except ValueError:
            raise InvalidPublic("not a point on the secp256k1 curve") from None
        self._point = point

    @classmethod
    def from_coincurve(cls, point: coincurve.PublicKey) -> "Public":
        value = cls.__new__(cls)
        value._raw = point.format(compressed=False)[1:]
        value._point = point
        return value

    def to_coincurve(self) -> coincurve.PublicKey:
        return self._point

    @property
    def x(self) -> int:
        return int.from_bytes(self._raw[:32], "big")

    @property
    def y(self) -> int:
        return int.from_bytes(self._raw[32:], "big")

    def address(self) -> "Address":
        return Address(keccak256(self._raw)[12:])


class Address(FixedBytes):
    """H160: last 20 bytes of keccak256 of a public key. Used as EntityId and KeyServerId."""

    LENGTH = 20
    __slots__ = ()

    @classmethod
    def from_public(cls, public: Public) -> "Address":
        return public.address()


EntityId = Address
KeyServerId = Address


class ServerKeyId(FixedBytes):
    """H256 chosen by the client (often a document hash)."""

    LENGTH = 32
    __slots__ = ()


class Signature(FixedBytes):
    """Recoverable ECDSA signature r||s||v with v in {0, 1} (Parity's convention)."""

    LENGTH = 65
    ERROR = InvalidSignature
    __slots__ = ()

    def _validate(self, raw: bytes) -> None:
        r = int.from_bytes(raw[:32], "big")
        s = int.from_bytes(raw[32:64], "big")
        if raw[64] > 1 or not 0 < r < N or not 0 < s < N:
            raise InvalidSignature("malformed recoverable signature")

    @classmethod
    def sign(cls, secret: Secret, message_hash: bytes) -> "Signature":
        if len(message_hash) != 32:
            raise CryptoError("a signed message hash must be 32 bytes")
        return cls(coincurve.PrivateKey(bytes(secret)).sign_recoverable(message_hash, hasher=None))

    def recover(self, message_hash: bytes) -> Public:
        if len(message_hash) != 32:
            raise CryptoError("a signed message hash must be 32 bytes")
        try:
            point = coincurve.PublicKey.from_signature_and_message(self._raw, message_hash, hasher=None)
        except ValueError:
            raise InvalidSignature("signature does not recover to a public key") from None
        return Public.from_coincurve(point)

    def verify(self, public: Public, message_hash: bytes) -> bool:
        try:
            return self.recover(message_hash) == public
        except CryptoError:
            return False


class KeyPair:
    """A secret with its public key and address."""

    __slots__ = ("secret", "public", "_address")

    def __init__(self, secret: Secret) -> None:
        self.secret = secret
        self.public = secret.public()
        self._address = self.public.address()

    @classmethod
    def generate(cls) -> "KeyPair":
        return cls(Secret.random())

    @property
    def address(self) -> Address:
        return self._address  # asked for on every message a key server handles: hashed once

    def sign(self, message_hash: bytes) -> Signature:
        return Signature.sign(self.secret, message_hash)

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()})"
