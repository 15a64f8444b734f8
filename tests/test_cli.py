"""Every command's argparse errors are one line (``helpers.cli.Parser``): ``error: ... (see PROG
--help)`` and exit status 2, not argparse's usage block."""

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    "helpers.authoring", "helpers.benchmark", "helpers.download", "helpers.finetune.cli",
    "helpers.finetune.proxy", "helpers.finetune.twin", "helpers.gpt.cli", "helpers.imdb.ablation",
    "helpers.imdb.baseline", "helpers.imdb.cli", "helpers.minbert.cli", "helpers.mlm.cli",
    "helpers.scaling.cli",
]  # fmt: skip


def test_every_parser_is_the_one_line_parser():
    """No module builds a plain argparse parser (it would print the usage block on an error)."""
    plain = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "helpers").rglob("*.py"))
        if "argparse.ArgumentParser(" in path.read_text()
    ]
    assert plain == [], plain


@pytest.mark.parametrize("module", COMMANDS)
def test_an_unknown_flag_is_one_line_and_exit_2(module, capsys):
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(["--no-such-flag"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "--help)" in err, err
