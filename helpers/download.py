"""Where files live: one cache directory, one download helper (progress bar, checksum, atomic write),
and the project's own small data files.

Every direct download is listed in ``DOWNLOADS`` (name -> url, checksum), the way d2l keeps one table;
``python -m helpers.download --all`` fetches them ahead of class. Models and data sets from the Hugging
Face hub are not here: they go to Hugging Face's own caches when a notebook first loads them.
"""

import errno
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm.auto import tqdm

from helpers.cli import Parser, stops_cleanly
from helpers.files import DiskFull, atomic_write, expand_home

CACHE_ENV = "HELPERS_CACHE"
CHUNK = 1 << 20  # 1 MiB
# A server that trickles bytes is never timed out by the 60 s a read may wait: under 1 KiB/s over a
# minute (a 69 MB GloVe zip would take most of a day) the download stops with a message instead.
SLOW_WINDOW, SLOW_RATE = 60.0, 1024


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
    """A download failed; the message says which file and how to get it by hand. ``answer``: what the
    server sent instead of the file, where it answered (an HTTP status, a web page), else None."""

    def __init__(self, message: str, answer: str | None = None) -> None:
        super().__init__(message)
        self.answer = answer


AHEAD = " `python -m helpers.download --all` fetches everything ahead of class."  # not said by it


LOCAL_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


class HubUnreachable(ConnectionError):
    """A data set the Hugging Face hub could not give (offline, or the hub down); the message says
    where a local copy goes. A ConnectionError, so code that passes over a missing data set still
    does."""


def hub_dataset(hub_id: str, *args: str, offline: str, **kwargs: Any) -> Any:
    """``datasets.load_dataset(hub_id, *args, **kwargs)``; offline, a ``HubUnreachable`` naming
    ``offline`` (where a local copy goes) instead of the hub client's retries' traceback."""
    from datasets import load_dataset

    try:
        return load_dataset(hub_id, *args, **kwargs)
    except OSError as err:  # offline, the hub down (ConnectionError), no such data set
        if getattr(err, "errno", None) in LOCAL_FAULTS:  # this machine's disk, not the hub
            raise
        first = (str(err).splitlines() or [""])[0]
        raise HubUnreachable(
            f"could not load the data set {hub_id} from the Hugging Face hub ({type(err).__name__}: "
            f"{first}). Offline, {offline}"
        ) from err


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


def url_name(url: str) -> str:
    """The file name at the end of ``url``'s path (no query or fragment, %20 decoded)."""
    name = urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(url).path).name)
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):  # %2F: not a folder
        raise ValueError(f"{url} names no plain file at the end of its path; pass filename=")
    return name


def download(
    url: str,
    filename: str | None = None,
    checksum: str | None = None,
    check: Callable[[Path], str | None] | None = None,
) -> Path:
    """Download ``url`` into the cache once and return its path.

    A file already in the cache (with the right checksum) is not downloaded again. The bytes go to a
    temporary file in the same folder and are renamed into place only when complete and verified, so
    an interrupted download never leaves a file that looks finished. Without a published checksum,
    ``check(path)`` says what is wrong with a file (an HTML page where a zip should be), or None.
    """
    dest = cache_dir() / (filename or url_name(url))
    algorithm = algorithm_of(checksum) if checksum else "sha256"
    stale = None  # the cached copy's digest when it is not the published one
    if dest.exists():
        if checksum is None and (problem := check and check(dest)):
            print(f"{dest} {problem}: downloading it again")
        elif checksum is None or (stale := digest_of(dest, algorithm)) == checksum:
            return dest
        else:
            print(
                f"{dest} has {algorithm} {stale}, not the published {checksum}: downloading it again"
            )

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            _fetch(url, out, dest.name)
        if checksum is not None and (got := digest_of(tmp, algorithm)) != checksum:
            raise DownloadError(
                f"{dest.name} from {url} has {algorithm} {got}, but {checksum} was expected: the download "
                "is corrupt or the file changed upstream. Run it again to retry."
            )
        if checksum is None and (problem := check and check(tmp)):
            raise DownloadError(f"{dest.name} from {url} {problem}: it was not saved. Run it again "
                                "to retry, or download it by hand.", answer=problem)  # fmt: skip

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


# What the network can raise: OSError (refused, reset, timed out, TLS errors, HTTP statuses) and, for a
# connection that drops mid-body, http.client's IncompleteRead, which is no OSError. A full disk, from
# writing, is not among them: atomic_write names it.
NETWORK_ERRORS = (OSError, http.client.HTTPException)


def _fetch(url: str, out, name: str) -> None:
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except NETWORK_ERRORS as err:
        raise _failed(url, name, err) from None
    with response:
        total = int(response.headers.get("Content-Length") or 0) or None
        received, window, since = 0, 0, time.monotonic()  # bytes in the last SLOW_WINDOW seconds
        with tqdm(total=total, unit="B", unit_scale=True, desc=name) as bar:
            while True:
                try:  # read1: what has arrived (up to 1 MiB), so the bar moves on a slow link
                    chunk = response.read1(CHUNK)
                except NETWORK_ERRORS as err:
                    raise _failed(url, name, err) from None
                if not chunk:
                    break
                out.write(chunk)
                received, window = received + len(chunk), window + len(chunk)
                bar.update(len(chunk))
                if (seconds := time.monotonic() - since) >= SLOW_WINDOW:
                    if window < SLOW_RATE * seconds:
                        raise DownloadError(
                            f"the download of {name} from {url} slowed to {window / seconds:.0f} bytes "
                            f"a second (after {received:,} bytes): run it again later, or "
                            f"download it on a faster connection and copy it to {cache_dir() / name}"
                        )
                    window, since = 0, time.monotonic()
    if total is not None and received < total:  # the server closed early
        raise DownloadError(
            f"the download of {name} from {url} stopped after {received:,} of its {total:,} "
            "bytes. Run it again to retry."
        )


def _failed(url: str, name: str, err: BaseException) -> DownloadError:
    """The one message for a download the network or the server refused."""
    by_hand = (f"download it on a connected machine and copy it to {cache_dir() / name} (or point "
               f"${CACHE_ENV} at a folder that has it)")  # fmt: skip
    if isinstance(err, urllib.error.HTTPError):  # the server answered: not an offline machine
        status = f"HTTP {err.code} {' '.join(str(err.reason).split())}"
        return DownloadError(
            f"could not download {name} from {url}: the server answered {status} (the file moved, "
            f"or the address is wrong); {by_hand}.{AHEAD}",
            answer=f"it answered {status}",
        )
    reason = " ".join(str(getattr(err, "reason", err)).split())  # one line (a redirect loop's two)
    return DownloadError(
        f"could not download {name} from {url} ({reason}). If you are offline, {by_hand}.{AHEAD}"
    )


def fetch(name: str) -> Path:
    """Download the table entry ``name`` (see ``DOWNLOADS``) and return its cached path."""
    if name not in DOWNLOADS:
        known = ", ".join(sorted(DOWNLOADS)) or "none yet"
        raise KeyError(f"no download called {name!r}; known: {known}")
    remote = DOWNLOADS[name]
    return download(remote.url, name, remote.checksum)


@stops_cleanly(
    "the files already fetched are in the cache, nothing half-downloaded is kept: run it "
    "again for the rest"
)
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
            print(f"error: {err} (${CACHE_ENV} moves the cache: {cache})", file=sys.stderr)
            return 2
        except (DownloadError, DiskFull, OSError) as err:
            print(f"error: {str(err).removesuffix(AHEAD)}", file=sys.stderr)
            failed.append(name)
    if failed and len(names) > 1:
        print(f"error: {len(failed)} of {len(names)} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
