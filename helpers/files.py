"""Files written safely: one atomic write for everything the project saves, and safe tar extraction.

``atomic_write(path, save)`` hands ``save`` a temporary path in the same folder and renames it into
place only when ``save`` returns, so a crash, a full disk or a killed kernel never leaves a file that
looks finished. Checkpoints, cached arrays, downloads and JSON reports all go through it.
"""

import json
import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, save: Callable[[Path], object]) -> Path:
    """Call ``save(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save(tmp)
        os.replace(tmp, path)  # atomic on one file system
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: object) -> Path:
    """Write ``data`` as indented JSON atomically."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def save_arrays(path: str | Path, **arrays) -> Path:
    """``np.savez`` atomically (the arrays keep their names)."""
    import numpy as np

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **arrays)

    return atomic_write(path, save)


def extract_tar(archive: str | Path, target: str | Path) -> None:
    """Extract ``archive`` into ``target``, refusing links and any member that would land outside it."""
    archive, root = Path(archive), Path(target).resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if (
                member.issym()
                or member.islnk()
                or not (root / member.name).resolve().is_relative_to(root)
            ):
                raise ValueError(
                    f"refusing to extract {member.name!r} from {archive}: it points outside {target}"
                )
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, filter="data")
        else:
            tar.extractall(root)
