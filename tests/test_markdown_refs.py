"""What README and the notebooks' Markdown point at exists: relative links and their anchors, file
paths and ``helpers`` names in backticks, ``from helpers... import`` lines; and their math avoids what
only some renderers read (text-mode escapes such as ``\\texttt{max\\_len}``, shown with its backslash
by MathJax 2)."""

import importlib
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "notebooks").rglob("*.ipynb"))]
FENCE = re.compile(r"^ *```.*?^ *```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
PATH = re.compile(r"(?:helpers|tests|\.ci|colab|data|notebooks)/[\w./*-]*")
NAME = re.compile(r"helpers(?:\.\w+)+")
IMPORT = re.compile(r"^\s*from (helpers(?:\.\w+)*) import \(?([\w ,]+)\)?\s*$", re.MULTILINE)
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.DOTALL)
TEXT_ESCAPE = re.compile(r"\\text(?:tt|rm|bf|it|sf)?\{[^}]*\\[_&%#$]")


def markdown(path: Path) -> str:
    """README's text, or a notebook's Markdown cells."""
    if path.suffix == ".md":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def prose(text: str) -> str:
    """``text`` without its code blocks and code spans."""
    return CODE_SPAN.sub(" ", FENCE.sub(" ", text))


def spans(text: str) -> list[str]:
    """The code spans of ``text``'s prose (not its code blocks)."""
    return [m.group(2).strip() for m in CODE_SPAN.finditer(FENCE.sub(" ", text))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub(" ", markdown(path))
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)}


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def broken_links(path: Path, text: str) -> list[str]:
    """Each relative link of ``text`` (a document in ``path``'s folder) whose file or anchor is
    missing."""
    broken = []
    for target in LINK.findall(prose(text)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix in (".md", ".ipynb") and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {linked.name}")
    return broken


def missing_paths(text: str) -> list[str]:
    """Each file path in backticks (``helpers/...``, ``tests/...``) that names nothing in the
    project; a glob must match something."""
    paths = [s for s in spans(text) if PATH.fullmatch(s) and "..." not in s]  # `helpers/...`
    return [p for p in paths if not any(ROOT.glob(p.rstrip("/")))]


def resolves(dotted: str) -> bool:
    """Whether ``helpers.a.b.c`` names a module, or an attribute of the longest module it starts
    with."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for part in parts[cut:]:
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True
    return False


def unresolved(text: str) -> list[str]:
    """Each ``helpers.x.y`` in backticks, and each name a ``from helpers... import`` line in a code
    block imports, that does not resolve."""
    names = {m.group(0) for s in spans(text) for m in [NAME.fullmatch(s.removesuffix("()"))] if m}
    for block in FENCE.findall(text):
        for module, imported in IMPORT.findall(block):
            names |= {f"{module}.{n.strip()}" for n in imported.split(",") if n.strip()}
    return sorted(n for n in names if not resolves(n))


@pytest.mark.parametrize("path", DOCS, ids=doc_id)
def test_links_paths_and_names_resolve(path):
    text = markdown(path)
    assert not broken_links(path, text), broken_links(path, text)
    assert not missing_paths(text), f"no such file: {missing_paths(text)}"
    assert not unresolved(text), f"these helpers names do not import: {unresolved(text)}"


@pytest.mark.parametrize("path", DOCS, ids=doc_id)
def test_math_has_no_text_mode_escapes(path):
    bad = [m for m in MATH.findall(prose(markdown(path))) if TEXT_ESCAPE.search(m)]
    assert not bad, (
        f"{bad}: a \\_ (or \\&, \\%) inside \\text{{}} or \\texttt{{}} shows its backslash under "
        "MathJax 2 (nbconvert, classic Notebook); use \\mathtt{max\\_len} or \\mathrm{...}"
    )


def test_the_checks_find_what_they_look_for(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# A heading\n\nSee [it](doc.md#a-heading), [gone](nothere.md), [x](#nope).\n")
    assert broken_links(doc, doc.read_text()) == [
        f"nothere.md: no file {tmp_path / 'nothere.md'}",
        "#nope: no heading with the anchor #nope in doc.md",
    ]
    text = "`helpers/layers.py`, `helpers/nothere.py`, `tests/test_*.py`, `helpers.layers.Block`, "
    text += "`helpers.layers.Nothing`, `helpers.nomodule.x()`\n```python\nfrom helpers.training import fit, nofit\n```"
    assert missing_paths(text) == ["helpers/nothere.py"]
    assert unresolved(text) == [
        "helpers.layers.Nothing",
        "helpers.nomodule.x",
        "helpers.training.nofit",
    ]
    assert TEXT_ESCAPE.search(r"$\min(\texttt{max\_len}, T)$")
    assert not TEXT_ESCAPE.search(r"$\min(\mathtt{max\_len}, T)$")
