"""Notebook 06's pieces beyond the checkers: the pretrained-vs-random-twin comparison (``python -m
helpers.finetune compare``), the merge slider, the plots, the WikiText-2 reader, BPE against the
trainer, and the profile's sizes."""

import json
import math
import runpy
import shutil
import sys
from pathlib import Path

import matplotlib
import pytest
import torch
from ctrl_c_support import ctrl_c_at
from test_mlm import TINY, saved_tiny, tiny_text

from helpers.finetune import twin
from helpers.mlm import MlmConfig, cli
from helpers.pretrained import has_tokenizer
from helpers.profiles import PROFILES, sizes_for
from helpers.tokenization import bpe

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pretrained_once(tmp_path_factory):
    """A tiny pretrained folder, as python -m helpers.mlm saves it: trained once for this file."""
    folder = tmp_path_factory.mktemp("pretrained")
    text = folder / "corpus.txt"
    text.write_text("\n".join(tiny_text()) + "\n", encoding="utf-8")
    return saved_tiny(text, folder, "small", "p.json")


@pytest.fixture
def saved(tmp_path, pretrained_once):
    """This test's own copy of the tiny pretrained folder (tests change or move it)."""
    for name in ("corpus.txt", "p.json"):
        shutil.copy2(pretrained_once.parent / name, tmp_path / name)
    return Path(shutil.copytree(pretrained_once, tmp_path / "small"))


@pytest.fixture
def sst_file(tmp_path):
    """A GLUE-style train.tsv: sentences a tiny model can tell apart (good/bad words), labels 1/0."""
    rng = torch.Generator().manual_seed(0)
    good, bad = ["good", "fine", "nice"], ["bad", "awful", "poor"]
    rows = ["sentence\tlabel"]
    for i in range(160):
        label = int(torch.randint(2, (1,), generator=rng))  # not tied to the number in the phrase
        words = good if label else bad
        word = words[int(torch.randint(3, (1,), generator=rng))]
        rows.append(f"the cat sees a {word} book number {i} .\t{label}")
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def compare_argv(saved, sst_file, out, *extra):
    return ["--pretrained", str(saved), "--sst-file", str(sst_file), "--train-rows", "100",
            "--dev-size", "40", "--seeds", "2", "--minilm-seeds", "0", "--epochs", "1",
            "--json", str(out), *extra]  # fmt: skip


def test_compare_refuses_a_max_length_below_3(saved, sst_file, tmp_path, capsys):
    """--max-length 2 left [CLS] [SEP] alone: every sentence the same, exit 0."""
    assert twin.main(compare_argv(saved, sst_file, tmp_path / "o.json", "--max-length", "2")) == 2
    assert "--max-length must be at least 3" in capsys.readouterr().err


def test_compare_stops_at_a_diverged_run(saved, sst_file, tmp_path, capsys):
    out = tmp_path / "compare.json"
    assert twin.main(compare_argv(saved, sst_file, out, "--small-lr", "1e30")) == 2
    assert (
        "training diverged: the training loss was nan in epoch 1 at --small-lr 1e+30"
        in capsys.readouterr().err
    )
    assert not out.exists()
    assert not (
        tmp_path / "compare-runs"
    ).exists()  # a diverged run's checkpoint: nothing to resume


def test_compare_leaves_a_diverged_rate_out_of_the_choice(saved, sst_file, tmp_path, capsys):
    """With several --small-lr, one diverged rate threw the whole sweep away; it is left out."""
    out = tmp_path / "compare.json"
    argv = compare_argv(saved, sst_file, out, "--small-lr", "1e-3", "1e30")
    argv[argv.index("--seeds") + 1] = "1"
    assert twin.main(argv) == 0
    assert "rate 1e+30 left out of the choice: training diverged" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["diverged_rates"] == [1e30] and {r["lr"] for r in report["runs"]} == {1e-3}


def test_compare_fine_tunes_the_pretrained_model_and_its_random_twin(saved, sst_file, tmp_path):
    out = tmp_path / "compare.json"
    assert twin.main(compare_argv(saved, sst_file, out)) == 0
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"pretrained", "random init"}
    assert "chosen_lr" not in report and all("test_accuracy" not in r for r in report["runs"])
    assert [(r["model"], r["seed"]) for r in report["runs"]] == [
        ("pretrained", 0), ("pretrained", 1), ("random init", 0), ("random init", 1)
    ]  # fmt: skip
    for row in report["runs"]:
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["f1"] <= 1 and row["seconds"] > 0
        # the losses too, one per epoch (a report kept only accuracies until stop 56)
        for curve in ("dev_accuracy_per_epoch", "dev_loss_per_epoch", "train_loss_per_epoch"):
            assert len(row[curve]) == 1 and all(math.isfinite(x) for x in row[curve]), curve
    mean = sum(r["accuracy"] for r in report["runs"][:2]) / 2
    assert report["summary"]["pretrained"]["accuracy"]["mean"] == pytest.approx(mean)
    gap = mean - report["summary"]["random init"]["accuracy"]["mean"]
    assert report["pretrained_minus_random_accuracy"] == pytest.approx(gap)
    assert report["splits"]["dev"] == 40 and report["splits"]["train"] <= 100
    # the twin: same config and tokenizer, other weights
    twin_dir = saved.with_name(saved.name + "-random-twin")
    assert json.loads((twin_dir / "config.json").read_text()) == json.loads(
        (saved / "config.json").read_text()
    )
    from helpers.bert import BertModel

    a, b = BertModel.from_pretrained(saved), BertModel.from_pretrained(twin_dir)
    assert not torch.equal(a.embeddings.word.weight, b.embeddings.word.weight)


def test_compare_resumes_after_ctrl_c_with_the_report_of_a_run_never_stopped(
    saved, sst_file, tmp_path, monkeypatch, capsys
):
    """Ctrl-C lost every finished run; now each run's epochs are kept in OUT-runs/ and the same command
    resumes: the finished runs reload, and the report equals an uninterrupted run's."""
    argv = compare_argv(saved, sst_file, tmp_path / "a.json", "--epochs", "2")
    assert twin.main(argv) == 0
    never_stopped = json.loads((tmp_path / "a.json").read_text())
    assert not (tmp_path / "a-runs").exists()  # deleted once the report is written
    capsys.readouterr()
    scores = twin.classification_scores
    monkeypatch.setattr(twin, "classification_scores", ctrl_c_at(3, scores))
    out = tmp_path / "b.json"
    assert twin.main(compare_argv(saved, sst_file, out, "--epochs", "2")) == 130
    assert (
        "each run's finished epochs are kept in the --checkpoints folder" in capsys.readouterr().err
    )
    assert sorted(f.name for f in (tmp_path / "b-runs").iterdir()) == [
        "pretrained-lr0.0003-seed0.pt", "pretrained-lr0.0003-seed1.pt", "random-init-lr0.0003-seed0.pt"
    ]  # fmt: skip
    monkeypatch.setattr(twin, "classification_scores", scores)
    assert twin.main(compare_argv(saved, sst_file, out, "--epochs", "2")) == 0
    said = capsys.readouterr().out
    for name in (
        "pretrained-lr0.0003-seed0",
        "pretrained-lr0.0003-seed1",
        "random-init-lr0.0003-seed0",
    ):
        assert f"resuming from {name}.pt after epoch 2" in said, said
    assert "training again" not in said and said.count("resuming") == 3
    resumed = json.loads(out.read_text())
    for a, b in zip(never_stopped["runs"], resumed["runs"], strict=True):
        assert {**a, "seconds": 0} == {**b, "seconds": 0}
    assert not (tmp_path / "b-runs").exists()


def test_a_fine_tuning_checkpoint_of_other_weights_trains_again(saved, sst_file, tmp_path, capsys):
    """The checkpoint's identity holds a digest of the model folder: the same architecture with other
    weights (a pretraining run redone) must not resume the old run."""
    from helpers.finetune.experiments import FinetuneConfig, experiment

    start = tmp_path / "start"
    twin.random_twin(saved, start, seed=0)
    splits = twin.sst2_data(sst_file, 60, 40)["splits"]
    cfg, ckpt = FinetuneConfig(lr=3e-4, epochs=1, max_length=32), tmp_path / "run.pt"
    experiment(str(start), splits, twin.TASK, torch.device("cpu"), cfg, seed=0, checkpoint=ckpt)
    experiment(str(start), splits, twin.TASK, torch.device("cpu"), cfg, seed=0, checkpoint=ckpt)
    assert "resuming from run.pt after epoch 1" in capsys.readouterr().out
    twin.random_twin(saved, start, seed=1)  # other weights, same config and tokenizer
    experiment(str(start), splits, twin.TASK, torch.device("cpu"), cfg, seed=0, checkpoint=ckpt)
    assert (
        "run.pt was trained differently (the model changed): training again"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize("case", ["file", "foreign", "named like a run", "inside pretrained"])
def test_compare_refuses_a_checkpoints_folder_it_could_harm(
    saved, sst_file, tmp_path, capsys, case
):
    """Also a file of yours named like a run's checkpoint: it was written over, then deleted."""
    folder = saved / "ck" if case == "inside pretrained" else tmp_path / "ck"
    if case == "file":
        folder.write_text("mine")
    if case == "foreign":
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
    if case == "named like a run":
        folder.mkdir()
        torch.save({"my": "weights"}, folder / "pretrained-lr0.0003-seed0.pt")
    argv = compare_argv(saved, sst_file, tmp_path / "o.json", "--checkpoints", str(folder))
    assert twin.main(argv) == 2
    said = capsys.readouterr().err
    assert {"file": "is a file; give a folder", "foreign": "holds files this command did not write (notes.txt)",
            "named like a run": "pretrained-lr0.0003-seed0.pt exists and is not a checkpoint of helpers.finetune",
            "inside pretrained": "and the --pretrained"}[case] in said, said  # fmt: skip
    assert not (tmp_path / "o.json").exists()
    if case == "named like a run":
        assert torch.load(folder / "pretrained-lr0.0003-seed0.pt") == {"my": "weights"}


def test_compare_dropout_sets_the_small_models_fine_tuning_dropout(
    saved, sst_file, tmp_path, monkeypatch
):
    """``--dropout P`` reaches every small model's dropout modules, the twin's too, and is recorded; the
    folders' config.json files keep the pretraining value."""
    seen = []
    experiment = twin.experiment
    monkeypatch.setattr(
        twin, "experiment", lambda *a, **k: seen.append(run := experiment(*a, **k)) or run
    )
    out = tmp_path / "c.json"
    assert twin.main(compare_argv(saved, sst_file, out, "--dropout", "0.25", "--rescaled")) == 0
    assert len(seen) == 6  # 3 models (pretrained, twin, rescaled) x 2 seeds
    for run in seen:
        assert {m.p for m in run.model.modules() if isinstance(m, torch.nn.Dropout)} == {0.25}
    settings = json.loads(out.read_text())["settings"]
    assert settings["dropout"] == 0.25 and settings["rescaled"] is True  # were "0.25", "True"
    assert isinstance(settings["small_lr"], list) and isinstance(settings["pretrained"], str)
    twin_dir = saved.with_name(saved.name + "-random-twin")
    for folder in (saved, twin_dir):
        assert json.loads((folder / "config.json").read_text())["hidden_dropout_prob"] == 0.1


@pytest.fixture
def learnable_sst_file(tmp_path):
    """A train.tsv whose label is the subject ("the cat" 1, "a dog" 0), words the tiny tokenizer keeps."""
    rng = torch.Generator().manual_seed(0)
    rows = ["sentence\tlabel"]
    for i in range(160):
        label = int(torch.randint(2, (1,), generator=rng))
        verb = ["sees", "likes", "finds", "reads"][int(torch.randint(4, (1,), generator=rng))]
        rows.append(f"{'the cat' if label else 'a dog'} {verb} the book number {i} .\t{label}")
    path = tmp_path / "learnable.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_compare_at_several_rates_keeps_each_models_best_on_dev(
    saved, learnable_sst_file, tmp_path, capsys, monkeypatch
):
    scored, score = [], twin.classification_scores  # the rows each model is scored on

    def spy(model, batches, device):
        scored.append(batches.dataset)
        return score(model, batches, device)

    monkeypatch.setattr(twin, "classification_scores", spy)
    out = tmp_path / "compare.json"
    argv = compare_argv(saved, learnable_sst_file, out, "--small-lr", "1e-6", "1e-2")
    argv[argv.index("--epochs") + 1] = "16"  # 1e-2 learns the subject; 1e-6 stays at one class
    assert twin.main(argv) == 0
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert [(r["model"], r["lr"]) for r in runs] == [
        (m, lr) for lr in (1e-6, 1e-2) for m in ("pretrained", "pretrained", "random init", "random init")
    ]  # fmt: skip
    for name in ("pretrained", "random init"):
        means = {lr: sum(r["accuracy"] for r in runs if (r["model"], r["lr"]) == (name, lr)) / 2
                 for lr in (1e-6, 1e-2)}  # fmt: skip
        # the rate given second learns, so choosing it is not taking the first
        # (test_chosen_rates_take_the_best_mean_and_the_first_tried_on_a_tie: nor the last)
        assert means[1e-2] > means[1e-6]
        assert report["dev_accuracy_by_lr"][name] == pytest.approx(
            {"1e-06": means[1e-6], "0.01": means[1e-2]}
        )
        assert report["chosen_lr"][name] == "0.01" and report["configs"][name]["lr"] == 1e-2
        assert report["summary"][name]["accuracy"]["mean"] == pytest.approx(means[1e-2])
        kept = [r["test_accuracy"] for r in runs if (r["model"], r["lr"]) == (name, 1e-2)]
        assert report["test_accuracy"][name]["mean"] == pytest.approx(sum(kept) / 2)
    assert all("test_accuracy" not in r for r in runs if r["lr"] == 1e-6)
    test_rows = twin.sst2_data(learnable_sst_file, 100, 40)["splits"]["test"]
    dev_rows = twin.sst2_data(learnable_sst_file, 100, 40)["splits"]["dev"]
    assert [rows == test_rows for rows in scored].count(
        True
    ) == 4  # 2 models x 2 seeds, at 1e-2 only
    assert [rows == dev_rows for rows in scored].count(True) == 8  # every run on dev
    gap = (
        report["summary"]["pretrained"]["accuracy"]["mean"]
        - report["summary"]["random init"]["accuracy"]["mean"]
    )
    assert report["pretrained_minus_random_accuracy"] == pytest.approx(gap)
    printed = capsys.readouterr().out
    assert "fine-tuning rate 1e-06" in printed and "fine-tuning rate 0.01" in printed
    assert "0.01 chosen on dev" in printed and "each at its rate chosen on dev" in printed


def test_chosen_rates_take_the_best_mean_and_the_first_tried_on_a_tie():
    rows = [{"model": "a", "lr": 1e-3, "accuracy": 0.6}, {"model": "a", "lr": 1e-3, "accuracy": 0.8},
            {"model": "a", "lr": 3e-4, "accuracy": 0.9}, {"model": "a", "lr": 3e-4, "accuracy": 0.4},
            {"model": "b", "lr": 3e-4, "accuracy": 0.7}, {"model": "b", "lr": 1e-3, "accuracy": 0.7},
            {"model": "minilm", "accuracy": 0.9}]  # fmt: skip
    # c: 1907 right answers of 3 x 872 at each rate, whose float means differ in the last bit
    rows += [{"model": "c", "lr": lr, "accuracy": n / 872}
             for lr, right in ((3e-4, (640, 629, 638)), (1e-3, (640, 640, 627))) for n in right]  # fmt: skip
    assert twin.chosen_rates(rows) == {"a": 1e-3, "b": 3e-4, "c": 3e-4}  # a: 0.70 against 0.65


@pytest.mark.parametrize(
    "rates, said",
    [(["3e-4", "1e-3", "3e-4"], "--small-lr 0.0003 0.001 0.0003 names a rate twice"),
     (["1e-4", "1.0000001e-4"], "--small-lr 0.0001 0.0001 names a rate twice"),
     (["1e-3", "0"], "--small-lr must be > 0 and finite, got 0.0"),
     (["nan"], "--small-lr must be > 0 and finite, got nan")],
)  # fmt: skip
def test_compare_bad_rates_exit_2(saved, sst_file, tmp_path, capsys, rates, said):
    assert twin.main(compare_argv(saved, sst_file, tmp_path / "o.json", "--small-lr", *rates)) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


def test_rescaled_embeddings_keep_the_function_and_shrink_the_tables(saved, tmp_path):
    from helpers.bert import BertModel

    folder, factor = twin.rescaled_embeddings(saved, tmp_path / "rescaled", std=0.005)
    before, after = BertModel.from_pretrained(saved), BertModel.from_pretrained(folder)
    old, new = before.embeddings, after.embeddings
    assert factor == pytest.approx(old.word.weight.std().item() / 0.005) and factor > 2
    assert new.word.weight.std().item() == pytest.approx(0.005, rel=1e-4)
    for table in ("word", "position", "token_type"):  # all three by the one factor
        torch.testing.assert_close(getattr(new, table).weight * factor, getattr(old, table).weight)
    rest = [
        k for k in before.state_dict() if k.split(".")[1] not in ("word", "position", "token_type")
    ]
    for name in rest:  # every other tensor as it was
        assert torch.equal(after.state_dict()[name], before.state_dict()[name]), name
    ids = torch.randint(1, 60, (3, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    with torch.no_grad():  # the LayerNorm after the sum: the same vectors come out
        a, b = before(ids, mask).last_hidden_state, after(ids, mask).last_hidden_state
    torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    assert (folder / "tokenizer.json").is_file()
    for std in (0, -1, float("nan"), float("inf"), "0.02"):
        with pytest.raises(ValueError, match="std must be a positive finite number"):
            twin.rescaled_embeddings(saved, tmp_path / "never", std=std)
    with pytest.raises(ValueError, match="would overwrite the pretrained model"):
        twin.rescaled_embeddings(saved, saved / ".." / saved.name)
    assert not (tmp_path / "never").exists()


def test_rescaled_embeddings_of_an_encoder_without_head_and_of_broken_weights(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    from helpers.bert import BertModel
    from helpers.bert.save import save_pretrained

    bare = save_pretrained(BertModel.from_pretrained(saved), tmp_path / "bare")  # no MLM head
    folder, factor = twin.rescaled_embeddings(bare, tmp_path / "bare-rescaled")
    assert not has_tokenizer(folder)  # none to copy (transformers 5 made up an empty one)
    assert BertModel.from_pretrained(folder).embeddings.word.weight.std().item() == pytest.approx(
        0.02
    )
    state = load_file(saved / "model.safetensors")
    state["bert.embeddings.word_embeddings.weight"][3, 0] = float("nan")
    save_file(state, str(saved / "model.safetensors"))
    with pytest.raises(ValueError, match="hold NaN or inf"):
        twin.rescaled_embeddings(saved, tmp_path / "nan-rescaled")


def test_weight_sizes_of_a_random_twin_are_berts_initial_size(saved, tmp_path):
    sizes = twin.weight_sizes(twin.random_twin(saved, tmp_path / "twin"))
    assert {"embeddings.word", "embeddings.position", "blocks.0.attn.query"} <= set(sizes)
    assert all(0.012 < v < 0.03 for v in sizes.values()), sizes  # N(0, 0.02²); padding row 0


def test_compare_rescaled_adds_a_third_model(saved, sst_file, tmp_path, capsys):
    out = tmp_path / "compare.json"
    argv = compare_argv(saved, sst_file, out, "--rescaled")
    argv[argv.index("--seeds") + 1] = "1"
    assert twin.main(argv) == 0
    report = json.loads(out.read_text())
    assert list(report["summary"]) == ["pretrained", "random init", twin.RESCALED]
    gap = (report["summary"][twin.RESCALED]["accuracy"]["mean"]
           - report["summary"]["random init"]["accuracy"]["mean"])  # fmt: skip
    assert report["rescaled_minus_random_accuracy"] == pytest.approx(gap)
    assert report["rescale_factor"] > 0 and "embeddings divided by" in capsys.readouterr().out
    assert (saved.with_name(saved.name + "-rescaled") / "model.safetensors").is_file()
    blocked = saved.rename(saved.with_name("blocked-dir"))
    blocked.with_name("blocked-dir-rescaled").write_text("a file")  # where the copy would go
    assert twin.main(compare_argv(blocked, sst_file, out, "--rescaled")) == 2
    err = capsys.readouterr().err
    assert "blocked-dir-rescaled, but that is a file" in err and err.count("\n") == 1


@pytest.mark.parametrize("case", ["twin there", "link to pretrained", "a pretraining run"])
def test_compare_rescaled_never_writes_over_another_model(saved, sst_file, tmp_path, capsys, case):
    target = saved.with_name(saved.name + "-rescaled")
    extra = ["--rescaled"]
    if case == "twin there":
        extra += ["--twin", str(target)]
    elif case == "link to pretrained":
        target.symlink_to(saved, target_is_directory=True)
    else:
        target.mkdir()
        (target / "checkpoint.pt").write_bytes(b"a run's state")
    weights = (saved / "model.safetensors").read_bytes()
    assert twin.main(compare_argv(saved, sst_file, tmp_path / "o.json", *extra)) == 2
    err = capsys.readouterr().err
    said = {"twin there": "is where --rescaled writes its copy",
            "link to pretrained": "a link to the --pretrained folder",
            "a pretraining run": "holds a pretraining run (checkpoint.pt)"}[case]  # fmt: skip
    assert said in err and err.count("\n") == 1, err
    assert (saved / "model.safetensors").read_bytes() == weights
    assert not (tmp_path / "o.json").exists()


def test_compare_names_a_damaged_tokenizer_and_weights_it_cannot_rescale(
    saved, sst_file, tmp_path, capsys
):
    from safetensors.torch import load_file, save_file

    good = (saved / "tokenizer.json").read_text()
    (saved / "tokenizer.json").write_text("{not json")
    assert twin.main(compare_argv(saved, sst_file, tmp_path / "o.json")) == 2
    assert "its tokenizer cannot be read" in capsys.readouterr().err
    (saved / "tokenizer.json").write_text(good)
    state = load_file(saved / "model.safetensors")
    state["bert.embeddings.word_embeddings.weight"][3, 0] = float("inf")
    save_file(state, str(saved / "model.safetensors"))
    assert twin.main(compare_argv(saved, sst_file, tmp_path / "o.json", "--rescaled")) == 2
    err = capsys.readouterr().err
    assert "weights hold nan or inf" in err and err.count("\n") == 1, err


def test_compare_is_a_subcommand_of_python_m_helpers_finetune(tmp_path, monkeypatch, capsys):
    """`python -m helpers.finetune compare` as runpy runs it (what -m does, without a new interpreter)."""
    argv = ["--pretrained", str(tmp_path / "nothing"), "--sst-file", "x.tsv", "--json", str(tmp_path / "o.json")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["python -m helpers.finetune", "compare", *argv])
    with pytest.raises(SystemExit) as ended:
        runpy.run_module("helpers.finetune", run_name="__main__")
    assert ended.value.code == 2
    assert "holds no config.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, said",
    [
        ({"--sst-file": "missing.tsv"}, "--sst-file missing.tsv does not exist"),
        ({"--seeds": "0"}, "--seeds must be at least 1"),
        ({"--epochs": "0"}, "--epochs must be at least 1"),
        ({"--dropout": "1"}, "--dropout must be in [0, 1), not 1"),
        ({"--dropout": "-0.1"}, "--dropout must be in [0, 1), not -0.1"),
    ],
)
def test_compare_bad_input_exits_2(saved, sst_file, tmp_path, capsys, change, said):
    argv = compare_argv(saved, sst_file, tmp_path / "o.json")
    for flag, value in change.items():
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    assert twin.main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


def test_sst2_notebook_rows_offline_are_made_up_and_leak_free():
    rows, source = twin.sst2_notebook_rows(True, 24, 12)
    assert "synthetic" in source and len(rows["train"]) == 24 and len(rows["dev"]) == 12
    assert not {r["sentence"] for r in rows["train"]} & {r["sentence"] for r in rows["dev"]}


# --- the merge slider, the plots ----------------------------------------------------------------


def test_merge_explorer_shows_each_step_and_redraws_on_the_slider():
    from helpers.widgets.tokenization import merge_explorer

    lines = ["low lower lowest newer newest wider widest"] * 3
    merges = bpe.learn_bpe(lines, 20)
    explorer = merge_explorer(["lowest", "newer", "unseen"], merges, bpe.alphabet(lines), step=0)
    assert explorer.state["pieces"]["lowest"] == list("lowest") and explorer.state["merge"] is None
    html = explorer.children[-1].children[0].value
    assert "every word in characters" in html
    explorer.controls["step"].value = 1
    assert explorer.state["merge"] == merges[0]
    assert explorer.state["pieces"]["lowest"] == bpe.segment("lowest", merges[:1])
    explorer.controls["step"].value = len(merges)
    assert explorer.state["pieces"]["newer"] == bpe.segment("newer", merges)
    assert explorer.state["pieces"]["unseen"] == bpe.segment("unseen", merges)
    html = explorer.children[-1].children[0].value
    assert f"step {len(merges)}: merged" in html and "".join(merges[-1]) in html
    assert explorer.controls["step"].continuous_update  # cheap: it redraws while dragged
    # the vocabulary: the text's 11 characters (d e i l n o r s t w + none else) plus the merges,
    # whatever words are shown (it counted the shown words' characters: an emoji added one)
    assert explorer.state["vocab"] == len(set("".join(lines)) - {" "}) + len(merges)
    shown = merge_explorer(["lowest", "🙂"], merges, bpe.alphabet(lines))
    assert shown.state["vocab"] == explorer.state["vocab"]
    for entry in ("the cat", "don't"):  # BPE cuts text into words first: one word per entry
        with pytest.raises(ValueError, match="not one word"):
            merge_explorer([entry], merges, bpe.alphabet(lines))


def test_plots_have_titles_and_labelled_axes():
    matplotlib.use("Agg")
    from helpers.plots.pretraining import plot_comparison, plot_perplexity

    fig = plot_perplexity({"eval_perplexity": [700.0, 500.0, 420.0], "tokens_seen": 3_000_000,
                           "seconds": {"train": 300.0}})  # fmt: skip
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() == "epoch" and "perplexity" in ax.get_ylabel()
    assert list(ax.lines[0].get_ydata()) == [700.0, 500.0, 420.0]
    assert "3.00M tokens seen; the epochs took 300 s" in [t.get_text() for t in ax.texts]
    # resumed after its last epoch: ~1 s of loading, the epochs' own seconds in the report's history
    resumed = {"eval_perplexity": [700.0, 500.0], "tokens_seen": 2_000_000,
               "seconds": {"train": 1.3, "per_epoch": [150.2, 149.9]}}  # fmt: skip
    assert "2.00M tokens seen; the epochs took 300 s" in [
        t.get_text() for t in plot_perplexity(resumed).axes[0].texts
    ]
    summary = twin.summarize([
        {"model": m, "seed": s, "accuracy": a, "precision": a, "recall": a, "f1": a}
        for m, s, a in (("pretrained", 0, 0.8), ("pretrained", 1, 0.7), ("random init", 0, 0.6))
    ])  # fmt: skip
    fig = plot_comparison(summary)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_ylabel() and len(ax.patches) == 8  # 2 models × 4 metrics
    assert ax.patches[0].get_height() == pytest.approx(0.75)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["chance (0.5)", "pretrained (2 seeds)", "random init (1 seed)"]


# --- data, BPE against the trainer, the profile ------------------------------------------------


def test_wikitext_lines_from_a_file_and_a_clear_error(tmp_path, monkeypatch):
    from helpers.corpora import wikitext2_lines

    local = tmp_path / "data" / "corpus" / "wikitext-2"
    local.mkdir(parents=True)
    (local / "wiki.valid.tokens").write_text(" = Local = \n", encoding="utf-8")
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path / "data"))
    assert wikitext2_lines("validation") == ["= Local ="]  # $HELPERS_DATA_DIR, no download

    path = tmp_path / "wiki.valid.tokens"
    path.write_text(" \n = Title = \n\n A line @-@ of text . \n", encoding="utf-8")
    assert wikitext2_lines(path=str(path)) == ["= Title =", "A line @-@ of text ."]
    with pytest.raises(FileNotFoundError, match="does not exist; give a WikiText-2 file"):
        wikitext2_lines(path=str(tmp_path / "missing.tokens"))
    with pytest.raises(ValueError, match="splits are train, validation and test"):
        wikitext2_lines("valid")


def test_trainer_merges_equal_learn_bpe_on_sentences():
    from helpers.tokenization.train import trainer_merges

    texts = [" ".join(tiny_text(40, seed=s)) for s in range(3)] + ["Zebras and zebu, Ångström!"]
    assert trainer_merges(texts, 60) == bpe.learn_bpe(texts, 60)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_gives_a_valid_pretraining_config(profile):
    sizes = sizes_for("06", profile)
    cfg = MlmConfig(**sizes.mlm)
    assert (cfg.epochs is None) != (cfg.minutes is None)
    assert sizes.seeds >= 1 and sizes.sst_train >= 1
    assert sizes.synthetic == (profile == "smoke")


def test_compare_refuses_a_twin_over_the_pretrained_folder_and_bad_folders(
    saved, sst_file, tmp_path, capsys
):
    weights = (saved / "model.safetensors").read_bytes()
    argv = compare_argv(saved, sst_file, tmp_path / "o.json", "--twin", str(saved))
    assert twin.main(argv) == 2
    assert "would overwrite the pretrained ones" in capsys.readouterr().err
    assert (saved / "model.safetensors").read_bytes() == weights  # untouched
    mine = tmp_path / "my-model"  # a model folder of the user's, not a twin this command wrote
    mine.mkdir()
    (mine / "model.safetensors").write_text("precious")
    rescaled = tmp_path / f"{saved.name}-rescaled"
    rescaled.mkdir(exist_ok=True)
    (rescaled / "notes.txt").write_text("mine")
    for extra, flag in (["--twin", str(mine)], "--twin"), (["--rescaled"], "--rescaled"):
        assert twin.main(compare_argv(saved, sst_file, tmp_path / "o.json", *extra)) == 2
        said = capsys.readouterr().err
        assert f"{flag} writes" in said and "so this command did not write them" in said, said
    assert (mine / "model.safetensors").read_text() == "precious"
    assert [f.name for f in rescaled.iterdir()] == ["notes.txt"]
    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((saved / name).read_bytes())
    assert twin.main(compare_argv(bare, sst_file, tmp_path / "o.json")) == 2
    assert (
        "holds no tokenizer (none of tokenizer.json, vocab.txt, vocab.json,"
        in capsys.readouterr().err
    )
    (bare / "model.safetensors").write_bytes(b"\x00" * 7)
    assert twin.main(compare_argv(bare, sst_file, tmp_path / "o.json")) == 2
    assert "weights cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "lines, said",
    [
        (["text\tlabel", "good .\t1"], "it needs 'sentence' and 'label'"),
        (["sentence\tlabel", "good .\t1", "bad .\tpositive"], "line 3: label 'positive'"),
        (["sentence\tlabel", "good .\t2"], "line 2: label '2'"),
    ],
)
def test_compare_names_the_line_of_a_bad_sst_file(saved, tmp_path, capsys, lines, said):
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert twin.main(compare_argv(saved, path, tmp_path / "o.json")) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_pretraining_names_a_held_out_text_too_short_to_mask(tmp_path, capsys):
    train, held = tmp_path / "train.txt", tmp_path / "held.txt"
    train.write_text("\n".join(tiny_text()) + "\n", encoding="utf-8")
    held.write_text("the cat\n", encoding="utf-8")
    argv = ["--train-file", str(train), "--eval-file", str(held), *TINY, "--save", str(tmp_path / "s"),
            "--json", str(tmp_path / "o.json"), "--mask-prob", "0.01"]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "no token of the held-out text" in err and "--eval-file" in err and "--mask-prob" in err
    assert not (tmp_path / "s").exists()  # the new --save folder is not left behind, empty


def test_frozen_probe_scores_both_feature_kinds_on_dev(saved, sst_file):
    data = twin.sst2_data(sst_file, 100, 40)["splits"]
    probe = twin.frozen_probe(saved, data, torch.device("cpu"))
    assert set(probe) == {"word embeddings", "last layer"}
    assert all(acc in {k / 40 for k in range(41)} for acc in probe.values()), probe  # a share of 40
    assert twin.frozen_probe(saved, data, torch.device("cpu")) == probe  # no randomness left


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "case, said",
    [
        ("lr", "--lr must be > 0 and finite, got 0.0"),
        ("json in pretrained", "is inside the --pretrained folder"),
        ("json in twin", "is inside the --twin folder"),
        ("json is the sst file", "is the --sst-file: it would be written over"),
        ("max length", "--max-length 1000 is more than the 512 positions of --pretrained"),
        ("one class", "hold only label 1; fine-tuning needs both labels"),
        ("no training rows", "hold no rows; fine-tuning needs both labels"),
        (
            "no whole sentences",
            "only 0 complete sentences to hold 40 out from (whole sentences: 5 or more",
        ),
    ],
)
def test_compare_refuses_what_would_fail_late_or_write_over_files(
    saved, sst_file, tmp_path, capsys, case, said
):
    """Each exits 2 with one line before any model is written: no traceback after minutes of work,
    no report written over an input or a model."""
    argv = compare_argv(saved, sst_file, tmp_path / "o.json")
    sst = sst_file.read_text().splitlines()
    edits = {
        "lr": ["--lr", "0"],
        "json in pretrained": ["--json", str(saved / "config.json")],
        "json in twin": ["--twin", str(tmp_path / "tw"), "--json", str(tmp_path / "tw" / "o.json")],
        "json is the sst file": ["--json", str(sst_file)],
        "max length": ["--max-length", "1000"],
    }
    if case in ("one class", "no whole sentences"):
        rows = [r.rsplit("\t", 1)[0] + ("\t1" if case == "one class" else "") for r in sst[1:]]
        rows = [r.replace(" .", "") + "\t0" if case == "no whole sentences" else r for r in rows]
        sst_file.write_text("\n".join([sst[0], *rows]) + "\n", encoding="utf-8")
    if case == "no training rows":
        edits[case] = ["--dev-size", "80"]  # 160 rows: dev and test take them all
    for flag, value in zip(edits.get(case, [])[::2], edits.get(case, [])[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    before = {f.name: f.read_bytes() for f in saved.iterdir() if f.is_file()}
    text = sst_file.read_bytes()
    assert twin.main(argv) == 2
    assert said in one_line_error(capsys)
    assert {f.name: f.read_bytes() for f in saved.iterdir() if f.is_file()} == before
    assert sst_file.read_bytes() == text
    assert not (tmp_path / "small-random-twin").exists() and not (tmp_path / "tw").exists()


def test_compare_refuses_a_diverged_or_unfinished_pretraining_run(
    saved, sst_file, tmp_path, capsys
):
    from safetensors.torch import load_file, save_file

    from helpers.mlm.runs import STATE

    state = json.loads((saved / STATE).read_text())
    assert state["finished"] is True  # the command marks a run finished once its model is saved
    (saved / STATE).write_text(json.dumps({**state, "finished": False}))
    assert twin.main(compare_argv(saved, sst_file, tmp_path / "o.json")) == 2
    assert "its pretraining run has not finished" in one_line_error(capsys)
    early = tmp_path / "early"  # stopped before its first save: no config.json yet
    early.mkdir()
    (early / STATE).write_text(json.dumps({**state, "finished": False}))
    assert twin.main(compare_argv(early, sst_file, tmp_path / "o.json")) == 2
    assert "its pretraining run has not finished" in one_line_error(capsys)
    (saved / STATE).write_text(json.dumps(state))
    weights = load_file(saved / "model.safetensors")
    name = next(iter(weights))
    weights[name][0] = float("nan")
    save_file(weights, saved / "model.safetensors", metadata={"format": "pt"})
    assert twin.main(compare_argv(saved, sst_file, tmp_path / "o.json")) == 2
    assert "its weights hold nan or inf (did its pretraining diverge?)" in one_line_error(capsys)
