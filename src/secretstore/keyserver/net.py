"""Cluster transport between key servers: authenticated, encrypted TCP with request/response messaging.

Handshake (both sides, symmetric):
  1. HELLO, plaintext, 164 bytes: b"SSv1" ++ long-term public (64) ++ ephemeral public (64) ++ random challenge (32).
     A public whose address is not in the allowed key server set ends the connection; an initiator also checks that
     the peer is the key server it meant to reach.
  2. AUTH, plaintext, 65 bytes: a recoverable signature with the long-term key over
     keccak256("secretstore/cluster/auth" ++ peer's challenge ++ own public ++ own ephemeral ++ peer's ephemeral).
     Signing the peer's fresh challenge proves possession now; covering both ephemerals binds the session key to both
     identities, so a man in the middle cannot splice sessions.
  3. Session keys: HKDF-SHA256 over the X coordinate of ECDH(ephemerals), salted with both challenges; one key per
     direction. Every later frame is ChaCha20-Poly1305 with a per-direction counter nonce and the 4-byte length header
     as associated data; a frame over MAX_FRAME, a bad tag or a replay ends the connection.
  4. Configuration: each side's first frame is a `cluster_config` notice with the settings every member of a set
     must share (`ClusterConfig`: --share-refresh-blocks); a peer configured differently is refused, with an error
     in the log. A peer that sends none within CONFIG_WAIT is an older key server, which has no share refresh.
Only the key server with the lower id dials, so each pair has one connection; a reconnecting peer replaces a stale one.
A HELLO-sized message that starts with STATUS_MAGIC is a status probe (`secretstore status`): it gets this server's
HELLO and one JSON line of public figures (the share refresh setting, epoch and key counts), then the end.
Messages: requests (each answered by a response with its id), notices (handled like requests, never answered: for
steps whose loss the protocol notices by itself) and keep-alive pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from nacl.bindings import crypto_aead_chacha20poly1305_ietf_decrypt, crypto_aead_chacha20poly1305_ietf_encrypt
from nacl.exceptions import CryptoError as AeadError

from ..crypto import Address, CryptoError, KeyPair, Public, Secret, Signature, keccak256
from ..crypto.math import point_mul

log = logging.getLogger(__name__)

MAGIC = b"SSv1"
HELLO_LEN = 4 + 64 + 64 + 32
MAX_FRAME = 1 << 20
HANDSHAKE_TIMEOUT = 5.0
KEEPALIVE_INTERVAL = 5.0
IDLE_TIMEOUT = 20.0
REQUEST_TIMEOUT = 15.0
DRAIN_ABOVE = 1 << 16  # bytes waiting in the socket's buffer before a sender waits for the peer to read
KINDS = ("request", "notice", "response", "ping", "pong")  # a notice is a request that gets no answer
CONFIG_WAIT = 3.0  # within HANDSHAKE_TIMEOUT; only a key server older than the config exchange takes it all
STATUS_MAGIC = b"SSst"  # then zeros to HELLO_LEN


class ClusterError(Exception):
    pass


class PeerUnavailable(ClusterError):
    """No authenticated connection to that key server."""


class RemoteError(ClusterError):
    """The peer refused or failed the request; the message (and the error code, when it gave one) is the peer's."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class HandshakeError(ClusterError):
    pass


class ConfigMismatch(HandshakeError):
    """The peer is configured differently in a setting every key server of a set must share."""


class StatusProbe(HandshakeError):
    """Not a key server: `secretstore status` asking for public figures."""


@dataclass(frozen=True)
class ClusterConfig:
    """What every key server of a set must agree on, compared at the handshake."""

    share_refresh_blocks: int = 0  # 0: shares are never refreshed

    def describe(self) -> str:
        return f"--share-refresh-blocks {self.share_refresh_blocks}" if self.share_refresh_blocks \
            else "no share refresh"


Handler = Callable[[Address, dict], Awaitable[dict]]


@dataclass
class KeyServerDirectory:
    """Who may connect (the current and migration key server sets) and where each key server listens."""

    addresses: dict[Address, tuple[str, int]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def update(self, addresses: dict[Address, tuple[str, int]]) -> None:
        if addresses != self.addresses:
            self.addresses = dict(addresses)
            self.changed.set()

    def allowed(self, key_server: Address) -> bool:
        return key_server in self.addresses


def parse_network_address(raw: bytes | str) -> tuple[str, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad key server network address {text!r}")
    return host, int(port)


class Connection:
    def __init__(self, peer: Address, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 send_key: bytes, recv_key: bytes) -> None:
        self.peer = peer
        self.reader, self.writer = reader, writer
        self.send_key, self.recv_key = send_key, recv_key
        self.send_counter = 0
        self.recv_counter = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.last_seen = time.monotonic()
        self.closed = False
        self.early: list[dict] = []  # a message read during the handshake, served first

    async def send(self, message: dict) -> None:
        plaintext = json.dumps(message, separators=(",", ":")).encode()
        if len(plaintext) > MAX_FRAME:
            raise ClusterError(f"message of {len(plaintext)} bytes exceeds the frame limit")
        if self.writer.is_closing():
            raise ConnectionResetError(f"connection to {self.peer.hex()} closed")
        # numbered, sealed and written without a pause in between, so frames leave in counter order without a lock
        header = struct.pack(">I", len(plaintext) + 16)
        sealed = crypto_aead_chacha20poly1305_ietf_encrypt(  # libsodium: ciphertext then the 16-byte tag
            plaintext, header, struct.pack(">4xQ", self.send_counter), self.send_key)
        self.send_counter += 1
        self.writer.write(header + sealed)
        if self.writer.transport.get_write_buffer_size() > DRAIN_ABOVE:  # the peer reads slowly: wait for it
            await self.writer.drain()

    async def recv(self) -> dict:
        header = await self.reader.readexactly(4)
        (length,) = struct.unpack(">I", header)
        if not 16 <= length <= MAX_FRAME + 16:
            raise ClusterError(f"frame length {length} outside the limit")
        data = await self.reader.readexactly(length)
        try:
            plaintext = crypto_aead_chacha20poly1305_ietf_decrypt(
                data, header, struct.pack(">4xQ", self.recv_counter), self.recv_key)
        except AeadError:
            raise ClusterError("frame failed authentication") from None
        self.recv_counter += 1
        self.last_seen = time.monotonic()
        try:
            message = json.loads(plaintext)
        except ValueError:
            raise ClusterError("frame is not a JSON message") from None
        if not isinstance(message, dict) or message.get("kind") not in KINDS:
            raise ClusterError("malformed cluster message")
        return message

    def close(self) -> None:
        self.closed = True
        for future in self.pending.values():
            if not future.done():
                future.set_exception(PeerUnavailable(f"connection to {self.peer.hex()} closed"))
        self.pending.clear()
        self.writer.close()


async def handshake(keypair: KeyPair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    directory: KeyServerDirectory, expected: Address | None,
                    config: ClusterConfig = ClusterConfig()) -> Connection:
    ephemeral = Secret.random()
    ephemeral_public = ephemeral.public()
    challenge = secrets.token_bytes(32)
    writer.write(MAGIC + bytes(keypair.public) + bytes(ephemeral_public) + challenge)
    await writer.drain()
    hello = await reader.readexactly(HELLO_LEN)
    if hello[:4] == STATUS_MAGIC and expected is None:
        raise StatusProbe("status probe")
    if hello[:4] != MAGIC:
        raise HandshakeError("not a SecretStore cluster peer")
    try:
        peer_public = Public(hello[4:68])
        peer_ephemeral = Public(hello[68:132])
    except CryptoError:
        raise HandshakeError("peer sent an invalid public key") from None
    peer_challenge = hello[132:]
    peer = peer_public.address()
    if expected is not None and peer != expected:
        raise HandshakeError(f"expected key server {expected.hex()}, reached {peer.hex()}")
    if not directory.allowed(peer) or peer == keypair.address:
        raise HandshakeError(f"key server {peer.hex()} is not in the key server set")

    def transcript(their_challenge: bytes, signer: Public, signer_ephemeral: Public, other_ephemeral: Public) -> bytes:
        return keccak256(b"secretstore/cluster/auth" + their_challenge + bytes(signer) + bytes(signer_ephemeral)
                         + bytes(other_ephemeral))

    writer.write(bytes(keypair.sign(transcript(peer_challenge, keypair.public, ephemeral_public, peer_ephemeral))))
    await writer.drain()
    try:
        signature = Signature(await reader.readexactly(65))
        ok = signature.verify(peer_public, transcript(challenge, peer_public, peer_ephemeral, ephemeral_public))
    except CryptoError:
        ok = False
    if not ok:
        raise HandshakeError(f"key server {peer.hex()} failed to prove possession of its key")
    shared = bytes(point_mul(peer_ephemeral, ephemeral.to_int()))[:32]
    salt = b"".join(sorted((challenge, peer_challenge)))
    keys = HKDF(shared, 64, salt, SHA256, context=b"secretstore/cluster/session")
    low_to_high, high_to_low = keys[:32], keys[32:]
    if bytes(keypair.address) < bytes(peer):
        conn = Connection(peer, reader, writer, low_to_high, high_to_low)
    else:
        conn = Connection(peer, reader, writer, high_to_low, low_to_high)
    await agree(conn, config)
    return conn


async def agree(conn: Connection, config: ClusterConfig) -> None:
    """Exchange the settings both sides must share (inside the encrypted channel: nobody else can change them)."""
    await conn.send({"kind": "notice", "body": {"type": "cluster_config",
                                                "share_refresh_blocks": config.share_refresh_blocks}})
    try:
        async with asyncio.timeout(CONFIG_WAIT):
            first: dict | None = await conn.recv()
    except TimeoutError:
        first = None
    body = first.get("body") if first is not None and first.get("kind") == "notice" else None
    if isinstance(body, dict) and body.get("type") == "cluster_config":
        blocks = body.get("share_refresh_blocks")
        theirs = ClusterConfig(blocks if isinstance(blocks, int) and not isinstance(blocks, bool) else -1)
        what = theirs.describe()
    else:  # an older key server, which refreshes nothing; what it sent is served as usual
        if first is not None:
            conn.early.append(first)
        theirs, what = ClusterConfig(), "no share refresh (an older key server)"
    if theirs != config:
        raise ConfigMismatch(f"key server {conn.peer.hex()} runs with {what}, this one with {config.describe()}: "
                             "every key server of the set must be started with the same setting")


class Cluster:
    """Connections to every other key server of the set, and request/response messaging over them."""

    def __init__(self, keypair: KeyPair, host: str, port: int, directory: KeyServerDirectory, handler: Handler,
                 listener: socket.socket | None = None, config: ClusterConfig = ClusterConfig()) -> None:
        self.keypair = keypair
        self.config = config
        # the public figures a status probe gets (the key server adds the refresh epoch and key counts)
        self.status: Callable[[], dict] = lambda: {"share_refresh_blocks": config.share_refresh_blocks}
        self._mismatches: set[str] = set()  # refusals logged already (a dialer retries every few seconds)
        self.host, self.port = host, port
        self.listener = listener  # bound already (so a taken port fails before anything is written), or bound in run
        self.directory = directory
        self.handler = handler
        self.connections: dict[Address, Connection] = {}
        self._ids = itertools.count(1)
        self._tasks: asyncio.TaskGroup | None = None
        self.connected_event = asyncio.Event()
        # called when a link drops: the chain service re-picks masters at once instead of at the next block
        self.peer_lost_listeners: list[Callable[[], None]] = []

    @property
    def self_id(self) -> Address:
        return self.keypair.address

    def is_connected(self, peer: Address) -> bool:
        return peer == self.self_id or (peer in self.connections and not self.connections[peer].closed)

    async def wait_connected(self, peers: list[Address], timeout: float) -> list[Address]:
        """Wait up to `timeout` seconds until every peer is connected; the ones still missing then."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            missing = [p for p in peers if not self.is_connected(p)]
            if not missing or asyncio.get_running_loop().time() >= deadline:
                return missing
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        """Serve until cancelled: accept peers, dial the ones this server is responsible for, keep links alive."""
        if self.listener is not None:
            server = await asyncio.start_server(self._accept, sock=self.listener, limit=MAX_FRAME + 64)
        else:
            server = await asyncio.start_server(self._accept, self.host, self.port, limit=MAX_FRAME + 64)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self._dial_loop())
                tasks.create_task(self._keepalive_loop())
        finally:
            server.close()
            for conn in list(self.connections.values()):
                conn.close()
            self.connections.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                conn = await handshake(self.keypair, reader, writer, self.directory, None, self.config)
        except StatusProbe:
            with contextlib.suppress(OSError):
                writer.write(json.dumps(self.status(), separators=(",", ":")).encode() + b"\n")
                await writer.drain()
            writer.close()
            return
        except ConfigMismatch as exc:
            self._refused(exc)
            writer.close()
            return
        except (HandshakeError, asyncio.IncompleteReadError, OSError, TimeoutError) as exc:
            # a timeout or a closed socket has no message of its own: the type is the reason
            log.info("refused cluster connection", extra={"reason": str(exc) or type(exc).__name__})
            writer.close()
            return
        await self._serve(conn)

    async def _dial(self, peer: Address, host: str, port: int) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, port, limit=MAX_FRAME + 64)
                try:
                    conn = await handshake(self.keypair, reader, writer, self.directory, peer, self.config)
                except BaseException:
                    writer.close()
                    raise
        except ConfigMismatch as exc:
            self._refused(exc)
            return
        except (HandshakeError, asyncio.IncompleteReadError, OSError, TimeoutError) as exc:
            log.debug("dial failed", extra={"peer": peer.hex(), "reason": str(exc)})
            return
        await self._serve(conn)

    def _refused(self, exc: ConfigMismatch) -> None:
        if str(exc) not in self._mismatches:
            self._mismatches.add(str(exc))
            log.error("cluster peer refused: configured differently", extra={"reason": str(exc)})

    async def _dial_loop(self) -> None:
        dialing: dict[Address, asyncio.Task] = {}
        backoff = 0.2
        while True:
            for peer, (host, port) in list(self.directory.addresses.items()):
                if bytes(self.self_id) < bytes(peer) and not self.is_connected(peer):
                    task = dialing.get(peer)
                    if task is None or task.done():
                        assert self._tasks is not None
                        dialing[peer] = self._tasks.create_task(self._dial(peer, host, port))
            # drop links to key servers that left the set
            for peer, conn in list(self.connections.items()):
                if not self.directory.allowed(peer):
                    conn.close()
            self.directory.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self.directory.changed.wait()
            backoff = min(backoff * 2, 2.0) if any(not self.is_connected(p) for p in self.directory.addresses) else 0.5

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            now = time.monotonic()
            for conn in list(self.connections.values()):
                if now - conn.last_seen > IDLE_TIMEOUT:
                    log.info("peer idle, closing", extra={"peer": conn.peer.hex()})
                    conn.close()
                else:
                    with contextlib.suppress(ClusterError, OSError):
                        await conn.send({"kind": "ping"})

    async def _serve(self, conn: Connection) -> None:
        old = self.connections.get(conn.peer)
        if old is not None:
            old.close()
        self.connections[conn.peer] = conn
        self.connected_event.set()
        log.info("peer connected", extra={"peer": conn.peer.hex()})
        try:
            async with asyncio.TaskGroup() as requests:
                answering: set[asyncio.Task] = set()
                try:
                    while True:
                        message = conn.early.pop(0) if conn.early else await conn.recv()
                        kind = message["kind"]
                        if kind == "ping":
                            await conn.send({"kind": "pong"})
                        elif kind == "response":
                            future = conn.pending.pop(message.get("id"), None)
                            if future is not None and not future.done():
                                future.set_result(message)
                        elif kind == "notice" and isinstance(message.get("body"), dict) \
                                and message["body"].get("type") == "cluster_config":
                            continue  # agreed on in the handshake already
                        elif kind in ("request", "notice"):
                            task = requests.create_task(self._answer(conn, message, kind == "request"))
                            answering.add(task)
                            task.add_done_callback(answering.discard)
                except (ClusterError, asyncio.IncompleteReadError, OSError) as exc:
                    log.info("peer disconnected", extra={"peer": conn.peer.hex(),
                                                         "reason": str(exc) or type(exc).__name__})
                finally:
                    conn.close()
                    for task in answering:  # nobody is left to hear the answers
                        task.cancel()
        finally:
            if self.connections.get(conn.peer) is conn:
                del self.connections[conn.peer]
                for listener in list(self.peer_lost_listeners):
                    listener()

    async def _answer(self, conn: Connection, message: dict, replies: bool = True) -> None:
        """Handle a request and send the answer; a notice is handled the same way, with nothing sent back (its
        failure is only logged here)."""
        reply: dict[str, Any] = {"kind": "response", "id": message.get("id")}
        try:
            body = message.get("body")
            if not isinstance(body, dict):
                raise ValueError("request body must be an object")
            async with asyncio.timeout(REQUEST_TIMEOUT):
                reply["body"] = await self.handler(conn.peer, body)
            reply["ok"] = True
        except Exception as exc:  # the peer gets the reason; this server keeps serving
            reply["ok"] = False
            reply["error"] = str(exc) or type(exc).__name__
            code = getattr(exc, "code", None)  # lets the master tell e.g. "access denied" from a failure
            if isinstance(code, str):
                reply["code"] = code
        if not replies:
            if not reply["ok"]:
                log.info("cluster notice refused", extra={"peer": conn.peer.hex(), "error": reply["error"]})
            return
        with contextlib.suppress(ClusterError, OSError):
            await conn.send(reply)

    async def notify(self, peer: Address, body: dict) -> None:
        """Send a one-way message (handled like a request, nothing answered: the protocol must notice a lost one by
        itself); returns once it is written. To this server itself, it is handled before returning."""
        if peer == self.self_id:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    await self.handler(peer, body)
            except Exception as exc:  # as for a peer's notice: the protocol notices what did not arrive
                log.info("cluster notice refused", extra={"peer": peer.hex(), "error": str(exc) or type(exc).__name__})
            return
        conn = self.connections.get(peer)
        if conn is None or conn.closed:
            raise PeerUnavailable(f"key server {peer.hex()} is not connected")
        try:
            await conn.send({"kind": "notice", "body": body})
        except OSError as exc:
            raise PeerUnavailable(f"key server {peer.hex()}: {exc}") from None

    async def request(self, peer: Address, body: dict, timeout: float = REQUEST_TIMEOUT) -> dict:
        """Send a request to a peer (or handle it locally when `peer` is this server) and wait for its answer."""
        if peer == self.self_id:
            async with asyncio.timeout(timeout):
                return await self.handler(peer, body)
        conn = self.connections.get(peer)
        if conn is None or conn.closed:
            raise PeerUnavailable(f"key server {peer.hex()} is not connected")
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        conn.pending[request_id] = future
        try:
            await conn.send({"kind": "request", "id": request_id, "body": body})
            async with asyncio.timeout(timeout):
                reply = await future
        except TimeoutError:
            raise PeerUnavailable(f"key server {peer.hex()} did not answer in {timeout:.0f}s") from None
        except OSError as exc:
            raise PeerUnavailable(f"key server {peer.hex()}: {exc}") from None
        finally:
            conn.pending.pop(request_id, None)
        if not reply.get("ok"):
            code = reply.get("code")
            raise RemoteError(f"key server {peer.hex()}: {reply.get('error', 'request failed')}",
                              code if isinstance(code, str) and len(code) <= 40 else None)
        body = reply.get("body")
        if not isinstance(body, dict):
            raise RemoteError(f"key server {peer.hex()} sent a malformed answer")
        return body
