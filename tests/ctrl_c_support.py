"""Ctrl-C in the middle of a run, for the tests of the commands that resume."""

from collections.abc import Callable


def ctrl_c_at(call: int, fn: Callable) -> Callable:
    """``fn``, except that its ``call``-th call raises KeyboardInterrupt, as Ctrl-C there would."""
    calls = 0

    def wrapped(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == call:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    return wrapped
