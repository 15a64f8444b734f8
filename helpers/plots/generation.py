"""Notebook 08's plots: time per generated token with and without a KV cache, and a next-token
distribution."""

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def plot_time_per_token(lengths: list[int], without: list[float], with_cache: list[float],
                        title: str = "Time per new token") -> Figure:  # fmt: skip
    """Milliseconds per new token against the sequence length, without and with the KV cache."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(
        lengths, [1000 * t for t in without], marker="o", label="no cache: the whole context again"
    )
    ax.plot(
        lengths, [1000 * t for t in with_cache], marker="o", label="KV cache: the new token only"
    )
    ax.set(title=title, xlabel="tokens so far", ylabel="milliseconds per new token")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def plot_next_tokens(rows: list[tuple[str, float]], title: str) -> Figure:
    """A horizontal bar per candidate token (most likely on top) with its probability."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = [repr(t) for t, _ in rows][::-1]
    ax.barh(range(len(rows)), [p for _, p in rows][::-1])
    ax.set_yticks(range(len(rows)), names)
    ax.set(title=title, xlabel="probability", ylabel="next token", xlim=(0, 1))
    fig.tight_layout()
    return fig
