"""The key server's chain service and its process.

The chain service talks to the chain only through Substrate JSON-RPC and the three runtime API traits MathChain's
runtime implements (`SecretStoreAclApi`, `SecretStoreKeyServerSetApi`, `SecretStoreServiceApi`), so the same process
serves our node and a MathChain node. On every new finalized block it refreshes the key server set and reads the
pending tasks of each service, so a key server that was down simply catches up. A response is submitted only while
the runtime says one from this key server is still required. Responses are composed by name from the chain's metadata.

`ChainService` is one object over one state (`state.py`), its methods grouped by concern: following the chain
(`follow.py`), deciding what to act on (`decide.py`), the work of each service (`answers.py`), servers set changes
(`migration.py`) and submitting responses (`responses.py`); `run.py` composes it with the cluster, the storage and
the HTTP API into the key server process.
"""

from .answers import MAX_ACCESS_CHECKS
from .decide import COMMON_STANDBY, MAX_KEPT_HOLDERS, PERSONAL_PART_PATIENCE, WORK_OF_TASK
from .follow import ALL, RESCAN_AFTER, SECRETSTORE_PALLET, TASKLESS_EVENTS
from .migration import MIGRATION_RETRY
from .responses import MAX_SUBMITTED_AT_ONCE, RESPONSE_GRACE, RESUBMIT_AFTER, SERVICE_OF
from .run import ChainService, HttpSettings, run_key_server
from .state import ServiceState

__all__ = [
    "ALL", "COMMON_STANDBY", "MAX_ACCESS_CHECKS", "MAX_KEPT_HOLDERS", "MAX_SUBMITTED_AT_ONCE", "MIGRATION_RETRY",
    "PERSONAL_PART_PATIENCE", "RESCAN_AFTER", "RESPONSE_GRACE", "RESUBMIT_AFTER", "SECRETSTORE_PALLET",
    "SERVICE_OF", "TASKLESS_EVENTS", "WORK_OF_TASK", "ChainService", "HttpSettings", "ServiceState",
    "run_key_server",
]
