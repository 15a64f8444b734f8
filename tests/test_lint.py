import ast
import json
import re
import subprocess
import sys
import tokenize

from conftest import ROOT
from IPython.core.inputtransformer2 import TransformerManager
from vulture import Vulture


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_ruff_check():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, "run `ruff format .`\n" + result.stdout + result.stderr


def test_no_dead_code_in_helpers():
    """Every function, class and variable of ``helpers`` is used by helpers, the tests, colab/ or a
    notebook (vulture; attributes are left out: helpers sets some on other libraries' objects, and so
    are the methods torch and Python call themselves). A file vulture cannot read fails the test: its
    uses would go unseen."""
    scan = Vulture(ignore_names=["extra_repr", "forward", "__torch_function__", "reset_parameters"])
    scan.scavenge([str(ROOT / "helpers"), str(ROOT / "tests"), str(ROOT / "colab")])
    to_python = TransformerManager().transform_cell  # IPython's: !ls and %magic become calls
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n\n".join(
            to_python("".join(cell["source"])) for cell in cells if cell["cell_type"] == "code"
        )
        scan.scan(code, filename=str(path))
    assert scan.exit_code == 0, "vulture could not read a file (its message is above)"
    unused = [
        f"{item.filename.relative_to(ROOT)}:{item.first_lineno}: {item.message}"
        for item in scan.get_unused_code(min_confidence=60)
        if item.typ != "attribute" and (ROOT / "helpers") in item.filename.parents
    ]
    assert not unused, "unused code (delete it, or use it):\n" + "\n".join(unused)


def test_every_public_function_of_helpers_has_type_hints_that_resolve():
    """Typed signatures: each public function and method (and every ``__init__``) annotates every
    parameter and its return, and each annotation, string ones included (with the names a module
    imports only for type checkers), names something that exists."""
    import ast
    import importlib
    import inspect
    import typing

    missing = []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("_") and node.name != "__init__":
                continue
            a = node.args
            params = [
                p for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")
            ]
            params += [p for p in (a.vararg, a.kwarg) if p is not None]
            bare = [p.arg for p in params if p.annotation is None]
            if bare or node.returns is None:
                where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                missing.append(f"{where}: {', '.join(bare) or 'the return'} not annotated")
    assert not missing, "\n".join(missing)
    unresolved = []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        if path.name == "__main__.py":
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        names = dict(vars(module))  # a copy: the module itself gains no name from this test
        for node in ast.parse(path.read_text()).body:  # the names imported for type checkers
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                exec(compile(ast.Module(node.body, []), name, "exec"), names)
        for obj in list(vars(module).values()):
            members = list(vars(obj).values()) if inspect.isclass(obj) else []
            for fn in [obj, *members]:
                fn = getattr(fn, "fget", None) or getattr(
                    fn, "__func__", fn
                )  # property, classmethod
                if inspect.isfunction(fn) and fn.__module__ == name:
                    try:
                        typing.get_type_hints(fn, globalns=names)
                    except Exception as err:  # a name that does not exist, or a typo
                        unresolved.append(f"{name}.{fn.__qualname__}: {err}")
    assert not unresolved, "\n".join(unresolved)


def test_no_docstring_line_ends_in_a_lone_backslash():
    """A usage line ending in ``\\`` inside a (non-raw) docstring joins the next line to it, so the
    shown command loses its shell continuation: write ``\\\\``."""
    joined = []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        with tokenize.open(path) as f:
            for token in tokenize.generate_tokens(f.readline):
                prefix = re.match(r"[A-Za-z]*", token.string).group(0).lower()
                if token.type == tokenize.STRING and "r" not in prefix:
                    for m in re.finditer(r"(?<!\\)(?:\\\\)*\\\n", token.string):
                        line = token.start[0] + token.string[: m.start()].count("\n")
                        joined.append(f"{path.relative_to(ROOT)}:{line}")
    assert not joined, f"a lone backslash ends these lines (write \\\\): {joined}"


def _unencoded(tree: ast.AST) -> list[int]:
    """Lines of ``open(...)`` in text mode and ``.read_text()``/``.write_text()`` without ``encoding=``."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or any(k.arg == "encoding" for k in node.keywords):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("read_text", "write_text"):
            lines.append(node.lineno)
        elif isinstance(func, ast.Name) and func.id == "open":
            mode = node.args[1] if len(node.args) > 1 else None
            mode = next((k.value for k in node.keywords if k.arg == "mode"), mode)
            if not (isinstance(mode, ast.Constant) and "b" in str(mode.value)):
                lines.append(node.lineno)
    return lines


def test_text_files_are_read_and_written_as_utf8():
    """Without ``encoding=``, Python uses the system's: cp1252 on Windows, where a user name like
    Łukasz in a path, or a review's é, is misread or cannot be written. Helpers and the notebooks'
    code name UTF-8 every time (helpers' own ``files.write_text`` and ``read_text`` functions do)."""
    found = []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        found += [
            f"{path.relative_to(ROOT)}:{n}"
            for n in _unencoded(ast.parse(path.read_text(encoding="utf-8")))
        ]
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                code = TransformerManager().transform_cell("".join(cell["source"]))  # %pip and !ls
                found += [
                    f"{path.relative_to(ROOT)} cell {i} line {n}"
                    for n in _unencoded(ast.parse(code))
                ]
    assert not found, f"text read or written without encoding=: {found}"
