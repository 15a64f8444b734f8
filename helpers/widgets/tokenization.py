"""Notebook 06's widget: a slider over BPE's merge steps, and how a few words' pieces change."""

import html

import ipywidgets as w

from helpers.tokenization.bpe import Pair, is_word, segmentations_by_step
from helpers.tokenization.bpe import words as cut_into_words
from helpers.widgets.live import SLIDER_LAYOUT, STYLE, live_html

PIECE = ("display:inline-block;margin:1px;padding:1px 5px;border-radius:4px;font-family:monospace;"
         "background:{};color:#000;border:1px solid #bbb")  # fmt: skip
NEW, OLD = "#ffd88a", "#e8eef7"  # a piece the latest merge made, any other piece


def merge_state(step: int, letters: int, merges: list[Pair], steps: list[dict]) -> dict:
    """After the first ``step`` merges: each word's pieces, the merge just made (None at step 0),
    the pieces per word on average and the vocabulary size (the ``letters`` characters the merges
    were learnt from, plus one per merge)."""
    pieces = steps[step]
    return {
        "step": step,
        "merge": merges[step - 1] if step else None,
        "pieces": pieces,
        "pieces_per_word": sum(len(p) for p in pieces.values()) / max(1, len(pieces)),
        "vocab": letters + step,
    }


def _word_html(word: str, pieces: list[str], made: str | None) -> str:
    style = {p: PIECE.format(NEW if p == made else OLD) for p in pieces}
    boxes = "".join(f"<span style='{style[p]}'>{html.escape(p)}</span>" for p in pieces)
    return f"<div><span style='display:inline-block;width:130px'>{html.escape(word)}</span>{boxes}</div>"


def merge_explorer(
    words: list[str], merges: list[Pair], alphabet: set[str], *, step: int | None = None
) -> w.VBox:
    """A slider over the merge steps 0 … len(merges): each word of ``words`` in its pieces after that
    many merges, the pieces the latest merge made highlighted; redraws while dragged. ``alphabet``:
    the characters of the text the merges were learnt from (``bpe.alphabet(lines)``)."""
    for word in words:
        if not is_word(word):
            raise ValueError(f"{word!r} is not one word: BPE cuts text into words first "
                             f"({cut_into_words(word)}); give one word per entry")  # fmt: skip
    steps = segmentations_by_step(words, merges)
    start = len(merges) if step is None else step
    control = w.IntSlider(value=start, min=0, max=len(merges), description="merges applied",
                          continuous_update=True, layout=SLIDER_LAYOUT, style=STYLE)  # fmt: skip

    def compute(step: int) -> dict:
        return merge_state(step, len(alphabet), merges, steps)

    def draw(state: dict) -> w.HTML:
        made = "".join(state["merge"]) if state["merge"] else None
        head = (f"step {state['step']}: merged {html.escape(' + '.join(state['merge']))} → "
                f"<b>{html.escape(made)}</b>" if made else "step 0: every word in characters")  # fmt: skip
        lines = "".join(_word_html(word, p, made) for word, p in state["pieces"].items())
        tail = (f"{state['pieces_per_word']:.2f} pieces per word here; vocabulary: the text's "
                f"{len(alphabet)} characters + {state['step']} merges = {state['vocab']}")  # fmt: skip
        return w.HTML(f"<div>{head}</div>{lines}<div style='opacity:0.7'>{tail}</div>")

    return live_html({"step": control}, compute, draw)
