"""Composing calls by name and signing them from the chain's V14 metadata, without substrate-interface.

Every response of every key server and every request of a client is signed, and substrate-interface takes about
1.6 ms per transaction for it (in its one worker thread); this takes about 0.15 ms. It covers what a FRAME chain with
the usual signed extensions asks (spec and transaction versions, genesis, immortal era, nonce, tip, metadata hash
disabled) and sr25519 signers. Anything else — another extension, another signature scheme, a parameter value not
given strictly as bytes/hex/int — is `Unsupported`, and the connection signs with substrate-interface instead.
"""

from __future__ import annotations

from typing import Any

from substrateinterface import Keypair, KeypairType

from ..codec.hashing import blake2_256
from .registry import TypeRegistry, Unsupported, encode_compact, v14_metadata

SIGNED_V4 = 0x84  # signed, extrinsic format version 4


class ExtrinsicSigner:
    def __init__(self, registry: TypeRegistry, pallets: list[dict], extrinsic: dict, spec_version: int,
                 transaction_version: int, genesis_hash: bytes) -> None:
        if extrinsic.get("version") != 4:
            raise Unsupported(f"extrinsic version {extrinsic.get('version')}")
        self.registry = registry
        params = {p["name"]: p["type"] for p in registry._types[extrinsic["ty"]].get("params", [])}
        address_path = registry._types[params["Address"]]["path"] if "Address" in params else []
        signature_path = registry._types[params["Signature"]]["path"] if "Signature" in params else []
        if not address_path or address_path[-1] not in ("MultiAddress", "AccountId32"):
            raise Unsupported(f"address type {address_path}")
        if not signature_path or signature_path[-1] != "MultiSignature":
            raise Unsupported(f"signature type {signature_path}")
        self._address_prefix = b"\x00" if address_path[-1] == "MultiAddress" else b""  # MultiAddress::Id
        self._pallets = {}
        for pallet in pallets:
            if pallet.get("calls"):
                variants = registry._types[pallet["calls"]["ty"]]["def"]["variant"]["variants"]
                self._pallets[pallet["name"]] = (pallet["index"], {
                    v["name"]: (v["index"], v["fields"]) for v in variants})
        self._extensions = [self._extension(e, spec_version, transaction_version, genesis_hash)
                            for e in extrinsic["signed_extensions"]]

    @classmethod
    def from_api(cls, api: Any, registry: TypeRegistry) -> "ExtrinsicSigner | None":
        """From a substrate-interface connection with its runtime initialised; None if this chain needs the library."""
        v14 = v14_metadata(api.metadata)
        if v14 is None:
            return None
        try:
            return cls(registry, v14["pallets"], v14["extrinsic"], api.runtime_version, api.transaction_version,
                       bytes.fromhex(api.get_block_hash(0)[2:]))
        except (Unsupported, KeyError, TypeError):
            return None

    def _empty(self, type_id: int) -> bool:
        body = self.registry._types[type_id]["def"]
        return body.get("tuple") == [] or ("composite" in body and not body["composite"]["fields"])

    def _extension(self, ext: dict, spec: int, tx: int, genesis: bytes) -> tuple[str, int | None, bytes]:
        """(identifier, type of its extra data (None: empty), its additional signed bytes)."""
        name, extra_ty, signed_ty = ext["identifier"], ext["ty"], ext["additional_signed"]
        encode = self.registry.encoder
        if name == "CheckSpecVersion":
            additional = encode(signed_ty)(spec)
        elif name == "CheckTxVersion":
            additional = encode(signed_ty)(tx)
        elif name == "CheckGenesis":
            additional = encode(signed_ty)(genesis)
        elif name in ("CheckMortality", "CheckEra"):
            additional = encode(signed_ty)(genesis)  # immortal: the genesis hash stands for the era's block
        elif name == "CheckMetadataHash":
            additional = encode(signed_ty)(None)
        elif name in ("CheckNonZeroSender", "CheckNonce", "CheckWeight", "ChargeTransactionPayment",
                      "ChargeAssetTxPayment") and self._empty(signed_ty):
            additional = b""
        else:
            raise Unsupported(f"signed extension {name}")
        if name in ("CheckNonZeroSender", "CheckSpecVersion", "CheckTxVersion", "CheckGenesis", "CheckWeight"):
            if not self._empty(extra_ty):
                raise Unsupported(f"signed extension {name} with data")
            return name, None, additional
        return name, extra_ty, additional

    def _extra(self, nonce: int) -> bytes:
        out = b""
        for name, extra_ty, _ in self._extensions:
            if extra_ty is None:
                continue
            encode = self.registry.encoder(extra_ty)
            if name in ("CheckMortality", "CheckEra"):
                out += encode("Immortal")
            elif name == "CheckNonce":
                out += encode(nonce)
            elif name == "ChargeTransactionPayment":
                out += encode(0)
            elif name == "ChargeAssetTxPayment":
                out += encode({"tip": 0, "asset_id": None})
            elif name == "CheckMetadataHash":
                out += encode("Disabled")
        return out

    def call_data(self, pallet: str, call: str, params: dict[str, Any]) -> bytes:
        try:
            pallet_index, calls = self._pallets[pallet]
            call_index, fields = calls[call]
        except KeyError:
            raise Unsupported(f"no call {pallet}.{call}") from None
        names = [f["name"] for f in fields]
        if set(params) != set(names):
            raise Unsupported("parameters differ from the call's fields")
        return bytes([pallet_index, call_index]) + b"".join(
            self.registry.encoder(f["type"])(params[f["name"]]) for f in fields)

    def sign(self, call_data: bytes, keypair: Keypair, nonce: int) -> tuple[str, str]:
        """The signed extrinsic (0x-hex, length-prefixed) and its hash (blake2-256 of those bytes)."""
        if keypair.crypto_type != KeypairType.SR25519:
            raise Unsupported("only sr25519 signers")
        extra = self._extra(nonce)
        payload = call_data + extra + b"".join(additional for _, _, additional in self._extensions)
        if len(payload) > 256:
            payload = blake2_256(payload)
        signature = keypair.sign(payload)
        body = (bytes([SIGNED_V4]) + self._address_prefix + keypair.public_key
                + b"\x01" + signature  # MultiSignature::Sr25519
                + extra + call_data)
        encoded = encode_compact(len(body)) + body
        return "0x" + encoded.hex(), "0x" + blake2_256(encoded).hex()
