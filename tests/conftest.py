import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
NOTEBOOK_SECONDS: dict[str, float] = {}

# Before anything imports matplotlib: a font cache that a first run builds once, not per test.
os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "attention-lab-mpl"))
os.environ.setdefault("MPLBACKEND", "Agg")
# Tests never reach a hub: anything not on disk fails at once instead of waiting on the network.
for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(variable, "1")


@pytest.fixture(autouse=True)
def first_hints():
    """Each test starts with every exercise's hints at the first (they escalate per attempt)."""
    from helpers.feedback import forget_attempts

    forget_attempts()


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Without HELPERS_CACHE set, the session gets a cache of its own: tests that run a command
    without the ``cache`` fixture had left its run locks (about 360 a run, more each time) and built
    models in the user's ~/.cache/attention-lab, and read whatever that held."""
    if "HELPERS_CACHE" in os.environ:  # a cache chosen on purpose (e.g. one holding downloads)
        yield
        return
    patch = pytest.MonkeyPatch()
    patch.setenv("HELPERS_CACHE", str(tmp_path_factory.mktemp("helpers-cache")))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def figures_closed():
    """Figures a test leaves open are closed after it (matplotlib warns past 20 open ones)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout (real data sets); tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (it exists only beside the project's own machines)")
    return SHARED_DATA


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty HELPERS_CACHE for one test."""
    monkeypatch.setenv("HELPERS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def pytest_configure(config) -> None:
    from notebook_runner import Summary  # the Colab tier's times and any stall the client made up

    config.pluginmanager.register(Summary(), "notebook-tiers-summary")


def pytest_terminal_summary(terminalreporter) -> None:
    if not NOTEBOOK_SECONDS:
        return
    terminalreporter.section("notebook execution (smoke profile)")
    for name, seconds in sorted(NOTEBOOK_SECONDS.items()):
        terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
    terminalreporter.write_line(f"{sum(NOTEBOOK_SECONDS.values()):7.1f} s  total")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: on a busy machine two threads fight over the cores and take much longer."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(items) -> None:
    """The browser tier's tests last: its passes start with the session and run beside the other
    tests (on 2 cores they leave most of one idle), and its tests only collect their results."""
    items.sort(key=lambda item: item.path.name == "test_browser.py")  # stable: order kept


@pytest.fixture(scope="session", autouse=True)
def browser_tier(request, tmp_path_factory):
    """The browser tier's passes (tests/browser_support.py), started when the session's first
    test starts and stopped at its end; nothing starts unless a browser test is selected."""
    from browser_support import Tier

    tier = Tier.prepare(request.session.items, tmp_path_factory.mktemp)
    if not tier.passes:
        yield tier
        return
    request.config.pluginmanager.register(tier, "browser-tier")
    try:
        tier.start()
        yield tier
    finally:
        tier.stop()
