"""secp256k1 cryptography of the Secret Store (libsecp256k1 via coincurve).

- `keys`: typed values `Secret`, `Public`, `Address` (= `EntityId` = `KeyServerId`), `ServerKeyId`, `Signature`,
  `KeyPair`, `keccak256`, errors (`CryptoError` and subclasses), `parse_hex`.
- `math`: scalar and point operations, polynomials, Feldman/Pedersen commitments, Lagrange coefficients, `id_number`,
  the decryption math (node shadows, joint shadow point, common shadow point), Schnorr.
- `ecies`: parity-crypto compatible ECIES.
- `document`: document keys, document encryption, generate-document-key, shadow decryption.
- `signing`: joint random sharings, threshold Schnorr (Parity's variant) and threshold ECDSA.
"""

from .keys import (
    Address, CryptoError, DecryptionError, EntityId, InvalidHex, InvalidPublic, InvalidSecret, InvalidSignature,
    KeyPair, KeyServerId, Public, Secret, ServerKeyId, Signature, keccak256, parse_hex,
)

__all__ = [
    "Address", "CryptoError", "DecryptionError", "EntityId", "InvalidHex", "InvalidPublic", "InvalidSecret",
    "InvalidSignature", "KeyPair", "KeyServerId", "Public", "Secret", "ServerKeyId", "Signature", "keccak256", "parse_hex",
]
