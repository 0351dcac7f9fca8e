"""TransactionPayment: a deterministic length-based fee plus the tip, withdrawn before dispatch.

    fee = BaseFee + ByteFee * encoded_transaction_length + tip

BaseFee and ByteFee come from genesis (`GenesisConfig.base_fee` / `byte_fee`, both 0 on the dev chain). There is no
weight-based or congestion-based part: every call has the same flat weight. The fee is paid even when the call fails,
and is burned (it goes to no account). `query_info` reports the fee without the tip, as payment_queryInfo does.
"""

from __future__ import annotations

from ..codec.primitives import AccountId32
from ..codec.scale import U8, U128
from .dispatch import Pallet, event_enum
from .frame import Constant, StorageEntry

# A flat weight for every call: the runtime's calls are all cheap and bounded.
CALL_WEIGHT = {"ref_time": 100_000_000, "proof_size": 4_096}


class TransactionPayment(Pallet):
    NAME, INDEX, MODULE = "TransactionPayment", 2, "pallet_transaction_payment"
    EVENTS = event_enum(MODULE, [
        ("TransactionFeePaid", [("who", AccountId32, "T::AccountId"), ("actual_fee", U128, "BalanceOf<T>"),
                                ("tip", U128, "BalanceOf<T>")],
         "A transaction fee `actual_fee`, of which `tip` was added to the minimum inclusion fee, has been paid by `who`."),
    ])

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.BaseFee = StorageEntry(self.NAME, "BaseFee", U128, modifier="Default", default=bytes(16),
                                    docs=("Fee every transaction pays (genesis-configured).",))
        self.ByteFee = StorageEntry(self.NAME, "ByteFee", U128, modifier="Default", default=bytes(16),
                                    docs=("Fee per byte of the encoded transaction (genesis-configured).",))
        self.STORAGE = (self.BaseFee, self.ByteFee)

    def constants(self) -> tuple:
        return (Constant("OperationalFeeMultiplier", U8, U8.encode(5), ("Fee multiplier for operational calls.",)),)

    def inclusion_fee(self, storage, length: int) -> int:
        return self.BaseFee.get(storage) + self.ByteFee.get(storage) * length

    def charge(self, storage, who: bytes, length: int, tip: int) -> int:
        fee = self.inclusion_fee(storage, length) + tip
        self.runtime.balances.withdraw(storage, who, fee)
        return fee

    def fee_paid(self, storage, who: bytes, fee: int, tip: int) -> None:
        self.deposit(storage, "TransactionFeePaid", who=who, actual_fee=fee, tip=tip)
