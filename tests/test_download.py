import contextlib
import hashlib
import http.client
import http.server
import io
import ssl
import threading
import urllib.error
import zipfile

import pytest

from helpers import download as dl


def served(tmp_path, content: bytes = b"hello attention\n" * 1000):
    src = tmp_path / "remote" / "vectors.txt"
    src.parent.mkdir()
    src.write_bytes(content)
    return src.as_uri(), hashlib.sha256(content).hexdigest(), content


def test_cache_dir_follows_the_environment(cache):
    assert dl.cache_dir() == cache and cache.is_dir()


def test_download_verifies_and_caches(tmp_path, cache, monkeypatch):
    url, sha, content = served(tmp_path)
    path = dl.download(url, checksum=sha)
    assert path == cache / "vectors.txt" and path.read_bytes() == content

    def no_network(*args, **kwargs):
        raise AssertionError("a cached, verified file must not be downloaded again")

    monkeypatch.setattr(dl, "_fetch", no_network)
    assert dl.download(url, checksum=sha) == path


def test_sha1_checksums_work_too(tmp_path, cache):
    url, _, content = served(tmp_path)
    assert dl.download(url, checksum=hashlib.sha1(content).hexdigest()).read_bytes() == content
    with pytest.raises(ValueError, match="neither sha1"):
        dl.download(url, checksum="abc")


def test_bad_checksum_leaves_no_file(tmp_path, cache):
    url, _, _ = served(tmp_path)
    with pytest.raises(dl.DownloadError, match="vectors.txt .* has sha256 .* but 0+ was expected"):
        dl.download(url, checksum="0" * 64)
    assert list(cache.iterdir()) == []


def test_interrupted_download_leaves_nothing_that_looks_complete(tmp_path, cache, monkeypatch):
    url, sha, _ = served(tmp_path)

    def dies_half_way(url, out, name):
        out.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "_fetch", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        dl.download(url, checksum=sha)
    assert list(cache.iterdir()) == []


def test_offline_message_names_the_file_and_what_to_do(cache, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    with pytest.raises(dl.DownloadError) as err:
        dl.download("https://example.org/data/glove.zip")
    message = str(err.value)
    assert "glove.zip" in message and str(cache / "glove.zip") in message
    assert "python -m helpers.download --all" in message and "HELPERS_CACHE" in message


def test_fetch_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="no download called 'nope'"):
        dl.fetch("nope")


def test_cli_lists_the_cache(cache, capsys):
    assert dl.main(["--list"]) == 0
    assert str(cache) in capsys.readouterr().out


def test_cli_fetches_a_table_entry(tmp_path, cache, monkeypatch, capsys):
    url, sha, content = served(tmp_path)
    monkeypatch.setattr(dl, "DOWNLOADS", {"vectors.txt": dl.Remote(url, sha, "test vectors")})
    assert dl.main(["--all"]) == 0
    assert (cache / "vectors.txt").read_bytes() == content


def test_cli_goes_on_past_a_failed_download_and_names_the_failures(
    tmp_path, cache, monkeypatch, capsys
):
    """Offline, --all stopped at its first name (alphabetically a fallback) and tried nothing else."""
    url, sha, content = served(tmp_path)
    gone = (tmp_path / "missing.txt").as_uri()
    monkeypatch.setattr(dl, "DOWNLOADS", {"a-gone.txt": dl.Remote(gone, sha, "unreachable"),
                                          "vectors.txt": dl.Remote(url, sha, "test vectors")})  # fmt: skip
    assert dl.main(["--all"]) == 1
    assert (cache / "vectors.txt").read_bytes() == content  # fetched after the failure
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "error: 1 of 2 failed: a-gone.txt"
    assert "missing.txt" in err and "--all" not in err  # not told to run what it just ran


def test_project_file_finds_data_folder():
    assert dl.project_file("quiz_01_concepts.json").name == "quiz_01_concepts.json"
    with pytest.raises(FileNotFoundError, match="missing from the project's data/ folder"):
        dl.project_file("nope.json")


def test_every_table_entry_has_a_checksum_and_a_purpose():
    for name, remote in dl.DOWNLOADS.items():
        assert remote.url.startswith("https://") and remote.about, name
        assert remote.checksum is not None and len(remote.checksum) in (40, 64), name


def test_tiny_shakespeare_checksum_matches_the_real_file(shared_data):
    real = shared_data / "corpus" / "tinyshakespeare.txt"
    assert dl.digest_of(real) == dl.DOWNLOADS["tinyshakespeare.txt"].checksum


@pytest.mark.parametrize("name", ["sst-train.txt", "cfimdb-train.txt", "cfimdb-dev.txt"])
def test_minbert_checksums_match_the_real_files(shared_data, name):
    assert dl.digest_of(shared_data / "minbert" / name) == dl.DOWNLOADS[f"minbert-{name}"].checksum


def test_a_cache_that_is_a_file_or_cannot_be_made_is_named(tmp_path, monkeypatch, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("HELPERS_CACHE", str(afile))
    with pytest.raises(
        ValueError, match=f"HELPERS_CACHE={afile} exists and is not a folder: point"
    ):
        dl.cache_dir()
    assert dl.main(["--list"]) == 2
    assert capsys.readouterr().err.startswith(f"error: $HELPERS_CACHE={afile} exists and is not")
    monkeypatch.setenv("HELPERS_CACHE", str(afile / "below"))
    with pytest.raises(ValueError, match=r"below cannot be made \(Not a directory\)"):
        dl.cache_dir()


def test_a_relative_cache_is_refused(tmp_path, monkeypatch):
    """Notebooks run from notebooks/, commands from the project root: one relative $HELPERS_CACHE
    would be two caches."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELPERS_CACHE", "rel cache")
    with pytest.raises(ValueError, match=f"is a relative path, .*e.g. {tmp_path / 'rel cache'}"):
        dl.cache_dir()
    assert not (tmp_path / "rel cache").exists()
    monkeypatch.setenv("HELPERS_CACHE", "~/x-attention-lab-test")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dl.cache_dir() == tmp_path / "x-attention-lab-test"


def test_offline_with_a_cached_copy_that_fails_its_checksum_says_so(tmp_path, cache, monkeypatch):
    url, sha, content = served(tmp_path)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "vectors.txt").write_bytes(content[:100])  # a copy cut short

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    with pytest.raises(dl.DownloadError, match="is not the published file .* or delete it"):
        dl.download(url, checksum=sha)
    assert (cache / "vectors.txt").read_bytes() == content[:100]  # left for the user to see


def test_a_download_cut_short_by_the_server_is_refused(tmp_path, cache, monkeypatch):
    """Without a checksum (Stanford's GloVe) the Content-Length is the only check."""

    class Short(io.BytesIO):
        headers = {"Content-Length": "300"}

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: Short(b"x" * 100))
    with pytest.raises(dl.DownloadError, match="stopped after 100 of its 300 bytes"):
        dl.download("https://example.org/f.zip")
    assert list(cache.iterdir()) == []


def test_a_connection_dropped_mid_download_is_one_message(tmp_path, cache, monkeypatch):
    """http.client.IncompleteRead is not an OSError: it reached `python -m helpers.download` as a
    traceback."""

    class Dropped(io.BytesIO):
        headers = {"Content-Length": "100"}

        def __exit__(self, *exc):
            return False

        def read1(self, *args):
            raise http.client.IncompleteRead(b"x" * 10, 90)

    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: Dropped())
    with pytest.raises(dl.DownloadError, match=r"could not download f.zip .*IncompleteRead"):
        dl.download("https://example.org/f.zip")
    assert list(cache.iterdir()) == []


def test_cli_refuses_an_unknown_name_with_exit_2_before_fetching_any(cache, capsys, monkeypatch):
    fetched = []
    monkeypatch.setattr(dl, "fetch", fetched.append)
    assert dl.main(["tinyshakespeare.txt", "nope"]) == 2 and fetched == []
    assert capsys.readouterr().err.startswith("error: no download called 'nope'; known: ")


def test_every_local_data_set_reads_helpers_data_dir_the_same_way(
    tmp_path, cache, monkeypatch, capsys
):
    """A ~ in $HELPERS_DATA_DIR was expanded for none of minBERT's files, SST-2/BoolQ and WikiText-2,
    and a data dir without the file switched to a download without a word (only IMDB said so)."""
    from helpers.corpora import wikitext2_lines
    from helpers.finetune.data import local_folder
    from helpers.minbert.data import data_file

    home = tmp_path / "home"
    for parts, text in ((("minbert", "sst-train.txt"), "3 ||| A fine film .\n"),
                        (("sst2", "train.tsv"), "sentence\tlabel\nfine\t1\n"),
                        (("corpus", "wikitext-2", "wiki.valid.tokens"), " = Heading = \n words here \n")):  # fmt: skip
        path = home.joinpath("data", *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HELPERS_DATA_DIR", "~/data")
    assert data_file("sst-train.txt") == home / "data" / "minbert" / "sst-train.txt"
    assert local_folder("sst2") == str(home / "data")
    assert wikitext2_lines("validation") == ["= Heading =", "words here"]
    assert capsys.readouterr().err == ""
    assert local_folder("boolq") is None  # the caller then goes to the hub
    assert capsys.readouterr().err.startswith(
        "note: $HELPERS_DATA_DIR=~/data has no boolq/train.jsonl ("
    )
    from helpers.imdb.data import local_glove

    assert local_glove(50) is None and "has no glove/glove.6B.50d*.txt" in capsys.readouterr().err
    monkeypatch.delenv("HELPERS_DATA_DIR")
    assert dl.local_data("sst2", "train.tsv") is None and capsys.readouterr().err == ""


@contextlib.contextmanager
def server(pages: dict[str, tuple[int, bytes]]):
    """A local HTTP server answering each path with (status, body); its base URL."""

    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = pages.get(self.path.split("?")[0], (404, b"<html>not here</html>"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_server_that_answers_an_http_error_is_named_with_its_status(cache):
    """A 404 read "could not download ... (Not Found). If you are offline, ...": the server answered,
    so the machine is not offline; the status says what went wrong."""
    with server({}) as base, pytest.raises(dl.DownloadError) as raised:
        dl.download(f"{base}/gone.zip")
    message = str(raised.value)
    assert "the server answered HTTP 404 Not Found" in message and "offline" not in message, message
    assert list(cache.iterdir()) == []


def test_a_tls_error_mid_download_is_one_message(cache, monkeypatch):
    """ssl.SSLError is an OSError the download did not catch: a traceback from ssl.py, and notebook 03's
    GloVe never tried Stanford's server."""

    class Broken(io.BytesIO):
        headers = {"Content-Length": "100"}

        def __exit__(self, *exc):
            return False

        def read1(self, *args):
            raise ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed")

    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: Broken())
    with pytest.raises(dl.DownloadError, match=r"could not download f.zip .*DECRYPTION_FAILED"):
        dl.download("https://example.org/f.zip")
    assert list(cache.iterdir()) == []


def test_a_web_page_where_stanfords_glove_zip_should_be_is_not_kept(cache, capsys):
    """Stanford's zip has no published checksum: a login portal's HTML page was saved as glove.6B.zip
    and returned from the cache ever after."""
    from helpers.glove import not_a_zip

    page = b"<!DOCTYPE html><html>Sign in to the network</html>"
    with server({"/glove.6B.zip": (200, page)}) as base:
        with pytest.raises(dl.DownloadError, match="is not a zip archive but a web page"):
            dl.download(f"{base}/glove.6B.zip", check=not_a_zip)
        assert list(cache.iterdir()) == []
        (cache / "glove.6B.zip").write_bytes(page)  # kept by an earlier version
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as z:
            z.writestr("glove.6B.50d.txt", "the 0.1 0.2\n")
        with server({"/glove.6B.zip": (200, zipped.getvalue())}) as fixed:
            path = dl.download(f"{fixed}/glove.6B.zip", check=not_a_zip)
        assert zipfile.is_zipfile(path)
        assert "glove.6B.zip is not a zip archive but a web page" in capsys.readouterr().out


@pytest.mark.parametrize(("url", "name"), [
    ("https://example.org/d/glove.zip?X-Amz-Signature=abc&dl=1", "glove.zip"),
    ("https://example.org/d/glove.zip#part", "glove.zip"),
    ("https://example.org/d/a%20b.txt", "a b.txt"),
])  # fmt: skip
def test_the_cached_name_is_the_file_name_of_the_urls_path(url, name):
    """The name kept the query string, the fragment and %20."""
    assert dl.url_name(url) == name


def test_a_url_ending_in_a_folder_needs_a_file_name():
    for url in (
        "https://example.org/",
        "https://example.org/d/..%2F..%2Fevil.txt",
        "https://example.org/sub%2Fx.zip",
    ):  # decoded, %2F would leave the cache
        with pytest.raises(ValueError, match="names no plain file at the end of its path"):
            dl.url_name(url)


def test_ctrl_c_stops_the_download_command_with_one_line(cache, monkeypatch, capsys):
    """Ctrl-C was a 20-line traceback from socket.py (and SIGTERM left a .part file for a day)."""

    def interrupted(url, out, name):
        out.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "_fetch", interrupted)
    assert dl.main(["tinyshakespeare.txt"]) == 130
    assert "stopped: the files already fetched are in the cache" in capsys.readouterr().err
    assert [p.name for p in cache.iterdir() if p.name != "locks"] == []


def test_the_hub_offline_names_where_a_local_copy_goes(monkeypatch):
    """Notebooks 04, 06, 07 and 09 showed the datasets library's ConnectionError after its retries,
    naming neither $HELPERS_DATA_DIR's files nor the knob for a local copy."""
    import datasets

    from helpers.corpora import wikitext2_lines
    from helpers.finetune.data import _real_splits

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.delenv("HELPERS_DATA_DIR", raising=False)
    with pytest.raises(
        ConnectionError, match=r"\$HELPERS_DATA_DIR/corpus/wikitext-2/.*WIKITEXT_FILE"
    ):
        wikitext2_lines("validation")
    _real_splits.cache_clear()
    with pytest.raises(dl.HubUnreachable, match=r"nyu-mll/glue .*sst2/train.tsv"):
        _real_splits("sst2", None, 872)


def test_a_full_disk_while_the_hub_downloads_is_not_called_offline(monkeypatch):
    import errno

    import datasets

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets, "load_dataset", full)
    with pytest.raises(OSError) as raised:
        dl.hub_dataset("nyu-mll/glue", "sst2", offline="put a copy ...")
    assert not isinstance(raised.value, dl.HubUnreachable) and raised.value.errno == errno.ENOSPC


def test_glove_says_what_stanfords_server_sent_when_it_answered(monkeypatch):
    """The mirror failing, a login page from Stanford's address was said only as "(Stanford's server
    failed too)": what it sent was lost."""
    from helpers import glove

    def mirror(name):
        raise dl.DownloadError(f"could not download {name} (offline)")

    def portal(url, check=None):
        raise dl.DownloadError("glove.6B.zip from ... is not a zip archive but a web page ...",
                               answer="is not a zip archive but a web page (a login portal?)")  # fmt: skip

    monkeypatch.setattr(glove, "fetch", mirror)
    monkeypatch.setattr(glove, "download", portal)
    with pytest.raises(dl.DownloadError) as err:
        glove.download_glove(50)
    said = str(err.value)
    assert said.endswith("(Stanford's server failed too: is not a zip archive but a web page "
                         "(a login portal?))") and "glove.6B.50d.zip" in said  # fmt: skip
    with server({}) as base, pytest.raises(dl.DownloadError) as raised:
        dl.download(f"{base}/glove.6B.zip")
    assert raised.value.answer == "it answered HTTP 404 Not Found"


def test_a_server_that_trickles_bytes_is_stopped_with_a_message(cache, monkeypatch):
    """The 60 s timeout is per read: a server sending a byte every half second was waited on for ever
    (a helper session's probe stopped it after 130 s)."""
    import time

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.02)

        def log_message(self, *args):
            pass

    monkeypatch.setattr(dl, "SLOW_WINDOW", 0.3)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(dl.DownloadError, match=r"slowed to \d+ bytes a second"):
            dl.download(f"http://127.0.0.1:{httpd.server_address[1]}/slow.txt")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert list(cache.iterdir()) == []
