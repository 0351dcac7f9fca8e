"""payment_queryInfo, and TransactionPaymentApi as state_call answers it: an extrinsic's weight, class and fee."""

from __future__ import annotations

from ...codec.primitives import DispatchClass, Weight
from ...codec.scale import U32, U128, CodecError, Composite, Field, Option, Reader, decode_compact
from ..extrinsic import decode
from .group import MethodGroup
from .params import bytes_param, opt_hash

RuntimeDispatchInfo = Composite(("pallet_transaction_payment", "types", "RuntimeDispatchInfo"), [
    Field("weight", Weight), Field("class", DispatchClass), Field("partial_fee", U128)])
InclusionFee = Composite(("pallet_transaction_payment", "types", "InclusionFee"), [
    Field("base_fee", U128), Field("len_fee", U128), Field("adjusted_weight_fee", U128)])
FeeDetails = Composite(("pallet_transaction_payment", "types", "FeeDetails"), [
    Field("inclusion_fee", Option(InclusionFee)), Field("tip", U128)])


class PaymentMethods(MethodGroup):
    def rpc_payment_queryInfo(self, conn, extrinsic, block_hash=None):
        raw = bytes_param(extrinsic, "extrinsic")
        ext = decode(raw)
        info = self.chain.with_state(opt_hash(block_hash), lambda runtime: runtime.query_info(ext.call, len(raw)))
        return {"weight": {"refTime": info["weight"]["ref_time"], "proofSize": info["weight"]["proof_size"]},
                "class": "normal", "partialFee": str(info["partial_fee"])}


def payment_api_call(runtime, method: str, args: bytes) -> bytes:
    """TransactionPaymentApi_query_info or _query_fee_details on (extrinsic, u32 length), SCALE-encoded."""
    uxt, length = _split_len(args)
    ext = decode(uxt)
    info = runtime.query_info(ext.call, length)
    if method.endswith("query_info"):
        return RuntimeDispatchInfo.encode(info)
    base = runtime.payment.BaseFee.get(runtime.storage)
    return FeeDetails.encode({"inclusion_fee": {"base_fee": base, "len_fee": info["partial_fee"] - base,
                                                "adjusted_weight_fee": 0}, "tip": ext.tip})


def _split_len(args: bytes) -> tuple[bytes, int]:
    """(extrinsic, u32 length) as TransactionPaymentApi takes them: the extrinsic is self-delimiting."""
    r = Reader(args)
    r.read(decode_compact(r))
    if r.remaining != 4:
        raise CodecError("expected the extrinsic followed by a u32 length")
    return args[:r.pos], U32.decode(args[r.pos:])
