"""Extrinsic format v4: decoding, the signing payload, and signature verification (sr25519, ed25519, ecdsa).

Layout of a signed extrinsic: compact length ++ 0x84 ++ MultiAddress ++ MultiSignature ++ extra ++ call, where extra is
(Era, Compact nonce, Compact tip, metadata-hash mode) — the signed extensions of runtime.metadata in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import coincurve
import nacl.exceptions
import nacl.signing
import sr25519

from ..codec.hashing import blake2_256
from ..codec.scale import U32, CodecError, Reader, decode_compact, encode_compact

SIGNED = 0x84
UNSIGNED = 0x04
MAX_EXTRINSIC_SIZE = 4 * 1024 * 1024


class ExtrinsicError(ValueError):
    """Refused before validation. `code` follows Substrate's RPC errors (1010 invalid, 1011 unknown)."""

    def __init__(self, message: str, code: int = 1010) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Era:
    """Transaction mortality: immortal (period 0) or valid for `period` blocks from its birth block."""

    period: int = 0
    phase: int = 0

    @property
    def immortal(self) -> bool:
        return self.period == 0

    @classmethod
    def decode_from(cls, r: Reader) -> "Era":
        first = r.byte()
        if first == 0:
            return cls()
        encoded = first | r.byte() << 8
        period = 2 << (encoded % (1 << 4))
        quantize = max(period >> 12, 1)
        phase = (encoded >> 4) * quantize
        if period < 4 or phase >= period:
            raise CodecError("invalid mortal era")
        return cls(period, phase)

    def encode(self) -> bytes:
        if self.immortal:
            return b"\x00"
        quantize = max(self.period >> 12, 1)
        trailing = max(1, min(15, (self.period.bit_length() - 1) - 1))
        encoded = trailing | ((self.phase // quantize) << 4)
        return encoded.to_bytes(2, "little")

    def birth(self, current: int) -> int:
        if self.immortal:
            return 0
        return (max(current, self.phase) - self.phase) // self.period * self.period + self.phase

    def death(self, current: int) -> int:
        return 2**64 if self.immortal else self.birth(current) + self.period


@dataclass(frozen=True)
class SignedExtrinsic:
    encoded: bytes          # the full extrinsic, length prefix included
    signer: bytes           # AccountId32
    signature_kind: int     # 0 ed25519, 1 sr25519, 2 ecdsa
    signature: bytes
    era: Era
    nonce: int
    tip: int
    metadata_hash_mode: int
    call: bytes

    @cached_property  # asked for by the pool, the block, the database and the watchers: hash once
    def hash(self) -> bytes:
        return blake2_256(self.encoded)

    @property
    def extra(self) -> bytes:
        return self.era.encode() + encode_compact(self.nonce) + encode_compact(self.tip) + bytes([self.metadata_hash_mode])

    def signing_payload(self, spec_version: int, transaction_version: int, genesis_hash: bytes, birth_hash: bytes) -> bytes:
        payload = (self.call + self.extra + U32.encode(spec_version) + U32.encode(transaction_version) + genesis_hash
                   + birth_hash + b"\x00")  # CheckMetadataHash: no hash
        return blake2_256(payload) if len(payload) > 256 else payload

    def verify(self, payload: bytes) -> bool:
        if self.signature_kind == 1:
            try:
                return sr25519.verify(self.signature, payload, self.signer)
            except ValueError:  # bytes that are no schnorrkel signature at all: a bad signature, not bad params
                return False
        if self.signature_kind == 0:
            try:
                nacl.signing.VerifyKey(self.signer).verify(payload, self.signature)
                return True
            except (nacl.exceptions.BadSignatureError, ValueError):
                return False
        try:
            recovered = coincurve.PublicKey.from_signature_and_message(self.signature, blake2_256(payload), hasher=None)
        except ValueError:
            return False
        return blake2_256(recovered.format(compressed=True)) == self.signer


def decode(encoded: bytes) -> SignedExtrinsic:
    """Decode a signed extrinsic; any malformation is an ExtrinsicError (never an unexpected exception)."""
    if len(encoded) > MAX_EXTRINSIC_SIZE:
        raise ExtrinsicError(f"extrinsic of {len(encoded)} bytes exceeds the limit of {MAX_EXTRINSIC_SIZE}")
    r = Reader(encoded)
    try:
        length = decode_compact(r)
        if length != r.remaining:
            raise ExtrinsicError(f"length prefix says {length} bytes but {r.remaining} follow")
        version = r.byte()
        if version == UNSIGNED:
            raise ExtrinsicError("unsigned transactions are not accepted: this chain has no unsigned calls")
        if version != SIGNED:
            raise ExtrinsicError(f"unsupported extrinsic version byte {version:#04x} (expected 0x84)")
        if r.byte() != 0:
            raise ExtrinsicError("only MultiAddress::Id signers are supported")
        signer = r.read(32)
        kind = r.byte()
        if kind not in (0, 1, 2):
            raise ExtrinsicError(f"unknown signature kind {kind}")
        signature = r.read(65 if kind == 2 else 64)
        era = Era.decode_from(r)
        nonce = decode_compact(r)
        tip = decode_compact(r)
        if nonce >= 1 << 32 or tip >= 1 << 128:
            raise ExtrinsicError("nonce or tip out of range")
        mode = r.byte()
        if mode != 0:
            raise ExtrinsicError("CheckMetadataHash mode must be Disabled (0)")
        call = r.read(r.remaining)
    except CodecError as exc:
        raise ExtrinsicError(f"cannot decode extrinsic: {exc}") from None
    if not call:
        raise ExtrinsicError("extrinsic carries no call")
    return SignedExtrinsic(encoded, signer, kind, signature, era, nonce, tip, mode, call)


def encode_signed(signer: bytes, signature_kind: int, signature: bytes, era: Era, nonce: int, tip: int,
                  call: bytes) -> bytes:
    """The inverse of `decode` (used by tests and benchmarks to build extrinsics without a client library)."""
    body = (bytes([SIGNED, 0]) + signer + bytes([signature_kind]) + signature + era.encode() + encode_compact(nonce)
            + encode_compact(tip) + b"\x00" + call)
    return encode_compact(len(body)) + body
