"""Numbers students and instructors read from the experiment helpers: seeds that really vary, the
sign of a headline gap, sample spreads, the epoch dev chose, features over real tokens only, the
benchmark figures, the next-token table and the label checks. Small fakes stand in for the models."""

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")


# --- notebook 06: pretrained against its random twin ------------------------------------------------


def fake_run(seeds_seen: list, seed: int) -> SimpleNamespace:
    seeds_seen.append(seed)
    history = {"train_loss": [0.5], "dev_loss": [0.7], "dev_accuracy": [0.5], "seconds": [1.0]}
    return SimpleNamespace(history=history, model=None, collate=None)


def test_compare_fine_tunes_each_seed_with_its_own_seed(monkeypatch):
    """Every run reported as seed 0, 1, 2 was fine-tuned with seed 0: the spread over seeds was 0."""
    from helpers.finetune import twin
    from helpers.finetune.experiments import FinetuneConfig

    seen: list[int] = []
    monkeypatch.setattr(twin, "experiment", lambda *a, seed, **k: fake_run(seen, seed))
    monkeypatch.setattr(twin, "loader", lambda *a, **k: None)
    scores = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    monkeypatch.setattr(twin, "classification_scores", lambda *a, **k: dict(scores))
    rows = twin.finetune_runs({"pretrained": "p"}, {"dev": []}, {"pretrained": 3},
                              {"pretrained": FinetuneConfig()}, CPU)  # fmt: skip
    assert seen == [0, 1, 2] and [r["seed"] for r in rows] == [0, 1, 2]


def test_compare_gap_is_pretrained_minus_random_init(monkeypatch, tmp_path, capsys):
    """The headline gap had the wrong sign: random init minus pretrained, printed as a gain."""
    from helpers.finetune import twin

    accuracy = {"pretrained": [0.8, 0.9], "random init": [0.6, 0.7], "minilm": [0.85]}

    def runs(models, splits, seeds, configs, device, **_):
        return [{"model": name, "seed": seed, "accuracy": acc, "precision": acc, "recall": acc,
                 "f1": acc, "dev_accuracy_per_epoch": [acc], "seconds": 1.0}
                for name in models for seed, acc in enumerate(accuracy[name][: seeds[name]])]  # fmt: skip

    monkeypatch.setattr(twin, "check_inputs", lambda *a, **k: None)
    monkeypatch.setattr(twin, "check_report", lambda *a, **k: None)
    monkeypatch.setattr(twin, "random_twin", lambda *a, **k: None)
    monkeypatch.setattr(twin, "sst2_data", lambda *a, **k: {"splits": {"train": [], "dev": []},
                                                             "notes": []})  # fmt: skip
    monkeypatch.setattr(twin, "finetune_runs", runs)
    monkeypatch.setattr(twin, "pick_device", lambda: CPU)
    out = tmp_path / "compare.json"
    argv = ["--pretrained", str(tmp_path / "p"), "--sst-file", str(tmp_path / "t.tsv"),
            "--json", str(out), "--seeds", "2", "--minilm-seeds", "1"]  # fmt: skip
    assert twin.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["pretrained_minus_random_accuracy"] == pytest.approx(0.2)
    assert (report["device"], report["precision"]) == ("cpu", "fp32")  # "auto" as it resolved
    assert report["summary"]["pretrained"]["accuracy"]["sd"] == pytest.approx(0.1 / 2**0.5)
    assert "+20.0 accuracy points" in capsys.readouterr().out


class Letters:
    """A tokenizer over a, b, c, ... (id 0 is padding, 'a' is 1): one token per letter."""

    pad_token_id = 0

    def __call__(self, text, padding=False, truncation=False, max_length=None, return_tensors=None,
                 verbose=True):  # fmt: skip
        from transformers import BatchEncoding

        if isinstance(text, str):
            return {"input_ids": [ord(c) - 96 for c in text if c != " "]}
        ids = [[ord(c) - 96 for c in t if c != " "] for t in text]
        if return_tensors is None:
            return {"input_ids": ids}
        width = max(map(len, ids))
        mask = [[1] * len(i) + [0] * (width - len(i)) for i in ids]
        ids = [i + [0] * (width - len(i)) for i in ids]
        return BatchEncoding({"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)})

    def decode(self, ids):
        return "".join(chr(96 + i) for i in ids)


class WordsOnly(nn.Module):
    """An 'encoder' whose last layer is its word embeddings; padding's vector is large."""

    def __init__(self):
        super().__init__()
        self.embeddings = SimpleNamespace(word=nn.Embedding(4, 2))
        with torch.no_grad():
            self.embeddings.word.weight.copy_(
                torch.tensor([[100.0, 100.0], [1, 0], [0, 1], [1, 1]])
            )
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, ids, mask):
        return SimpleNamespace(last_hidden_state=self.embeddings.word(ids))


def test_frozen_probe_averages_over_the_real_tokens_only(monkeypatch):
    """Padding positions were averaged into each sentence's features, so a short sentence's features
    depended on the longest sentence of its batch."""
    import sklearn.linear_model
    import transformers

    from helpers.finetune import twin

    fitted = []

    class Recorder:
        def __init__(self, **_):
            pass

        def fit(self, x, y):
            fitted.append(x)
            return self

        def score(self, x, y):
            return 1.0

    monkeypatch.setattr(sklearn.linear_model, "LogisticRegression", Recorder)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Letters())
    monkeypatch.setattr(twin, "BertModel", SimpleNamespace(from_pretrained=lambda f: WordsOnly()))
    rows = [{"sentence": "a", "label": 0}, {"sentence": "b b b", "label": 1}]
    twin.frozen_probe("folder", {"train": rows, "dev": rows}, CPU)
    expected = [[1.0, 0.0], [0.0, 1.0]]
    assert [x.tolist() for x in fitted] == [expected, expected]  # word embeddings, last layer


# --- notebook 04: seeds and the cost of the homework --------------------------------------------------


def test_seeded_runs_give_each_run_the_next_seed(monkeypatch):
    """Every seeded run used the first seed: the 'spread over seeds' was one run repeated."""
    from helpers.finetune import experiments

    seen: list[int] = []
    monkeypatch.setattr(experiments, "experiment", lambda *a, seed, **k: fake_run(seen, seed))
    experiments.seeded_runs("tiny", {}, None, CPU, None, seeds=3, first_seed=7)
    assert seen == [7, 8, 9]


def test_seconds_per_example_epoch_divides_by_every_epoch_of_every_run():
    """The speed behind the homework's time estimate was divided by runs, not epochs: off by the
    number of epochs."""
    from helpers.finetune import experiments

    runs = [SimpleNamespace(history={"seconds": [1.0, 1.0, 1.0]}) for _ in range(2)]
    assert experiments.seconds_per_example_epoch(runs, 10) == pytest.approx(0.1)


# --- notebook 03's ablation ------------------------------------------------------------------------


def test_ablation_summary_has_sample_spread_and_the_difference_from_the_base():
    """The summary's spread was the population one, or its 'vs course' column had the wrong sign."""
    from helpers.imdb import ablation

    rows = [{"change": c, "seed": s, "valid_accuracy": a, "seconds_per_epoch": 1.0}
            for c, s, a in [("course", 42, 0.80), ("course", 43, 0.84),
                            ("lr 1e-3", 42, 0.90), ("lr 1e-3", 43, 0.86)]]  # fmt: skip
    table = ablation.summary(rows)
    assert table.loc["course", "sd"] == pytest.approx(0.04 / 2**0.5)
    assert table.loc["lr 1e-3", "vs course"] == pytest.approx(0.06)


def test_ablation_trains_each_seed_with_that_seed(monkeypatch):
    """Every row was labelled with its seed but trained with the first one: the spread was 0."""
    from helpers.imdb import ablation
    from helpers.training import History

    seen = []

    def run(prepared, cfg, device, seed, progress):
        seen.append(seed)
        history = History()
        history.log(valid_accuracy=0.5, valid_loss=0.7, seconds=1.0)
        return SimpleNamespace(history=history, model=None)

    monkeypatch.setattr(ablation, "run", run)
    prepared = SimpleNamespace(docs={"train": [], "valid": []})
    rows = ablation.ablation(prepared, ablation.CONFIGS["course"], [42, 43], CPU, {"course": {}})
    assert seen == [42, 43] and [r["seed"] for r in rows] == [42, 43]


# --- the minBERT command: the epoch dev chose ---------------------------------------------------------


def test_keep_best_keeps_the_first_of_equal_dev_accuracies():
    """On a tie the later epoch was kept, though the rule is the first of equal scores."""
    from helpers.minbert.runs import KeepBest
    from helpers.training import History

    model = nn.Linear(2, 2)
    keep, history = KeepBest(model), History()
    for accuracy, fill in ((0.7, 1.0), (0.7, 2.0)):
        nn.init.constant_(model.weight, fill)
        history.log(dev_accuracy=accuracy)
        keep(history)
    keep.restore()
    assert keep.epoch == 1 and torch.all(model.weight == 1.0)


def test_train_classifier_returns_the_weights_of_the_epoch_dev_chose(monkeypatch):
    """The run reported its best epoch but kept the last epoch's weights, so test was scored on a
    model dev never chose."""
    from helpers.bert import BertConfig, BertModel
    from helpers.minbert import runs
    from helpers.minbert.data import Example
    from helpers.training import History

    def fit(model, batches, config, device, eval_batches, callbacks, **_):
        history = History()
        for epoch, accuracy in enumerate((0.6, 0.9, 0.7), start=1):
            for p in model.parameters():
                if p.requires_grad:
                    nn.init.constant_(p, float(epoch))
            history.log(dev_accuracy=accuracy)
            for callback in callbacks:
                callback(history)
        return history

    monkeypatch.setattr(runs, "fit", fit)
    bert = BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=16,
                                max_position_embeddings=16))  # fmt: skip
    train = [Example(i % 2, "ab" if i % 2 else "ba") for i in range(4)]
    cfg = runs.MinbertConfig(option="finetune", epochs=3)
    run = runs.train_classifier("x", cfg, train, train[:2], CPU, False, loaded=(bert, Letters()))
    assert run.best_epoch == 2 and run.dev_accuracy == 0.9
    assert torch.all(run.model.head.weight == 2.0)


# --- the benchmark commands' figures ----------------------------------------------------------------


class Clock:
    """perf_counter for a test: time moves only when a fake function says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_interleaved_medians_warm_up_then_take_the_median(monkeypatch):
    """The timing took the mean (an outlier moved it), or timed without the warm-up calls."""
    from helpers import benchmark

    clock = Clock()
    monkeypatch.setattr(benchmark, "time", SimpleNamespace(perf_counter=clock))
    durations = iter([100.0, 1.0, 2.0, 30.0])  # a slow first call, then one outlier
    calls = []

    def fn():
        calls.append(1)
        clock.now += next(durations)

    assert benchmark.interleaved_medians({"a": fn}, repeats=3, warmup=1) == {"a": 2.0}
    assert len(calls) == 4


def test_block_speed_ratio_is_from_scratch_over_torch_on_the_same_weights(monkeypatch):
    """The ratio was inverted (torch over from-scratch), or the two blocks did not share weights, so
    the speed comparison was between different functions."""
    from helpers import benchmark

    monkeypatch.setattr(benchmark, "interleaved_medians",
                        lambda fns, repeats, **k: {"from_scratch": 3.0, "torch": 1.0})  # fmt: skip
    result = benchmark.block_speed(batch=2, tokens=8, embed_dim=16, heads=2, repeats=1)
    assert result["ratio_from_scratch_over_torch"] == pytest.approx(3.0)
    assert result["max_output_difference"] < 1e-5


def test_kv_cache_speed_reports_each_speed_under_its_own_name(monkeypatch):
    """The speeds with and without the cache were swapped in the report."""
    import helpers.training
    from helpers import benchmark

    clock = Clock()
    monkeypatch.setattr(benchmark, "time", SimpleNamespace(perf_counter=clock))

    def generate(model, idx, steps, block_size, temperature, cache):
        clock.now += 1.0 if cache else 4.0
        return idx

    monkeypatch.setattr(helpers.training, "generate", generate)
    (row,) = benchmark.kv_cache_speed({"tiny": 8})["rows"]
    assert row["tokens_per_second_with_cache"] == pytest.approx(8.0)
    assert row["tokens_per_second_without_cache"] == pytest.approx(2.0)


# --- notebook 08's tables -----------------------------------------------------------------------------


class NextLetter(nn.Module):
    """A 'GPT' that, at every position, predicts the letter after the one there."""

    config = SimpleNamespace(block_size=16)

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        return 20.0 * nn.functional.one_hot((idx + 1) % 27, 27).float()  # (B, T, V)


def test_next_token_table_reads_the_last_position():
    """The table showed what follows the first token of the text, not the whole text."""
    from helpers.generation import next_token_table

    (token, p), *_ = next_token_table(NextLetter(), Letters(), "abc", top=2)
    assert token == "d" and p > 0.99


def test_prefix_samples_show_only_the_continuation(monkeypatch):
    """Each continuation repeated its prefix before the new tokens."""
    from helpers.generation import runs

    def generate(model, idx, tokens, block_size, **_):
        return torch.cat([idx, torch.full((idx.shape[0], tokens), 26)], dim=1)

    monkeypatch.setattr(runs, "generate", generate)
    table = runs.prefix_samples(NextLetter(), Letters(), ["ab"], samples=2, tokens=3)
    assert table == {"ab": ["zzz", "zzz"]}


# --- label checks -----------------------------------------------------------------------------------


def test_a_single_row_with_a_label_train_lacks_is_refused():
    """One stray label in an evaluation file (a class the model cannot predict) slipped through."""
    from helpers.tables import check_labels

    with pytest.raises(ValueError, match=r"label 2 \(1 row, first row 3\) that train never had"):
        check_labels({0: 0, 1: 1}, [0, 1, 2], "dev.csv")


# --- notebook 03's run ------------------------------------------------------------------------------


def test_imdb_run_reshuffles_the_training_batches_every_epoch(monkeypatch):
    """Every epoch saw the training batches in the same order (the shuffle seed ignored the epoch)."""
    import numpy as np

    from helpers.imdb import runs
    from helpers.training import History

    captured = {}

    def fit(model, batches, config, device, **_):
        captured["batches"] = batches
        return History()

    monkeypatch.setattr(runs, "fit", fit)
    docs = [np.arange(1, 2 + i % 7) for i in range(40)]
    prepared = runs.Prepared(
        vectors=torch.randn(10, 4), itos=[str(i) for i in range(10)],
        docs={"train": docs, "valid": docs[:4]},
        labels={"train": torch.arange(40) % 2, "valid": torch.arange(4) % 2},
        texts={"train": [""] * 40, "valid": [""] * 4}, coverage=1.0,
    )  # fmt: skip
    runs.run(prepared, runs.ImdbConfig(batch_size=4, max_len=8), CPU, seed=0, progress=False)

    def order(epoch):
        return [ids.tolist() + labels.tolist() for ids, _, labels in captured["batches"](epoch)]

    assert order(0) == order(0) and order(0) != order(1)
