from helpers.feedback import NOT_IMPLEMENTED, CheckResult, failed, passed, run_check


def test_prints_as_tick_or_cross_with_hints():
    assert str(passed("x", "all good")) == "✅ x: all good"
    text = str(failed("x", "wrong weights", "normalise over the keys"))
    assert text.startswith("❌ x: wrong weights") and "hint: normalise over the keys" in text
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
    assert result.hints == ["scores = query @ keys.T"] and str(result).startswith("⏳")


def test_a_crash_becomes_a_short_result_naming_the_students_line():
    def students_code():
        return [1, 2][5]

    result = run_check("attention", lambda: students_code())
    assert isinstance(result, CheckResult) and not result.passed
    assert "IndexError" in result.verdict and "return [1, 2][5]" in result.verdict
