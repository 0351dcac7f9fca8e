"""How cost grows with the keys a set holds and with the number of key servers, on real processes.

Keys (n = 5, t = 2; `scale_keys`): 1,000, 10,000 and 100,000 keys stored, the smaller sizes made through the chain
(how long that took is shown), the rest seeded into the stopped set by the key servers' own batched generation run
in bulk (`scale_seed` says why and how); at each size shadow retrieval and Schnorr latency on the same 20 probe
keys, share database bytes per key, each key server's RSS, restart-to-ready, a migration to a sixth key server end to
end, and the node's answers as the chain grows; a key server's catch-up after being stopped for 1,000 blocks on the
young and on the grown chain.
Key servers (`scale_protocols`): n = 3, 5, 10, 15 at t = (n - 1) / 2: DKG, shadow retrieval, Schnorr and ECDSA
latency, generations/s, and the blocks a full queue of 64 generations takes at 1 s blocks.

Prints one JSON line per size, one for the catch-ups and one per n, then the targets, and last the summary:
{"retrieval_ratio", "signing_ratio", "rss_ratio", "restart_s", "migration_per_key_ratio", "n15_full_queue_blocks",
"max_keys"} (ratios: the largest size over the smallest, same run; restart_s: the median of the five restarts at the
largest size). Draws benchmarks/out/scale.png (matplotlib, the `bench` extra) unless --no-picture.

Run: ./run bench scale [--quick] [--sizes K ...] [--n N ...] [--chain-keys K] [--rounds R]
  default: sizes 1000 10000 100000, through the chain up to 10000, n 3 5 10 15, 20 rounds (7.5-8.5 minutes on
  2 cores); --quick: sizes 200 1000 3000, through the chain up to 1000, n 3 5, 5 rounds, 100 blocks of catch-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from scale_keys import KeysSweep
from scale_plot import draw
from scale_protocols import measure
from secretstore import aio

PICTURE = Path(__file__).resolve().parent / "out" / "scale.png"
# the targets: largest size against the smallest, same run
TARGETS = {"retrieval_ratio": 1.2, "signing_ratio": 1.2, "rss_ratio": 1.5, "restart_s": 2.0,
           "migration_per_key_ratio": 1.0, "n15_full_queue_blocks": 3}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run bench scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer n, for development")
    parser.add_argument("--sizes", type=int, nargs="+", help="keys stored at each step (ascending)")
    parser.add_argument("--n", type=int, nargs="*", help="key server counts for the protocol sweep (none: skip)")
    parser.add_argument("--chain-keys", type=int, help="keys made through the chain at most; the rest is seeded")
    parser.add_argument("--rounds", type=int, help="requests per latency median")
    parser.add_argument("--catchup-blocks", type=int, help="blocks a key server is stopped for")
    parser.add_argument("--no-picture", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    args.sizes = args.sizes or ([200, 1000, 3000] if quick else [1000, 10_000, 100_000])
    args.n = args.n if args.n is not None else ([3, 5] if quick else [3, 5, 10, 15])
    args.chain_keys = args.chain_keys if args.chain_keys is not None else (1000 if quick else 10_000)
    args.rounds = args.rounds or (5 if quick else 20)
    args.catchup_blocks = args.catchup_blocks or (100 if quick else 1000)
    if args.sizes != sorted(set(args.sizes)) or args.sizes[0] < 20:
        parser.error("--sizes: ascending, each at least 20 (the probe keys)")
    return args


def summary(sizes: list[dict], servers: list[dict]) -> dict:
    first, last = sizes[0], sizes[-1]
    n15 = next((s for s in servers if s["n"] == 15), None)
    return {"retrieval_ratio": round(last["shadow_ms"] / first["shadow_ms"], 3),
            "signing_ratio": round(last["schnorr_ms"] / first["schnorr_ms"], 3),
            "rss_ratio": round(last["rss_max_mb"] / first["rss_max_mb"], 3),
            "restart_s": last["restart_s"],
            "migration_per_key_ratio": round(last["migration"]["per_key_ms"] / first["migration"]["per_key_ms"], 3),
            "n15_full_queue_blocks": n15["full_queue_blocks"] if n15 else None,
            "max_keys": last["keys"]}


def main() -> None:
    args = arguments()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="secretstore-scale-") as tmp:
        sweep = KeysSweep(Path(tmp) / "keys", args.sizes, args.chain_keys, args.rounds, args.catchup_blocks,
                          workers=os.cpu_count() or 1)
        keys = aio.run(sweep.run())
    servers = [measure(n, args.rounds, 3 * 64) for n in args.n]
    elapsed = time.perf_counter() - started
    for entry in keys["sizes"]:
        print(json.dumps(entry))
    print(json.dumps({"catch_up": [keys["catch_up_first"], keys["catch_up_last"]]}))
    for entry in servers:
        print(json.dumps(entry))
    result = summary(keys["sizes"], servers)
    missed = [name for name, bound in TARGETS.items() if result[name] is not None and result[name] > bound]
    if not args.no_picture:
        print(draw(keys["sizes"], servers, PICTURE), file=sys.stderr)
    print(json.dumps({"seconds": round(elapsed), "targets": TARGETS, "missed": missed}))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
