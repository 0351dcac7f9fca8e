"""The base of a group of JSON-RPC methods (system, chain, state, ...): what a group gives the server, and the hooks
through which it follows blocks and connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from ..chain import BlockInfo
from .connection import Connection

if TYPE_CHECKING:  # annotations only: the server imports the groups
    from .server import RpcServer

# Sends one subscription's notification of a block: (connection, subscription id, the subscription's data).
Notifier = Callable[[Connection, str, Any], None]


class MethodGroup:
    """A group's methods are its `rpc_<name>(self, conn, *params)` members, served as `<name>`, plus `aliases`
    (another name -> a name of this group). A call returns its result, raises `RpcError`, or returns a Future or an
    awaitable when the result must wait.

    Subscriptions live in the server's table (`server.subscribe(conn, kind, data)`, one id sequence for all groups);
    their kinds are strings, distinct across groups. At every block the server asks each group for `notifiers(block)`
    (kind -> Notifier) and calls them in one pass, per connection in the order its subscriptions were made (a client
    may rely on that: one subscribed to storage before heads gets a block's changes before its head); then each
    group's `after_block`. State a group keeps per connection outside the table is released in `closed`."""

    aliases: ClassVar[Mapping[str, str]] = {}

    def __init__(self, server: RpcServer) -> None:
        self.server = server
        self.chain = server.chain

    def handlers(self) -> dict[str, Callable[..., Any]]:
        """Method name -> bound handler, aliases included."""
        found = {name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_") and name != "rpc_"}
        found.update({alias: found[target] for alias, target in self.aliases.items()})
        return found

    def notifiers(self, block: BlockInfo) -> Mapping[str, Notifier]:
        return {}

    def after_block(self, block: BlockInfo) -> None:
        """Called after every subscription of the block's pass was notified."""

    def closed(self, conn: Connection) -> None:
        """`conn`'s WebSocket closed: forget what this group keeps for it."""
