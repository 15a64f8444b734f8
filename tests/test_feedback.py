import torch

from helpers.feedback import NOT_IMPLEMENTED, CheckResult, failed, passed, run_check


def test_prints_as_tick_or_cross_with_hints():
    # The outcome in words too: a screen reader reads no colour, and may skip an emoji.
    assert str(passed("x", "all good")) == "✅ x (passed): all good"
    text = str(failed("x", "wrong weights", "normalise over the keys"))
    assert (
        text.startswith("❌ x (not yet): wrong weights") and "hint: normalise over the keys" in text
    )
    assert repr(failed("x", "y")) == str(failed("x", "y"))
    assert "✅" in passed("x", "ok")._repr_html_()


def test_usable_from_code():
    result = failed("x", "bad", "h1", "h2")
    assert not result and not result.passed and result.hints == ["h1", "h2"]
    assert passed("x", "ok")


def test_a_stub_reads_not_implemented_with_its_hint():
    def stub():
        raise NotImplementedError("scores = query @ keys.T")

    result = run_check("attention", stub)
    assert not result.passed and result.verdict == NOT_IMPLEMENTED and result.not_implemented
    assert result.hints[0] == "scores = query @ keys.T" and str(result).startswith("⏳")
    assert "still raises it: write your code in place of the `raise" in result.hints[1]


def test_torchs_not_implemented_inside_finished_code_is_a_crash_not_a_stub():
    """torch raises NotImplementedError for an operation a device or dtype lacks ("Cannot copy out of
    meta tensor"): finished code read "not implemented yet" (a review of more kernel-wide torch
    settings, stop 56). A module without forward (torch's own stub) still reads as one."""
    import torch

    def finished():
        return torch.empty(2, device="meta").cpu()

    result = run_check("evaluate", finished)
    assert not result.passed and not result.not_implemented
    assert result.verdict.startswith("your code raised NotImplementedError at line"), result
    assert "Cannot copy out of meta tensor" in result.hints[0]
    no_forward = run_check("BERT", lambda: torch.nn.Module()(torch.zeros(1)))
    assert no_forward.not_implemented and 'missing the required "forward"' in no_forward.hints[0]


def todo(hint):  # a student's helper for their stubs
    err = NotImplementedError(hint)
    raise err


def test_stubs_written_by_hand_in_other_ways_are_still_stubs():
    """A raise through a helper or split over lines read as a crash under the first, line-text rule
    (a review of stop 56's diff)."""

    def through_a_helper():
        todo("write the scores")

    def over_two_lines():
        raise (
            NotImplementedError("write the weights")
        )  # fmt: skip

    def re_raised():
        try:
            raise NotImplementedError("later")
        except NotImplementedError:
            raise

    for stub in (through_a_helper, over_two_lines, re_raised):
        assert run_check("attention", stub).not_implemented, stub.__name__


def test_a_stub_is_named_where_it_is_and_code_under_its_raise_line_is_said_never_to_run():
    """A solution written under a kept `raise` line read "not implemented yet" for ever, and a check
    calling another exercise's stub (notebook 06's BPE check calling my_merge) showed that stub's
    hint as its own."""

    def my_merge(word, pair):
        raise NotImplementedError("walk each word left to right")
        return word  # the student's code, under the raise line

    def my_learn_bpe(words):
        return my_merge(words, ("a", "b"))

    class MyAttention:
        def forward(self, x):
            raise NotImplementedError

    result = run_check("learn BPE", lambda: my_learn_bpe(["ab"]))
    assert result.hints[0] == "walk each word left to right"
    assert (
        "my_merge` still raises it" in result.hints[1]
        and "code under it never runs" in result.hints[1]
    )
    assert run_check("attention", lambda: MyAttention().forward(1)).hints == [
        "`test_a_stub_is_named_where_it_is_and_code_under_its_raise_line_is_said_never_to_run.<locals>"
        ".MyAttention.forward` still raises it: write your code in place of the `raise "
        "NotImplementedError(...)` line (code under it never runs)"
    ]

    # torch's own NotImplementedError (a module with no forward): torch's message, no name
    torch_result = run_check("x", lambda: torch.nn.Module()(1))
    assert 'missing the required "forward"' in torch_result.hints[0]
    assert len(torch_result.hints) == 1  # no `raise` line of the student's to point at


def test_a_crash_becomes_a_short_result_naming_the_students_line():
    def students_code():
        return [1, 2][5]

    result = run_check("attention", lambda: students_code())
    assert isinstance(result, CheckResult) and not result.passed
    assert "IndexError" in result.verdict and "return [1, 2][5]" in result.verdict


def test_hints_escalate_per_failed_attempt_of_each_exercise():
    wrong = lambda: failed("softmax", "wrong weights", "the idea", "narrower", "the answer")  # noqa: E731
    shown = [str(run_check("softmax", wrong)) for _ in range(4)]
    assert ["the idea" in s for s in shown] == [True] * 4
    assert ["narrower" in s for s in shown] == [False, True, True, True]
    assert ["the answer" in s for s in shown] == [False, False, True, True]
    assert "for a more specific hint" in shown[0] and "for a more specific hint" not in shown[2]
    other = run_check("layer norm", lambda: failed("layer norm", "bad", "idea", "answer"))
    assert "answer" not in str(other), "each exercise counts its own attempts"
    new = run_check("softmax", lambda: failed("softmax", "no mask", "another idea", "its answer"))
    assert "its answer" not in str(new), "a new mistake starts from its own first hint"
    assert run_check("softmax", lambda: passed("softmax", "ok")).passed
    assert "narrower" not in str(run_check("softmax", wrong)), "a pass starts again"
    assert failed("x", "y", "a", "b").hints == ["a", "b"], "code always sees every hint"


def test_a_stub_or_a_crash_does_not_count_as_an_attempt():
    def stub():
        raise NotImplementedError("later")

    for _ in range(3):
        run_check("e", stub)
    assert "b" not in str(run_check("e", lambda: failed("e", "v", "a", "b")))


def test_a_crash_inside_a_helpers_layer_the_student_called_names_the_students_line():
    import torch

    from helpers import layers

    def students_code():
        return layers.split_heads(torch.zeros(2, 3, 10), 3)  # 10 features do not split in 3

    result = run_check("attention", students_code)
    assert not result.passed and "your code raised" in result.verdict
    assert "layers.split_heads(torch.zeros(2, 3, 10), 3)" in result.verdict


def test_a_crash_in_the_checker_after_the_students_code_returned_is_not_blamed_on_them():
    from helpers.checks import modules

    def checker():
        # stands for a checker's line that cannot use what the student's code returned
        return modules.__dict__["__name__"][99]

    checker.__code__ = checker.__code__.replace(co_filename=modules.__file__)
    result = run_check("attention", checker)
    assert (
        not result.passed and "the checker could not use what your code returned" in result.verdict
    )


def test_a_value_is_described_with_its_article():
    from helpers.feedback import kind_of

    assert [kind_of(v) for v in (None, 3, [], "x", {})] == [
        "None",
        "an int",
        "a list",
        "a str",
        "a dict",
    ]


def test_a_crash_names_the_input_it_happened_on():
    """The course example passed and the crash on 3 queries at once read as if on any input."""

    def wrong(query, keys, values):
        scores = keys @ query.transpose(0, -1)  # (n, m), not (m, n): fine for one query only
        weights = torch.softmax(scores, dim=-1)
        return weights @ values, weights

    from helpers.checks import check_softmax_attention

    result = check_softmax_attention(wrong)
    assert result.verdict.startswith("your code raised RuntimeError at line ")
    assert result.verdict.endswith("(input: 3 queries at once, (m, d))"), result.verdict
    assert "mat1 and mat2 shapes cannot be multiplied" in result.hints[0]


def test_a_library_import_an_interrupt_cut_short_is_not_blamed_on_the_student(tmp_path):
    """An interrupt during torch's first import of sympy left it half made; a checker then said of a
    right answer "the checker could not use what your code returned (AttributeError)"."""
    import sys

    site = tmp_path / "site-packages"
    (site / "halfpkg").mkdir(parents=True)
    (site / "halfpkg" / "__init__.py").write_text("")  # its import cut short: core never set
    (site / "halfpkg" / "core.py").write_text("")
    (site / "brokenpkg").mkdir()  # importing it would have a side effect: it must not be imported
    (site / "brokenpkg" / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (site / "uses.py").write_text("import halfpkg, types\nbroken = types.ModuleType('brokenpkg')\n\n"
                                  "def core():\n    return halfpkg.core\n\n"
                                  "def other():\n    return broken.sub\n")  # fmt: skip
    sys.path.insert(0, str(site))
    try:
        import uses

        half = run_check("training step", uses.core)
        other = run_check("training step", uses.other)
    finally:
        sys.path.remove(str(site))
        for name in ("uses", "halfpkg", "brokenpkg"):
            sys.modules.pop(name, None)
    assert not half.passed and "import was cut short, not your code's fault" in half.verdict
    assert half.hints[0].startswith("restart the kernel")
    assert (
        "cut short" not in other.verdict and "brokenpkg" not in sys.modules
    )  # looked up, not imported

    def students_code():
        import torch

        return torch.no_such_function()  # the student's own typo: theirs, with its line

    result = run_check("training step", students_code)
    assert "your code raised AttributeError at line" in result.verdict
