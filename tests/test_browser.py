"""The browser tier: every instructor notebook opened in JupyterLab 4 in headless Chromium, under
ipywidgets 8 (this venv) and ipywidgets 7.7.1 (Colab's, in .venv-widgets7/), run top to bottom in the
smoke profile, then checked as a student would see it: no error output, every widget rendered (no
"Error displaying widget", no widget printed as text), every slider moved with the keyboard changes
the plot or text it drives (or, behind a train/run button, the button's result appears).

Set up with `bash .ci/browser-env`; without it this tier skips locally and fails under CI=true.
Run it alone: `pytest tests/test_browser.py`. Screenshots: browser-screenshots/<env>/ (or
$BROWSER_SCREENSHOTS), one of each notebook after running and one after moving its sliders.
"""

import os
import signal
import time

import pytest
from browser_support import (
    CELLS,
    ENVS,
    OPENED,
    ROOT,
    SCREENSHOTS,
    SETUP_HINT,
    Browser,
    Lab,
    Result,
    check_rendering,
    exercise_widgets,
    missing,
    run_all,
    screenshot,
    wait_idle,
)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[0-9]_*.ipynb"))
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
RESULTS: dict[tuple[str, str], Result] = {}
VERSIONS: dict[str, str] = {}  # env -> what it ran, for the summary


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
            terminalreporter.write_line(f"browser {env}: total {seconds:.0f} s")
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")


@pytest.fixture(scope="session")
def browser(request):
    if not request.config.pluginmanager.has_plugin("browser-summary"):
        request.config.pluginmanager.register(Summary(), "browser-summary")
    reason = missing()
    if reason:
        unavailable(reason)

    def stop(signum, frame):  # a SIGTERM (a CI timeout) still runs every fixture's clean-up
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    browser = Browser()
    try:
        yield browser.browser
    finally:
        browser.close()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module", params=ENVS, ids=lambda env: env.name)
def lab(request, tmp_path_factory, browser):
    env = request.param
    reason = missing(env)
    if reason:
        unavailable(reason)
    server, kernel = env.versions(env.python), env.versions(env.kernel)
    VERSIONS[env.name] = (
        f"JupyterLab {server['jupyterlab']} + jupyterlab_widgets {server['jupyterlab_widgets']}; "
        f"kernel ipywidgets {kernel['ipywidgets']}, ipykernel {kernel['ipykernel']}, "
        f"IPython {kernel['ipython']}"
    )
    lab = Lab(env, tmp_path_factory.mktemp(f"lab-{env.name}"), NOTEBOOKS)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_in_browser(lab, browser, path):
    name, env = path.stem, lab.env.name
    result = RESULTS[(env, name)] = Result()
    shots = SCREENSHOTS / env
    for old in shots.glob(f"{name}*.png"):
        old.unlink()  # never a stale picture beside this run's
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(120_000)
    console: list[str] = []
    page.on("pageerror", lambda error: console.append(str(error)))
    start = step = time.perf_counter()
    try:
        page.goto(lab.notebook_url(path.name), wait_until="domcontentloaded")
        page.wait_for_function(OPENED, arg=path.name)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
        step = result.phase("open", step)
        run_all(page)
        wait_idle(page)
        step = result.phase("run", step)
        lab.remember_kernels()
        not_run = []
        for cell in page.evaluate(CELLS):
            if cell["count"] is not None:
                result.cells += 1
            elif cell["source"]:  # an empty cell has nothing to run
                not_run.append(str(cell["index"]))
            for error in cell["errors"]:
                result.errors.append(f"cell {cell['index']} ({cell['source']!r}): {error}")
        if not_run:
            result.errors.append(f"cells that did not run: {', '.join(not_run)}")
        check_rendering(page, result)
        step = result.phase("check", step)
        result.screenshots.append(screenshot(page, shots / f"{name}.png"))
        step = result.phase("screenshots", step)
        exercise_widgets(page, result)
        step = result.phase("widgets", step)
        result.screenshots.append(screenshot(page, shots / f"{name}-moved.png"))
        step = result.phase("screenshots", step)
    except Exception as error:
        result.errors.append(f"{type(error).__name__}: {error}")
        try:
            result.screenshots.append(screenshot(page, shots / f"{name}-failed.png"))
        except Exception:
            pass
    finally:
        result.seconds = time.perf_counter() - start
        page.close()
        lab.shutdown_kernels()
    if not result.cells and not result.errors:
        result.errors.append("no cell ran")
    if result.errors:
        details = "\n".join(result.errors)
        if console:
            details += "\npage errors:\n" + "\n".join(sorted(set(console))[:5])
        screenshots = ", ".join(str(p) for p in result.screenshots)
        pytest.fail(
            f"{result.line(env, name)}\n{details}\nscreenshots: {screenshots}\n"
            f"JupyterLab's log ends:\n{lab.log_tail(10)}",
            pytrace=False,
        )
