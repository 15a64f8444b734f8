"""What wrote a report: the course's code, the libraries and the machine.

Every command's JSON report ends with ``provenance()`` (``files.write_report``), so a reader can tell
whether a rerun should give the same numbers: a fix in the code, another library version or another
thread count moves the last digits of a result (README: "Reports say what wrote them").
"""

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # helpers/
DISTRIBUTION = "attention-lab"  # pyproject.toml's name
LIBRARIES = ("torch", "transformers", "tokenizers", "datasets", "numpy", "scikit-learn", "spacy")


def provenance() -> dict:
    """The code (a digest of helpers' source, and its git commit where known), Python, the libraries'
    versions (None: not installed), the platform, the CPU count and torch's thread count (None when
    the command never loaded torch)."""
    torch = sys.modules.get("torch")
    return {
        "helpers": code(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
    }


@functools.cache
def code() -> dict:
    """``source_sha256``: a digest of every .py file of the helpers package (names and bytes), which
    changes with any edit, committed or not; ``commit``: the git commit of a checkout, or the one pip
    installed from (``pip install git+...``, as Colab's setup cell does), else None."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return {"source_sha256": digest.hexdigest()[:16], "commit": _commit()}


def _commit() -> str | None:
    checkout = PACKAGE.parent
    if (checkout / ".git").exists():
        try:
            done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"],
                                  capture_output=True, text=True, timeout=10)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0:  # no git, or a checkout git will not read ("dubious ownership")
            return None
        return done.stdout.strip() or None
    try:  # pip writes where an installed copy came from (PEP 610)
        installed = metadata.distribution(DISTRIBUTION)
        found = [f for f in installed.files or () if f.name == "direct_url.json"]
        if not found:
            return None
        source = json.loads(Path(installed.locate_file(found[0])).read_text(encoding="utf-8"))
    except (metadata.PackageNotFoundError, OSError, ValueError):
        return None
    return source.get("vcs_info", {}).get("commit_id")


def _version(name: str) -> str | None:
    """The installed version; torch's own where it is loaded, which names its build (``2.2.0+cu121``)
    where the package's metadata may not (a wheel from PyPI says ``2.2.0``)."""
    if name == "torch" and (torch := sys.modules.get("torch")) is not None:
        return str(torch.__version__)
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
