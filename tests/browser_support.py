"""The browser tier's machinery (tests/test_browser.py): a JupyterLab server of its own, headless
Chromium through Playwright, and the checks run on each notebook in the page.

Everything started here is stopped by its own process ids: the server's process group, the kernels
it started, and the browser's processes (Playwright's driver and Chromium). Each widget stack runs as
a `Pass` in a thread of its own (its own Playwright, Chromium and JupyterLab), the two side by side.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
WIDGETS7_VENV = Path(os.environ.get("BROWSER_WIDGETS7_VENV", ROOT / ".venv-widgets7"))
SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", ROOT / "browser-screenshots"))
FIRST_TRY = "-first-try"  # ends the names of a retried notebook's first screenshots
SETUP_HINT = (
    "set it up with `bash .ci/browser-env` (chromium, playwright in the environment at .venv "
    "or $MAIN_VENV, .venv-widgets7/)"
)

# Seconds: a notebook's run in the smoke profile (04, the longest, takes ~40 s headless), its
# kernel's start and connection (a few seconds), one slider's or button's effect, and the server's
# start.
RUN_TIMEOUT = float(os.environ.get("BROWSER_RUN_TIMEOUT", 300))
CONNECT_TIMEOUT = float(os.environ.get("BROWSER_CONNECT_TIMEOUT", 120))
EFFECT_TIMEOUT = float(os.environ.get("BROWSER_EFFECT_TIMEOUT", 60))
START_TIMEOUT = 90

# A widget printed instead of rendered: its repr, e.g. `VBox(children=(FloatSlider(value=...`.
WIDGET_REPR = re.compile(
    r"^\s*(VBox|HBox|Box|GridBox|Tab|Accordion|Output|HTML|HTMLMath|Label|Button|Checkbox|"
    r"Dropdown|RadioButtons|ToggleButtons|IntSlider|FloatSlider|IntProgress|FloatProgress)\(",
    re.MULTILINE,
)
# traitlets' warning for a keyword argument that no trait takes (ipywidgets ignores it otherwise).
UNKNOWN_ARGUMENT_IS_AN_ERROR = "error:Passing unrecognized arguments to super:DeprecationWarning"
# A status line that reports an exception instead of a result, e.g. "OSError: ...".
ERROR_LINE = re.compile(r"^\w*(Error|Exception)\b.*$", re.MULTILINE)
WIDGET_ERRORS = ("Error displaying widget", "Failed to create view for", "Failed to load model")
# Held while this process starts a child, so that each Browser can tell its own children from the
# other pass's.
SPAWN = threading.Lock()


@dataclass
class Env:
    """One widget stack: the Python whose JupyterLab serves the page (its jupyterlab_widgets is the
    page's widget manager) and the Python of the kernel (its ipywidgets builds the widgets)."""

    name: str
    python: Path
    kernel: Path
    widgets: str  # the ipywidgets major version the kernel must have
    manager: str  # the jupyterlab_widgets versions the server must have: "<3" or ">=3"

    @staticmethod
    def versions(python: Path) -> dict[str, str]:
        script = (
            "import importlib.metadata as m, json\n"
            "def v(p):\n"
            "    try: return m.version(p)\n"
            "    except m.PackageNotFoundError: return ''\n"
            "print(json.dumps({p: v(p) for p in ('ipywidgets', 'jupyterlab_widgets', "
            "'jupyterlab', 'ipykernel', 'ipython')}))"
        )
        out = subprocess.run([python, "-c", script], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def problem(self) -> str | None:
        """Why this env cannot run (None when it can)."""
        for python in {self.python, self.kernel}:
            if not python.exists():
                return f"{self.name}: {python} does not exist"
        server, kernel = self.versions(self.python), self.versions(self.kernel)
        if not server.get("jupyterlab", "").startswith("4."):
            return f"{self.name}: {self.python} has no JupyterLab 4"
        manager = server.get("jupyterlab_widgets", "")
        if not manager or (int(manager.split(".")[0]) >= 3) != (self.manager == ">=3"):
            return f"{self.name}: {self.python} needs jupyterlab_widgets{self.manager}, has {manager!r}"
        if not kernel.get("ipywidgets", "").startswith(self.widgets + "."):
            return f"{self.name}: {self.kernel} has ipywidgets {kernel.get('ipywidgets')!r}"
        return None


WIDGETS7_PYTHON = WIDGETS7_VENV / "bin" / "python"
ENVS = [
    Env("ipywidgets-8", Path(sys.executable), Path(sys.executable), "8", ">=3"),
    Env(
        "ipywidgets-7",
        WIDGETS7_PYTHON,
        Path(os.environ.get("BROWSER_WIDGETS7_KERNEL", WIDGETS7_PYTHON)),
        "7",
        "<3",
    ),
]


def missing(env: Env | None = None) -> str | None:
    """What this tier lacks (None when it can run): chromium, playwright or an env's widget stack."""
    if not chromium():
        return "Debian's chromium is not installed (or $BROWSER_CHROMIUM is not a program)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"the Playwright package is not installed in {sys.executable}"
    return env.problem() if env is not None else None


def chromium() -> str | None:
    """Debian's chromium (or $BROWSER_CHROMIUM): the browser Playwright drives."""
    path = os.environ.get("BROWSER_CHROMIUM") or shutil.which("chromium")
    return path if path and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_processes(processes: list[psutil.Process], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, each of ``processes`` still alive (psutil
    checks that a pid still names the process it named when recorded)."""
    alive = []
    for process in processes:
        try:
            process.terminate()
            alive.append(process)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


class Lab:
    """JupyterLab 4 on 127.0.0.1, a free port and its own token, serving copies of the notebooks
    (autosave off, so the repository's notebooks are never written), with a kernel in the smoke
    profile, offline, and its own HELPERS_CACHE."""

    def __init__(self, env: Env, folder: Path, notebooks: list[Path]) -> None:
        self.env, self.folder = env, folder
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = folder / "notebooks"
        self.root.mkdir(parents=True)
        for path in notebooks:
            shutil.copy(path, self.root / path.name)
        self.log = folder / "jupyterlab.log"
        self.process: subprocess.Popen | None = None
        self.kernels: list[psutil.Process] = []

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # the kernel uses its inline backend
        env.pop("JUPYTER_PATH", None)
        kernels = self.folder / "jupyter"
        spec = kernels / "kernels" / "python3" / "kernel.json"
        argv = [str(self.env.kernel), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        # In the kernel only: a widget given an argument this ipywidgets does not know (e.g. one
        # that only ipywidgets 8 has) is an error, not a warning nobody sees.
        warnings = {
            "PYTHONWARNINGS": UNKNOWN_ARGUMENT_IS_AN_ERROR,
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # ipykernel's debugger: no frozen-module notes
            # One torch thread: beside Chromium and the server on 2 cores, a second thread mostly
            # waits for a core (smoke-sized ops ran up to 10x slower with two).
            "OMP_NUM_THREADS": os.environ.get("BROWSER_KERNEL_THREADS", "1"),
        }
        _write_json(
            spec,
            {"argv": argv, "display_name": "Python 3", "language": "python", "env": warnings},
        )
        settings = self.folder / "lab-settings"
        _write_json(
            settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
            # every cell in the page, not only those scrolled to; each cell's run time recorded
            {"windowingMode": "none", "recordTiming": True},
        )
        _write_json(
            settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings",
            {"autosave": False},
        )
        _write_json(
            settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
            {"fetchNews": "false", "checkForUpdates": False},
        )
        env.update(
            HELPERS_PROFILE="smoke",
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            HELPERS_CACHE=str(self.folder / "cache"),
            JUPYTER_PATH=str(kernels),
            JUPYTER_CONFIG_DIR=str(self.folder / "config"),
            JUPYTER_DATA_DIR=str(self.folder / "data"),
            JUPYTER_RUNTIME_DIR=str(self.folder / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(self.folder / "workspaces"),
            PATH=os.pathsep.join([str(self.env.python.parent), env.get("PATH", "")]),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> None:
        command = [
            str(self.env.python), "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
            "--ServerApp.terminals_enabled=False", "--allow-root",
        ]  # fmt: skip
        with open(self.log, "wb") as log, SPAWN:
            self.process = subprocess.Popen(
                command,
                env=self.environment(),
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, stopped as one
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited at start:\n{self.log_tail()}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer in {START_TIMEOUT} s:\n{self.log_tail()}")

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"

    def remember_kernels(self) -> None:
        """Record the processes the server started (kernels run in sessions of their own)."""
        if self.process is None:
            return
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        known = {p.pid for p in self.kernels}
        self.kernels += [p for p in children if p.pid not in known]

    def shutdown_kernels(self) -> None:
        self.remember_kernels()
        try:
            for kernel in self.api("kernels"):
                self.api(f"kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass

    def stop(self) -> None:
        """Stop the server's process group and every kernel it started, by their ids."""
        if self.process is None:
            return
        self.remember_kernels()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
            except ProcessLookupError:
                pass
        stop_processes(self.kernels, grace=5)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Browser:
    """Playwright driving Debian's chromium (``executable_path``: no browser download)."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self.processes: list[psutil.Process] = []
        with SPAWN:
            before = {p.pid for p in psutil.Process().children()}
            self._manager = sync_playwright()
            self.playwright = self._manager.start()
            try:
                self.browser = self.playwright.chromium.launch(
                    executable_path=chromium(),
                    headless=True,
                    args=[
                        "--no-sandbox",
                        "--disable-dev-shm-usage",
                        "--disable-gpu",
                        "--disable-breakpad",
                    ],
                )
            except Exception:
                self.close()
                raise
            # Playwright's driver (this process's new child) and the chromium it launched.
            for child in psutil.Process().children():
                if child.pid not in before:
                    self.processes += [child, *child.children(recursive=True)]

    def close(self) -> None:
        try:
            if getattr(self, "browser", None) is not None:
                self.browser.close()
        finally:
            try:
                self._manager.__exit__(None, None, None)
            finally:
                stop_processes(self.processes, grace=5)


# --- what runs in the page -------------------------------------------------------------------

# The current notebook panel, as the page's JupyterLab sees it.
PANEL = "window.jupyterapp.shell.currentWidget"

# Starts "Run All" (JupyterLab's own command) once the kernel is ready; RUN_STATE polls it.
RUN_ALL = f"""() => {{
    window.__runAll = {{done: false, error: null}};
    (async () => {{
        await window.jupyterapp.restored;
        const panel = {PANEL};
        await panel.context.ready;
        await panel.sessionContext.ready;
        return await window.jupyterapp.commands.execute('notebook:run-all-cells');
    }})().then(
        () => {{ window.__runAll.done = true; }},
        (error) => {{ window.__runAll = {{done: true, error: String(error)}}; }},
    );
}}"""
RUN_STATE = "() => window.__runAll"

# The notebook ``name`` is open and its panel has a session.
OPENED = f"""(name) => {{
    const panel = window.jupyterapp && {PANEL};
    return !!(panel && panel.context && panel.context.path.endsWith(name) && panel.sessionContext);
}}"""

# The kernel's status and its websocket's connection status, or 'none'.
KERNEL_CONNECTION = f"""() => {{
    const panel = {PANEL};
    const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return kernel ? [kernel.status, kernel.connectionStatus] : ['none', 'none'];
}}"""

KERNEL_STATUS = f"""() => {{
    const panel = {PANEL};
    const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return kernel ? kernel.status : 'none';
}}"""

# Each code cell: index, first line, execution count, error outputs, mime types of outputs.
CELLS = f"""() => {{
    const panel = {PANEL};
    const cells = panel.content.model.cells;
    const result = [];
    for (let i = 0; i < cells.length; i++) {{
        const cell = cells.get(i);
        if (cell.type !== 'code') continue;
        const outputs = cell.outputs.toJSON();
        result.push({{
            index: i,
            source: cell.sharedModel.getSource().split('\\n').find(l => l.trim()) || '',
            count: cell.executionCount,
            seconds: (() => {{
                const t = cell.getMetadata('execution') || {{}};
                const a = t['iopub.execute_input'], b = t['shell.execute_reply'];
                return a && b ? (Date.parse(b) - Date.parse(a)) / 1000 : null;
            }})(),
            errors: outputs.filter(o => o.output_type === 'error')
                .map(o => o.ename + ': ' + o.evalue.split('\\n')[0]),
            widgets: outputs.filter(o => o.data && o.data['application/vnd.jupyter.widget-view+json'])
                .length,
        }});
    }}
    return result;
}}"""

# Each top-level output of a code cell, beside its model: whether the model holds a widget, the
# mime type shown, its text and its widget views. Widget outputs get a data-browser-tier mark.
OUTPUTS = f"""() => {{
    const panel = {PANEL};
    const result = [];
    panel.content.widgets.forEach((cell, index) => {{
        if (cell.model.type !== 'code') return;
        const area = cell.outputArea;
        area.widgets.forEach((child, i) => {{
            const model = area.model.get(i);
            const data = model ? model.toJSON().data || {{}} : {{}};
            const widget = 'application/vnd.jupyter.widget-view+json' in data;
            const node = child.node.querySelector('.jp-OutputArea-output') || child.node;
            if (widget) node.setAttribute('data-browser-tier', 'widget');
            result.push({{
                index,
                widget,
                repr: String(data['text/plain'] || '').slice(0, 200),
                mime: node.getAttribute('data-mime-type') || '',
                text: node.innerText.slice(0, 2000),
                views: node.querySelectorAll('.jupyter-widgets').length,
                errors: node.querySelectorAll('.jupyter-widgets-error-widget').length,
            }});
        }});
    }});
    return result;
}}"""

# Text a widget cannot show whole: a radio option taller than its fixed-height line (it runs into
# the next option) or a description cut off with an ellipsis.
CLIPPED = """() => {
    const found = [];
    document.querySelectorAll('[data-browser-tier=widget]').forEach(output => {
        const cell = Array.from(output.closest('.jp-Notebook').querySelectorAll(':scope .jp-Cell'))
            .indexOf(output.closest('.jp-Cell'));
        output.querySelectorAll('.widget-radio-box label').forEach(label => {
            if (label.scrollHeight > label.clientHeight + 1)
                found.push({cell, what: 'a radio option overflows its line into the next one',
                            text: label.innerText});
        });
        output.querySelectorAll('.widget-label').forEach(label => {
            if (label.scrollWidth > label.clientWidth + 1)
                found.push({cell, what: 'a description is cut off', text: label.innerText});
        });
    });
    return found;
}"""

# What a widget shows, apart from its controls: images and the text of HTML views and outputs.
SHOWN = """(output) => {
    const hash = (text) => {
        let h = 2166136261;
        for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
        return text.length + ':' + (h >>> 0).toString(16);
    };
    const parts = [];
    output.querySelectorAll('img').forEach(img => parts.push('img ' + hash(img.src)));
    output.querySelectorAll('.widget-html-content, .jp-OutputArea-output pre')
        .forEach(n => parts.push(n.innerText));
    return parts.join('\\n');
}"""


# Collapse the side bars, scroll the notebook to its top and say how tall it is.
COLLAPSE = """() => {
    window.jupyterapp.shell.collapseLeft();
    window.jupyterapp.shell.collapseRight();
}"""
NOTEBOOK_HEIGHT = f"""() => {{
    const outer = {PANEL}.content.node.querySelector('.jp-WindowedPanel-outer')
        || {PANEL}.content.node;
    outer.scrollTop = 0;
    return outer.scrollHeight;
}}"""
SCROLL_TOP = f"""() => {{
    const outer = {PANEL}.content.node.querySelector('.jp-WindowedPanel-outer')
        || {PANEL}.content.node;
    outer.scrollTop = 0;
}}"""


@dataclass
class Result:
    """What the tier saw in one notebook."""

    cells: int = 0
    connected: bool = True  # False: the kernel never connected, no cell was sent to it
    retried: str = ""  # why the notebook was checked a second time (the first try's error)
    retried_log: str = ""  # the end of JupyterLab's log after that first try
    widgets: int = 0
    sliders: int = 0
    changed: int = 0
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # the page's uncaught JavaScript errors
    log: str = ""  # the end of JupyterLab's log when the notebook was done
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds of each step
    screenshots: list[Path] = field(default_factory=list)

    def phase(self, name: str, start: float) -> float:
        """Add the seconds since ``start`` to phase ``name``; returns now, the next start."""
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - start
        return now

    def line(self, env: str, name: str) -> str:
        return (
            f"browser {env}: {name}: {self.cells} cells run, {self.widgets} widgets rendered, "
            f"{self.sliders} sliders moved, {self.changed} outputs changed, "
            f"{len(self.errors)} errors ({self.seconds:.0f} s: "
            + ", ".join(f"{name} {seconds:.0f}" for name, seconds in self.phases.items())
            + ")"
            + (f"; checked twice, the first try: {self.retried}" if self.retried else "")
        )


class NotConnected(RuntimeError):
    """The notebook's kernel never reached idle over a connected websocket."""


def wait_connected(page, timeout: float = CONNECT_TIMEOUT) -> None:
    """Until the kernel is idle over a connected websocket, before any cell is sent to it."""
    if not wait_for(
        lambda: page.evaluate(KERNEL_CONNECTION) == ["idle", "connected"], timeout, page
    ):
        status, connection = page.evaluate(KERNEL_CONNECTION)
        raise NotConnected(
            f"the kernel had not connected after {timeout:.0f} s "
            f"(status {status}, websocket {connection})"
        )


def checked(check: Callable[[], Result]) -> Result:
    """``check()``'s result, checked a second time when its kernel never connected: jupyter_server
    can answer the kernel's websocket with HTTP 500 (jupyter_server#1265, `'NoneType'
    object has no attribute 'kernel_ws_protocol'`) and the page then waits for ever. The first try's
    error stays in the result's line, so a retry is never silent; a second failure fails the test.
    The first try's screenshots are kept beside the second's, as NAME-...-first-try.png."""
    result = check()
    if result.connected:
        return result
    kept = [shot.rename(shot.with_name(f"{shot.stem}{FIRST_TRY}.png"))
            for shot in result.screenshots if shot.exists()]  # fmt: skip
    again = check(again=True)
    again.retried = result.errors[0] if result.errors else "the kernel never connected"
    again.retried_log = result.log  # the server's side of it (jupyter_server's traceback)
    again.screenshots = kept + again.screenshots
    return again


def run_all(page, timeout: float = RUN_TIMEOUT) -> None:
    """Run every cell with JupyterLab's "Run All" and wait until the last one has finished."""
    page.evaluate(RUN_ALL)
    if not wait_for(lambda: page.evaluate(RUN_STATE)["done"], timeout, page):
        raise TimeoutError(f"Run All had not finished after {timeout:.0f} s")
    error = page.evaluate(RUN_STATE)["error"]
    if error:
        raise RuntimeError(f"Run All failed: {error}")


def wait_idle(page, seconds: float = 1.5, timeout: float = RUN_TIMEOUT) -> None:
    """Until the kernel has been idle for ``seconds`` in a row."""
    deadline, idle_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if page.evaluate(KERNEL_STATUS) == "idle":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= seconds:
                return
        else:
            idle_since = None
        page.wait_for_timeout(250)
    raise TimeoutError(f"the kernel was still busy after {timeout:.0f} s")


def wait_for(predicate, timeout: float, page) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        page.wait_for_timeout(200)
    return predicate()


def screenshot(page, path: Path) -> Path:
    """The whole notebook in one picture: the viewport made as tall as the notebook."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.evaluate(COLLAPSE)
    page.wait_for_timeout(200)
    height = min(int(page.evaluate(NOTEBOOK_HEIGHT)) + 200, 16000)
    page.set_viewport_size({"width": size["width"], "height": max(height, size["height"])})
    page.wait_for_timeout(500)
    page.evaluate(SCROLL_TOP)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


def check_rendering(page, result: Result) -> None:
    """Every widget output shows a widget view: not an error view, not its repr as text."""
    for output in page.evaluate(OUTPUTS):
        where = f"cell {output['index']}"
        text = output["text"]
        if any(message in text for message in WIDGET_ERRORS) or output["errors"]:
            result.errors.append(f"{where}: widget not rendered: {text.strip()[:300]!r}")
        elif output["widget"]:
            if output["views"]:
                result.widgets += 1
            elif WIDGET_REPR.search(text):
                result.errors.append(f"{where}: widget printed as text: {text.strip()[:200]!r}")
            else:
                result.errors.append(
                    f"{where}: widget {output['repr']!r} not rendered, shown: {text[:200]!r}"
                )
        elif WIDGET_REPR.search(text):
            result.errors.append(f"{where}: widget printed as text: {text.strip()[:200]!r}")
    for clipped in page.evaluate(CLIPPED):
        result.errors.append(f"cell {clipped['cell']}: {clipped['what']}: {clipped['text']!r}")


def slider_value(slider) -> str:
    readout = slider.locator(".widget-readout")
    if readout.count():
        value = readout.first.evaluate("n => n.value !== undefined ? n.value : n.innerText")
        return str(value or readout.first.inner_text())
    handle = slider.locator(".noUi-handle, .ui-slider-handle").first
    return str(handle.get_attribute("aria-valuenow") or handle.get_attribute("style"))


def move_slider(page, slider) -> bool:
    """Focus the slider's handle and press an arrow key (the other one if it is at its end)."""
    handle = slider.locator(".noUi-handle, .ui-slider-handle").first
    before = slider_value(slider)
    for key in ("ArrowRight", "ArrowLeft"):
        handle.focus()
        page.keyboard.press(key)
        if wait_for(lambda s=slider, b=before: slider_value(s) != b, 3, page):
            return True
    return False


def exercise_widgets(page, result: Result) -> None:
    """Move every slider in every widget output; a live view must change with each move, a view
    behind a button (train, run) must change once the button is clicked."""
    outputs = page.locator("[data-browser-tier=widget]")  # marked by check_rendering
    for i in range(outputs.count()):
        output = outputs.nth(i)
        sliders = output.locator(".widget-slider")
        if not sliders.count():
            continue
        cell = output.evaluate(
            "n => Array.from(n.closest('.jp-Notebook').querySelectorAll(':scope .jp-Cell'))"
            ".indexOf(n.closest('.jp-Cell'))"
        )
        where = f"cell {cell}"
        buttons = output.locator("button.jupyter-button:not(.widget-toggle-button)")
        live = buttons.count() == 0
        before = output.evaluate(SHOWN)
        for j in range(sliders.count()):
            slider = sliders.nth(j)
            label = slider.locator(".widget-label").first.inner_text().strip() or f"slider {j}"
            if not move_slider(page, slider):
                result.errors.append(f"{where}: slider {label!r} did not move with the keyboard")
                continue
            result.sliders += 1
            if live:
                changed = wait_for(
                    lambda o=output, b=before: o.evaluate(SHOWN) != b, EFFECT_TIMEOUT, page
                )
                if changed:
                    result.changed += 1
                    wait_idle(page, 0.5)
                    before = output.evaluate(SHOWN)
                else:
                    result.errors.append(f"{where}: moving {label!r} did not change its view")
        if not live:
            button = buttons.last
            name = button.inner_text().strip()
            button.click()

            def done(o=output, b=before) -> bool:
                shown = o.evaluate(SHOWN)
                return shown != b and "…" not in shown and page.evaluate(KERNEL_STATUS) == "idle"

            if not wait_for(done, EFFECT_TIMEOUT * 3, page):
                result.errors.append(f"{where}: clicking {name!r} did not change its view")
                continue
            wait_idle(page, 1.0)
            shown = output.evaluate(SHOWN)
            failure = ERROR_LINE.search(shown)
            if failure:
                result.errors.append(f"{where}: clicking {name!r} showed {failure.group(0)!r}")
            elif "img " not in shown:
                result.errors.append(f"{where}: clicking {name!r} drew no plot")
            else:
                result.changed += 1


def check_notebook(browser, lab: Lab, path: Path, shots: Path, again: bool = False) -> Result:
    """Open one notebook in a new page, run it all, check what it shows, move its sliders; a
    screenshot after running and one after the sliders (one on failure). ``again``: a second try,
    which leaves the first try's screenshots (see `checked`)."""
    name, result = path.stem, Result()
    for old in shots.glob(f"{name}*.png"):
        if not (again and old.stem.endswith(FIRST_TRY)):
            old.unlink()  # never a stale picture beside this run's
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(120_000)
    page.on("pageerror", lambda error: result.console.append(str(error)))
    start = step = time.perf_counter()
    try:
        page.goto(lab.notebook_url(path.name), wait_until="domcontentloaded")
        page.wait_for_function(OPENED, arg=path.name)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
        wait_connected(page)
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
        result.connected = not isinstance(error, NotConnected)
        result.errors.append(f"{type(error).__name__}: {error}")
        try:
            result.screenshots.append(screenshot(page, shots / f"{name}-failed.png"))
        except Exception:
            pass
    finally:
        result.seconds = time.perf_counter() - start
        page.close()
        lab.shutdown_kernels()
        result.log = lab.log_tail(10)
    if not result.cells and not result.errors:
        result.errors.append("no cell ran")
    return result


class Pass(threading.Thread):
    """One env's notebooks, one after another, in a thread with its own Playwright, Chromium and
    JupyterLab. The two envs' passes run side by side: while one kernel computes, the other pass's
    page is being driven."""

    def __init__(self, env: Env, notebooks: list[Path], folder: Path, shots: Path) -> None:
        super().__init__(name=f"browser-{env.name}", daemon=True)
        self.env, self.notebooks, self.shots = env, notebooks, shots
        self.lab = Lab(env, folder, notebooks)
        self.browser: Browser | None = None
        self.results: dict[str, Result] = {}
        self.finished = {path.stem: threading.Event() for path in notebooks}
        self.error = ""  # why the pass ended before its last notebook (first line)
        self.log = ""  # the end of JupyterLab's log when the pass ended early
        self.stopping = threading.Event()
        self.ended = 0.0  # time.perf_counter() at the end

    def run(self) -> None:
        try:
            self.browser = Browser()
            for path in self.notebooks:
                if self.stopping.is_set():
                    raise InterruptedError("stopped")
                if self.lab.process is None:  # the server starts with the first notebook
                    self.lab.start()
                check = partial(check_notebook, self.browser.browser, self.lab, path, self.shots)
                self.results[path.stem] = checked(check)
                self.finished[path.stem].set()
        except BaseException as error:
            self.error = f"{type(error).__name__}: {error}".splitlines()[0]
            self.log = self.lab.log_tail(10)
        finally:
            for step in (self.lab.stop, self.browser.close if self.browser else None):
                try:
                    if step is not None:
                        step()
                except Exception:  # stop() may have killed its processes already
                    pass
            self.ended = time.perf_counter()
            for event in self.finished.values():
                event.set()

    def result(self, name: str) -> Result | None:
        """The notebook's result once checked; None when the pass ended without it."""
        self.finished[name].wait()
        return self.results.get(name)

    def stop(self) -> None:
        """End the pass from the main thread: if it still runs (a SIGTERM, Ctrl-C, `pytest -x`),
        stop its server, kernels and browser by their ids, so its own calls fail and it ends."""
        if self.ident is None:  # never started
            return
        if self.is_alive():
            self.stopping.set()
            self.lab.remember_kernels()
            processes = list(self.lab.kernels)
            if self.browser is not None:
                processes += self.browser.processes
            server = self.lab.process  # read once: the pass may be clearing it
            if server is not None:
                try:
                    os.killpg(server.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            stop_processes(processes, grace=5)
        self.join(timeout=30)
        if self.is_alive():
            message = f"browser {self.env.name}: its pass still runs 30 s after being stopped"
            warnings.warn(message, stacklevel=2)


def wanted(items) -> dict[str, list[Path]]:
    """env name -> the notebooks this session's selected browser tests (after -k) ask of it."""
    notebooks: dict[str, list[Path]] = {}
    for item in items:
        spec = getattr(item, "callspec", None)
        if getattr(item, "originalname", "") == "test_notebook_in_browser" and spec:
            notebooks.setdefault(spec.params["env"].name, []).append(spec.params["path"])
    return notebooks


@dataclass
class Tier:
    """This session's browser tier: a Pass per env with selected tests, started with the session
    (tests/conftest.py) so the passes run beside the other tests; the tier's own tests run last
    and collect their results. Registered as a plugin, it writes the tier's summary."""

    passes: dict[str, Pass] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # env -> why it cannot run
    versions: dict[str, str] = field(default_factory=dict)  # env -> what it runs
    results: dict[tuple[str, str], Result] = field(default_factory=dict)  # (env, notebook)
    began: float = 0.0
    waiting: bool = False  # a browser test is waiting for its result
    previous: object = None  # the SIGTERM handler before start()
    armed: bool = False  # between start() and stop(): SIGTERM is this tier's

    @classmethod
    def prepare(cls, items, folder) -> "Tier":
        """The passes the selected tests need (none without a browser test); ``folder(name)``
        makes a fresh folder for each pass's JupyterLab."""
        tier, notebooks = cls(), wanted(items)
        reason = missing() if notebooks else None  # chromium and playwright, checked once
        for env in ENVS:
            if env.name not in notebooks:
                continue
            problem = reason or env.problem()
            if problem:
                tier.problems[env.name] = problem
                continue
            server, kernel = env.versions(env.python), env.versions(env.kernel)
            tier.versions[env.name] = (
                f"JupyterLab {server['jupyterlab']} + "
                f"jupyterlab_widgets {server['jupyterlab_widgets']}; "
                f"kernel ipywidgets {kernel['ipywidgets']}, ipykernel {kernel['ipykernel']}, "
                f"IPython {kernel['ipython']}"
            )
            tier.passes[env.name] = Pass(
                env, notebooks[env.name], folder(f"lab-{env.name}"), SCREENSHOTS / env.name
            )
        return tier

    def start(self) -> None:
        """Start the passes, with a SIGTERM handler that stops them (put back around each test:
        nbclient's event loop leaves SIGTERM at its default after each notebook it runs)."""
        self.previous = signal.signal(signal.SIGTERM, self.on_sigterm)
        self.armed = True
        self.began = time.perf_counter()
        for run in self.passes.values():
            run.start()

    def stop(self) -> None:
        if not self.armed:
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        try:
            for run in self.passes.values():
                run.stop()
        finally:
            self.armed = False
            signal.signal(signal.SIGTERM, self.previous or signal.SIG_DFL)

    def on_sigterm(self, signum, frame) -> None:
        """A SIGTERM (a CI timeout): while a browser test waits, a KeyboardInterrupt ends the
        session with every fixture's clean-up; during another test, stop the passes now and end
        as SIGTERM does. (While nbclient runs a notebook, its own handler takes the signal: it
        stops that kernel, the test fails and the session goes on, the passes too.)"""
        if self.waiting:
            raise KeyboardInterrupt(f"signal {signum}")
        self.stop()
        os.kill(os.getpid(), signum)

    def result(self, env: str, name: str) -> Result | None:
        """Wait for one notebook's result (None when its pass ended without it)."""
        self.waiting = True
        try:
            return self.passes[env].result(name)
        finally:
            self.waiting = False

    def guard(self) -> None:
        """Put the SIGTERM handler back if a notebook client reset it."""
        if self.armed and signal.getsignal(signal.SIGTERM) != self.on_sigterm:
            signal.signal(signal.SIGTERM, self.on_sigterm)

    def pytest_runtest_setup(self, item) -> None:
        self.guard()

    def pytest_runtest_teardown(self, item) -> None:
        self.guard()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.results:
            return
        terminalreporter.section("browser tier (JupyterLab 4 + headless Chromium, smoke profile)")
        for env, versions in self.versions.items():
            terminalreporter.write_line(f"browser {env}: {versions}")
        totals: dict[str, float] = {}
        for (env, name), result in self.results.items():
            terminalreporter.write_line(result.line(env, name))
            if result.retried:  # the first try's evidence, kept even when the second try passed
                terminalreporter.write_line(
                    f"  JupyterLab's log after the first try:\n{result.retried_log}"
                )
            totals[env] = totals.get(env, 0.0) + result.seconds
        for env, seconds in totals.items():
            terminalreporter.write_line(f"browser {env}: notebooks {seconds:.0f} s")
        if all(run.ended for run in self.passes.values()):
            wall = max(run.ended for run in self.passes.values()) - self.began
            how = "2 passes side by side" if len(self.passes) == 2 else f"{len(self.passes)} pass"
            terminalreporter.write_line(f"browser: {how}, {wall:.0f} s wall from the first test")
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")
