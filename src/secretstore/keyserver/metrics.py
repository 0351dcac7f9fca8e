"""Prometheus metrics of a key server (`secretstore key-server --metrics-port P`), served on 127.0.0.1 by default.

`KeyServerMetrics.instrument` attaches to a running key server's parts from the outside, so the session, cluster and
chain service code carries no metric calls: it wraps the master side of each session kind on `KeyServerCore` (chain
requests and the HTTP API's direct sessions alike), the service's scan of the chain and its transaction submitter, and
reads peers, stored shares and the service's head when scraped; with a share refresh schedule, its epoch and how many
keys are at it (read from the share database at scrape time), and the keys it refreshed or could not. A session kind a later change adds is counted by
listing its `KeyServerCore` method in SESSION_KINDS.
Nothing secret is a label or a value: labels are session kinds and response call names, values are counts and times.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..process import MetricsServer

# KeyServerCore method -> session kind (the sessions this key server leads as master)
SESSION_KINDS = {
    "generate_server_keys": "server_key_generation",  # chain requests, batched: counted per key
    "generate_server_key": "server_key_generation",
    "retrieve_document_key_shadow": "document_key_shadow_retrieval",
    "migrate": "servers_set_change",
    # direct sessions of the HTTP API
    "store_document_key": "document_key_store",
    "generate_document_key": "document_key_generation",
    "retrieve_document_key": "document_key_retrieval",
    "retrieve_document_key_shadow_direct": "document_key_shadow_retrieval_direct",
    "sign": "signing",
}
BATCHED_SESSIONS = {"generate_server_keys"}
REFRESH_KIND = "share_refresh"  # counted per key, by `KeyServerCore.refresh_shares`
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class KeyServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.peers = Gauge("secretstore_keyserver_peers_connected", "Key servers with an authenticated cluster link",
                           registry=r)
        self.started = Counter("secretstore_keyserver_sessions_started", "Sessions this key server led, by kind",
                               ["kind"], registry=r)
        self.succeeded = Counter("secretstore_keyserver_sessions_succeeded", "Sessions led that completed, by kind",
                                 ["kind"], registry=r)
        self.failed = Counter("secretstore_keyserver_sessions_failed", "Sessions led that failed, by kind", ["kind"],
                              registry=r)
        self.latency = Histogram("secretstore_keyserver_session_duration_seconds",
                                 "Duration of sessions led, successful or not, by kind", ["kind"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.shares = Gauge("secretstore_keyserver_shares_stored", "Server keys this key server holds a share of",
                            registry=r)
        self.chain_head = Gauge("secretstore_keyserver_chain_head", "Latest finalized block the key server heard of",
                                registry=r)
        self.processed = Gauge("secretstore_keyserver_chain_processed_block",
                               "Finalized block whose pending requests were last fully scanned", registry=r)
        self.lag = Gauge("secretstore_keyserver_chain_lag_blocks",
                         "Finalized blocks the key server heard of but has not scanned yet", registry=r)
        self.last_scan = Gauge("secretstore_keyserver_chain_last_scan_timestamp_seconds",
                               "Unix time of the last complete scan of the chain's pending requests", registry=r)
        self.submitted = Counter("secretstore_keyserver_responses_submitted",
                                 "Responses (transactions) accepted by the node, by call", ["call"], registry=r)
        self.rejected = Counter("secretstore_keyserver_responses_failed",
                                "Responses the node refused or that could not be sent, by call", ["call"], registry=r)
        self.refresh_epoch = Gauge("secretstore_keyserver_share_refresh_epoch",
                                   "Current share refresh epoch (finalized head // --share-refresh-blocks; 0: off)",
                                   registry=r)
        self.keys_at_epoch = Gauge("secretstore_keyserver_share_refresh_keys_at_epoch",
                                   "Keys whose share is of the current refresh epoch", registry=r)
        self.unreadable = Gauge("secretstore_keyserver_shares_unreadable",
                                "Keys whose sealed share row did not open when last read", registry=r)
        self._processed = -1
        for kind in [*SESSION_KINDS.values(), REFRESH_KIND]:  # every kind shows from the first scrape on, at 0
            for metric in (self.started, self.succeeded, self.failed):
                metric.labels(kind)

    # ------------------------------------------------------------------------------------------- attaching
    def instrument(self, core: Any, cluster: Any, service: Any, storage: Any,
                   refresh: Any = None) -> "KeyServerMetrics":
        """Attach to a key server's KeyServerCore, Cluster, ChainService and KeyStorage, and its share refresh
        schedule if it has one (see the module docstring)."""
        # a renamed hook point must fail here, loudly, rather than leave a metric that silently stops moving
        for owner, names in ((core, list(SESSION_KINDS)), (service, ["process", "submitter", "head_number"]),
                             (getattr(service, "submitter", None), ["submit_many"]),
                             (cluster, ["connections"]), (storage, ["key_count", "damaged"]),
                             (core, ["refresh_shares"])):
            missing = [name for name in names if owner is None or not hasattr(owner, name)]
            if missing:
                raise AttributeError(f"key server metrics: {type(owner).__name__} has no {', '.join(missing)}")
        for method, kind in SESSION_KINDS.items():
            wrap = self._batch if method in BATCHED_SESSIONS else self._session
            setattr(core, method, wrap(kind, getattr(core, method)))
        self.peers.set_function(lambda: sum(1 for c in list(cluster.connections.values()) if not c.closed))
        self.shares.set_function(storage.key_count)  # a count, not a list of every key id per scrape
        self.chain_head.set_function(lambda: service.head_number)
        self.lag.set_function(lambda: max(0, service.head_number - self._processed) if self._processed >= 0
                              else service.head_number)
        self.unreadable.set_function(lambda: len(storage.damaged()))
        core.refresh_shares = self._refresh(core.refresh_shares)
        if refresh is not None:
            self.refresh_epoch.set_function(lambda: refresh.epoch() or 0)
            self.keys_at_epoch.set_function(lambda: refresh.keys_at_epoch()[0])
        service.process = self._scan(service, service.process)
        # `submit` sends through `submit_many` as well: every response is counted here, once
        service.submitter.submit_many = self._submit(service.submitter.submit_many)
        return self

    def _session(self, kind: str, run: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(run)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            self.started.labels(kind).inc()
            begun = time.perf_counter()
            try:
                result = await run(*args, **kwargs)
            except BaseException:
                self.failed.labels(kind).inc()
                raise
            finally:
                self.latency.labels(kind).observe(time.perf_counter() - begun)
            self.succeeded.labels(kind).inc()
            return result
        return timed

    def _batch(self, kind: str, run: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
        """A master method that runs many sessions at once (its first argument, a list) and answers with a result or
        an exception per session: counted and timed per session."""
        @functools.wraps(run)
        async def timed(requests: list, *args: Any, **kwargs: Any) -> dict:
            self.started.labels(kind).inc(len(requests))
            begun = time.perf_counter()
            try:
                results = await run(requests, *args, **kwargs)
            except BaseException:
                self.failed.labels(kind).inc(len(requests))
                raise
            finally:
                elapsed = time.perf_counter() - begun
                for _ in requests:
                    self.latency.labels(kind).observe(elapsed)
            failed = sum(isinstance(r, BaseException) for r in results.values())
            self.failed.labels(kind).inc(failed)
            self.succeeded.labels(kind).inc(len(results) - failed)
            return results
        return timed

    def _refresh(self, run: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
        """`refresh_shares(epoch, keys, participants)`: counted per key, a key that was not refreshed as failed."""
        @functools.wraps(run)
        async def counted(epoch: int, keys: list, *args: Any, **kwargs: Any) -> dict:
            self.started.labels(REFRESH_KIND).inc(len(keys))
            begun = time.perf_counter()
            try:
                results = await run(epoch, keys, *args, **kwargs)
            except BaseException:
                self.failed.labels(REFRESH_KIND).inc(len(keys))
                raise
            finally:
                self.latency.labels(REFRESH_KIND).observe(time.perf_counter() - begun)
            failed = sum(why is not None for why in results.values())
            self.failed.labels(REFRESH_KIND).inc(failed)
            self.succeeded.labels(REFRESH_KIND).inc(len(results) - failed)
            return results
        return counted

    def _scan(self, service: Any, process: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(process)
        async def observed(*args: Any, **kwargs: Any) -> None:
            head = service.head_number  # the block this scan reads (set by the service before it scans)
            await process(*args, **kwargs)
            self._processed = head
            self.processed.set(head)
            self.last_scan.set(time.time())
        return observed

    def _submit(self, submit_many: Callable[..., Awaitable[list]]) -> Callable[..., Awaitable[list]]:
        @functools.wraps(submit_many)
        async def counted(calls: list[tuple[str, str, dict]]) -> list:
            try:
                results = await submit_many(calls)
            except BaseException:
                for _, call, _ in calls:
                    self.rejected.labels(call).inc()
                raise
            for (_, call, _), result in zip(calls, results):
                (self.rejected if isinstance(result, Exception) else self.submitted).labels(call).inc()
            return results
        return counted


def key_server_metrics_server(core: Any, cluster: Any, service: Any, storage: Any,
                              address: tuple[str, int] | None, refresh: Any = None) -> MetricsServer | None:
    """The key server's /metrics endpoint at (host, port), or None when metrics are off."""
    if address is None:
        return None
    return MetricsServer(KeyServerMetrics().instrument(core, cluster, service, storage, refresh).registry, *address)
