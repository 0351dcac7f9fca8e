"""A runtime over in-memory storage, driven the way the node drives it (one extrinsic at a time, in blocks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from secretstore.crypto import Secret
from secretstore.runtime import DEV_ACCOUNTS, GenesisConfig, MemoryStorage, Runtime
from secretstore.runtime.secretstore.api import method as api_method

ALICE, BOB, CHARLIE, DAVE = (DEV_ACCOUNTS[n] for n in ("Alice", "Bob", "Charlie", "Dave"))
# Key server secrets of the dev chain and the entity ids they claim.
KS_SECRETS = [Secret(bytes([i]) * 32) for i in (1, 2, 3)]
KS_IDS = [bytes(s.public().address()) for s in KS_SECRETS]
DAVE_SECRET = Secret(b"\x04" * 32)
DAVE_ID = bytes(DAVE_SECRET.public().address())
KEY = b"\x42" * 32


SERVERS = (ALICE, BOB, CHARLIE)  # accounts that claimed the three key server ids
PUBLIC = bytes(Secret.random().public())
OTHER_PUBLIC = bytes(Secret.random().public())
OFF_CURVE = b"\x00" * 64


def required(chain, service, ks, *key):
    """is_<service>_response_required through the runtime API."""
    return chain.api(f"SecretStoreServiceApi_is_{service}_response_required", ks, *key)


class Failed(Exception):
    def __init__(self, pallet: str, name: str) -> None:
        super().__init__(f"{pallet}.{name}")
        self.pallet, self.name = pallet, name


@dataclass
class Chain:
    runtime: Runtime
    number: int = 0
    index: int = 0
    nonces: dict = field(default_factory=dict)

    @property
    def storage(self) -> MemoryStorage:
        return self.runtime.storage  # type: ignore[return-value]

    def next_block(self) -> None:
        self.number += 1
        self.index = 0
        self.runtime.initialize_block(self.number, bytes([self.number % 256]) * 32)

    def call(self, who: bytes, pallet: str, name: str, **args) -> list[tuple[str, str, dict | None]]:
        """Apply one extrinsic; returns the events it emitted, or raises Failed(module error) with storage unchanged
        except for the nonce and fee."""
        encoded = self.runtime.RuntimeCall.encode((pallet, (name, args or None)))
        before = len(self.runtime.system.events(self.storage))
        nonce = self.runtime.system.nonce(self.storage, who)
        outcome = self.runtime.apply_extrinsic(self.index, who, nonce, 0, encoded, len(encoded) + 100)
        self.index += 1
        events = [(e["event"][0], e["event"][1][0], e["event"][1][1])
                  for e in self.runtime.system.events(self.storage)[before:]]
        if not outcome.success:
            raise Failed(getattr(outcome.error, "pallet", "?"), getattr(outcome.error, "name", str(outcome.error)))
        return [e for e in events if e[0] not in ("System", "TransactionPayment")]

    def ss_state(self) -> dict[bytes, bytes]:
        prefix = self.runtime.secretstore.Owner.prefix[:16]
        return {k: v for k, v in self.storage.items().items() if k.startswith(prefix)}

    def fails(self, who: bytes, pallet: str, name: str, error: str, **args) -> None:
        """The call fails with `error` and leaves the SecretStore state untouched."""
        before = self.ss_state()
        with pytest.raises(Failed) as info:
            self.call(who, pallet, name, **args)
        assert info.value.name == error
        assert self.ss_state() == before

    def api(self, name: str, *args):
        """A SecretStore runtime API method by its full state_call name, SCALE-encoded both ways."""
        spec = api_method(name)
        return spec.result.decode(self.runtime.api_call(name, spec.args.encode(args)))


def make_chain(**overrides) -> Chain:
    config = GenesisConfig.dev()
    for key, value in overrides.items():
        setattr(config, key, value)
    chain = Chain(Runtime(MemoryStorage(Runtime.genesis_storage(config))))
    chain.next_block()
    return chain


@pytest.fixture
def chain() -> Chain:
    return make_chain()


def ss(chain: Chain, who: bytes, name: str, **args):
    return chain.call(who, "SecretStore", name, **args)


def names(events) -> list[str]:
    return [e[1] for e in events]


SERVERS = (ALICE, BOB, CHARLIE)  # the accounts that claimed the three dev key server ids
OFF_CURVE = b"\x00" * 64  # 64 bytes that are not a secp256k1 point
NOT_ON_CURVE = b"\x01" * 64


def point() -> bytes:
    """A fresh valid public point (64 bytes)."""
    return bytes(Secret.random().public())


def tasks(chain: Chain, service: str, begin: int = 0, end: int = 1000) -> list:
    """The service's pending requests as ServiceTask values: (variant name, fields)."""
    return chain.api(f"SecretStoreServiceApi_{service}_tasks", begin, end)


def fund(chain: Chain, account: bytes, amount: int = 10**9) -> None:
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", account), value=amount)


def outsider(chain: Chain, entity: bytes = b"\x66" * 20, seed: int = 0x79) -> bytes:
    """A funded account with a claimed id that is not a key server."""
    account = bytes([seed]) * 32
    fund(chain, account)
    ss(chain, account, "claim_id", id=entity)
    return account
