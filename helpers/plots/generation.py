"""Notebook 08's plots: time per generated token with and without a KV cache, and a next-token
distribution."""

from matplotlib.figure import Figure

from helpers.plots import plain, subplots


def plot_time_per_token(lengths: list[int], without: list[float], with_cache: list[float],
                        title: str = "Time per new token") -> Figure:  # fmt: skip
    """Milliseconds per new token against the sequence length, without and with the KV cache."""
    fig, ax = subplots(figsize=(8.5, 3.6))
    ax.plot(
        lengths, [1000 * t for t in without], marker="o", label="no cache: the whole context again"
    )
    ax.plot(
        lengths, [1000 * t for t in with_cache], marker="o", label="KV cache: the new token only"
    )
    ax.set(title=title, xlabel="tokens so far", ylabel="milliseconds per new token")
    ax.set_ylim(bottom=0)  # from zero: a cut axis would make the cache's gain look larger
    # beside the axes: from zero, flat times (a GPU) put both lines where a legend inside would sit
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.tight_layout()
    return fig


def plot_next_tokens(rows: list[tuple[str, float]], title: str) -> Figure:
    """A horizontal bar per candidate token (most likely on top) with its probability; the title says how
    much probability they hold together."""
    fig, ax = subplots(figsize=(7.5, 3.6))
    names = [plain(repr(t)) for t, _ in rows][::-1]
    probs = [p for _, p in rows][::-1]
    bars = ax.barh(range(len(rows)), probs)
    ax.bar_label(
        bars, [f"{p:.1%}" for p in probs], padding=2, fontsize=8
    )  # small ones stay readable
    ax.set_yticks(range(len(rows)), names)
    ax.set(title=plain(f"{title}: the top {len(rows)} hold {sum(probs):.0%}"), xlabel="probability",
           ylabel="next token", xlim=(0, 1.1))  # fmt: skip
    fig.tight_layout()
    return fig
