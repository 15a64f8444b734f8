import json
import math

from helpers import benchmark


def test_block_speed_reports_both_sides_and_the_ratio():
    result = benchmark.block_speed(batch=2, tokens=16, embed_dim=32, heads=4, repeats=2)
    assert set(result["seconds"]) == {"from_scratch", "torch"}
    assert all(0 < s < math.inf for s in result["seconds"].values()), result["seconds"]
    assert 0 < result["ratio_from_scratch_over_torch"] < math.inf
    assert result["shape"] == {"batch": 2, "tokens": 16, "embed_dim": 32, "heads": 4}
    assert result["repeats"] == 2


def test_attention_speed_times_loops_only_up_to_the_limit():
    result = benchmark.attention_speed([4, 8], embed_dim=8, loop_max=4, repeats=1)
    assert result["repeats"] == 1  # in the report: its medians are of this many timed calls
    assert [sorted(r) for r in result["rows"]] == [
        ["loops", "tokens", "torch", "vectorised"],
        ["tokens", "torch", "vectorised"],
    ]


def test_cli_writes_json(tmp_path, monkeypatch):
    monkeypatch.setattr(
        benchmark, "block_speed", lambda **kw: {"ratio_from_scratch_over_torch": 1.0, **kw}
    )
    out = tmp_path / "out" / "block.json"
    assert benchmark.main(["block", "--json", str(out), "--repeats", "1"]) == 0
    data = json.loads(out.read_text())
    assert data["repeats"] == 1 and data["machine"]["torch"]


def test_kv_cache_speed_reports_both_and_the_same_tokens():
    from helpers.benchmark import kv_cache_speed

    result = kv_cache_speed({"tiny": 5})
    (row,) = result["rows"]
    assert row["same_tokens"] and row["new_tokens"] == 5
    assert row["tokens_per_second_with_cache"] > 0 and row["tokens_per_second_without_cache"] > 0


def test_cli_argparse_errors_are_one_line(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exited:
        benchmark.main(["block"])  # no --json
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: the following arguments are required: --json"), err


def test_cli_refuses_repeats_where_it_is_ignored(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert benchmark.main(["precision", "--json", str(out), "--repeats", "5"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --repeats is for block and attention; precision has a fixed length, so leave it out\n"
    )
    assert not out.exists()


def test_a_diverged_precision_is_written_as_null_and_said(tmp_path, monkeypatch, capsys):
    """fp16 diverging is what this check is for: its NaN loss made the report invalid JSON (and, once
    reports refused NaN, a traceback and no report)."""
    import json
    import math

    from helpers.training import History

    def fit(model, train, cfg, device, **kwargs):
        history = History()
        history.log(train_loss=math.nan, valid_loss=math.inf)
        return history

    monkeypatch.setattr("helpers.training.fit", fit)  # imported inside precision_check
    out = tmp_path / "p.json"
    assert benchmark.main(["precision", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["diverged"] is True and row["train_loss"] is None and row["valid_loss"] is None
    assert "fp32 diverged (NaN or infinite loss)" in capsys.readouterr().out
