"""The SecretStore pallet's interface: the contract between a chain that runs the pallet and its clients.

The pallet's name, its events (`events`), the three runtime API traits with their methods' argument and result
types (`apis`) and the types those name (`types`). The runtime implements this and the chain client reads it, so
neither reaches into the other; it depends only on the codec.
"""

from .apis import (
    ACL_API, API_TRAITS, KEY_SERVER_SET_API, METHODS, SERVICE_API, SERVICES, ApiMethod, ApiParam, ApiTrait, Service,
    api_method, response_required_method, tasks_method,
)
from .events import EVENTS, MODULE, PALLET
from .types import (
    PRIMITIVES, EntityId, KeyServerEntry, KeyServerId, KeyServerNetworkAddress, KeyServerSetMigration,
    KeyServerSetSnapshot, MigrationId, ServerKeyId, ServiceTask,
)

__all__ = [
    "ACL_API", "API_TRAITS", "KEY_SERVER_SET_API", "METHODS", "SERVICE_API", "SERVICES", "ApiMethod", "ApiParam",
    "ApiTrait", "Service", "api_method", "response_required_method", "tasks_method", "EVENTS", "MODULE", "PALLET",
    "PRIMITIVES", "EntityId", "KeyServerEntry", "KeyServerId", "KeyServerNetworkAddress", "KeyServerSetMigration",
    "KeyServerSetSnapshot", "MigrationId", "ServerKeyId", "ServiceTask",
]
