"""Notebook 03: the ablation's runs with their spread, and text shaded by a signed attribution."""

import html

from matplotlib.figure import Figure

from helpers.plots import PANEL, subplots


def plot_ablation(rows: list[dict], title: str = "one change at a time") -> Figure:
    """Validation accuracy of every run: a dot per seed, a bar at the mean, one row per change; the
    course config's mean as a dashed line."""
    changes = list(dict.fromkeys(r["change"] for r in rows))
    fig, ax = subplots(figsize=(8, 0.45 * len(changes) + 1.6))
    for y, change in enumerate(changes):
        scores = [r["valid_accuracy"] for r in rows if r["change"] == change]
        first = y == 0  # one legend entry for the dots and one for the bars
        ax.plot(scores, [y] * len(scores), "o", color="tab:blue", alpha=0.6,
                label="a seed" if first else None)  # fmt: skip
        ax.plot([sum(scores) / len(scores)] * 2, [y - 0.3, y + 0.3], color="black",
                label="their mean" if first else None)  # fmt: skip
    course = [r["valid_accuracy"] for r in rows if r["change"] == changes[0]]
    ax.axvline(
        sum(course) / len(course), color="gray", linestyle="--", label=f"{changes[0]} (mean)"
    )
    ax.set_yticks(range(len(changes)), changes)
    ax.invert_yaxis()
    ax.set(title=f"{title}: validation accuracy, each dot a seed", xlabel="validation accuracy",
           ylabel="one change each")  # fmt: skip
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def highlight_signed(tokens: list[str], values: list[float]) -> str:
    """HTML: each token on blue (positive) or red (negative), as dark as |value| relative to the largest
    (its value shown on hover), black on a white panel in light and dark themes alike."""
    top = max((abs(v) for v in values), default=0.0) or 1.0
    spans = []
    for token, value in zip(tokens, values):
        color = "30, 110, 220" if value >= 0 else "220, 50, 50"
        spans.append(f'<span style="background: rgba({color}, {abs(value) / top:.2f}); '
                     f'padding: 1px" title="{value:+.3f}">{html.escape(token)}</span>')  # fmt: skip
    return f'<div style="{PANEL}">' + " ".join(spans) + "</div>"
