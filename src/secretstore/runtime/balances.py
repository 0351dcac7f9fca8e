"""Balances: free balances, transfers, and the withdraw/deposit the fees use."""

from __future__ import annotations

from ..codec.primitives import AccountId32
from ..codec.scale import U8, U128, Array, Bytes, Compact, Field, Tuple, Variant, VariantDef
from .dispatch import Context, Pallet, call_enum, error_enum, event_enum
from .frame import Constant

MultiAddress = Variant(("sp_runtime", "multiaddress", "MultiAddress"), [
    VariantDef("Id", 0, (Field(None, AccountId32, "AccountId"),)),
    VariantDef("Index", 1, (Field(None, Compact(Tuple()), "AccountIndex"),)),
    VariantDef("Raw", 2, (Field(None, Bytes, "Vec<u8>"),)),
    VariantDef("Address32", 3, (Field(None, Array(U8, 32), "[u8; 32]"),)),
    VariantDef("Address20", 4, (Field(None, Array(U8, 20), "[u8; 20]"),)),
], params=(("AccountId", AccountId32), ("AccountIndex", Tuple())))

EXISTENTIAL_DEPOSIT = 1


class Balances(Pallet):
    NAME, INDEX, MODULE = "Balances", 1, "pallet_balances"
    CALLS = call_enum(MODULE, [
        ("transfer_allow_death", [("dest", MultiAddress, "AccountIdLookupOf<T>"), ("value", Compact(U128), "T::Balance")],
         "Transfer some liquid free balance to another account."),
        ("transfer_keep_alive", [("dest", MultiAddress, "AccountIdLookupOf<T>"), ("value", Compact(U128), "T::Balance")],
         "Same as the transfer call, but with a check that the transfer will not kill the origin account."),
    ])
    ERRORS = error_enum(MODULE, [
        ("InsufficientBalance", "Balance too low to send value."),
        ("ExistentialDeposit", "Value too low to create account due to existential deposit."),
        ("Expendability", "Transfer/payment would kill account."),
        ("UnsupportedAddress", "Only MultiAddress::Id destinations are supported on this chain."),
    ])
    EVENTS = event_enum(MODULE, [
        ("Endowed", [("account", AccountId32, "T::AccountId"), ("free_balance", U128, "T::Balance")],
         "An account was created with some free balance."),
        ("Transfer", [("from", AccountId32, "T::AccountId"), ("to", AccountId32, "T::AccountId"),
                      ("amount", U128, "T::Balance")], "Transfer succeeded."),
        ("Withdraw", [("who", AccountId32, "T::AccountId"), ("amount", U128, "T::Balance")],
         "Some amount was withdrawn from the account (e.g. for transaction fees)."),
        ("Deposit", [("who", AccountId32, "T::AccountId"), ("amount", U128, "T::Balance")],
         "Some amount was deposited (e.g. for transaction fees)."),
    ])

    def constants(self) -> tuple:
        return (Constant("ExistentialDeposit", U128, U128.encode(EXISTENTIAL_DEPOSIT),
                         ("The minimum amount required to keep an account open.",)),)

    def free(self, storage, who: bytes) -> int:
        return self.runtime.system.account(storage, who)["data"]["free"]

    def _set_free(self, storage, who: bytes, amount: int) -> None:
        """Write a free balance. An account comes into existence when it first holds funds and is reaped
        (KilledAccount) when they are gone; its nonce is kept so old transactions can never be replayed."""
        system = self.runtime.system
        info = system.account(storage, who)
        existed = info["providers"] > 0
        info["data"]["free"] = amount
        if not existed and amount >= EXISTENTIAL_DEPOSIT:
            info["providers"] = 1
            system.deposit_event(storage, ("System", ("NewAccount", {"account": who})))
        elif existed and amount < EXISTENTIAL_DEPOSIT:
            info["providers"] = 0
            system.deposit_event(storage, ("System", ("KilledAccount", {"account": who})))
        system.set_account(storage, who, info)

    def withdraw(self, storage, who: bytes, amount: int) -> None:
        free = self.free(storage, who)
        if amount > free:
            raise self.error("InsufficientBalance")
        self._set_free(storage, who, free - amount)
        if amount:
            self.deposit(storage, "Withdraw", who=who, amount=amount)

    def transfer(self, storage, source: bytes, dest: bytes, amount: int, keep_alive: bool = False) -> None:
        free = self.free(storage, source)
        if amount > free:
            raise self.error("InsufficientBalance")
        if keep_alive and free - amount < EXISTENTIAL_DEPOSIT:
            raise self.error("Expendability")
        if source == dest or amount == 0:
            return
        dest_free = self.free(storage, dest)
        if dest_free + amount < EXISTENTIAL_DEPOSIT:
            raise self.error("ExistentialDeposit")
        self._set_free(storage, source, free - amount)
        self._set_free(storage, dest, dest_free + amount)
        if dest_free == 0:
            self.deposit(storage, "Endowed", account=dest, free_balance=amount)
        self.deposit(storage, "Transfer", **{"from": source, "to": dest, "amount": amount})

    def endow(self, storage, who: bytes, amount: int) -> None:
        self._set_free(storage, who, self.free(storage, who) + amount)

    def _dest(self, dest) -> bytes:
        kind, value = dest
        if kind not in ("Id", "Address32"):
            raise self.error("UnsupportedAddress")
        return value

    def call_transfer_allow_death(self, ctx: Context, dest, value: int) -> None:
        self.transfer(ctx.storage, ctx.signed(), self._dest(dest), value)

    def call_transfer_keep_alive(self, ctx: Context, dest, value: int) -> None:
        self.transfer(ctx.storage, ctx.signed(), self._dest(dest), value, keep_alive=True)
