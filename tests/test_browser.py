"""The browser tier: every instructor notebook opened in JupyterLab 4 in headless Chromium, under
ipywidgets 8 (this venv) and ipywidgets 7.7.1 (Colab's, in .venv-widgets7/), run top to bottom in the
smoke profile, then checked as a student would see it: no error output, every widget rendered (no
"Error displaying widget", no widget printed as text), every slider moved with the keyboard changes
the plot or text it drives (or, behind a train/run button, the button's result appears). The two
widget stacks run side by side, each in a thread of its own (browser_support.Pass); each test waits
for its notebook's result.

Set up with `bash .ci/browser-env`; without it this tier skips locally and fails under CI=true.
Run it alone: `pytest tests/test_browser.py`. Screenshots: browser-screenshots/<env>/ (or
$BROWSER_SCREENSHOTS), one of each notebook after running and one after moving its sliders.
"""

import os
import signal
import time

import pytest
from browser_support import ENVS, ROOT, SCREENSHOTS, SETUP_HINT, Pass, Result, missing

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[0-9]_*.ipynb"))
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
RESULTS: dict[tuple[str, str], Result] = {}
VERSIONS: dict[str, str] = {}  # env -> what it ran, for the summary
PASSES: dict[str, Pass] = {}  # env -> its pass, for the summary's wall times
BEGAN: list[float] = []  # when the passes were started


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a CI run must never pass without the tier it claims to run."""
    message = f"browser tier: {reason}; {SETUP_HINT}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class Summary:
    """A terminal-summary section with one line per notebook per env (registered by a fixture:
    a test module cannot hold hooks itself)."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not RESULTS:
            return
        terminalreporter.section("browser tier (JupyterLab 4 + headless Chromium, smoke profile)")
        for env, versions in VERSIONS.items():
            terminalreporter.write_line(f"browser {env}: {versions}")
        totals: dict[str, float] = {}
        for (env, name), result in RESULTS.items():
            terminalreporter.write_line(result.line(env, name))
            totals[env] = totals.get(env, 0.0) + result.seconds
        for env, seconds in totals.items():
            terminalreporter.write_line(f"browser {env}: notebooks {seconds:.0f} s")
        if all(run.ended for run in PASSES.values()):
            wall = max(run.ended for run in PASSES.values()) - BEGAN[0]
            how = "2 passes side by side" if len(PASSES) == 2 else f"{len(PASSES)} pass"
            terminalreporter.write_line(f"browser: {how}, {wall:.0f} s wall")
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")


def wanted(items) -> dict[str, list]:
    """env name -> the notebooks this session's selected tests (after -k) ask of it, in order."""
    notebooks: dict[str, list] = {}
    for item in items:
        spec = getattr(item, "callspec", None)
        if getattr(item, "originalname", "") == "test_notebook_in_browser" and spec:
            notebooks.setdefault(spec.params["env"].name, []).append(spec.params["path"])
    return notebooks


@pytest.fixture(scope="session")
def passes(request, tmp_path_factory):
    """Start one pass per env with selected tests, side by side; stop them all at the end."""
    if not request.config.pluginmanager.has_plugin("browser-summary"):
        request.config.pluginmanager.register(Summary(), "browser-summary")
    reason = missing()
    if reason:
        unavailable(reason)
    notebooks, problems = wanted(request.session.items), {}
    for env in ENVS:
        problem = missing(env) if env.name in notebooks else ""
        if env.name not in notebooks or problem:
            problems[env.name] = problem
            continue
        server, kernel = env.versions(env.python), env.versions(env.kernel)
        VERSIONS[env.name] = (
            f"JupyterLab {server['jupyterlab']} + "
            f"jupyterlab_widgets {server['jupyterlab_widgets']}; "
            f"kernel ipywidgets {kernel['ipywidgets']}, ipykernel {kernel['ipykernel']}, "
            f"IPython {kernel['ipython']}"
        )
        folder = tmp_path_factory.mktemp(f"lab-{env.name}")
        PASSES[env.name] = Pass(env, notebooks[env.name], folder, SCREENSHOTS / env.name)

    def stop(signum, frame):  # a SIGTERM (a CI timeout) still runs every fixture's clean-up
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    BEGAN.append(time.perf_counter())
    try:
        for run in PASSES.values():
            run.start()
        yield PASSES, problems
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        try:
            for run in PASSES.values():
                run.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize("env", ENVS, ids=lambda env: env.name)
def test_notebook_in_browser(passes, env, path):
    runs, problems = passes
    if env.name in problems:
        unavailable(problems[env.name])
    run, name = runs[env.name], path.stem
    result = run.result(name)
    if result is None:
        pytest.fail(
            f"browser {env.name}: {name}: not checked: the pass ended early ({run.error})\n"
            f"JupyterLab's log ends:\n{run.log or '(nothing logged)'}",
            pytrace=False,
        )
    RESULTS[(env.name, name)] = result
    if result.errors:
        details = "\n".join(result.errors)
        if result.console:
            details += "\npage errors:\n" + "\n".join(sorted(set(result.console))[:5])
        screenshots = ", ".join(str(p) for p in result.screenshots)
        pytest.fail(
            f"{result.line(env.name, name)}\n{details}\nscreenshots: {screenshots}\n"
            f"JupyterLab's log ends:\n{result.log}",
            pytrace=False,
        )
