"""Pretraining a small BERT with MLM (``helpers.mlm``, ``helpers.bert.mlm``, ``helpers.bert.save``): the
command end to end on a tiny text, resume, Hugging Face-format round trips, bad input, the masked loss."""

import json
import math
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers.bert import BertConfig, BertModel
from helpers.bert.mlm import IGNORE, BertForMaskedLM, mlm_outputs
from helpers.bert.save import hf_name, save_pretrained
from helpers.bert.weights import our_name
from helpers.env import seeded
from helpers.files import DiskFull
from helpers.mlm import MlmConfig, cli, masked_batches, pack, pretrain, runs, split_eval
from helpers.mlm.runs import STATE
from helpers.tokenization.train import train_wordpiece

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
TINY = ["--epochs", "2", "--layers", "1", "--hidden", "16", "--heads", "2", "--vocab-size", "60",
        "--seq-len", "16", "--batch-size", "8", "--quiet"]  # fmt: skip
TINY_CFG = dict(layers=1, hidden=16, heads=2, vocab_size=60, seq_len=16, batch_size=8)


def tiny_text(n: int = 120, seed: int = 0) -> list[str]:
    """Lines of a small language: a subject, a verb, an object (so MLM has something to learn)."""
    rng = torch.Generator().manual_seed(seed)
    parts = [["the cat", "a dog", "my friend", "the teacher"], ["sees", "likes", "finds", "reads"],
             ["the book", "a ball", "the garden", "an apple"]]  # fmt: skip
    lines = []
    for _ in range(n):
        words = [p[int(torch.randint(len(p), (1,), generator=rng))] for p in parts]
        lines.append(" ".join(words) + " .")
    return lines


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(tiny_text()) + "\n\n", encoding="utf-8")
    return path


def small_bert_config(vocab_size: int = 50) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=32)  # fmt: skip


# --- the command ----------------------------------------------------------------------------------


def test_seed_takes_the_range_every_command_takes(text_file, tmp_path, capsys):
    """Seeds up to 2**63 - 1, as imdb, finetune and gpt take; the next one is refused by name."""
    out, save = tmp_path / "out.json", tmp_path / "saved"
    argv = ["--train-file", str(text_file), *TINY, "--epochs", "1", "--save", str(save)]
    assert cli.main([*argv, "--json", str(out), "--seed", str(2**63 - 1)]) == 0
    assert json.loads(out.read_text())["config"]["seed"] == 2**63 - 1
    assert cli.main([*argv, "--json", str(tmp_path / "o2.json"), "--seed", str(2**63)]) == 2
    assert "--seed must be in [0, 2**63), not 9223372036854775808" in capsys.readouterr().err


def test_command_writes_perplexity_per_epoch_and_a_loadable_folder(text_file, tmp_path, capsys):
    out, save = tmp_path / "out.json", tmp_path / "saved"
    assert (
        cli.main(["--train-file", str(text_file), *TINY, "--save", str(save), "--json", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    assert len(report["eval_perplexity"]) == 2 and all(p > 1 for p in report["eval_perplexity"])
    assert report["eval_perplexity"][0] == pytest.approx(
        torch.tensor(report["eval_loss"][0]).exp().item()
    )
    assert report["tokens_seen"] == 2 * report["data"]["train_tokens"] > 0
    assert (report["config"]["precision"], report["precision"]) == ("auto", "fp32")  # as used
    assert report["tokens_seen_per_epoch"] == [
        report["data"]["train_tokens"],
        report["tokens_seen"],
    ]
    assert report["seconds"]["train"] > 0 and len(report["seconds"]["per_epoch"]) == 2
    assert report["data"]["eval_lines"] == 12  # the last 10% of 120 lines
    assert "held-out MLM perplexity per epoch" in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "tokenizer.json", "checkpoint.pt"):
        assert (save / name).is_file(), name
    from transformers import AutoTokenizer

    from helpers.minbert.runs import load_bert  # what python -m helpers.minbert --model DIR calls

    bert, tokenizer = load_bert(str(save))
    assert isinstance(bert, BertModel) and tokenizer.pad_token_id == 0
    assert bert.config.num_hidden_layers == 1 and bert.config.vocab_size == len(
        AutoTokenizer.from_pretrained(save)
    )
    mlm = BertForMaskedLM.from_pretrained(save)  # the head was saved too
    assert mlm.head.bias.shape == (bert.config.vocab_size,)


def saved_tiny(text_file, tmp_path, name: str = "saved", report: str = "o.json") -> Path:
    """tmp_path/``name``: the command's tiny run on ``text_file`` (its JSON in tmp_path/``report``)."""
    save = tmp_path / name
    argv = [
        "--train-file",
        str(text_file),
        *TINY,
        "--save",
        str(save),
        "--json",
        str(tmp_path / report),
    ]
    assert cli.main(argv) == 0
    return save


def test_memory_running_out_is_one_line_and_frees_the_folder_for_a_smaller_run(
    text_file, tmp_path, monkeypatch, capsys
):
    """`--seq-len 100000` ran out of memory in attention: a traceback, and then --save refused the
    smaller run the error should ask for ("holds a run with other settings: --seq-len 100000")."""
    said = "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 14400000000 bytes"  # fmt: skip

    def no_memory(*args, **kwargs):
        raise RuntimeError(said)

    save, out = tmp_path / "run", tmp_path / "out.json"
    argv = ["--train-file", str(text_file), "--save", str(save), "--json", str(out)]
    with monkeypatch.context() as patch:
        patch.setattr(runs, "fit", no_memory)  # the first epoch's first batch
        assert cli.main([*argv, *TINY, "--hidden", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the model or a batch does not fit in memory: make --hidden, "
                          "--layers, --seq-len or --batch-size smaller ([enforce fail")  # fmt: skip
    assert err.count("\n") == 1 and not out.exists(), err
    assert "settings" not in runs.read_state(save)  # no epoch kept it
    assert cli.main([*argv, *TINY]) == 0  # the smaller run, in the same --save
    assert json.loads(out.read_text())["config"]["hidden"] == 16


def test_finetune_command_loads_the_saved_folder(text_file, tmp_path):
    """python -m helpers.finetune --model DIR reads the folder through transformers' Auto classes."""
    from helpers.finetune.models import load_classifier

    save = saved_tiny(text_file, tmp_path)
    model, tokenizer = load_classifier(str(save), 2)
    batch = tokenizer(["the cat sees a ball ."], return_tensors="pt")
    assert model(**batch).logits.shape == (1, 2)


def test_load_classifier_dropout_reaches_a_bert_and_is_refused_elsewhere(text_file, tmp_path):
    """``dropout=`` replaces a saved BERT's dropout; a stand-in or a model without BERT's dropout
    settings (a T5) is refused with a ValueError naming it, not silently left as it was."""
    from helpers.finetune.models import load_classifier, tiny_t5

    save = saved_tiny(text_file, tmp_path)
    model, _ = load_classifier(str(save), 2, dropout=0.3)
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    with pytest.raises(ValueError, match="stand-in 'tiny'"):
        load_classifier("tiny", 2, dropout=0.3)
    t5_dir = tmp_path / "t5"
    tokenizer = load_classifier("tiny", 2)[1]
    tiny_t5(tokenizer, 2).t5.save_pretrained(t5_dir)
    tokenizer.save_pretrained(t5_dir)
    with pytest.raises(ValueError, match=r"\(t5\) has no such settings"):
        load_classifier(str(t5_dir), 2, dropout=0.3)


def test_finetune_command_refuses_a_max_length_beyond_the_models_positions(
    text_file, tmp_path, capsys
):
    """A model pretrained with 16 positions cannot read 128 tokens: exit 2 before training, not a shape
    error from inside the model."""
    from helpers.finetune import cli as finetune_cli

    save = tmp_path / "saved"
    argv = ["--train-file", str(text_file), *TINY, "--max-positions", "16", "--save", str(save),
            "--json", str(tmp_path / "o.json")]  # fmt: skip
    assert cli.main(argv) == 0
    rows = tmp_path / "rows.tsv"
    rows.write_text("sentence\tlabel\n" + "".join(f"{'the cat sees a ball ' * 5}{i} .\t{i % 2}\n"
                                                 for i in range(8)))  # fmt: skip
    argv = ["--model", str(save), "--train-file", str(rows), "--eval-file", str(rows), "--text-column",
            "sentence", "--epochs", "1", "--json", str(tmp_path / "f.json")]  # fmt: skip
    capsys.readouterr()
    assert finetune_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "--max-length 128 is more than the 16 positions of --model" in err
        and "Traceback" not in err
    )
    assert finetune_cli.main([*argv, "--max-length", "16"]) == 0


def test_resume_continues_after_the_last_saved_epoch(tmp_path):
    lines = tiny_text()
    train, held = split_eval(lines)
    cfg = MlmConfig(epochs=3, **TINY_CFG)
    whole = pretrain(cfg, train, held, tmp_path / "whole", CPU, progress=False)

    def crash(history):
        if len(history["epoch"]) == 2:
            raise KeyboardInterrupt  # killed during epoch 2: only epoch 1's checkpoint is on disk

    (tmp_path / "broken").mkdir()  # the same tokenizer files and state: the resume reuses them
    for name in ("tokenizer.json", "tokenizer_config.json", STATE):
        shutil.copy(tmp_path / "whole" / name, tmp_path / "broken" / name)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, train, held, tmp_path / "broken", CPU, progress=False, callbacks=[crash])
    again = pretrain(cfg, train, held, tmp_path / "broken", CPU, progress=False)
    assert again.report["resumed_after_epoch"] == 1 and again.report["tokenizer_reused"]
    assert len(again.history["eval_loss"]) == 3
    assert again.history["eval_loss"] == pytest.approx(whole.history["eval_loss"], rel=1e-4)
    assert whole.report["resumed_after_epoch"] == 0
    # tokens_seen counts every epoch, so its seconds do too (the console said "... tokens seen in 1 s"
    # from this call's seconds alone, 10 times too fast)
    seconds = again.report["seconds"]
    assert seconds["all_epochs"] == pytest.approx(sum(seconds["per_epoch"]))
    assert len(seconds["per_epoch"]) == 3 and seconds["all_epochs"] > seconds["per_epoch"][-1]


def test_minutes_plans_after_a_cell_turned_gradients_off(tmp_path):
    """Notebook 06's pretraining under an earlier `torch.set_grad_enabled(False)` stopped in the
    --minutes probe with torch's "element 0 of tensors does not require grad"."""
    train, held = split_eval(tiny_text())
    torch.set_grad_enabled(False)
    try:
        run = pretrain(
            MlmConfig(minutes=0.02, **TINY_CFG), train, held, tmp_path / "m", CPU, progress=False
        )
    finally:
        torch.set_grad_enabled(True)
    assert run.report["plan"]["estimated_epoch_seconds"] > 0 and run.report["epochs"] >= 1


def test_minutes_picks_whole_epochs_and_keeps_them_on_resume(tmp_path):
    train, held = split_eval(tiny_text())
    cfg = MlmConfig(minutes=0.05, **TINY_CFG)
    first = pretrain(cfg, train, held, tmp_path / "m", CPU, progress=False)
    plan = first.report["plan"]
    assert plan["epochs"] >= 1 and not plan["reused"] and plan["estimated_epoch_seconds"] > 0
    assert len(first.report["eval_perplexity"]) == plan["epochs"]
    again = pretrain(cfg, train, held, tmp_path / "m", CPU, progress=False)
    assert again.report["plan"]["reused"] and again.report["resumed_after_epoch"] == plan["epochs"]


def test_the_minutes_probe_is_not_thrown_by_one_slow_step(monkeypatch):
    """A run's plan rests on the probe: one stalled step (another process, a first allocation) must not
    make it plan a fraction of the epochs that fit. Here one timed step stalls 1.5 s."""
    cfg = MlmConfig(minutes=1, **TINY_CFG)
    tokenizer = train_wordpiece(tiny_text(), cfg.vocab_size)
    train, _ = split_eval(tiny_text())
    batches = masked_batches(
        pack(tokenizer, train, cfg.seq_len), tokenizer, 8, 0.15, 0, shuffle=False
    )
    with seeded(0):
        model = BertForMaskedLM(cfg.bert_config(len(tokenizer)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def stalls_once(probe, batch):
        calls.append(1)
        if len(calls) == 4:  # the second timed step
            time.sleep(1.5)
        return mlm_outputs(probe, batch)

    monkeypatch.setattr(runs, "mlm_outputs", stalls_once)
    seconds = runs.probe_epoch_seconds(model, batches, batches[:2], cfg, CPU)
    # A mean over the 8 timed steps would be >= 1.5 / 8 s a step; the median stays a normal step's.
    assert 0 < seconds < 0.1 * (len(batches) + 2)
    assert len(calls) >= 2 + 8 + 2  # warm-up, at least 8 timed steps, the evaluation
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_weight_decay_reaches_adamw_and_a_new_value_retrains(tmp_path):
    """``--weight-decay`` is AdamW's: a large one ends with smaller weights; a run in the same folder with
    another value trains again rather than resuming the other run's checkpoint."""
    train, held = split_eval(tiny_text())
    runs_by_decay = {}
    for wd in (0.0, 50.0):
        cfg = MlmConfig(epochs=2, weight_decay=wd, **TINY_CFG)
        runs_by_decay[wd] = pretrain(cfg, train, held, tmp_path / "wd", CPU, progress=False)
    assert runs_by_decay[50.0].report["resumed_after_epoch"] == 0
    assert runs_by_decay[50.0].report["config"]["weight_decay"] == 50.0
    decayed, plain = (
        runs_by_decay[wd].model.bert.embeddings.word.weight.std() for wd in (50.0, 0.0)
    )
    assert decayed < 0.8 * plain, (decayed, plain)


def test_dropout_reaches_the_model_and_its_saved_config_and_a_new_value_retrains(tmp_path):
    """``--dropout 0``: no dropout module drops anything while pretraining (two training passes over a
    batch give one loss), config.json says 0, and the default run in the same folder trains again."""
    train, held = split_eval(tiny_text())
    run = pretrain(MlmConfig(epochs=1, dropout=0.0, **TINY_CFG), train, held, tmp_path / "d", CPU,
                   progress=False)  # fmt: skip
    rates = {m.p for m in run.model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.0}
    inputs, attention, labels = next(iter(masked_batches(pack(run.tokenizer, train, 16),
                                                         run.tokenizer, 8, 0.3, 1, False)))  # fmt: skip
    run.model.train()
    losses = [mlm_outputs(run.model, (inputs, attention, labels))[0].item() for _ in range(2)]
    assert losses[0] == losses[1]
    saved = json.loads((tmp_path / "d" / "config.json").read_text())
    assert saved["hidden_dropout_prob"] == saved["attention_probs_dropout_prob"] == 0.0
    again = pretrain(
        MlmConfig(epochs=1, **TINY_CFG), train, held, tmp_path / "d", CPU, progress=False
    )
    assert again.report["resumed_after_epoch"] == 0 and again.report["config"]["dropout"] == 0.1
    assert {m.p for m in again.model.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    # attention dropout is a rate on each attention module, not an nn.Dropout
    assert {b.attn.dropout for b in run.model.bert.blocks} == {0.0}
    assert {b.attn.dropout for b in again.model.bert.blocks} == {0.1}


def test_each_epoch_masks_other_tokens(tmp_path, monkeypatch):
    """Fresh masks every epoch (README): the same masks every epoch still passed every test."""
    seen = {}
    real_fit = runs.fit

    def fit(model, epoch_batches, *args, **kwargs):
        seen["batches"] = epoch_batches
        return real_fit(model, epoch_batches, *args, **kwargs)

    monkeypatch.setattr(runs, "fit", fit)
    train, held = split_eval(tiny_text())
    pretrain(MlmConfig(epochs=1, **TINY_CFG), train, held, tmp_path / "m", CPU, progress=False)

    def labels(epoch):
        return torch.cat([batch[2].flatten() for batch in seen["batches"](epoch)])

    assert torch.equal(labels(0), labels(0)) and not torch.equal(labels(0), labels(1))


def test_whole_words_mask_every_piece_of_a_word_and_a_change_retrains(tmp_path, monkeypatch):
    """``--whole-words``: in every batch, training and held out, the pieces of a word are chosen
    together; a run in the same folder without it trains again rather than resuming."""
    from helpers.tokenization.mlm import continuation_ids

    train, held = split_eval(tiny_text())
    asked = []  # whole_words of every masked_batches call the run makes, training and held out
    masked = runs.masked_batches
    monkeypatch.setattr(runs, "masked_batches",
                        lambda *a, **k: asked.append(k.get("whole_words")) or masked(*a, **k))  # fmt: skip
    argv = ["--train-file", str(tmp_path / "t.txt"), *TINY, "--vocab-size", "40", "--whole-words",
            "--save", str(tmp_path / "ww"), "--json", str(tmp_path / "ww.json")]  # fmt: skip
    (tmp_path / "t.txt").write_text("\n".join(train + held) + "\n", encoding="utf-8")
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "ww.json").read_text())
    assert report["config"]["whole_words"] is True and report["eval_perplexity"]
    assert len(asked) >= 3 and set(asked) == {True}, asked  # held out + each of the 2 epochs
    run = runs.MlmConfig(epochs=1, whole_words=True, **{**TINY_CFG, "vocab_size": 40})
    tok, _ = runs.load_or_train_tokenizer(run, train, tmp_path / "ww")
    continues = continuation_ids(tok)
    assert continues.any()  # 40 pieces split some words, so whole words differ from tokens
    data = pack(tok, train, 16)
    split = 0
    for inputs, _, labels in masked_batches(data, tok, 8, 0.3, 5, True, whole_words=True):
        chosen = labels != IGNORE
        ids = torch.where(chosen, labels, inputs)  # the original tokens where chosen
        special = torch.isin(ids, torch.tensor(tok.all_special_ids))
        piece = continues[ids]
        piece[:, 1:] &= ~special[:, :-1]  # a piece right after [CLS] starts a word of its own
        split += int(piece.sum())
        # a piece is chosen exactly when the token before it (its word's) is
        assert torch.equal(chosen[:, 1:][piece[:, 1:]], chosen[:, :-1][piece[:, 1:]])
    assert split > 0

    def held_out_masked(whole: bool) -> int:  # the held-out masks, as the run draws them
        batches = masked_batches(
            pack(tok, held, 16), tok, 16, 0.15, runs.EVAL_MASK_SEED, False, whole
        )
        return sum(int((b[2] != IGNORE).sum()) for b in batches)

    assert report["data"]["eval_masked_tokens"] == held_out_masked(True) != held_out_masked(False)
    # the command will not write over the run with other flags; the library (the notebook) trains again
    plain = [a if a != "--whole-words" else "--quiet" for a in argv]
    assert cli.main(plain) == 2
    again = pretrain(MlmConfig(epochs=2, **{**TINY_CFG, "vocab_size": 40}), train, held,
                     tmp_path / "ww", CPU, progress=False)  # fmt: skip
    assert (
        again.report["resumed_after_epoch"] == 0 and again.report["config"]["whole_words"] is False
    )


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, said",
    [
        ({"--train-file": "missing.txt"}, r"--train-file missing\.txt does not exist"),
        ({"--train-file": "empty.txt"}, r"empty\.txt holds no text"),
        ({"--eval-file": "empty.txt"}, r"--eval-file empty\.txt holds no text"),
        ({"--epochs": "0"}, r"--epochs must be > 0"),
        ({"--hidden": "100", "--heads": "3"}, r"--hidden=100 is not divisible by --heads=3"),
        ({"--seq-len": "2"}, r"--seq-len must be at least 3"),
        ({"--save": "plain.txt"}, r"--save plain\.txt is a file"),
        ({"--json": "plain.txt/out.json"}, "cannot write"),
        ({"--minutes": "5"}, r"not allowed with argument --epochs"),
        ({"--weight-decay": "-1"}, r"--weight-decay must be >= 0 and finite, not -1\.0"),
        ({"--weight-decay": "nan"}, r"--weight-decay must be >= 0 and finite, not nan"),
        ({"--dropout": "1"}, r"--dropout must be in \[0, 1\), not 1\.0"),
        ({"--dropout": "nan"}, r"--dropout must be in \[0, 1\), not nan"),
    ],
)
def test_bad_input_exits_2_with_one_line(text_file, tmp_path, monkeypatch, capsys, change, said):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "plain.txt").write_text("not a folder")
    args = {
        "--train-file": str(text_file),
        "--epochs": "1",
        "--save": "saved",
        "--json": "out.json",
        **change,
    }
    argv = [item for pair in args.items() for item in pair]
    try:
        status = cli.main(argv)
    except SystemExit as err:  # argparse
        status = err.code
    assert status == 2
    err = capsys.readouterr().err
    assert re.search(said, err), err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err and len(errors) == 1, err  # one line says what is wrong
    assert not (tmp_path / "out.json").exists()


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


@pytest.mark.parametrize(
    "case, said",
    [
        (
            "exported model",
            r"holds files \(config\.json, model\.safetensors, tokenizer\.json\) that no",
        ),
        ("another tool's run", r"--save \S+ holds files \(checkpoint\.pt, model\.pt\) that no run"),
        ("more epochs", r"other settings: --epochs 2 \(now 3\)"),
        ("another rate", r"other settings: --lr 0\.001 \(now 0\.0005\)"),
        ("other text", r"holds a run on other text"),
        ("json in save", r"--json \S+ is inside --save"),
        ("json is the text", r"--json \S+ is the --train-file"),
        (
            "json is a run's weights",
            r"--json \S+: model\.safetensors is the name of a saved model's or run's file",
        ),
        ("json is not json", r"--json \S+ exists and is not a JSON report"),
        (  # said to hold files no run of this command wrote
            "state cut short",
            r"--save \S+/mlm-state\.json cannot be read as the state this command wrote \(cut short",
        ),
        (
            "eval is train",
            r"--eval-file \S+ is the --train-file: its perplexity would not be held out",
        ),
    ],
)
def test_the_command_never_writes_over_other_work(
    text_file, tmp_path, monkeypatch, capsys, case, said
):
    """A finished run, a model saved elsewhere and the input files survive a command that would have
    written over them: it exits 2 with one line before any work (a run only resumes unchanged)."""
    monkeypatch.chdir(tmp_path)
    argv = ["--train-file", str(text_file), *TINY, "--save", "run", "--json", "out.json"]
    assert cli.main(argv) == 0
    if case == "exported model":
        (tmp_path / "copy").mkdir()
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (tmp_path / "copy" / name).write_bytes((tmp_path / "run" / name).read_bytes())
    if case == "state cut short":
        state = tmp_path / "run" / "mlm-state.json"
        state.write_text(state.read_text()[:30])
    if case == "another tool's run":  # e.g. python -m helpers.gpt train's folder
        (tmp_path / "copy").mkdir()
        for name in ("checkpoint.pt", "model.pt"):
            (tmp_path / "copy" / name).write_bytes(b"another run's bytes")
    (tmp_path / "notes.txt").write_text("a student's notes, not a report")
    other = tmp_path / "other.txt"
    other.write_text(text_file.read_text() + "one more line of text here\n")
    changes = {"exported model": {"--save": "copy"}, "another tool's run": {"--save": "copy"},
               "more epochs": {"--epochs": "3"},
               "another rate": {"--lr": "5e-4"}, "other text": {"--train-file": str(other)},
               "json in save": {"--json": "run/out.json"}, "json is the text": {"--json": str(text_file)},
               "json is a run's weights": {"--save": "run2", "--json": "run/model.safetensors"},
               "json is not json": {"--save": "run2", "--json": "notes.txt"},
               "eval is train": {"--eval-file": str(text_file)}, "state cut short": {}}[case]  # fmt: skip
    again = list(argv)
    for flag, value in changes.items():
        if flag in again:
            again[again.index(flag) + 1] = value
        else:
            again += [flag, value]
    target = tmp_path / ("copy" if changes.get("--save") == "copy" else "run")
    before, text = folder_bytes(target), text_file.read_bytes()
    capsys.readouterr()
    assert cli.main(again) == 2
    err = capsys.readouterr().err
    assert re.search(said, err) and len(err.strip().splitlines()) == 1, err
    assert folder_bytes(target) == before and text_file.read_bytes() == text
    assert (tmp_path / "notes.txt").read_text() == "a student's notes, not a report"
    assert not (tmp_path / "run2").exists()
    if case == "state cut short":
        return
    assert cli.main(argv) == 0  # the run itself still resumes: nothing left to train
    assert json.loads((tmp_path / "out.json").read_text())["resumed_after_epoch"] == 2


def test_a_failed_run_leaves_its_folder_as_it_was(tmp_path):
    """The tokenizer is saved only once the data passed its checks: a text too short to score, given to
    a folder holding another run's tokenizer, changes nothing there."""
    train, held = split_eval(tiny_text())
    cfg = MlmConfig(epochs=1, **TINY_CFG)
    pretrain(cfg, train, held, tmp_path / "run", CPU, progress=False)
    before = folder_bytes(tmp_path / "run")
    with pytest.raises(ValueError, match="no token of the held-out text"):
        pretrain(cfg, ["a b", "c d"] * 5, ["e"], tmp_path / "run", CPU, progress=False)
    assert folder_bytes(tmp_path / "run") == before
    with pytest.raises(ValueError, match="--mask-prob"):
        pretrain(cfg, train, ["e"], tmp_path / "fresh", CPU, progress=False)
    assert not (tmp_path / "fresh" / "tokenizer.json").exists()


def test_a_diverged_run_stops_saves_nothing_and_says_so(text_file, tmp_path, capsys):
    argv = ["--train-file", str(text_file), *TINY, "--lr", "1e4", "--save", str(tmp_path / "run"),
            "--json", str(tmp_path / "out.json")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(
        r"training diverged: after epoch 1 .*\(--lr 10000\); start again with a smaller --lr", err
    ), err
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # the diverged epoch is not kept
    assert not (tmp_path / "out.json").exists()
    assert math.isnan(runs.perplexity(math.nan)) and runs.perplexity(800.0) == math.inf


def test_a_budget_that_fits_no_epoch_says_so(text_file, tmp_path, capsys):
    argv = ["--train-file", str(text_file), *TINY[2:],
            "--minutes", "0.0001", "--save", str(tmp_path / "run"), "--json", str(tmp_path / "o.json")]  # fmt: skip
    assert cli.main(argv) == 0
    assert "--minutes 0.0001 fits no whole epoch" in capsys.readouterr().err
    assert json.loads((tmp_path / "o.json").read_text())["epochs"] == 1


def test_ctrl_c_says_the_same_command_resumes(text_file, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "pretrain", interrupted)
    argv = ["--train-file", str(text_file), *TINY, "--save", str(tmp_path / "run"),
            "--json", str(tmp_path / "out.json")]  # fmt: skip
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "the same command resumes" in err and "Traceback" not in err, err


def test_damaged_state_and_tokenizer_files_are_trained_again(tmp_path, capsys):
    """A damaged tokenizer is trained again with a note (it was silent): the same ids, so the
    checkpoint resumes."""
    train, held = split_eval(tiny_text())
    cfg = MlmConfig(epochs=1, **TINY_CFG)
    first = pretrain(cfg, train, held, tmp_path / "run", CPU, progress=False)
    (tmp_path / "run" / "tokenizer.json").write_text('{"x": 1}')  # JSON, but not a tokenizer
    capsys.readouterr()
    again = pretrain(cfg, train, held, tmp_path / "run", CPU, progress=False)
    assert not again.report["tokenizer_reused"] and again.report["resumed_after_epoch"] == 1
    assert (
        f"note: the tokenizer saved in {tmp_path / 'run'} cannot be read ("
        in capsys.readouterr().err
    )
    (tmp_path / "run" / STATE).write_text("[1]")  # JSON, but not the state's dict
    assert runs.read_state(tmp_path / "run") == {}
    third = pretrain(cfg, train, held, tmp_path / "run", CPU, progress=False)
    assert third.history["eval_loss"] == pytest.approx(first.history["eval_loss"])


def test_a_tokenizer_trained_by_other_code_is_trained_again(tmp_path, monkeypatch):
    """The saved tokenizer was reused whenever the text and settings matched, whatever
    train_wordpiece now did: a changed pre-tokeniser resumed the old ids and checkpoint."""
    train, held = split_eval(tiny_text())
    cfg = MlmConfig(epochs=1, **TINY_CFG)
    pretrain(cfg, train, held, tmp_path / "run", CPU, progress=False)
    real = runs.train_wordpiece

    def edited(texts, vocab_size, **options):  # another training code (the same pieces here)
        return real(texts, vocab_size, **options)

    monkeypatch.setattr(runs, "train_wordpiece", edited)
    again = pretrain(cfg, train, held, tmp_path / "run", CPU, progress=False)
    assert not again.report["tokenizer_reused"]
    third = pretrain(cfg, train, held, tmp_path / "run", CPU, progress=False)
    assert third.report["tokenizer_reused"]  # the same code again: kept


# --- the masked loss ------------------------------------------------------------------------------


def test_mlm_loss_counts_only_the_masked_positions():
    with seeded(0):
        model = BertForMaskedLM(small_bert_config()).eval()
        ids = torch.randint(5, 50, (2, 10))
    labels = torch.full_like(ids, IGNORE)
    labels[0, 3], labels[1, 7], labels[1, 2] = 11, 12, 13
    mask = torch.ones_like(ids)
    loss, logits, targets = mlm_outputs(model, (ids, mask, labels))
    full = model(ids, mask)  # (B, T, V): every position
    chosen = labels != IGNORE
    assert logits.shape == (3, 50) and targets.tolist() == [11, 13, 12]
    assert torch.allclose(logits, full[chosen], atol=1e-6)
    assert loss.item() == pytest.approx(
        F.cross_entropy(full[chosen], labels[chosen]).item(), rel=1e-5
    )
    assert loss.item() == pytest.approx(
        F.cross_entropy(full.transpose(1, 2), labels).item(), rel=1e-5
    )
    # a different label at an unmasked position changes nothing; at a masked one it does
    other = labels.clone()
    other[0, 0] = IGNORE
    assert mlm_outputs(model, (ids, mask, other))[0].item() == pytest.approx(loss.item())
    other[0, 3] = 40
    assert mlm_outputs(model, (ids, mask, other))[0].item() != pytest.approx(loss.item())
    nothing = mlm_outputs(model, (ids, mask, torch.full_like(ids, IGNORE)))
    assert nothing[0].item() == 0.0 and nothing[2].numel() == 0


def test_decoder_is_tied_to_the_word_embeddings():
    model = BertForMaskedLM(small_bert_config())
    names = [n for n, _ in model.named_parameters()]
    assert not any("decoder" in n for n in names) and "head.bias" in names
    with torch.no_grad():
        model.bert.embeddings.word.weight[7] += 1.0
    h = torch.randn(1, 32)
    x = model.head.norm(F.gelu(model.head.dense(h)))
    assert torch.allclose(
        model.head(h), x @ model.bert.embeddings.word.weight.T + model.head.bias, atol=1e-5
    )


def test_eval_masks_are_the_same_every_time_and_training_masks_change_per_seed():
    tok = train_wordpiece(tiny_text(), 60)
    data = pack(tok, tiny_text(), 16)
    assert data.ids.shape[1] == 16 and (data.ids[:, 0] == tok.cls_token_id).all()
    a = masked_batches(data, tok, 8, 0.15, seed=1, shuffle=False)
    b = masked_batches(data, tok, 8, 0.15, seed=1, shuffle=False)
    c = masked_batches(data, tok, 8, 0.15, seed=2, shuffle=False)
    assert all(torch.equal(x[2], y[2]) for x, y in zip(a, b))
    assert not all(torch.equal(x[2], y[2]) for x, y in zip(a, c))
    specials = torch.isin(data.ids, torch.tensor(tok.all_special_ids))
    labels = torch.cat([x[2] for x in a])
    assert (labels[specials] == IGNORE).all()  # [CLS], [SEP], [PAD] are never predicted


# --- Hugging Face format --------------------------------------------------------------------------


def test_hf_names_invert_the_loader_mapping():
    model = BertModel(small_bert_config())
    for name in model.state_dict():
        assert our_name(hf_name(name)) == name
    with pytest.raises(KeyError, match="not a tensor"):
        hf_name("head.bias")


def test_saved_folder_round_trips_through_ours_and_transformers(tmp_path):
    import transformers

    with seeded(3):
        model = BertForMaskedLM(small_bert_config()).eval()
        ids = torch.randint(5, 50, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    tok = train_wordpiece(tiny_text(), 50)
    save_pretrained(model, tmp_path, tok)
    expected = model.bert(ids, mask).last_hidden_state

    ours = BertModel.from_pretrained(tmp_path)
    assert torch.equal(ours(ids, mask).last_hidden_state, expected)
    assert torch.equal(BertForMaskedLM.from_pretrained(tmp_path)(ids, mask), model(ids, mask))

    theirs, info = transformers.BertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"]
    real = mask.bool()
    got = theirs.eval()(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (got - expected)[real].abs().max() < 1e-5
    mlm, info = transformers.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"]
    assert (mlm.eval()(input_ids=ids, attention_mask=mask).logits - model(ids, mask))[
        real
    ].abs().max() < 1e-4
    cls, info = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2,
                                                                                output_loading_info=True)  # fmt: skip
    assert set(info["missing_keys"]) == {
        "classifier.weight",
        "classifier.bias",
    }  # only the new head
    assert transformers.AutoTokenizer.from_pretrained(tmp_path).get_vocab() == tok.get_vocab()


def test_encoder_alone_saves_without_a_head(tmp_path):
    model = BertModel(small_bert_config())
    save_pretrained(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["BertModel"]
    with pytest.raises(ValueError, match="holds no MLM head"):
        BertForMaskedLM.from_pretrained(tmp_path)


def test_save_folder_with_only_hidden_files_is_a_new_folder(tmp_path):
    """Jupyter's .ipynb_checkpoints and macOS's .DS_Store appear by themselves: the folder looks
    empty to a student, and no run writes a hidden file over them; it was refused."""
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".DS_Store").write_bytes(b"finder")
    cli.check_save(tmp_path, MlmConfig(epochs=1, **TINY_CFG), ["a b c"], ["a b"])
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files \(notes\.txt\) that no run"):
        cli.check_save(tmp_path, MlmConfig(epochs=1, **TINY_CFG), ["a b c"], ["a b"])


def test_a_full_disk_ends_the_command_with_one_line_saying_what_is_kept(
    text_file, tmp_path, monkeypatch, capsys
):
    def full(*args, **kwargs):
        raise DiskFull("the disk holding /x is full: out.json could not be written")

    monkeypatch.setattr(cli, "write_report", full)
    argv = [
        "--train-file",
        str(text_file),
        *TINY,
        "--save",
        str(tmp_path / "s"),
        "--json",
        "o.json",
    ]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: the disk holding /x is full") and "the same command resumes" in err
    )
    assert "Traceback" not in err and err.count("\n") == 1, err
