"""The key server process: cluster, share storage and the chain service, under one structured lifetime."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

from substrateinterface import Keypair

from ...chain.connection import ChainConnection, TransactionSubmitter
from ...chain.secretstore_api import SecretStoreRuntimeApi
from ...crypto import KeyPair, Secret
from ...process import listen_socket
from ..audit import AuditLog
from ..limits import HttpLimits
from ..metrics import key_server_metrics_server
from ..net import Cluster, ClusterConfig, KeyServerDirectory
from ..sessions import KeyServerCore
from ..storage import KeyStorage
from .answers import ServiceAnswers
from .decide import TaskDecisions
from .follow import ChainFollower
from .migration import Migrations
from .refresh import RefreshSchedule
from .responses import ResponseQueue
from .state import log


class ChainService(ChainFollower, TaskDecisions, ServiceAnswers, Migrations, ResponseQueue):
    """The chain service: its state (`ServiceState`) with the methods of each concern, one object the session core,
    the HTTP API and the metrics hold on to (they reach `respond`, `check_access`, `process`, `submitter`...)."""


@dataclass(frozen=True)
class HttpSettings:
    host: str
    port: int
    cors: str | None = None  # --http-cors: None/"none", "*", or comma-separated origins
    limits: HttpLimits = HttpLimits()  # sessions at once, per requester and in all; each request's deadline


async def run_key_server(self_secret: Secret, db_path: Path, net_host: str, net_port: int, sub_url: str,
                         signer: Keypair, stop: asyncio.Event | None = None, http: HttpSettings | None = None,
                         metrics: tuple[str, int] | None = None, faults=None, audit_log: Path | None = None,
                         share_refresh_blocks: int = 0) -> None:
    keypair = KeyPair(self_secret)
    listener = listen_socket(net_host, net_port)  # a taken port fails here, before the database is made
    try:
        storage = KeyStorage(Path(db_path) / "keys.sqlite", self_secret)
    except BaseException:
        listener.close()
        raise
    try:
        audit = AuditLog(audit_log) if audit_log is not None else None  # --audit-log (a default under --db-path)
    except BaseException:
        storage.close()
        listener.close()
        raise
    chain = ChainConnection(sub_url)
    directory = KeyServerDirectory()
    service: ChainService
    core = KeyServerCore(keypair, storage, lambda k, r: service.check_access(k, r), lambda c, p: service.respond(c, p))
    service = ChainService(chain, core, directory, SecretStoreRuntimeApi(chain.state_call),
                           TransactionSubmitter(chain, signer))
    core.personal_part_ready = service.personal_part_ready
    if audit is not None:
        audit.instrument(service)
    cluster = Cluster(keypair, net_host, net_port, directory, core.handle, listener,
                      ClusterConfig(share_refresh_blocks))  # every member must have the same: the handshake checks
    core.cluster = cluster
    refresh = RefreshSchedule(service, share_refresh_blocks) if share_refresh_blocks else None
    if refresh is not None:
        cluster.status = refresh.status
    metrics_server = key_server_metrics_server(core, cluster, service, storage, metrics,  # None unless --metrics-port
                                               refresh)
    if faults is not None:  # test-only (keyserver.faults; refused without SECRETSTORE_FAULTS=1)
        core.faults = faults
        log.warning("FAULT INJECTION ACTIVE", extra={"faults": faults})
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    http_runner = None
    try:
        if metrics_server is not None:
            await metrics_server.start()
        if http is not None:  # Parity's HTTP API; it gets the session core, the ACL check and the current set
            from ..http import Cors, HttpApi, start_http_api
            api = HttpApi(core, service.check_access, lambda: list(service.order), Cors.parse(http.cors),
                          migrating=lambda: service.snapshot is not None and service.snapshot.migration is not None,
                          limits=http.limits, audit=audit)
            http_runner = await start_http_api(api, http.host, http.port)
        print(f"SecretStore key server {keypair.address.hex()}: cluster on {net_host}:{net_port}, chain {sub_url}"
              + (f", HTTP on http://{http.host}:{http.port}" if http is not None else ""), flush=True)
        async with asyncio.TaskGroup() as tasks:
            workers = [tasks.create_task(cluster.run()), tasks.create_task(service.run())]
            if refresh is not None:
                workers.append(tasks.create_task(refresh.run()))
            await stop.wait()
            for worker in workers:
                worker.cancel()
    finally:
        if metrics_server is not None:
            await metrics_server.stop()
        if http_runner is not None:
            await http_runner.cleanup()
        await chain.close()
        storage.close()
        if audit is not None:
            audit.close()
