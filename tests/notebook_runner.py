"""Execute a notebook headless: the one way every notebook tier does it (tests/test_notebooks.py runs
the notebooks with this interpreter's kernel, tests/test_colab_pins.py with the Colab-pinned env's).

No stalls (issue 10, item 5). What was seen: a cell of notebook 01 that takes milliseconds "took" the
whole cell limit (300 s, then 120 s) and the notebook passed. Passing at the limit means the
execute_reply had been in the client's shell socket all along: nbclient (0.10, 0.11) waits for it with
ONE poll of the shell socket that lasts the whole limit (``_async_poll_for_reply``:
``get_msg(timeout=120)``), and when that poll's timer fires, pyzmq's asyncio poller checks the socket
with a plain ``zmq_poll`` and finds the reply. So the wake-up for the reply was lost in the client:
pyzmq wakes an asyncio poll through the socket's edge-triggered ZMQ_FD, registered with the event loop,
and an edge that is consumed without the poll being resolved is not signalled again. nbclient waits
for a cell's outputs the same way, with one poll of the IOPub socket that has no timer at all
(``get_msg(timeout=None)``). Not reproduced here (600 one-line cells with this interpreter's kernel at
load ~6, and both notebook tiers: none), so the exact trigger inside pyzmq is not pinned down; the
fix does not depend on it: both waits are cut into polls of POLL_SECONDS, so a lost wake-up costs at
most that long, and each message a poll found only when its timer ran out (STALE_SECONDS or more after
the kernel sent it) is logged: a pytest warning and a line in the summary, never hidden (STALLS).
The kernel side has a known relative (ipykernel 7's raw shell replies could strand a request unread,
ipython/ipykernel#1529, fixed in the 7.4 of the main env; 6.17 has no shell channel thread): a request
the kernel has not started NUDGE_SECONDS after it was sent (no ``busy`` for it on IOPub) gets a
``kernel_info_request`` on the shell socket, which wakes it; that is logged too.
"""

import asyncio
import json
import os
import time
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellExecutionError, CellTimeoutError
from nbclient.util import ensure_async

POLL_SECONDS = 1.0  # one wait on the shell or IOPub socket; a lost wake-up costs at most this
STALE_SECONDS = 0.25  # a message found by a re-poll this long after it was sent: a lost wake-up
ON_TIME_SECONDS = (
    0.1  # ... if the re-poll's timer ran this close to on time (the loop was not busy)
)
LATE_SECONDS = 2.0  # a reply this much later than its `idle` (or the reverse) is logged as a stall
NUDGE_SECONDS = 10.0  # no `busy` for a request this long after sending it: nudge the kernel
CELL_SECONDS = 120  # the limit of one cell (smoke cells take seconds)

# Notebook tiers' records, printed by Summary at the end of the run.
COLAB_SECONDS: dict[str, float] = {}  # notebook -> seconds under the Colab pins
STALLS: list[str] = []  # one line per wait the client made up for (never hidden)

SMOKE_ENVIRONMENT = {
    "HELPERS_PROFILE": "smoke",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TQDM_DISABLE": "1",  # libraries' terminal bars; tqdm's notebook bars (the helpers') ignore it
}


def write_kernelspec(folder: Path, name: str, python: str) -> Path:
    """A kernelspec `name` under `folder`/kernels that runs ipykernel with `python`."""
    spec = folder / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": name, "language": "python"})
    )
    return spec


@contextmanager
def on_jupyter_path(folder: Path):
    """Put `folder` first on JUPYTER_PATH (where kernelspecs are looked up), then restore it."""
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), old]))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


# The cache set before pytest started (not conftest's session cache): notebooks share only that one.
USER_CACHE = os.environ.get("HELPERS_CACHE")


def smoke_environment(monkeypatch, cache: Path) -> None:
    """The environment a kernel inherits in the tests: smoke profile, offline, its own cache."""
    for name, value in SMOKE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HELPERS_CACHE", USER_CACHE or str(cache))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel uses its inline backend


def stall(line: str) -> None:
    STALLS.append(line)
    warnings.warn(f"notebook stall: {line}", stacklevel=2)


class StallProofClient(NotebookClient):
    """nbclient's NotebookClient with its two waits cut into short polls (see the module doc)."""

    label = ""  # the notebook, for the stall log

    async def _get(self, channel: str, wait: float, cell_index: int) -> dict:
        """One poll of `channel` of at most `wait` seconds (Empty if nothing came).

        A poll woken by its message returns before `wait` ends. One that returns a message when its
        timer ran out, on time (the event loop was not busy, so it would have seen a wake-up), with a
        message the kernel had sent STALE_SECONDS or more before, found it with the timer's own
        zmq_poll: its wake-up was lost. That is logged; the message is used as usual.
        """
        assert self.kc is not None
        start = time.monotonic()
        msg = await ensure_async(getattr(self.kc, f"{channel}_channel").get_msg(timeout=wait))
        late = time.monotonic() - start - wait  # how late the timer ran, if it was the timer
        if wait >= 0.1 and -0.001 <= late < ON_TIME_SECONDS:
            sent = msg["header"].get("date")
            known = isinstance(sent, datetime) and sent.tzinfo is not None
            age = (datetime.now(UTC) - sent).total_seconds() if known else wait
            if age >= STALE_SECONDS:
                stall(
                    f"{self.label} cell {cell_index}: {channel} {msg['msg_type']} found by the "
                    f"{wait:.3g} s re-poll {age:.2f} s after the kernel sent it, not by its wake-up"
                )
        return msg

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index) -> None:
        while True:
            try:
                msg = await self._get("iopub", POLL_SECONDS, cell_index)
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            if msg["msg_type"] == "status":
                state = msg["content"]["execution_state"]
                if state == "busy":
                    self._busy_at = time.monotonic()
                elif state == "idle":
                    self._idle_at = time.monotonic()
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:  # the kernel's `idle` for this request
                return

    async def _async_poll_for_reply(
        self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive
    ):
        assert self.kc is not None
        cell_index = self._current_index
        where = f"{self.label} cell {cell_index}"
        sent = time.monotonic()
        deadline = None if timeout is None else sent + timeout
        nudged = False
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                task_poll_kernel_alive.cancel()
                await self._async_check_alive()
                reply = await self._async_handle_timeout(timeout, cell)  # raises unless told
                if reply is not None:
                    reply["parent_header"] = {"msg_id": msg_id}
                    return reply
                raise CellTimeoutError.error_from_timeout_and_cell(
                    "Cell execution timed out", timeout, cell
                )
            wait = POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - now)
            try:
                msg = await self._get("shell", wait, cell_index)
            except Empty:
                waited = time.monotonic() - sent
                if self._busy_at is None and not nudged and waited > NUDGE_SECONDS:
                    nudged = True
                    self.kc.kernel_info()  # new traffic on the kernel's shell socket wakes it
                    stall(
                        f"{where}: the kernel had not started the request {waited:.0f} s after "
                        f"it was sent: nudged it with a kernel_info_request"
                    )
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue  # e.g. the reply to a nudge, or to wait_for_ready's extra kernel_info
            found = time.monotonic()
            if self._idle_at is not None and found - self._idle_at > LATE_SECONDS:
                stall(f"{where}: execute_reply came {found - self._idle_at:.1f} s after `idle`")
            if self.record_timing:
                cell["metadata"]["execution"]["shell.execute_reply"] = msg["header"]["date"]
            try:
                await asyncio.wait_for(asyncio.shield(task_poll_output_msg), self.iopub_timeout)
            except (TimeoutError, Empty):
                task_poll_output_msg.cancel()
                task_poll_kernel_alive.cancel()
                if self.raise_on_iopub_timeout:
                    raise CellTimeoutError.error_from_timeout_and_cell(
                        "Timeout waiting for IOPub output", self.iopub_timeout, cell
                    ) from None
                stall(f"{where}: no `idle` {self.iopub_timeout} s after execute_reply")
                return msg
            if self._idle_at is not None and self._idle_at - found > LATE_SECONDS:
                stall(f"{where}: `idle` came {self._idle_at - found:.1f} s after execute_reply")
            task_poll_kernel_alive.cancel()
            return msg

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self._current_index, self._busy_at, self._idle_at = cell_index, None, None
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)


def run_notebook(
    path: Path,
    kernel_name: str,
    label: str,
    timeout: int = CELL_SECONDS,
    client_class=None,
    then: str | None = None,
):
    """Execute the notebook at `path` with kernel `kernel_name` (and the code `then` in a last cell
    of its own); return it and the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    if then is not None:
        nb.cells.append(nbformat.v4.new_code_cell(then))
    client = (client_class or StallProofClient)(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.label = label
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:  # one line naming the cell, not a page of ANSI traceback
        cell = getattr(client, "_current_index", "?")
        raise NotebookFailed(f"{label}: cell {cell}: {error.ename}: {error.evalue}") from None
    return nb, time.perf_counter() - start


# Run last: the inline backend shows and closes every figure a cell makes, so one still open was never
# drawn (a figure made in plt.rc_context as a kernel's first left every later one undrawn: 7 of 20).
UNSHOWN = "import matplotlib.pyplot as plt\nprint('figures never drawn:', plt.get_fignums())"


def assert_every_figure_drawn(text: str) -> None:
    """``text``, a notebook's output run with ``then=UNSHOWN``, names no figure left undrawn."""
    assert "figures never drawn: []" in text, text[text.find("figures never drawn") :]


class NotebookFailed(AssertionError):
    """A cell raised: which notebook, which cell, and the error's name and message."""


def errors_and_text(nb) -> tuple[list[str], str]:
    """One line per error output of a notebook ("cell N: Name: value") and per stderr output (a
    warning or a log line a student would read as something gone wrong: none in any notebook, under
    either env's versions), and all its stream text."""
    errors, text = [], []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                errors.append(f"cell {index}: on stderr: {output.text.strip()[:300]}")
            text.append(output.get("text", ""))
    return errors, "".join(text)


class Summary:
    """The tiers' lines at the end of the run (registered by conftest.py)."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if COLAB_SECONDS:
            terminalreporter.section("notebook execution under Colab's pins (smoke profile)")
            width = max(len(name) for name in COLAB_SECONDS)
            for name, seconds in sorted(COLAB_SECONDS.items()):
                terminalreporter.write_line(f"colab pins: {name:<{width}} {seconds:6.1f} s")
            total = sum(COLAB_SECONDS.values())
            terminalreporter.write_line(f"colab pins: {'total':<{width}} {total:6.1f} s")
        if STALLS:
            terminalreporter.section(f"notebook stalls made up by the client ({len(STALLS)})")
            for line in STALLS[:30]:
                terminalreporter.write_line(line)
            if len(STALLS) > 30:
                terminalreporter.write_line(f"... and {len(STALLS) - 30} more (pytest warnings)")
