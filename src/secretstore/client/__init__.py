"""Python SDK for SecretStore chains: see `sdk.SecretStoreClient`."""

from .sdk import (
    AsyncSecretStoreClient, ChainError, DispatchFailed, DocumentKeyShadow, RequestFailed, RequestTimeout,
    SecretStoreClient, SecretStoreError, TransactionRejected,
)

__all__ = ["AsyncSecretStoreClient", "ChainError", "DispatchFailed", "DocumentKeyShadow", "RequestFailed",
           "RequestTimeout", "SecretStoreClient", "SecretStoreError", "TransactionRejected"]
