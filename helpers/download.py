"""Where files live: one cache directory, one download helper (progress bar, checksum, atomic write),
and the project's own small data files.

Every direct download is listed in ``DOWNLOADS`` (name -> url, checksum), the way d2l keeps one table;
``python -m helpers.download --all`` fetches them ahead of class. Models and data sets from the Hugging
Face hub are not here: they go to Hugging Face's own caches when a notebook first loads them.
"""

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from helpers.cli import Parser
from helpers.files import DiskFull, atomic_write, expand_home

CACHE_ENV = "HELPERS_CACHE"
CHUNK = 1 << 20  # 1 MiB


@dataclass(frozen=True)
class Remote:
    """A file to download: where from, its published checksum (sha1 or sha256 hex, or None), what for."""

    url: str
    checksum: str | None
    about: str


MINBERT_COMMIT = "80fd0590f91760c7005b92a77b9582cfde8fd697"

DOWNLOADS: dict[str, Remote] = {
    # d2l's mirror of Stanford's GloVe 6B, one zip per size, with the sha1 d2l publishes for each.
    "glove.6B.50d.zip": Remote(
        "https://d2l-data.s3-accelerate.amazonaws.com/glove.6B.50d.zip",
        "0b8703943ccdb6eb788e6f091b8946e82231bc4d",
        "GloVe 6B 50d, 400k lowercase words, 69 MB: notebook 03 on a CPU",
    ),
    "glove.6B.100d.zip": Remote(
        "https://d2l-data.s3-accelerate.amazonaws.com/glove.6B.100d.zip",
        "cd43bfb07e44e6f27cbcc7bc9ae3d80284fdaf5a",
        "GloVe 6B 100d, 400k lowercase words, 131 MB: notebook 03 on a GPU",
    ),
    # Stanford's IMDB reviews (Maas et al. 2011), used when the Hugging Face hub is out of reach.
    "aclImdb_v1.tar.gz": Remote(
        "https://d2l-data.s3-accelerate.amazonaws.com/aclImdb_v1.tar.gz",
        "01ada507287d82875905620988597833ad4e0903",
        "IMDB reviews, 25k train + 25k test, 84 MB: notebook 03's fallback source",
    ),
    # minBERT's copies of SST-5 and CFIMDB (CMU CS11-711), pinned to one commit of its repository.
    **{
        f"minbert-{name}": Remote(
            f"https://raw.githubusercontent.com/neubig/minbert-assignment/{MINBERT_COMMIT}/data/{name}",
            checksum,
            f"minBERT's {name} (LABEL ||| SENTENCE), {size}: notebook 05",
        )
        for name, checksum, size in (
            (
                "sst-train.txt",
                "7aeac81f2a387f2ce7fab98ed8f40ef85cc9c8ad11bcbb63b122e95665cb1f35",
                "0.9 MB",
            ),
            (
                "cfimdb-train.txt",
                "278e200499d1d68a1a9d80e3947a2203cc97130632d8a53f2b9c11de9cb6c699",
                "1.6 MB",
            ),
            (
                "cfimdb-dev.txt",
                "b38f0c095c4624e85927116728140e96d0221969b34146f65eae5b5bb24752b8",
                "0.2 MB",
            ),
        )
    },
    "tinyshakespeare.txt": Remote(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "Tiny Shakespeare, 1.1 MB: notebook 02's masking lesson (quick and full profiles)",
    ),
}


class DownloadError(RuntimeError):
    """A download failed; the message says which file and how to get it by hand."""


AHEAD = " `python -m helpers.download --all` fetches everything ahead of class."  # not said by it


DATA_ENV = "HELPERS_DATA_DIR"


def local_data(*parts: str) -> Path | None:
    """``$HELPERS_DATA_DIR/<parts>`` (a local copy of a data set: ``~`` expanded, relative to the
    folder Python runs in) if that file is there (the last part may be a glob pattern: its first
    file in sorted order); None when the variable is unset. Set but without the file, a note on
    stderr says so (the caller then downloads): not a silent switch to the web."""
    raw = os.environ.get(DATA_ENV)
    if not raw:
        return None
    path = expand_home(raw, f"${DATA_ENV}=").joinpath(*parts)
    found = [p for p in sorted(path.parent.glob(path.name)) if p.is_file()]
    if found:
        return found[0]
    print(f"note: ${DATA_ENV}={raw} has no {'/'.join(parts)} ({path.absolute()}): "
          "downloading instead", file=sys.stderr)  # fmt: skip
    return None


def cache_dir() -> Path:
    """The cache folder: $HELPERS_CACHE if set (an absolute path, or one from ~), else
    ~/.cache/attention-lab. Created if missing; a ValueError says why it cannot be."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "attention-lab"
    path = expand_home(root, f"${CACHE_ENV}=" if os.environ.get(CACHE_ENV) else "the home folder")
    where = f"${CACHE_ENV}={root}" if os.environ.get(CACHE_ENV) else f"the default cache {path}"
    if not path.is_absolute():  # notebooks run in notebooks/, commands in the project root
        raise ValueError(f"{where} is a relative path, another folder from each folder a notebook "
                         f"or command runs in: give an absolute one, e.g. {path.absolute()}")  # fmt: skip
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        problem = (
            "exists and is not a folder" if path.exists() and not path.is_dir()
            else f"cannot be made ({err.strerror})"
        )  # fmt: skip
        raise ValueError(
            f"{where} {problem}: point ${CACHE_ENV} at a folder you can write"
        ) from None
    return path


def project_file(name: str) -> Path:
    """A file of the project's own data/ folder (installed as helpers/data by a plain pip install)."""
    package = Path(__file__).parent
    for folder in (
        package / "data",
        package.parent / "data",
    ):  # installed wheel, then source checkout
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(
        f"{name} is missing from the project's data/ folder; reinstall attention-lab"
    )


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def algorithm_of(checksum: str) -> str:
    """sha1 for a 40-digit hex checksum, sha256 for 64 digits."""
    algorithms = {40: "sha1", 64: "sha256"}
    if len(checksum) not in algorithms:
        raise ValueError(f"checksum {checksum!r} is neither sha1 (40 hex digits) nor sha256 (64)")
    return algorithms[len(checksum)]


def download(url: str, filename: str | None = None, checksum: str | None = None) -> Path:
    """Download ``url`` into the cache once and return its path.

    A file already in the cache (with the right checksum) is not downloaded again. The bytes go to a
    temporary file in the same folder and are renamed into place only when complete and verified, so
    an interrupted download never leaves a file that looks finished.
    """
    dest = cache_dir() / (filename or url.rstrip("/").rsplit("/", 1)[-1])
    algorithm = algorithm_of(checksum) if checksum else "sha256"
    stale = None  # the cached copy's digest when it is not the published one
    if dest.exists():
        if checksum is None or (stale := digest_of(dest, algorithm)) == checksum:
            return dest
        print(f"{dest} has {algorithm} {stale}, not the published {checksum}: downloading it again")

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            _fetch(url, out, dest.name)
        if checksum is not None and (got := digest_of(tmp, algorithm)) != checksum:
            raise DownloadError(
                f"{dest.name} from {url} has {algorithm} {got}, but {checksum} was expected: the download "
                "is corrupt or the file changed upstream. Run it again to retry."
            )

    # renamed into place only when complete and verified; Ctrl-C stops the download at once
    try:
        atomic_write(dest, save, wait=False)
    except DownloadError as err:
        if stale is None:
            raise
        raise DownloadError(
            f"{err} The copy already at {dest} is not the published file ({algorithm} {stale}, not "
            f"{checksum}: cut short, or its line endings changed?): replace it with the original, or "
            "delete it."
        ) from None
    return dest


def _fetch(url: str, out, name: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=name) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received < total:  # the server closed early
                raise DownloadError(
                    f"the download of {name} from {url} stopped after {received:,} of its {total:,} "
                    "bytes. Run it again to retry."
                )
    # HTTPException: a connection that drops mid-body raises IncompleteRead, not an OSError
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"could not download {name} from {url} ({reason}). If you are offline, download it "
            f"on a connected machine and copy it to {cache_dir() / name} (or point ${CACHE_ENV} at "
            f"a folder that has it);{AHEAD}"
        ) from None


def fetch(name: str) -> Path:
    """Download the table entry ``name`` (see ``DOWNLOADS``) and return its cached path."""
    if name not in DOWNLOADS:
        known = ", ".join(sorted(DOWNLOADS)) or "none yet"
        raise KeyError(f"no download called {name!r}; known: {known}")
    remote = DOWNLOADS[name]
    return download(remote.url, name, remote.checksum)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m helpers.download",
        description="Fetch the notebooks' downloads into the cache.",
    )
    parser.add_argument("names", nargs="*", help="entries of the download table")
    parser.add_argument("--all", action="store_true", help="fetch every entry")
    parser.add_argument("--list", action="store_true", help="list the entries and the cache folder")
    args = parser.parse_args(argv)
    names = sorted(DOWNLOADS) if args.all else args.names
    try:
        cache = cache_dir()
    except ValueError as err:  # $HELPERS_CACHE names a file, or a folder that cannot be made
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.list or not names:
        print(f"cache: {cache}  (set ${CACHE_ENV} to move it)")
        for name, remote in sorted(DOWNLOADS.items()):
            print(f"  {name:30s} {remote.about}  <- {remote.url}")
        return 0
    if unknown := [name for name in names if name not in DOWNLOADS]:  # before fetching any
        print(f"error: no download called {unknown[0]!r}; known: {', '.join(sorted(DOWNLOADS))}",
              file=sys.stderr)  # fmt: skip
        return 2
    failed = []
    for name in names:  # one failure does not stop the rest (--all stopped at its first)
        try:
            print(f"{name}: {fetch(name)}")
        except ValueError as err:  # a cache it cannot write
            print(f"error: {err}", file=sys.stderr)
            return 2
        except (DownloadError, DiskFull, OSError) as err:
            print(f"error: {str(err).removesuffix(AHEAD)}", file=sys.stderr)
            failed.append(name)
    if failed and len(names) > 1:
        print(f"error: {len(failed)} of {len(names)} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
