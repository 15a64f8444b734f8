"""The browser tier's own logic, without a browser: a notebook whose kernel never connected is
checked a second time and says so (tests/browser_support.checked, wait_connected)."""

import time

import pytest
from browser_support import NotConnected, Result, checked, wait_connected


def tries(*results: Result):
    """A check returning ``results`` one after another; ``calls`` counts them."""
    queue = list(results)

    def check(again: bool = False) -> Result:
        check.calls += 1
        check.again.append(again)
        return queue.pop(0)

    check.calls, check.again = 0, []
    return check


def refused() -> Result:
    error = (
        "NotConnected: the kernel had not connected after 120 s (status busy, websocket connecting)"
    )
    return Result(connected=False, errors=[error], log="HTTP 500 GET /api/kernels/x/channels")


def test_a_connected_notebook_is_checked_once():
    check = tries(Result(cells=5), Result(cells=5))
    result = checked(check)
    assert check.calls == 1 and result.cells == 5 and not result.retried
    assert "checked twice" not in result.line("w8", "01_x")


def test_a_failure_after_connecting_is_not_retried():
    check = tries(Result(cells=3, errors=["cell 4: ValueError: x"]), Result(cells=9))
    result = checked(check)
    assert check.calls == 1 and result.errors == ["cell 4: ValueError: x"]


def test_a_kernel_that_never_connected_is_checked_again_and_says_so():
    check = tries(refused(), Result(cells=7))
    result = checked(check)
    assert check.calls == 2 and result.cells == 7 and not result.errors
    line = result.line("w8", "09_x")
    assert "checked twice, the first try: NotConnected: the kernel had not connected" in line
    assert result.retried_log == "HTTP 500 GET /api/kernels/x/channels"  # the server's side kept
    assert check.again == [False, True]  # the second try is told, so it keeps the first's pictures


def test_the_first_trys_screenshot_is_kept_beside_the_seconds(tmp_path):
    """The second try deleted every NAME*.png it found: the page that never connected was lost."""
    from browser_support import check_notebook

    def check(again: bool = False) -> Result:  # the real clean-up, then this try's picture
        with pytest.raises(AttributeError):  # no browser here: it stops right after the clean-up
            check_notebook(None, None, tmp_path / "09_x.ipynb", tmp_path, again=again)
        shot = tmp_path / ("09_x.png" if again else "09_x-failed.png")
        shot.write_bytes(b"second" if again else b"first")
        result = Result(cells=7) if again else refused()
        result.screenshots = [shot]
        return result

    for stale in ("09_x-moved.png", "09_x-failed-first-try.png"):  # an earlier tier run's
        (tmp_path / stale).write_bytes(b"stale")
    result = checked(check)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["09_x-failed-first-try.png", "09_x.png"]
    assert [p.name for p in result.screenshots] == ["09_x-failed-first-try.png", "09_x.png"]
    assert (tmp_path / "09_x-failed-first-try.png").read_bytes() == b"first"


def test_a_second_refusal_fails_with_both_tries_named():
    check = tries(refused(), refused(), Result(cells=7))
    result = checked(check)
    assert check.calls == 2 and result.errors and not result.connected
    assert result.retried.startswith("NotConnected")


class Page:
    """A page whose kernel reports ``states`` one poll after another (the last one from then on)."""

    def __init__(self, *states: list[str]) -> None:
        self.states = list(states)

    def evaluate(self, script: str) -> list[str]:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def wait_for_timeout(self, ms: float) -> None:
        time.sleep(ms / 1000)


def test_wait_connected_waits_for_an_idle_kernel_on_a_connected_websocket():
    page = Page(["none", "none"], ["starting", "connecting"], ["idle", "connected"])
    wait_connected(page, timeout=5)
    assert page.states == [["idle", "connected"]]


@pytest.mark.parametrize("state", [["busy", "connected"], ["idle", "connecting"], ["none", "none"]])
def test_wait_connected_names_what_it_saw(state):
    with pytest.raises(
        NotConnected, match=rf"after 0 s \(status {state[0]}, websocket {state[1]}\)"
    ):
        wait_connected(Page(state), timeout=0.3)
