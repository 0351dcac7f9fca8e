"""Test-only fault injection: a key server that lies, stalls, loses messages or dies at a chosen protocol step.

Used by the fault tests and `benchmarks/chaos.py` to check what the network survives. It is refused unless the
environment variable SECRETSTORE_FAULTS=1 is set, so a production key server cannot be started with it by mistake.

A plan is a comma-separated list (`--faults corrupt=dkg,delay=shadow_part:2,crash=dkg_finish`):
  corrupt=dkg          deal DKG shares that fail their Pedersen commitments (and reveal the same wrong value when
                       a complaint asks for it: a consistent liar)
  corrupt=dkg-feldman  deal good shares but publish Feldman commitments that do not match them
  corrupt=shadow       return shadow points shifted by a random point (shadow / document key retrieval)
  corrupt=sign         return wrong partial signatures (Schnorr partials, ECDSA partials)
  delay=TYPE:SECONDS   answer cluster requests of TYPE (e.g. dkg_share, shadow_part) only after SECONDS
  drop=TYPE            never answer cluster requests of TYPE (the asking server times out)
  crash=TYPE           os._exit(3) on receiving a cluster request of TYPE (e.g. dkgb_verify, dkg_finish, sign_verify)
TYPE may be `*` for every request type.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

ENV_SWITCH = "SECRETSTORE_FAULTS"
CORRUPTIONS = {"dkg", "dkg-feldman", "shadow", "sign"}


class FaultsRefused(ValueError):
    pass


@dataclass
class FaultPlan:
    corrupt: set[str] = field(default_factory=set)
    delay: dict[str, float] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)
    crash: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str, environ: dict | None = None) -> "FaultPlan":
        env = os.environ if environ is None else environ
        if env.get(ENV_SWITCH) != "1":
            raise FaultsRefused(f"--faults is for tests only: set {ENV_SWITCH}=1 to inject faults")
        plan = cls()
        for item in filter(None, (part.strip() for part in text.split(","))):
            what, sep, arg = item.partition("=")
            if not sep or not arg:
                raise FaultsRefused(f"--faults: {item!r} is not WHAT=ARGUMENT")
            if what == "corrupt":
                if arg not in CORRUPTIONS:
                    raise FaultsRefused(f"--faults: corrupt= takes one of {', '.join(sorted(CORRUPTIONS))}")
                plan.corrupt.add(arg)
            elif what == "delay":
                kind, _, seconds = arg.partition(":")
                try:
                    plan.delay[kind] = float(seconds)
                except ValueError:
                    raise FaultsRefused("--faults: delay= takes TYPE:SECONDS") from None
                if not kind or not 0 <= plan.delay[kind] <= 600:
                    raise FaultsRefused("--faults: delay= takes TYPE:SECONDS with 0 <= SECONDS <= 600")
            elif what == "drop":
                plan.drop.add(arg)
            elif what == "crash":
                plan.crash.add(arg)
            else:
                raise FaultsRefused(f"--faults: unknown fault {what!r} (corrupt, delay, drop, crash)")
        return plan

    def corrupts(self, what: str) -> bool:
        return what in self.corrupt

    async def before(self, kind: str) -> None:
        """Called as a cluster request of `kind` arrives, before it is handled."""
        if kind in self.crash or "*" in self.crash:
            log.warning("fault injection: crashing", extra={"step": kind})
            logging.shutdown()
            os._exit(3)
        if kind in self.drop or "*" in self.drop:
            log.warning("fault injection: dropping request", extra={"step": kind})
            await asyncio.Event().wait()  # never answers; the cluster's request timeout ends it here
        seconds = self.delay.get(kind, self.delay.get("*"))
        if seconds:
            await asyncio.sleep(seconds)
