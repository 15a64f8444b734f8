"""The browser tier: every instructor notebook opened in JupyterLab 4 in headless Chromium, under
ipywidgets 8 (this venv) and ipywidgets 7.7.1 (Colab's, in .venv-widgets7/), run top to bottom in the
smoke profile, then checked as a student would see it: no error output, every widget rendered (no
"Error displaying widget", no widget printed as text), every slider moved with the keyboard changes
the plot or text it drives (or, behind a train/run button, the button's result appears). The two
widget stacks run side by side, each in a thread of its own (browser_support.Pass), started with the
session (tests/conftest.py) so that they run beside the other tests; these tests run last and each
waits for its notebook's result. A notebook whose kernel never connected (no cell was sent to it)
is checked once more in a new page, and its line says so (browser_support.checked).

Set up with `bash .ci/browser-env`; without it this tier skips locally and fails under CI=true.
Run it alone: `pytest tests/test_browser.py`. Screenshots: browser-screenshots/<env>/ (or
$BROWSER_SCREENSHOTS), one of each notebook after running and one after moving its sliders.
"""

import os

import pytest
from browser_support import ENVS, ROOT, SETUP_HINT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[0-9]_*.ipynb"))
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a CI run must never pass without the tier it claims to run."""
    message = f"browser tier: {reason}; {SETUP_HINT}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize("env", ENVS, ids=lambda env: env.name)
def test_notebook_in_browser(browser_tier, env, path):
    if env.name in browser_tier.problems:
        unavailable(browser_tier.problems[env.name])
    run, name = browser_tier.passes[env.name], path.stem
    result = browser_tier.result(env.name, name)
    if result is None:
        pytest.fail(
            f"browser {env.name}: {name}: not checked: the pass ended early ({run.error})\n"
            f"JupyterLab's log ends:\n{run.log or '(nothing logged)'}",
            pytrace=False,
        )
    browser_tier.results[(env.name, name)] = result
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
