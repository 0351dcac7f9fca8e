"""The RPC server's method groups, in process: a group added as a module is served and notified like the node's
own, notifications follow the order of a connection's subscriptions across groups, and the wire answers do not
depend on which group serves a method."""

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from secretstore import aio

from secretstore.node.chain import Chain
from secretstore.node.rpc import GROUPS, Connection, MethodGroup, RpcServer, notification
from secretstore.runtime import GenesisConfig


class EchoMethods(MethodGroup):
    """A group as another module would add one: methods, an alias, a subscription kind and per-connection state."""

    aliases = {"echo_again": "echo_say"}

    def __init__(self, server):
        super().__init__(server)
        self.blocks_seen: list[int] = []
        self.said: dict[Connection, int] = {}

    def rpc_echo_say(self, conn, text):
        self.said[conn] = self.said.get(conn, 0) + 1
        return text

    def rpc_echo_subscribe(self, conn):
        return self.server.subscribe(conn, "echo", "tag")

    def rpc_echo_unsubscribe(self, conn, sub_id):
        return self.server.unsubscribe(conn, sub_id)

    def notifiers(self, block):
        number = json.dumps(block.number)

        def echo(conn, sub_id, data):
            conn.send(notification(sub_id, "echo_block", number))

        return {"echo": echo}

    def after_block(self, block):
        self.blocks_seen.append(block.number)

    def closed(self, conn):
        self.said.pop(conn, None)


@pytest.fixture
def chain(tmp_path):
    chain = Chain(tmp_path / "chain", GenesisConfig.dev())
    yield chain
    chain.close()


def call(server, conn, method, *params):
    return server.handle_request({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, conn)


def drained(conn):
    messages = []
    while not conn.outbox.empty():
        message = conn.outbox.get_nowait()
        messages.append(json.loads(message) if isinstance(message, str) else message)
    return messages


def test_an_added_group_is_served_and_notified_in_the_order_of_subscriptions(chain):
    server = RpcServer(chain, groups=GROUPS + (EchoMethods,))
    echo = next(g for g in server.groups if isinstance(g, EchoMethods))
    conn = Connection()
    server.connections.add(conn)
    assert call(server, conn, "echo_say", "hi")["result"] == "hi"
    assert call(server, conn, "echo_again", "ho")["result"] == "ho"
    assert echo.said[conn] == 2
    methods = call(server, conn, "rpc_methods")["result"]["methods"]
    assert {"echo_say", "echo_again", "echo_subscribe", "chain_getHead", "payment_queryInfo"} <= set(methods)

    storage = call(server, conn, "state_subscribeStorage")["result"]  # every key: each block notifies it
    mine = call(server, conn, "echo_subscribe")["result"]
    heads = call(server, conn, "chain_subscribeNewHeads")["result"]
    assert conn.subscriptions[mine] == ("echo", "tag")
    drained(conn)  # the new head subscription's first notification
    block = chain.produce_block()
    notified = [(m["method"], m["params"]["subscription"]) for m in drained(conn)]
    assert notified == [("state_storage", storage), ("echo_block", mine), ("chain_newHead", heads)]
    assert echo.blocks_seen == [block.number]

    assert call(server, conn, "echo_unsubscribe", mine)["result"] is True
    chain.produce_block()
    assert [m["method"] for m in drained(conn)] == ["state_storage", "chain_newHead"]

    over_http = call(server, Connection(websocket=False), "echo_subscribe")
    assert over_http["error"] == {"code": -32601, "message": "Subscriptions are only available over WebSocket"}


def test_a_group_forgets_a_closed_connection(chain):
    server = RpcServer(chain, groups=GROUPS + (EchoMethods,))
    echo = next(g for g in server.groups if isinstance(g, EchoMethods))

    async def scenario():
        async with TestClient(TestServer(server.app())) as client:
            ws = await client.ws_connect("/")
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo_say", "params": ["hi"]}))
            assert json.loads((await ws.receive()).data)["result"] == "hi"
            assert len(echo.said) == 1
            await ws.close()
            for _ in range(200):
                if not server.connections:
                    break
                await asyncio.sleep(0.01)
        assert not server.connections and not echo.said

    aio.run(scenario())


def test_two_groups_serving_one_method_name_are_refused(chain):
    class Shadowing(MethodGroup):
        def rpc_system_name(self, conn):
            return "someone else"

    with pytest.raises(ValueError, match="system_name"):
        RpcServer(chain, groups=GROUPS + (Shadowing,))


@pytest.mark.parametrize("method, params, message", [
    ("system_accountNextIndex", [], "RpcServer.rpc_system_accountNextIndex() missing 1 required positional argument: "
                                    "'account'"),
    ("chain_getHead", [1, 2], "RpcServer.rpc_chain_getBlockHash() takes from 2 to 3 positional arguments but 4 "
                              "were given"),
    ("echo_say", [], "RpcServer.rpc_echo_say() missing 1 required positional argument: 'text'"),
])
def test_a_wrong_call_is_answered_as_before_the_split_into_groups(chain, method, params, message):
    """The message of a call with the wrong parameters names the handler as the single server class did."""
    server = RpcServer(chain, groups=GROUPS + (EchoMethods,))
    reply = call(server, Connection(), method, *params)
    assert reply["error"] == {"code": -32602, "message": "invalid params: " + message}
