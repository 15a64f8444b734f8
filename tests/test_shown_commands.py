"""Every ``python -m helpers.X`` command README, the notebooks' Markdown and helpers' docstrings show
still parses: each flag it names exists, and a command in a code block parses whole (types, choices,
required flags). Only the command's parser runs: it is stopped as soon as it has parsed, so nothing
is trained, read or written."""

import argparse
import ast
import importlib
import json
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from helpers.cli import Parser

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDERS = {"$seed": "42", "$SLURM_ARRAY_TASK_ID": "0", "$MINILM": "minilm"}


def _texts() -> dict[str, str]:
    """README, and each instructor notebook's Markdown cells."""
    texts = {"README": (ROOT / "README.md").read_text()}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        texts[path.stem[:2]] = "\n\n".join(
            "".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"
        )
    return texts


def _fenced_and_prose(text: str) -> tuple[list[str], list[str]]:
    """The code blocks (continuation lines joined) and the prose paragraphs of Markdown ``text``."""
    code, prose, block, paragraph, inside = [], [], [], [], False
    for line in text.splitlines():
        if line.startswith("```"):
            if inside:
                code.append("\n".join(block).replace("\\\n", " "))
                block = []
            inside = not inside
        elif inside:
            block.append(line)
        elif line.strip():
            paragraph.append(line.strip())
        else:
            prose.append(" ".join(paragraph))
            paragraph = []
    return code, [*prose, " ".join(paragraph)]


def _command(text: str) -> tuple[str, list[str]] | None:
    """(module, arguments) of a shell line that runs ``-m helpers...``."""
    tokens = shlex.split(text, comments=True)
    if "-m" not in tokens:
        return None
    at = tokens.index("-m")
    if not re.fullmatch(r"helpers(\.[a-z_]+)+", tokens[at + 1]):  # not `python -m helpers.X`
        return None
    args = []
    for token in tokens[at + 2 :]:
        token = token.strip("[]").split("|")[0]  # [--test-file F], pretrain|finetune
        args += [PLACEHOLDERS.get(token, token)] if token else []
    return tokens[at + 1], args


Command = tuple[str, str, list[str]]  # (where it is shown, module, arguments)


def _commands() -> tuple[list[Command], list[Command]]:
    """The code blocks' complete commands, and the rest: synopses (``--epochs N``, ``--lrs ...``) and
    the commands in sentences."""
    whole, others = [], []
    for where, text in _texts().items():
        code, prose = _fenced_and_prose(text)
        lines = [(where, *c) for block in code for line in block.splitlines()
                 if "-m helpers" in line and (c := _command(line))]  # fmt: skip
        spans = [(where, *c) for paragraph in prose
                 for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", paragraph)
                 if "-m helpers" in span and (c := _command(span))]  # fmt: skip
        synopsis = [
            c for c in lines if any(re.fullmatch(r"[A-Z][A-Z_]*|\.\.\.|…", a) for a in c[2])
        ]
        whole += [c for c in lines if c not in synopsis]
        others += synopsis + spans
    return whole, others


def _placeholder(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z_]*|\.\.\.|…", value))


def _docstring_commands() -> tuple[list[Command], list[Command]]:
    """The commands helpers' docstrings show: an indented line is a whole command unless it holds a
    placeholder, a ``literal`` in the text a part of one."""
    whole, others = [], []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef):
                continue
            doc = (ast.get_docstring(node) or "").replace("\\\n", " ")
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}"
            for line in doc.splitlines():
                if line.startswith("    ") and "-m helpers" in line and (c := _command(line)):
                    (others if any(map(_placeholder, c[1])) else whole).append((where, *c))
            others += [(where, *c) for span in re.findall(r"``([^`]+)``", doc)
                       if "-m helpers" in span and (c := _command(span))]  # fmt: skip
    return whole, others


WHOLE, OTHERS = (
    shown + documented for shown, documented in zip(_commands(), _docstring_commands())
)


class _Parsed(BaseException):  # not an Exception: no command's error handling can catch it
    def __init__(self, parser: argparse.ArgumentParser, args: list[str]):
        self.parser, self.args = parser, args


def _parser_of(module: str, args: list[str], monkeypatch, parse: bool) -> _Parsed:
    """Run ``python -m module args`` until its parser is called; ``parse`` lets the parser parse first."""

    def parse_args(self, argv=None, namespace=None):
        if parse:
            argparse.ArgumentParser.parse_args(self, argv, namespace)
        raise _Parsed(self, list(argv if argv is not None else sys.argv[1:]))

    monkeypatch.setattr(Parser, "parse_args", parse_args)
    monkeypatch.setattr(sys, "argv", [module, *args])
    imported = importlib.import_module(module)
    with pytest.raises(_Parsed) as stopped:
        if hasattr(imported, "__path__"):  # a package: its __main__.py, as python -m runs it
            runpy.run_module(module, run_name="__main__")
        else:  # a module already imported here: its main, which python -m calls
            imported.main(args)
    return stopped.value


def _problems(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """What in ``args`` the parser would refuse without parsing the whole line (a synopsis or a
    sentence may leave out required flags): a subcommand, a flag, or a value outside a flag's or the
    first positional's choices."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and args and not args[0].startswith("-"):
            if args[0] not in action.choices:
                return [f"the subcommand {args[0]!r} (choose from {', '.join(action.choices)})"]
            return _problems(action.choices[args[0]], args[1:])
    by_flag = {s: a for a in parser._actions for s in a.option_strings}
    problems = []
    for i, token in enumerate(args):
        if not token.startswith("--"):
            continue
        flag, _, value = token.partition("=")
        value = value or (args[i + 1] if i + 1 < len(args) else "")
        if (action := by_flag.get(flag)) is None:
            problems.append(f"{flag}, which it does not take")
        elif action.choices and value and not value.startswith("-") and not _placeholder(value):
            if value not in [str(c) for c in action.choices]:
                problems.append(
                    f"{flag} {value} (choose from {', '.join(map(str, action.choices))})"
                )
    first = next((a for a in parser._actions if not a.option_strings and a.choices), None)
    if first is not None and args and not args[0].startswith("-") and not _placeholder(args[0]):
        if args[0] not in [str(c) for c in first.choices]:
            problems.append(f"{args[0]!r} (choose from {', '.join(map(str, first.choices))})")
    return problems


def test_readme_and_the_notebooks_show_commands_to_check():
    shown = {where for where, _, _ in WHOLE + OTHERS}
    assert any(where.startswith("helpers/") for where in shown)  # the docstrings' too
    assert len(WHOLE) >= 25 and len(OTHERS) >= 10 and len(shown) >= 6, (
        len(WHOLE),
        len(OTHERS),
        shown,
    )


def _ids(commands: list[Command]) -> list[str]:
    return [f"{where}: {' '.join([module, *args[:1]])}" for where, module, args in commands]


@pytest.mark.parametrize(("where", "module", "args"), WHOLE, ids=_ids(WHOLE))
def test_code_block_commands_parse(where, module, args, monkeypatch, capsys):
    try:
        _parser_of(module, args, monkeypatch, parse=True)
    except SystemExit as exit:
        pytest.fail(f"{where} shows python -m {module} {shlex.join(args)}, which exits {exit.code}: "
                    f"{capsys.readouterr().err.strip()}")  # fmt: skip


@pytest.mark.parametrize(("where", "module", "args"), WHOLE + OTHERS, ids=_ids(WHOLE + OTHERS))
def test_every_subcommand_flag_and_choice_shown_exists(where, module, args, monkeypatch):
    stopped = _parser_of(module, args, monkeypatch, parse=False)
    problems = _problems(stopped.parser, stopped.args)
    assert not problems, f"{where} shows python -m {module} with {'; '.join(problems)}"
