"""The SecretStore runtime: a pure state machine (System, Balances, TransactionPayment, SecretStore).

The node drives `Runtime` (see docs/architecture.md); tests may drive it directly.
"""

from .dispatch import BadOrigin, DispatchError, InvalidTransaction, ModuleError
from .runtime import (
    DEV_ACCOUNTS, ApplyOutcome, GenesisConfig, InvalidGenesis, Runtime, RuntimeCall, RuntimeError, RuntimeEvent, ValidTransaction,
)
from .storage import MemoryStorage, Overlay, Storage

__all__ = ["BadOrigin", "DispatchError", "InvalidTransaction", "ModuleError", "DEV_ACCOUNTS", "ApplyOutcome",
           "GenesisConfig", "InvalidGenesis", "Runtime", "RuntimeCall", "RuntimeError", "RuntimeEvent", "ValidTransaction", "MemoryStorage", "Overlay", "Storage"]
