"""Notebook 06: the pretraining curve (held-out MLM perplexity per epoch) and the SST-2 comparison."""

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers.plots import count, subplots

METRICS = ("accuracy", "precision", "recall", "f1")


def plot_perplexity(report: dict, title: str = "Pretraining: held-out MLM perplexity") -> Figure:
    """``python -m helpers.mlm``'s report (or ``pretrain(...).report``): perplexity per epoch, with the
    tokens seen on a second axis."""
    ppl = report["eval_perplexity"]
    epochs = range(1, len(ppl) + 1)
    fig, ax = subplots(figsize=(6.5, 3.5))
    ax.plot(epochs, ppl, marker="o")
    ax.set(title=title, xlabel="epoch", ylabel="perplexity (exp of masked cross-entropy)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(y=0.12)  # room for the first and last epoch's numbers
    for x, y in ((1, ppl[0]), (len(ppl), ppl[-1])):
        ax.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(4, 6))
    tokens = report["tokens_seen"] / 1e6
    # the epochs' own seconds (held-out evaluation included): a run resumed after its last epoch
    # spends none in them ("train" is then ~1 s)
    seconds = sum(report["seconds"].get("per_epoch") or [report["seconds"]["train"]])
    ax.text(0.98, 0.95, f"{tokens:.2f}M tokens seen; the epochs took {seconds:.0f} s",
            transform=ax.transAxes, ha="right", va="top", fontsize="small")  # fmt: skip
    fig.tight_layout()
    return fig


def plot_comparison(summary: dict[str, dict], title: str = "SST-2 dev, fine-tuned") -> Figure:
    """One bar chart: each metric (groups) for each model (bars), mean over seeds with ±1 sd (none
    for one seed) (``helpers.finetune.twin.summarize``'s output)."""
    fig, ax = subplots(figsize=(9, 3.8))
    width = 0.8 / max(1, len(summary))
    for i, (name, s) in enumerate(summary.items()):
        x = [m + (i - (len(summary) - 1) / 2) * width for m in range(len(METRICS))]
        spreads = [s[k]["sd"] for k in METRICS]  # None for one seed: no bar, not a bar of 0
        ax.bar(x, [s[k]["mean"] for k in METRICS], width,
               yerr=None if None in spreads else spreads, capsize=3, label=f"{name} ({count(s['seeds'], 'seed')})")  # fmt: skip
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1, label="chance (0.5)")
    ax.set_xticks(range(len(METRICS)), METRICS)
    ax.set(title=title, xlabel="metric", ylabel="score (mean ± sd)", ylim=(0, 1.05))
    # beside the axes: inside, it covered the bars of the last metric
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.tight_layout()
    return fig
