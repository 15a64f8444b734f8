"""Notebook 07's plots: the variants' dev-loss curves, and one model's attention with its next-token
distribution."""

import torch
from matplotlib.figure import Figure

from helpers.plots import plain, subplots, token_ticks


def plot_curves(reports: dict[str, dict], title: str = "Dev loss while training") -> Figure:
    """Each run's dev loss (nats per token) against the training step, overlaid; ``reports`` maps a
    label to a run's report (``train(...).report`` or the JSON of ``python -m helpers.gpt train``)."""
    fig, ax = subplots(figsize=(9, 3.8))
    for label, report in reports.items():
        ax.plot(
            report["steps"],
            report["dev_losses"],
            marker=".",
            label=f"{label}: {report['dev_loss']:.3f}",
        )
    ax.set(title=title, xlabel="training step", ylabel="dev loss (nats per token)")
    # beside the axes: inside, it covered the curves' last steps, the part compared
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title="final dev loss")
    fig.tight_layout()
    return fig


def plot_attention_and_next(
    state: dict, layer: int, head: int, top: int = 10, title: str = ""
) -> Figure:
    """``helpers.gpt.runs.inspect``'s output: one head's (T, T) weights (with a colour bar, and the
    smallest and largest row sum in the title: below 1 where weights were zeroed after the softmax),
    and the ``top`` most likely next tokens."""
    tokens, weights, probs = state["tokens"], state["weights"][layer, head], state["probs"]
    T = len(tokens)
    shown = [_label(t) for t in tokens]
    height = min(7.0, max(4.2, 0.14 * T + 1.2))  # a readable row per token up to about 40 tokens
    fig, (left, right) = subplots(
        1, 2, figsize=(11, height), gridspec_kw={"width_ratios": [1.3, 1]}
    )
    image = left.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=left, label="attention weight", fraction=0.046, pad=0.03)
    rows = weights.sum(-1)  # 1 for a causal softmax; less where weights were zeroed after it
    low, high = rows.min().item(), rows.max().item()
    token_ticks(left, shown, most=40, fontsize=7)
    left.set(
        title=f"layer {layer}, head {head} (row sums {low:.2f}–{high:.2f})",
        xlabel="key (attended to)",
        ylabel="query (attending)",
    )
    p, idx = torch.topk(probs, min(top, len(probs)))
    names = [_label(state["itos"][i]) if "itos" in state else str(i) for i in idx.tolist()]
    right.barh(range(len(p)), p.numpy()[::-1])
    right.set_yticks(range(len(p)), [plain(name) for name in names[::-1]])
    right.set(
        title=plain(f"next token after {tokens[-1]!r}"),
        xlabel="probability",
        ylabel="next token",
        xlim=(0, 1),
    )
    fig.suptitle(plain(title))
    fig.tight_layout()
    return fig


def _label(token: str) -> str:
    """A token as a tick label: as it is, or quoted when it is white space (' ', '\\n')."""
    return repr(token)[1:-1] if token.strip() else repr(token)
