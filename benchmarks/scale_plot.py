"""The picture of `./run bench scale`: latency against keys and against n, RSS against keys (matplotlib, from the
optional `bench` extra: `pip install -e '.[bench]'`; `./run bench scale` installs it when missing)."""

from __future__ import annotations

from pathlib import Path


def draw(sizes: list[dict], servers: list[dict], path: Path) -> str:
    """Writes the picture; returns what was done (a sentence for the log)."""
    try:
        import matplotlib
    except ImportError:
        return "no picture: matplotlib is missing (pip install -e '.[bench]')"
    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    panels = 3 if servers else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), dpi=90)
    keys = [s["keys"] for s in sizes]

    latency = axes[0]
    latency.plot(keys, [s["shadow_ms"] for s in sizes], "o-", label="shadow retrieval (chain), ms")
    latency.plot(keys, [s["schnorr_ms"] for s in sizes], "s-", label="Schnorr signing (HTTP), ms")
    latency.plot(keys, [s["migration"]["per_key_ms"] for s in sizes], "d-", label="migration per key, ms")
    latency.set(xscale="log", xlabel="keys stored (n = 5)", ylabel="ms (median)", title="latency against keys")
    latency.set_ylim(bottom=0)
    restart = latency.twinx()  # seconds, on a scale of their own
    restart.plot(keys, [s["restart_s"] for s in sizes], "^--", color="tab:purple", label="restart to ready, s")
    restart.set_ylabel("s")
    restart.set_ylim(bottom=0, top=max(2.5, *(s["restart_max_s"] for s in sizes)))
    lines = latency.get_legend_handles_labels()
    more = restart.get_legend_handles_labels()
    latency.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="best")

    memory = axes[1]
    memory.plot(keys, [s["rss_max_mb"] for s in sizes], "o-", label="largest key server RSS")
    memory.plot(keys, [min(s["rss_mb"]) for s in sizes], "o:", label="smallest key server RSS")
    memory.plot(keys, [s["db_mb"] for s in sizes], "s--", label="share database (file)")
    memory.set(xscale="log", xlabel="keys stored (n = 5)", ylabel="MiB", title="memory and disk against keys")
    memory.set_ylim(bottom=0)
    memory.legend(fontsize=8)

    if servers:
        by_n = axes[2]
        ns = [s["n"] for s in servers]
        for name, label, mark in (("dkg_ms", "DKG (chain)", "o-"), ("shadow_ms", "shadow retrieval (chain)", "s-"),
                                  ("schnorr_ms", "Schnorr (HTTP)", "^-"), ("ecdsa_ms", "ECDSA (HTTP)", "v-")):
            by_n.plot(ns, [s[name] for s in servers], mark, label=label)
        by_n.set(xlabel="key servers n (t = (n - 1) / 2)", ylabel="ms (median)", title="latency against n",
                 xticks=ns, yscale="log")
        by_n.legend(fontsize=8)

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return f"picture: {path} ({path.stat().st_size // 1024} KiB)"
