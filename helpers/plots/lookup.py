"""Notebook 01's plots and table: one query looking up keys and values, by argmax and by softmax."""

import html
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure

from helpers import attention as att
from helpers.plots import number, subplots


@dataclass
class Table:
    """Named columns with a label per row; a notebook shows it as an HTML table."""

    columns: dict[str, list]
    index: list[str]

    def __getitem__(self, column: str) -> list:
        return self.columns[column]

    def _repr_html_(self) -> str:
        def row(label: str, cells: list, tag: str = "td") -> str:
            tds = "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells)
            return f"<tr><th>{html.escape(label)}</th>{tds}</tr>"

        head = row("", list(self.columns), "th")
        body = [
            row(label, [c[i] for c in self.columns.values()]) for i, label in enumerate(self.index)
        ]
        return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"

    def __repr__(self) -> str:
        rows = [["", *self.columns]]
        rows += [
            [label, *(c[i] for c in self.columns.values())] for i, label in enumerate(self.index)
        ]
        widths = [max(len(str(r[j])) for r in rows) for j in range(len(rows[0]))]
        return "\n".join("  ".join(str(x).rjust(n) for x, n in zip(r, widths)) for r in rows)


def _labels(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i + 1}" for i in range(n)]


def lookup_table(query: att.Array, keys: att.Array, values: att.Array) -> Table:
    """One row per key: the key, its value, the score q·k and the argmax and softmax weights."""
    q, k, v = att.validate(query, keys, values)
    soft = att.softmax_attention(q, k, v, scale=1.0, return_weights=True)[1]
    hard = att.argmax_attention(q, k, v, return_weights=True)[1]
    columns = {
        "key": [str(row.tolist()) for row in k],
        "value": [str(row.tolist()) for row in v],
        "score q·k": (q @ k.T).tolist(),
        "argmax weight": hard.tolist(),
        "softmax weight": [round(x, 4) for x in soft.tolist()],
    }
    return Table(columns, index=_labels("k", k.shape[0]))


def queries_table(keys: att.Array, queries: dict[str, torch.Tensor]) -> Table:
    """One row per labelled query: its score q·k and its softmax weight on each key (scale 1)."""
    k = att.as_float(keys)
    columns: dict[str, list] = {}
    rows = [att.lookup(q, k, k) for q in queries.values()]
    for i, name in enumerate(_labels("k", k.shape[0])):
        columns[f"score {name}"] = [round(float(r["scores"][i]), 3) for r in rows]
    for i, name in enumerate(_labels("k", k.shape[0])):
        columns[f"weight {name}"] = [round(float(r["weights"][i]), 3) for r in rows]
    return Table(columns, index=list(queries))


def plot_lookup(
    weights: torch.Tensor,
    output: torch.Tensor,
    target: torch.Tensor | None = None,
    title: str = "",
    scores: torch.Tensor | None = None,
) -> Figure:
    """Bar charts: the raw score of each key (if given), the weight on each key, and the output
    (beside a target, if given)."""
    weights, output = weights.detach().double(), output.detach().double()
    panels = 3 if scores is not None else 2
    fig, axes = subplots(1, panels, figsize=(4.2 * panels, 3.2))
    keys = _labels("k", len(weights))
    if scores is not None:
        values = scores.detach().double().tolist()
        bars = axes[0].bar(keys, values, color="tab:gray")
        axes[0].bar_label(bars, [number(v) for v in values], fontsize=8)
        axes[0].axhline(0, color="black", linewidth=0.5)
        axes[0].margins(y=0.15)  # room for the labels of the tallest and the lowest bar
        axes[0].set(title="score q·k of each key", xlabel="key", ylabel="score")
    left, right = axes[-2], axes[-1]
    bars = left.bar(keys, weights.tolist(), color="tab:blue")
    left.bar_label(bars, [number(v) for v in weights.tolist()], fontsize=8)
    left.set(title="weight on each key", xlabel="key", ylabel="attention weight", ylim=(0, 1.12))
    positions = torch.arange(len(output)).double()
    width = 0.4 if target is not None else 0.8
    right.bar(
        (positions - width / 2 * (target is not None)).tolist(),
        output.tolist(),
        width,
        label="output",
    )
    if target is not None:
        right.bar(
            (positions + width / 2).tolist(),
            target.detach().double().tolist(),
            width,
            label="target",
        )
        right.legend(loc="best")
    right.set_xticks(positions.tolist(), [f"dim {i}" for i in range(len(output))])
    right.set(title="output vector", xlabel="component", ylabel="value")
    right.axhline(0, color="black", linewidth=0.5)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_weight_matrix(weights: torch.Tensor, title: str = "") -> Figure:
    """The (n, n) weights of n queries over n keys as a heatmap, each cell labelled."""
    weights = weights.detach().double()
    n = weights.shape[0]
    fig, ax = subplots(figsize=(5.6, 4.0))
    image = ax.imshow(weights.tolist(), vmin=0, vmax=1, cmap="Blues")
    for i in range(n):
        for j in range(n):
            value = float(weights[i, j])
            color = "white" if value > 0.6 else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(n), _labels("k", n))
    ax.set_yticks(range(n), _labels("q", n))
    ax.set(xlabel="key", ylabel="query (position)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    return fig


def plot_argmax_vs_softmax(
    query: att.Array,
    keys: att.Array,
    values: att.Array,
    target: att.Array,
    points: int = 201,
    span: float = 3.0,
) -> Figure:
    """Left: the loss as q[0] moves, for both lookups. Right: the gradient size at q, for both."""
    fig, (left, right) = subplots(1, 2, figsize=(10, 3.5))
    norms = {}
    for label, attend in (("softmax", att.raw_softmax_attention), ("argmax", att.argmax_attention)):
        offsets, losses = att.loss_along_query(attend, query, keys, values, target, 0, span, points)
        left.plot((offsets + att.as_float(query)[0]).tolist(), losses.tolist(), label=label)
        grad_q, grad_k = att.query_key_gradients(attend, query, keys, values, target)
        norms[label] = [grad_q.norm().item()] + grad_k.norm(dim=1).tolist()
    left.axvline(att.as_float(query)[0].item(), color="gray", linestyle=":", label="our query")
    left.set(
        title="loss as the query's first component moves",
        xlabel="q[0]",
        ylabel="Σ (output − target)²",
    )
    left.legend(loc="best")
    names = ["q"] + _labels("k", att.as_float(keys).shape[0])
    x = torch.arange(len(names)).double()
    right.bar((x - 0.2).tolist(), norms["softmax"], 0.4, label="softmax")
    right.bar((x + 0.2).tolist(), norms["argmax"], 0.4, label="argmax")
    if not any(norms["argmax"]):  # above the tallest bar, in the room the margin leaves
        right.margins(y=0.25)
        right.text(0.5, 0.92, "argmax: 0 for q and every key", transform=right.transAxes,
                   ha="center", va="top")  # fmt: skip
    right.set_xticks(x.tolist(), names)
    right.set(title="gradient size at our query", xlabel="tensor", ylabel="‖∂loss/∂·‖")
    right.legend(loc="best")
    fig.tight_layout()
    return fig
