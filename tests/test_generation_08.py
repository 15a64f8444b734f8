"""Notebook 08's lesson helpers: the offline stand-in loads like gpt2, the prefix table is
reproducible by seed, the next-token table, the KV-cache timing, the widgets, and a clear message
when a model cannot be loaded."""

import shutil

import matplotlib
import pytest
import torch

from helpers.generation import (
    load_gpt2_and_tokenizer,
    next_token_table,
    prefix_samples,
    time_per_token,
)

matplotlib.use("Agg")

from helpers.plots.generation import plot_next_tokens  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HELPERS_CACHE", str(tmp_path_factory.mktemp("cache")))
    model, tokenizer, name = load_gpt2_and_tokenizer("tiny")
    yield model, tokenizer
    mp.undo()


def test_prefix_table_is_reproducible_by_seed(tiny):
    model, tokenizer = tiny

    def table(seed: int) -> dict:
        return prefix_samples(model, tokenizer, ["the cat", "a dog"], samples=3, tokens=6, seed=seed,
                              temperature=0.8, top_k=50)  # fmt: skip

    one = table(1)
    assert list(one) == ["the cat", "a dog"] and all(len(v) == 3 for v in one.values())
    assert one == table(1)
    assert one != table(2)


def test_next_token_table_is_sorted_probabilities(tiny):
    model, tokenizer = tiny
    rows = next_token_table(model, tokenizer, "the cat sat on the", top=10)
    probs = [p for _, p in rows]
    assert len(rows) == 10 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    with pytest.raises(ValueError, match="empty"):
        next_token_table(model, tokenizer, "")


def test_time_per_token_measures_both_ways(tiny):
    model, _ = tiny
    without, with_cache = (
        time_per_token(model, [4, 64], False),
        time_per_token(model, [4, 64], True),
    )
    assert len(without) == len(with_cache) == 2 and min(without + with_cache) > 0
    with pytest.raises(ValueError, match="block_size"):
        time_per_token(model, [model.config.block_size + 1], True)


def test_widgets_redraw_when_driven(tiny):
    from helpers.widgets.generation import next_token_explorer, sampling_explorer

    model, tokenizer = tiny
    explorer = sampling_explorer(model, tokenizer, ["the cat", "a dog"])
    before = dict(explorer.state["samples"])
    explorer.controls["temperature"].value = 0.1
    explorer.controls["tokens"].value = 7
    assert explorer.state["settings"][0] == 0.1 and explorer.state["samples"] != before
    box = next_token_explorer(model, tokenizer, "the cat")
    box.controls["text"].value = "a dog ran"
    assert box.state["text"] == "a dog ran" and len(box.state["rows"]) == 10


def test_transformers_greedy_equals_ours_and_speeds_are_measured(tiny):
    import logging
    import warnings

    import transformers

    from helpers.generation import tokens_per_second, transformers_greedy
    from helpers.training import generate

    model, tokenizer = tiny
    hf = transformers.GPT2LMHeadModel.from_pretrained(tokenizer.name_or_path).eval()
    prompt = torch.tensor([tokenizer("the cat sat")["input_ids"]])
    # transformers 5 warns through its own logger (logger.warning_once; it reaches pytest's caplog only
    # when it propagates, on CI), once per message: listen on that logger, forget the messages given
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    hf_logger = logging.getLogger("transformers")
    hf_logger.addHandler(handler)
    cache_clear = getattr(logging.Logger.warning_once, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = transformers_greedy(hf, prompt, 15)
    finally:
        hf_logger.removeHandler(handler)
    assert torch.equal(got, generate(model, prompt, 15, 128, 0.0))
    deprecated = [r.getMessage() for r in records] + [str(w.message) for w in caught]
    assert not [m for m in deprecated if "deprecated" in m.lower()], deprecated
    assert (
        tokens_per_second(model, prompt, 5, cache=True) > 0
        and tokens_per_second(model, prompt, 5, cache=False) > 0
    )


def test_a_model_that_cannot_be_loaded_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="MODEL = 'tiny'"):
        load_gpt2_and_tokenizer(str(tmp_path / "no-such-model"))


def test_a_model_folder_without_its_tokenizer_is_named(tmp_path):
    load_gpt2_and_tokenizer("tiny")  # builds the stand-in in the cache
    from helpers.download import cache_dir

    for name in ("config.json", "model.safetensors"):
        shutil.copy(cache_dir() / "tiny-gpt2" / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path} holds no tokenizer "):
        load_gpt2_and_tokenizer(str(tmp_path))


@pytest.mark.parametrize("profile", ["class", "full", "quick", "smoke"])
def test_profiles(profile):
    from helpers.profiles import sizes_for

    sizes = sizes_for("08", profile)
    assert (
        sizes.tokens > 0
        and sizes.generate_tokens > 0
        and sorted(sizes.lengths) == list(sizes.lengths)
    )
    assert (sizes.model == "tiny") == (profile == "smoke")
    assert torch.tensor(sizes.lengths).max() <= 1024


def test_typed_text_reaches_the_chart_as_typed(tiny):
    """A "$" pair was read as math ("$5 and $6" lost its dollars, "$\\foo$" raised inside matplotlib);
    a byte piece of a character decoded to the same "\ufffd" as every other; "" became " "."""
    from helpers.widgets.generation import next_token_explorer

    model, tokenizer = tiny
    explorer = next_token_explorer(model, tokenizer, "it costs $5 and $6")
    for typed in ("it costs $5 and $6", "$\\foo$ x"):
        fig = plot_next_tokens(explorer.state["rows"], f"after {typed!r}")
        fig.canvas.draw()  # "$\\foo$" failed here, in mathtext's parser
        title = fig.axes[0].title
        assert title._preprocess_math(title.get_text()) == (
            f"after {typed!r}: the top 10 hold {sum(p for _, p in explorer.state['rows']):.0%}",
            False,  # drawn as text, not math
        )
        matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="empty"):
        explorer.controls["text"].value = ""
    rows = next_token_table(model, tokenizer, "🙂")
    parts = [text for text, _ in rows if "\ufffd" in text or "part of a character" in text]
    assert all("part of a character (id " in text for text in parts)
    assert len({text for text, _ in rows}) == len(rows)  # every bar told apart
