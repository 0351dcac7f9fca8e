"""A key share as the key server keeps it (`KeyShare`), the errors of the share store, and how a share's row is
sealed and opened (`RowSealer`).

Every secret column of a row (the key version's secret share, the document key's common and encrypted points) is an
AEAD box (`crypto.sealing`) under a key derived from the key server's own secret. Its associated data names the
column, the key id and the key version; the secret share's also covers the row's public columns (author, threshold,
server key public, holders). So a box moved to another row, version or column does not open, and a changed byte
anywhere in a row is found when the row is read, never turned into a wrong result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..crypto import Address, CryptoError, Public, Secret, ServerKeyId
from ..crypto.sealing import SealError, Sealer

SECRET_COLUMNS = ("secret_share", "common_point", "encrypted_point")


class KeyStorageError(Exception):
    pass


class KeyAlreadyExists(KeyStorageError):
    pass


class DocumentKeyAlreadyStored(KeyStorageError):
    pass


class ShareIntegrityError(KeyStorageError):
    """A row of one key did not open: the file was altered or damaged, or the row comes from another server."""


class WrongStorageSecret(KeyStorageError):
    pass


@dataclass(frozen=True)
class KeyShare:
    key_id: ServerKeyId
    author: Address
    threshold: int
    public: Public
    version: bytes  # identifies the sharing (the generation session), for version negotiation
    holders: tuple[Address, ...]
    secret_share: int
    common_point: Public | None = None
    encrypted_point: Public | None = None

    def __repr__(self) -> str:  # the share itself stays out of logs
        return f"KeyShare({self.key_id.hex()}, t={self.threshold}, holders={len(self.holders)})"


def holders_text(holders: tuple[Address, ...]) -> str:
    return json.dumps([h.hex() for h in holders])


def associated_data(column: str, key_id: bytes, version: bytes, public_part: bytes = b"") -> bytes:
    """What a box is bound to: its column, key and key version (the key id has a fixed length, the column name no
    zero byte), and for the secret share a digest of the row's public columns."""
    return column.encode() + b"\0" + key_id + version + public_part


def public_digest(author: bytes, threshold: int, public: bytes, holders: str) -> bytes:
    # BLAKE2b: read on every share's first read, where keccak (12 µs here) would cost more than the AEAD itself
    return hashlib.blake2b(author + threshold.to_bytes(4, "big") + public + holders.encode(), digest_size=32).digest()


class RowSealer:
    """Seals and opens the secret columns of share rows under one key server's storage key."""

    def __init__(self, secret: Secret) -> None:
        self.sealer = Sealer(secret)

    def seal(self, column: str, key_id: bytes, version: bytes, value: bytes | None,
             public_part: bytes = b"") -> bytes | None:
        if value is None:
            return None
        return self.sealer.seal(value, associated_data(column, key_id, version, public_part))

    def open(self, column: str, key_id: bytes, version: bytes, box: bytes | None, public_part: bytes = b"") -> bytes | None:
        if box is None:
            return None
        try:
            return self.sealer.open(box, associated_data(column, key_id, version, public_part))
        except SealError:
            raise ShareIntegrityError(
                f"the share row of server key 0x{key_id.hex()} (version {version.hex()}) failed its integrity check "
                f"in column {column}: the share database was altered or damaged") from None

    def seal_secret_share(self, key_id: bytes, version: bytes, public_part: bytes, secret_share: int) -> bytes:
        box = self.seal("secret_share", key_id, version, secret_share.to_bytes(32, "big"), public_part)
        assert box is not None
        return box

    def open_secret_share(self, key_id: bytes, version: bytes, public_part: bytes, box: bytes) -> int:
        raw = self.open("secret_share", key_id, version, box, public_part)
        assert raw is not None
        return int.from_bytes(raw, "big")

    def row(self, share: KeyShare) -> tuple:
        """The row of a share: its public columns as they are, its secrets sealed."""
        key_id, version = bytes(share.key_id), share.version
        holders = holders_text(share.holders)
        digest = public_digest(bytes(share.author), share.threshold, bytes(share.public), holders)
        common, encrypted = share.common_point, share.encrypted_point
        return (key_id, bytes(share.author), share.threshold, bytes(share.public), version, holders,
                self.seal_secret_share(key_id, version, digest, share.secret_share),
                self.seal("common_point", key_id, version, bytes(common) if common else None),
                self.seal("encrypted_point", key_id, version, bytes(encrypted) if encrypted else None))

    def seal_plain_row(self, row: tuple) -> tuple:
        """The secret columns of a row written before sealing, sealed (its public columns stay as they are)."""
        key_id, author, threshold, public, version, holders, secret, common, encrypted = row
        digest = public_digest(author, threshold, public, holders)
        return (self.seal("secret_share", key_id, version, secret, digest),
                self.seal("common_point", key_id, version, common),
                self.seal("encrypted_point", key_id, version, encrypted))

    def share(self, row: tuple) -> KeyShare:
        """The share in a row, every box opened; ShareIntegrityError naming the key if anything does not check."""
        key_id, author, threshold, public, version, holders, secret, common, encrypted = row
        secret_share = self.open_secret_share(key_id, version, public_digest(author, threshold, public, holders),
                                              secret)
        common_raw = self.open("common_point", key_id, version, common)
        encrypted_raw = self.open("encrypted_point", key_id, version, encrypted)
        try:
            return KeyShare(ServerKeyId(key_id), Address(author), threshold, Public(public), version,
                            tuple(Address.from_hex(h) for h in json.loads(holders)), secret_share,
                            Public(common_raw) if common_raw is not None else None,
                            Public(encrypted_raw) if encrypted_raw is not None else None)
        except (CryptoError, ValueError, TypeError):  # authenticated above: only a bug or a foreign row gets here
            raise ShareIntegrityError(f"the share row of server key 0x{key_id.hex()} holds malformed values") from None
