"""Python SDK for SecretStore chains: see `sdk.SecretStoreClient`; Parity's key server HTTP API: `http`."""

from .http import AsyncSecretStoreHttpClient, HttpApiError, SecretStoreHttpClient
from .sdk import (
    AsyncSecretStoreClient, ChainError, DispatchFailed, DocumentKeyShadow, RequestFailed, RequestTimeout,
    SecretStoreClient, SecretStoreError, TransactionRejected,
)

__all__ = ["AsyncSecretStoreClient", "AsyncSecretStoreHttpClient", "ChainError", "DispatchFailed", "DocumentKeyShadow",
           "HttpApiError", "RequestFailed", "RequestTimeout", "SecretStoreClient", "SecretStoreError",
           "SecretStoreHttpClient", "TransactionRejected"]
