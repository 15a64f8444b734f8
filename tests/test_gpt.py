"""Notebook 07's GPT: the attention variants (the teaching path equals the fast one), the leak of
zero-masking proven by changing future tokens, training that learns, word-level data with <unk>, the
command line (train, resume, sample, bad input), and the widgets."""

import contextlib
import functools
import json
import math
import re

import matplotlib
import pytest
import torch

from helpers.corpora import synthetic_text
from helpers.gpt import (
    GPT,
    VARIANTS,
    GPTConfig,
    GPTRunConfig,
    Vocab,
    build_corpus,
    cli,
    train,
    windows,
)
from helpers.gpt.attention import CausalSelfAttention, additive_scores, causal_softmax
from helpers.gpt.runs import future_leak, inspect, load_model, sample, sentence_losses
from helpers.training import generate

matplotlib.use("Agg")
TINY = dict(layers=1, heads=2, embd=16, block_size=16, batch_size=8, evals=2, eval_batches=2)


def tiny_model(**changes) -> GPT:
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=20, block_size=12, layers=2, heads=2, embd=16, **changes)
    ).eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_path_equals_the_teaching_path(variant):
    torch.manual_seed(0)
    slow = CausalSelfAttention(16, 4, variant=variant, fast=False)
    fast = CausalSelfAttention(16, 4, variant=variant, fast=True)
    fast.load_state_dict(slow.state_dict())
    x = torch.randn(3, 9, 16)
    assert torch.allclose(slow(x), fast(x), atol=1e-5)


def test_shared_projections_share_parameters():
    sizes = {
        v: sum(p.numel() for p in CausalSelfAttention(16, 2, variant=v).parameters())
        for v in VARIANTS
    }
    assert sizes["shared-qk"] == sizes["dot"] - (16 * 16 + 16)
    assert sizes["shared-qkv"] == sizes["dot"] - 2 * (16 * 16 + 16)
    attn = CausalSelfAttention(16, 2, variant="shared-qkv")
    q, k, v = attn.qkv(torch.randn(1, 5, 16))
    assert q is k and k is v


def test_additive_scores_match_the_formula_and_the_past_only_shortcut():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 5, 4, generator=g), torch.randn(2, 3, 5, 4, generator=g)
    w_q, w_k, w2 = (
        torch.randn(3, 4, 6, generator=g),
        torch.randn(3, 4, 6, generator=g),
        torch.randn(3, 6, generator=g),
    )
    full = additive_scores(q, k, w_q, w_k, w2)
    b, h, i, j = 1, 2, 3, 1  # one pair by the definition: w2ᵀ tanh(W1 [q_i; k_j])
    w1 = torch.cat([w_q[h], w_k[h]])  # (2 hs, da)
    assert torch.isclose(
        full[b, h, i, j], torch.tanh(torch.cat([q[b, h, i], k[b, h, j]]) @ w1) @ w2[h], atol=1e-5
    )
    past = additive_scores(q, k, w_q, w_k, w2, past_only=True)
    assert torch.allclose(causal_softmax(past), causal_softmax(full), atol=1e-6)


def test_zero_mask_weights_do_not_sum_to_one_and_inf_weights_do():
    scores = torch.randn(2, 6, 6)
    assert torch.allclose(causal_softmax(scores, "inf").sum(-1), torch.ones(2, 6))
    assert (causal_softmax(scores, "zero").sum(-1)[:, :-1] < 1 - 1e-4).all()
    with pytest.raises(ValueError, match="mask must be one of"):
        causal_softmax(scores, "none")


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_leak_future_tokens_change_earlier_predictions_only_with_zero_masking(variant):
    ids = torch.randint(20, (1, 12), generator=torch.Generator().manual_seed(1))
    for position in (1, 6, 11):
        assert future_leak(tiny_model(attention=variant, mask="inf"), ids, position) == 0.0
        assert future_leak(tiny_model(attention=variant, mask="zero"), ids, position) > 1e-6
    trained_like = tiny_model(attention=variant, mask="zero")
    with torch.no_grad():  # weights the size training gives them: the leak grows with the scores
        for p in trained_like.parameters():
            p.mul_(10)
    assert future_leak(trained_like, ids, 6) > 1e-2


def test_gpt_ties_its_head_to_the_embedding_and_refuses_a_long_context():
    model = tiny_model()
    assert model.head.weight is model.tok.weight
    assert model(torch.zeros(2, 12, dtype=torch.long)).shape == (2, 12, 20)
    with pytest.raises(ValueError, match="block_size=12"):
        model(torch.zeros(1, 13, dtype=torch.long))


@pytest.mark.parametrize(
    ("changes", "message"),
    [(dict(attention="sparse"), "attention must be one of"), (dict(mask="none"), "mask must be one of"),
     (dict(embd=10, heads=3), "not divisible"), (dict(dropout=1.0), "dropout")],
)  # fmt: skip
def test_gpt_config_names_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(vocab_size=10, **changes)


def test_training_learns_from_the_context(one_thread):
    text = synthetic_text(12_000)
    cfg = GPTRunConfig(iters=200, lr=3e-3, **{**TINY, "embd": 32, "batch_size": 16, "evals": 4})
    state = torch.get_rng_state()
    report = train(text, cfg, torch.device("cpu"), progress=False).report
    assert torch.equal(torch.get_rng_state(), state)  # the notebook's generator is left alone
    unigram = torch.bincount(build_corpus(text, "char").train).float()
    unigram /= unigram.sum()
    entropy = -(unigram * torch.log(unigram + 1e-12)).sum().item()  # letter frequencies alone: 2.78
    assert report["dev_losses"][-1] < report["dev_losses"][0] < entropy
    assert report["dev_loss"] < entropy - 1.0  # measured 1.20: it reads the words so far
    assert report["tokens_per_second"] > 0 and report["iters"] == 200 and len(report["steps"]) == 4


def test_word_level_lines_end_only_at_a_newline():
    """A word-level text's <eos> goes where a line ends, not at a U+0085 or U+2028 inside it."""
    vocab = build_corpus("the film was slow\x85 then good\r\nthe end\n" * 10, "word").vocab
    assert vocab.tokens("was slow\x85 then\u2028 good\r\nend") == [
        "was", "slow", "then", "good", "<eos>", "end", "<eos>"
    ]  # fmt: skip


def test_word_level_corpus_maps_unseen_dev_words_to_unk():
    text = "the cat sat\nthe dog ran\n\nthe cat ran\n" * 9 + "a zebra sat\n"
    corpus = build_corpus(text, "word")
    vocab = corpus.vocab
    assert vocab.itos[:2] == ["<unk>", "<eos>"] and "zebra" not in vocab.stoi
    assert vocab.stoi["<unk>"] in corpus.dev.tolist()
    assert vocab.decode(vocab.encode("the cat sat\nthe dog")) == "the cat sat\nthe dog\n"
    assert Vocab("char", list("ab")).unknown("abc!") == ["!", "c"]
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        Vocab("char", list("ab")).encode("abc")
    # "Café" typed with UTF-8 mode off (PYTHONUTF8=0 under the C locale) reaches Python as
    # undecodable bytes: the setting is named, not "characters ['\\udcc3', '\\udca9'] are not in the vocabulary"
    typed = "Café".encode().decode("ascii", "surrogateescape")  # what such a locale hands Python
    with pytest.raises(ValueError, match="bytes Python could not decode .* PYTHONUTF8=1"):
        Vocab("char", list("Caféf")).encode(typed)


def test_generate_top_k_draws_only_among_the_k_most_likely():
    model = tiny_model()
    idx = torch.zeros(64, 1, dtype=torch.long)
    top2 = model(idx[:1])[0, -1].topk(2).indices.tolist()
    out = generate(model, idx, 1, 12, 1.0, torch.Generator().manual_seed(0), top_k=2)
    assert set(out[:, 1].tolist()) <= set(top2)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, idx, 1, 12, top_k=0)


def test_inspect_returns_every_layer_and_head_and_a_distribution():
    vocab = Vocab("char", [chr(97 + i) for i in range(20)])
    state = inspect(tiny_model(attention="additive"), vocab, "abcabc")
    assert state["weights"].shape == (2, 2, 6, 6) and torch.allclose(
        state["weights"].sum(-1), torch.ones(2, 2, 6)
    )
    assert state["weights"][0, 0].triu(1).abs().max() == 0
    assert math.isclose(state["probs"].sum().item(), 1.0, rel_tol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt")
    data = folder / "text.txt"
    data.write_text(synthetic_text(8000))
    out = folder / "run.json"
    args = ["train", "--data", str(data), "--iters", "30", "--layers", "1", "--heads", "2", "--embd", "16",
            "--block-size", "16", "--batch-size", "8", "--evals", "3", "--save", str(folder / "m"), "--json", str(out), "--quiet"]  # fmt: skip
    assert cli.main(args) == 0
    return folder, args, out


def test_cli_train_writes_the_report_and_a_model_that_samples(trained, capsys):
    folder, _, out = trained
    report = json.loads(out.read_text())
    assert len(report["dev_losses"]) == 3 and report["dev_loss"] == report["dev_losses"][-1]
    assert report["tokens_per_second"] > 0 and report["seconds"] > 0 and report["iters"] == 30
    assert (report["device"], report["precision"]) == ("cpu", "fp32")
    model, vocab = load_model(folder / "m")
    assert (
        cli.main(["sample", "--load", str(folder / "m"), "--prompt", "the cat", "--tokens", "20"])
        == 0
    )
    printed = capsys.readouterr().out
    assert printed.startswith("the cat") and printed.endswith("\n")
    # the prompt and 20 characters, which may be newlines themselves (not stripped)
    assert len(printed[:-1]) == 27
    assert sample(model, vocab, "the", 5, seed=1) == sample(model, vocab, "the", 5, seed=1)
    assert len(sentence_losses(model, vocab, ["the cat sat.", "a dog ran."])) == 2


def test_cli_train_again_resumes_and_gives_the_same_result(trained, capsys):
    folder, args, out = trained
    first = json.loads(out.read_text())
    assert cli.main([a for a in args if a != "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads(out.read_text())["dev_losses"] == first["dev_losses"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--data", "missing.txt"], "does not exist"), (["--embd", "30", "--heads", "4"], "--embd=30"),
     (["--block-size", "5000"], "block size"), (["--lr", "-1"], "--lr"), (["--seed", str(2**40)], "--seed"),
     (["--json", "DATA"], "is the --data file"), (["--json", "SAVE/model.pt"], "would overwrite model.pt"),
     (["--json", "SAVE"], "is inside --save"),
     (["--iters", "abc"], "invalid int value"), (["--level", "byte"], "invalid choice"),
     (["--batch-size", str(10**12)], "is too large (at most 2,147,483,647)"), (["--heads", "0"], "error: --heads must be")],
)  # fmt: skip
def test_cli_train_bad_input_exits_2_with_a_message(trained, tmp_path, capsys, args, message):
    data = trained[0] / "text.txt"
    args = [
        {
            "DATA": str(data),
            "SAVE/model.pt": str(tmp_path / "m" / "model.pt"),
            "SAVE": str(tmp_path / "m"),
        }.get(a, a)
        for a in args
    ]
    base = {"--data": str(data), "--iters": "2", "--save": str(tmp_path / "m"),
            "--json": str(tmp_path / "new" / "o.json")}  # fmt: skip
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    flat = ["train", *[x for kv in base.items() for x in kv]]
    parsing = "invalid" in message or "too large" in message  # argparse exits itself
    with pytest.raises(SystemExit) if parsing else contextlib.nullcontext() as exited:
        assert cli.main(flat) == 2
    assert exited is None or exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "new").exists() and not (tmp_path / "m" / "plan.json").exists()  # fmt: skip
    assert data.read_text().startswith(synthetic_text(50)[:20])  # the data is never overwritten


def test_cli_train_messages_keep_the_paths_as_given(tmp_path, monkeypatch, capsys):
    """A folder named heads was called "--heads" in the message, and runs of spaces in a path were
    squeezed to one, so the path shown was not the one to fix."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "heads").write_text("a file\n", encoding="utf-8")
    (tmp_path / "t.txt").write_text(synthetic_text(3000), encoding="utf-8")
    for args, said in (
        (["--data", "t.txt", "--save", "heads"], "--save heads is a file"),
        (["--data", "a heads  b.txt", "--save", "m"], "--data a heads  b.txt does not exist"),
        (["--data", "t.txt", "--save", "heads dir", "--embd", "30", "--heads", "4"], "--embd=30 is not divisible by --heads=4"),
        (["--data", "t.txt", "--save", "heads", "--embd", "30", "--heads", "4"], "--embd=30 is not divisible by --heads=4"),
    ):  # fmt: skip
        assert cli.main(["train", *args, "--iters", "2", "--json", "o.json"]) == 2
        err = capsys.readouterr().err
        assert said in err, err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--load", "nowhere"], "does not exist"), (["--prompt", "€"], "--prompt: characters ['€'] are not in"),
     (["--prompt", ""], "--prompt is empty"), (["--temperature", "-1"], "--temperature"), (["--top-k", "0"], "--top-k"),
     (["--temperature", "nan"], "finite"), (["--load", "FILE"], "is a file")],
)  # fmt: skip
def test_cli_sample_bad_input_exits_2_with_a_message(trained, capsys, args, message):
    base = {"--load": str(trained[0] / "m"), "--prompt": "the", "--tokens": "3"}
    args = [str(trained[0] / "text.txt") if a == "FILE" else a for a in args]
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    assert cli.main(["sample", *[x for kv in base.items() for x in kv]]) == 2
    assert message in capsys.readouterr().err


def test_generate_survives_extreme_temperatures():
    model = tiny_model()
    idx = torch.zeros(2, 1, dtype=torch.long)
    greedy = generate(model, idx, 4, 12, 0.0)
    assert torch.equal(generate(model, idx, 4, 12, 1e-45, torch.Generator().manual_seed(0)), greedy)
    assert generate(model, idx, 4, 12, 1e30, torch.Generator().manual_seed(0), top_k=3).shape == (
        2,
        5,
    )


def test_load_model_names_a_broken_file(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a model saved by helpers.gpt") as err:
        load_model(tmp_path)
    assert "not a file torch.save wrote" in str(err.value)  # not torch's "weights_only=False"
    assert "weights_only" not in str(err.value)


def test_cli_parser_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["train", "--iters", "2"])  # no --data
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: the following arguments are required: --data"), err


def test_memory_error_is_not_cut_inside_a_number():
    said = cli.allocator_said(RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. "
                                           "DefaultCPUAllocator: not enough memory: you tried to "
                                           "allocate 16000000000000 bytes. " + "x " * 100))  # fmt: skip
    assert "16000000000000 bytes" in said and len(said) <= 160


def test_word_level_one_line_names_the_line_split(tmp_path, capsys):
    data = tmp_path / "one.txt"
    data.write_text(" ".join(["word"] * 500) + "\n")
    argv = ["train", "--data", str(data), "--level", "word", "--iters", "2",
            "--save", str(tmp_path / "m"), "--json", str(tmp_path / "o.json")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: word level splits the text 90/10 by lines; --data has 1 line")
    assert err.count("\n") == 1 and not (tmp_path / "m").exists()


def test_word_level_sample_continues_from_the_prompts_last_word(monkeypatch):
    vocab = Vocab("word", ["<unk>", "<eos>", "the", "cat"])
    seen = []

    def fake_generate(model, idx, *args, **kwargs):
        seen.append(idx[0].tolist())
        return idx

    monkeypatch.setattr("helpers.gpt.runs.generate", fake_generate)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=12, layers=2, heads=2, embd=16)).eval()
    sample(model, vocab, "the cat", 0)
    sample(model, vocab, "the\ncat\n", 0)  # a prompt ending in a newline keeps its <eos>
    sample(model, vocab, "the\ncat\n  ", 0)  # spaces after the newline too
    assert seen == [[2, 3], [2, 1, 3, 1], [2, 1, 3, 1]]
    # inspect reads the same ids: the next token after "cat", not after the <eos> (it showed that)
    assert inspect(model, vocab, "the cat")["tokens"] == ["the", "cat"]


def small_argv(tmp_path, changes: dict | None = None) -> list[str]:
    """``train`` on tmp_path/text.txt (3,000 characters, written once) in 2 steps of a 1-layer model,
    saved in tmp_path/run; ``changes`` ({"--embd": "32"}) replaces or adds flags."""
    data = tmp_path / "text.txt"
    if not data.exists():
        data.write_text(synthetic_text(3000))
    flags = {"--data": str(data), "--iters": "2", "--layers": "1", "--heads": "2", "--embd": "16",
             "--block-size": "16", "--batch-size": "4", "--evals": "1", "--save": str(tmp_path / "run"),
             "--json": str(tmp_path / "out.json"), **(changes or {})}  # fmt: skip
    return ["train", *[x for kv in flags.items() for x in kv], "--quiet"]


def test_cli_train_takes_new_flags_where_a_run_stopped_before_its_first_checkpoint(
    tmp_path, capsys
):
    """A folder holding only plan.json (a run killed before it saved anything) has nothing to lose."""
    assert cli.main(small_argv(tmp_path)) == 0
    for name in ("model.pt", "checkpoint.pt"):
        (tmp_path / "run" / name).unlink()
    assert cli.main(small_argv(tmp_path, {"--embd": "32"})) == 0
    assert (tmp_path / "run" / "model.pt").is_file()


def test_cli_train_says_when_minutes_were_spent_before_training(tmp_path, capsys):
    argv = small_argv(tmp_path)
    del argv[argv.index("--iters") : argv.index("--iters") + 2]  # --minutes instead
    assert cli.main([*argv, "--minutes", "0.0001"]) == 0
    err = capsys.readouterr().err
    assert "note: --minutes 0.0001 was spent before training" in err and "trained 1 step" in err, (
        err
    )


def folder_bytes(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    ("changes", "said"),
    [({"--embd": "32"}, [r"--embd 16 \(now 32\)"]), ({"--iters": "4"}, [r"--iters 2 \(now 4\)"]),
     ({"--embd": "32", "--dropout": "0.1"}, [r"--embd 16 \(now 32\)", r"--dropout 0\.0 \(now 0\.1\)"]),
     ({"--level": "word"}, [r"--level char \(now word\)"]), ({"--data": "OTHER"}, [r"--data: another text"]),
     ({"--heads": "4", "--block-size": "8"}, [r" --heads 2 \(now 4\)", r" --block-size 16 \(now 8\)"])],
)  # fmt: skip
def test_cli_train_refuses_to_write_over_a_run_with_other_settings(tmp_path, capsys, changes, said):
    """A finished run survives the command with any flag or the text changed: exit 2, one line naming
    what changed, nothing written; the same command then still resumes it."""
    argv = small_argv(tmp_path)
    assert cli.main(argv) == 0
    other = tmp_path / "other.txt"
    other.write_text(synthetic_text(3000) + "one more line of text\n")
    before, report = folder_bytes(tmp_path / "run"), (tmp_path / "out.json").read_bytes()
    capsys.readouterr()
    changed = {k: str(other) if v == "OTHER" else v for k, v in changes.items()}
    assert cli.main(small_argv(tmp_path, changed)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --save {tmp_path / 'run'} holds a run with other settings")
    assert "give the same flags to resume it, or a new --save" in err
    assert all(re.search(s, err) for s in said) and len(err.strip().splitlines()) == 1, err
    assert (
        folder_bytes(tmp_path / "run") == before and (tmp_path / "out.json").read_bytes() == report
    )
    assert (
        cli.main([a for a in argv if a != "--quiet"]) == 0
    )  # the same command: nothing left to do
    assert "resuming from checkpoint.pt after epoch 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("files", "said"),
    [({"checkpoint.pt": b"MLM state", "mlm-state.json": b"{}", "config.json": b"{}"},
      "holds files (checkpoint.pt, config.json, mlm-state.json) that no run of this command wrote"),
     ({"model.pt": b"someone's model", "notes.txt": b"keep", "a.txt": b"", "b.txt": b""},
      "holds files (a.txt, b.txt, model.pt, ...) that no run of this command wrote"),
     ({"plan.json": b'{"tasks": [{"model": "tiny"}]}'}, "holds files (plan.json) that no run of this"),
     ({"plan.json": b"my own plan: write the essay", "essay.md": b"# Essay"},
      "holds files (essay.md, plan.json) that no run of this command wrote")],
)  # fmt: skip
def test_cli_train_refuses_a_folder_another_tool_wrote(tmp_path, capsys, files, said):
    """A python -m helpers.mlm folder, another model, a scaling plan: left as they are (exit 2)."""
    (tmp_path / "run").mkdir()
    for name, data in files.items():
        (tmp_path / "run" / name).write_bytes(data)
    assert cli.main(small_argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert (
        said in err and "give a new or empty folder" in err and len(err.strip().splitlines()) == 1
    )
    assert folder_bytes(tmp_path / "run") == files and not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("edit", [
    lambda plan: {**plan, "iters": str(plan["iters"])},  # a divmod TypeError traceback
    lambda plan: {**plan, "iters": -5},  # "the training split is empty"
    None,  # cut short: "files that no run of this command wrote"
    "",  # empty, as a crash can leave it
    '{\n  "ke',  # cut inside its first key
])  # fmt: skip
def test_cli_train_names_its_own_plan_cut_short_or_edited(tmp_path, capsys, edit):
    assert cli.main(small_argv(tmp_path)) == 0
    path = tmp_path / "run" / "plan.json"
    text = path.read_text()
    if edit is None or isinstance(edit, str):
        path.write_text(text[:40] if edit is None else edit)
    else:
        path.write_text(json.dumps(edit(json.loads(text))))
    capsys.readouterr()
    assert cli.main(small_argv(tmp_path)) == 2
    assert capsys.readouterr().err == (
        f"error: --save {tmp_path / 'run'}/plan.json cannot be read as a plan this command wrote "
        "(cut short or edited?); give a new --save, or delete the folder to train again\n"
    )


def test_cli_train_interrupted_resumes_with_the_same_command_only(tmp_path, monkeypatch, capsys):
    """A run stopped after its first evaluation (and a temporary file a kill left behind) is resumed
    by the same command and refused to any other; an empty folder is a new run."""
    from helpers.gpt import runs

    (tmp_path / "run").mkdir()  # empty: fine
    argv = small_argv(tmp_path, {"--iters": "4", "--evals": "2"})
    fit = runs.fit

    def stopped(model, round_batches, *args, **kwargs):
        @functools.wraps(round_batches)  # the training code's digest reads the function it wraps
        def batches(r):
            if r == 1:
                raise KeyboardInterrupt  # Ctrl-C after the first round's checkpoint
            return round_batches(r)

        return fit(model, batches, *args, **kwargs)

    monkeypatch.setattr(runs, "fit", stopped)
    assert cli.main(argv) == 130  # one line, no traceback
    assert "stopped: the same command resumes" in capsys.readouterr().err
    monkeypatch.undo()
    (tmp_path / "run" / ".model.pt.x1y2.part").write_bytes(b"cut off")  # a save killed midway
    assert sorted(p.name for p in (tmp_path / "run").iterdir())[1:] == [
        "checkpoint.pt",
        "plan.json",
    ]
    capsys.readouterr()
    assert cli.main(small_argv(tmp_path, {"--iters": "4", "--evals": "2", "--embd": "32"})) == 2
    assert "--embd 16 (now 32)" in capsys.readouterr().err
    assert cli.main([a for a in argv if a != "--quiet"]) == 0
    assert "resuming from checkpoint.pt after epoch 1" in capsys.readouterr().out
    resumed = json.loads((tmp_path / "out.json").read_text())
    assert (
        cli.main(
            small_argv(tmp_path, {"--iters": "4", "--evals": "2", "--save": str(tmp_path / "b")})
        )
        == 0
    )
    assert json.loads((tmp_path / "out.json").read_text())["dev_losses"] == resumed["dev_losses"]


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 16000"),
        MemoryError(),  # Python's own (a list or bytes too large), a traceback until stop 56
    ],
)
@pytest.mark.parametrize("existed", [False, True])
def test_a_run_that_cannot_start_leaves_no_plan_behind(
    tmp_path, monkeypatch, capsys, existed, error
):
    """Out of memory in the first step: exit 2, and the plan.json of the run that never trained is
    gone (the folder too if the command made it), so a smaller model may use the same --save."""
    from helpers.gpt import runs

    def no_memory(*args, **kwargs):
        assert (tmp_path / "run" / "plan.json").exists()
        raise error

    if existed:
        (tmp_path / "run").mkdir()
    monkeypatch.setattr(runs, "fit", no_memory)
    assert cli.main(small_argv(tmp_path)) == 2
    assert "does not fit in memory" in capsys.readouterr().err
    assert (tmp_path / "run").exists() == existed and not (tmp_path / "run" / "plan.json").exists()
    monkeypatch.undo()
    assert cli.main(small_argv(tmp_path, {"--embd": "8"})) == 0


def test_cli_train_resumes_a_folder_from_before_plans_recorded_flags(tmp_path, capsys):
    """plan.json used to hold only the run's key: the same command still resumes such a folder; any
    other is refused, without naming flags it cannot know."""
    argv = small_argv(tmp_path)
    assert cli.main(argv) == 0
    plan_path = tmp_path / "run" / "plan.json"
    plan = json.loads(plan_path.read_text())
    plan_path.write_text(json.dumps({k: plan[k] for k in ("key", "iters", "probe_step_seconds")}))
    assert cli.main([a for a in argv if a != "--quiet"]) == 0
    assert "resuming from checkpoint.pt after epoch 1" in capsys.readouterr().out
    assert cli.main(small_argv(tmp_path, {"--embd": "32"})) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings or another --data" in err and "a new --save" in err


def test_train_in_a_notebook_still_trains_again_in_place(tmp_path, capsys):
    """The library call (notebook 07) keeps its behaviour: other settings retrain the folder."""
    text, cpu = synthetic_text(3000), torch.device("cpu")
    train(text, GPTRunConfig(**TINY, iters=2), cpu, save=tmp_path, progress=False)
    run = train(
        text, GPTRunConfig(**{**TINY, "embd": 32}, iters=2), cpu, save=tmp_path, progress=False
    )
    assert "training again" in capsys.readouterr().out
    assert load_model(tmp_path)[0].config.embd == 32 == run.model.config.embd


def test_a_dev_split_of_one_window_and_its_target_is_enough(tmp_path, capsys):
    """170 characters: dev is 17 tokens = --block-size 16 + its target, which trains; 160 (dev 16)
    is refused before anything is written."""
    g = torch.Generator().manual_seed(0)
    x, y = windows(torch.arange(17), 1, 16, 4, g)[0]
    assert torch.equal(x[0], torch.arange(16)) and torch.equal(y[0], torch.arange(1, 17))
    with pytest.raises(ValueError, match="16 tokens cannot fill"):
        windows(torch.arange(16), 1, 16, 4, g)
    (tmp_path / "text.txt").write_text(synthetic_text(170))
    assert cli.main(small_argv(tmp_path)) == 0
    (tmp_path / "text.txt").write_text(synthetic_text(160))
    capsys.readouterr()
    assert (
        cli.main(
            small_argv(
                tmp_path, {"--save": str(tmp_path / "e1"), "--json": str(tmp_path / "e1.json")}
            )
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "the dev split has 16 tokens, fewer than --block-size + 1 = 17" in err, err
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e1.json").exists()


def test_a_temperature_that_is_0_in_float32_samples_greedily(trained, capsys):
    """--temperature 1e-300 (0 in float32) takes the most likely token, as --temperature 0 does."""
    texts = []
    for t in ("0", "1e-300", "1e-46"):
        argv = ["sample", "--load", str(trained[0] / "m"), "--prompt", "the", "--tokens", "12"]
        assert cli.main([*argv, "--temperature", t]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] == texts[2] and len(texts[0]) == 16
    model, vocab = load_model(trained[0] / "m")
    assert sample(model, vocab, "the", 8, 1e-300, seed=3) == sample(model, vocab, "the", 8, 0.0)


def test_generate_takes_a_float32_zero_temperature_as_greedy_and_refuses_nan():
    model, idx = tiny_model(), torch.zeros(2, 1, dtype=torch.long)
    greedy = generate(model, idx, 4, 12, 0.0)
    for t in (1e-46, 1e-300):  # 0 in float32: the logits cannot be divided by it
        assert torch.equal(generate(model, idx, 4, 12, t, torch.Generator().manual_seed(0)), greedy)
        assert torch.equal(generate(model, idx, 4, 12, t, cache=True), greedy)
    with pytest.raises(ValueError, match="temperature must be a number ≥ 0, not nan"):
        generate(model, idx, 4, 12, float("nan"))


@pytest.mark.parametrize(("accumulate", "evals", "steps", "batches"), [(2, 5, [1, 2, 3], 6), (3, 2, [2, 3], 9), (1, 2, [2, 3], 3)])  # fmt: skip
def test_rounds_end_on_whole_steps_and_more_evals_than_steps_is_said(
    tmp_path, capsys, accumulate, evals, steps, batches
):
    """--iters 3 is 3 optimizer steps of --accumulate batches each, however --evals splits them (5
    evaluations asked for 3 steps once made 5 steps, some of one batch); the curve counts steps."""
    argv = small_argv(
        tmp_path, {"--iters": "3", "--accumulate": str(accumulate), "--evals": str(evals)}
    )
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "out.json").read_text())
    assert (report["iters"], report["batches"], report["steps"]) == (3, batches, steps)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["scheduler"]["last_epoch"] == 3  # the optimizer steps actually taken
    err = capsys.readouterr().err
    said = "note: --evals 5: the run has 3 steps, so 3 evaluations"
    assert said in err if evals > 3 else "note: --evals" not in err


def test_leftover_batches_join_the_first_round_inside_the_schedule(tmp_path, monkeypatch):
    """A --minutes plan of 5 batches with --accumulate 2: 2 whole steps and 1 batch left over. It
    goes in the first round, which sizes the cosine schedule, so no step is taken at rate 0."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from helpers.gpt import runs

    monkeypatch.setattr(runs, "step_seconds", lambda *a: 0.01)  # no timing probe (its own steps)
    monkeypatch.setattr(runs, "plan_iters", lambda *a: 5)
    rates = []  # the rate of every optimizer step the run takes
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: rates.append(opt.param_groups[0]["lr"])
    )
    argv = small_argv(tmp_path, {"--accumulate": "2", "--evals": "2"})
    del argv[argv.index("--iters") : argv.index("--iters") + 2]
    try:
        assert cli.main([*argv, "--minutes", "5"]) == 0
    finally:
        hook.remove()
    report = json.loads((tmp_path / "out.json").read_text())
    assert (report["batches"], report["iters"], report["steps"]) == (5, 3, [2, 3])
    assert len(rates) == 3 and min(rates) > 0, rates


def test_an_old_checkpoint_with_another_round_split_trains_again(tmp_path, capsys):
    """The rounds are part of a checkpoint's identity: a run whose rounds were split otherwise (by an
    earlier version of this code) is not resumed into other batches."""

    argv = small_argv(tmp_path, {"--iters": "4", "--accumulate": "2", "--evals": "2"})
    assert cli.main(argv) == 0
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    assert state["fingerprint"]["rounds"] == [4, 4]
    state["fingerprint"]["rounds"] = [5, 3]
    torch.save(state, path)
    capsys.readouterr()
    assert cli.main([a for a in argv if a != "--quiet"]) == 0
    assert "the rounds changed" in capsys.readouterr().out


def test_sample_says_when_top_k_is_more_than_the_vocabulary(trained, capsys):
    _, vocab = load_model(trained[0] / "m")
    argv = [
        "sample",
        "--load",
        str(trained[0] / "m"),
        "--prompt",
        "the",
        "--tokens",
        "6",
        "--seed",
        "2",
    ]
    texts = []
    for k in (len(vocab), len(vocab) + 1, 1000):
        assert cli.main([*argv, "--top-k", str(k)]) == 0
        out = capsys.readouterr()
        said = f"note: --top-k {k} is more than the vocabulary's {len(vocab)} tokens"
        assert (said in out.err) == (k > len(vocab)), out.err
        texts.append(out.out)
    assert texts[0] == texts[1] == texts[2]  # every token stays in the draw, as at k = vocabulary


def test_widgets_redraw_when_driven():
    from helpers.widgets.gpt import attention_explorer, sample_explorer

    vocab = Vocab("char", [chr(97 + i) for i in range(20)])
    models = {"dot": (tiny_model(), vocab), "additive": (tiny_model(attention="additive"), vocab)}
    explorer = attention_explorer(models, "abcab")
    assert explorer.state["weights"].shape == (2, 2, 5, 5)
    explorer.controls["name"].value = "additive"
    explorer.controls["prompt"].value = "abz!"
    assert explorer.state["name"] == "additive" and explorer.state["dropped"] == ["!", "z"]
    for prompt, said in (("", "the prompt is empty"), ("!?", r"knows none of .*\['!', '\?'\]")):
        with pytest.raises(ValueError, match=said):  # it drew the vocabulary's first token instead
            explorer.controls["prompt"].value = prompt
        assert said.split()[0] in explorer.status.value
    explorer.controls["prompt"].value = "abz!"
    explorer.controls["layer"].value = 1
    assert explorer.state["layer"] == 1
    assert not explorer.controls["layer"].continuous_update  # 0.4-0.5 s a redraw at quick's size
    sampler = sample_explorer(models, "ab", tokens=10)
    seed = sampler.controls["seed"]
    seed.value = 10**20  # typed into the box: it keeps to the seeds torch takes
    assert seed.value == 2**31 - 1 and len(sampler.state["text"]) == 10  # drawn, not an overflow
    seed.value = 0
    cold = sampler.state["text"]
    sampler.controls["temperature"].value = 2.0
    assert len(cold) == len(sampler.state["text"]) == 10 and sampler.state["temperature"] == 2.0


@pytest.mark.parametrize("profile", ["class", "full", "quick", "smoke"])
def test_every_profile_gives_valid_runs(profile):
    from helpers.profiles import sizes_for

    sizes = sizes_for("07", profile)
    for attention, mask in sizes.variants:
        GPTRunConfig(**sizes.study, attention=attention, mask=mask)
    assert GPTRunConfig(**sizes.word).level == "word"
    assert ("dot", "zero") in sizes.variants and ("dot", "inf") == sizes.variants[0]


def test_cli_reads_text_without_its_byte_order_mark(tmp_path):
    """U+FEFF was kept as a character of the text (a vocabulary of 59 instead of 58)."""
    path = tmp_path / "bom.txt"
    path.write_text("\ufeffthe cat sat.\n", encoding="utf-8")
    assert cli.read_text(path) == "the cat sat.\n"
    path.write_bytes(b"the cat\r\nsat.\r\n")  # saved on Windows: no \r characters to learn
    assert cli.read_text(path) == "the cat\nsat.\n"


@pytest.mark.parametrize("fast", [False, True])
def test_gpt_attention_dropout_is_off_in_eval_mode(fast):
    """Catches CausalSelfAttention applying its attention dropout in eval mode (notebook 07's
    profiles train with dropout 0.1-0.2, so eval losses and greedy samples would be random)."""
    torch.manual_seed(0)
    with_dropout = CausalSelfAttention(16, 2, dropout=0.5, fast=fast).eval()
    without = CausalSelfAttention(16, 2, dropout=0.0, fast=fast).eval()
    without.load_state_dict(with_dropout.state_dict())
    x = torch.randn(2, 7, 16)
    with torch.no_grad():
        assert torch.allclose(with_dropout(x), without(x), atol=1e-6)


def test_generate_gives_back_the_mode_it_found():
    """Catches generate leaving the model in eval mode (a sample in a training callback would turn
    dropout off for the rest of training)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, layers=1, heads=2, embd=16, dropout=0.1))
    model.train()
    start = torch.zeros(1, 1, dtype=torch.long)
    generate(model, start, 3, 8, 1.0, torch.Generator().manual_seed(0))
    assert model.training
    model.eval()
    generate(model, start, 3, 8, 0.0)
    assert not model.training


def test_save_folder_with_only_hidden_files_is_a_new_folder(tmp_path):
    """.ipynb_checkpoints and .DS_Store are not a run's files: no run writes a hidden file."""
    from helpers.gpt import cli

    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".DS_Store").write_bytes(b"finder")
    text = synthetic_text(2_000)
    cli.check_save(tmp_path, GPTRunConfig(**TINY, iters=2), build_corpus(text, "char"))
    (tmp_path / "model.pt").write_bytes(b"someone's")
    with pytest.raises(ValueError, match=r"holds files \(model\.pt\) that no run"):
        cli.check_save(tmp_path, GPTRunConfig(**TINY, iters=2), build_corpus(text, "char"))


def test_dropout_reaches_the_attention_weights_of_every_block():
    """Catches GPT's attention dropout left at 0 while the rest of the model drops."""
    model = GPT(GPTConfig(vocab_size=10, block_size=8, layers=2, heads=2, embd=16, dropout=0.3))
    assert {block.attn.dropout for block in model.blocks} == {0.3}
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}


def test_the_cosine_schedule_ends_near_0_when_rounds_differ_in_length():
    """21 steps in 20 rounds (the first round 2 steps, the rest 1): the schedule was sized as 20 rounds
    of the first round's 2 steps, so the last step ran at half the peak rate instead of near 0."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    rates = []
    hook = register_optimizer_step_pre_hook(lambda opt, *_: rates.append(opt.param_groups[0]["lr"]))
    try:
        cfg = GPTRunConfig(**{**TINY, "evals": 20}, iters=21, lr=1e-3, warmup=0.0)
        train(synthetic_text(3000), cfg, torch.device("cpu"), progress=False)
    finally:
        hook.remove()
    assert len(rates) == 21 and rates[0] == pytest.approx(1e-3)
    assert rates[-1] < 0.01 * 1e-3 and rates == sorted(rates, reverse=True), rates


def test_a_saved_model_that_cannot_be_read_now_is_named_in_the_error(tmp_path, monkeypatch):
    """Memory running out while loading re-raised torch's error, which names no file."""
    from helpers.gpt import runs

    train(synthetic_text(2000), GPTRunConfig(**TINY, iters=2), torch.device("cpu"), save=tmp_path,
          progress=False)  # fmt: skip

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(runs.torch, "load", no_memory)
    with pytest.raises(MemoryError) as raised:
        load_model(tmp_path)
    assert raised.value.__notes__ == [f"(while reading the saved model {tmp_path / 'model.pt'})"]


def test_a_corpus_is_built_on_the_cpu_whatever_the_default_device():
    """Under torch.set_default_device("cuda") (a cell copied from a tutorial) the corpus' ids were
    made on the GPU and train stopped at .numpy(): "can't convert cuda:0 device type tensor to
    numpy" ("meta" stands in for a GPU here)."""
    torch.set_default_device("meta")
    try:
        corpus = build_corpus("the cat sat on the mat. " * 20, "char")
    finally:
        torch.set_default_device(None)
    assert corpus.train.device.type == "cpu" and len(corpus.digest()) == 16
