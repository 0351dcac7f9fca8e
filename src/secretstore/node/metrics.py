"""Prometheus metrics of the node (`secretstore node --prometheus-port 9615`), served by `process.MetricsServer`.

Each process keeps its own CollectorRegistry (nothing global, so tests can run several in one process). The node's
metrics are fed without touching block production or the RPC code paths: block counts from the chain's block
listeners, pool size, open subscriptions and what the RPC limits refused read when scraped, and RPC calls by wrapping
`RpcServer.handle_request`.
/metrics is served on the event loop, so a scrape reads the pool and connections from the thread that changes them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily

from ..process import MetricsServer
from .chain import BlockInfo, Chain
from .rpc import RpcServer



class NodeMetrics:
    """The node's metrics. Names follow Substrate's where Substrate has the metric (block height, ready transactions),
    so existing node dashboards show them; the rest are prefixed `secretstore_node_`."""

    def __init__(self, chain: Chain, server: RpcServer, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.block_height = Gauge("substrate_block_height", "Block height info of the chain", ["status"], registry=r)
        self.blocks = Counter("secretstore_node_blocks_produced", "Blocks this node sealed", registry=r)
        self.extrinsics = Counter("secretstore_node_extrinsics_included", "Extrinsics included in sealed blocks",
                                  registry=r)
        self.dropped = Counter("secretstore_node_extrinsics_dropped", "Pooled extrinsics dropped as invalid at sealing",
                               registry=r)
        pool = Gauge("substrate_ready_transactions_number", "Number of transactions in the pool", registry=r)
        pool.set_function(lambda: len(chain.pool))
        self.calls = Counter("secretstore_node_rpc_calls", "JSON-RPC calls by method", ["method"], registry=r)
        self.errors = Counter("secretstore_node_rpc_errors", "JSON-RPC calls answered with an error, by method",
                              ["method"], registry=r)
        subscriptions = Gauge("secretstore_node_rpc_subscriptions", "Open JSON-RPC subscriptions", registry=r)
        subscriptions.set_function(lambda: sum(len(c.subscriptions) for c in list(server.connections)))
        connections = Gauge("secretstore_node_rpc_connections", "Open WebSocket connections", registry=r)
        connections.set_function(lambda: len(server.connections))
        r.register(_RefusedCollector(server))
        # the node seals final blocks (single authority, instant finality): best and finalized are the same block
        for status in ("best", "finalized"):
            self.block_height.labels(status).set(chain.head_number)
        chain.listeners.append(self._on_block)
        self._known_methods = server.methods  # labels only for methods the node has: bounded cardinality
        handle = server.handle_request

        def counted(request: Any, conn: Any) -> Any:
            reply = handle(request, conn)  # a message, or a Future of one for a call that must wait
            method = request.get("method") if isinstance(request, dict) else None
            label = method if isinstance(method, str) and method in self._known_methods else "<unknown>"
            self.calls.labels(label).inc()
            if isinstance(reply, asyncio.Future):
                reply.add_done_callback(lambda done: self._count_error(label, done))
            elif isinstance(reply, dict) and "error" in reply:
                self.errors.labels(label).inc()
            return reply

        server.handle_request = counted  # type: ignore[method-assign]

    def _count_error(self, label: str, done: asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is None and "error" in done.result():
            self.errors.labels(label).inc()

    def _on_block(self, block: BlockInfo) -> None:
        self.blocks.inc()
        self.extrinsics.inc(len(block.included))
        self.dropped.inc(len(block.dropped))
        for status in ("best", "finalized"):
            self.block_height.labels(status).set(block.number)


class _RefusedCollector:
    """secretstore_node_rpc_refused_total{reason}: what the RPC limits turned away (connections, origin,
    request_size, response_size, subscriptions, rate_limit, unsafe), read from the server's own counts."""

    def __init__(self, server: RpcServer) -> None:
        self.server = server

    def collect(self):
        family = CounterMetricFamily("secretstore_node_rpc_refused", "JSON-RPC connections and calls refused by "
                                     "the RPC limits, by reason", labels=["reason"])
        for reason, count in sorted(self.server.refused.items()):
            family.add_metric([reason], count)
        yield family


def node_metrics_server(chain: Chain, server: RpcServer, address: tuple[str, int] | None) -> MetricsServer | None:
    """The node's /metrics endpoint at (host, port), or None when metrics are off."""
    return None if address is None else MetricsServer(NodeMetrics(chain, server).registry, *address)
