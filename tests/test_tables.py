"""helpers.tables: right files in each format; each bad input named with its file, line, value."""

import json
import re

import pytest

from helpers.tables import (
    check_columns,
    check_label_values,
    check_labels,
    check_texts,
    int_labels,
    label_index,
    read_rows,
    read_rows_and_lines,
)

ROWS = [{"text": "a good film", "label": "1"}, {"text": "bad, sadly", "label": "0"}]


def write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# --- right inputs ---------------------------------------------------------------------------------


def test_reads_jsonl_skipping_blank_lines_and_keeping_json_types(tmp_path):
    rows = [{"text": "a good film", "label": 1}, {"text": "line\u2028break", "label": 0}]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    path = write(tmp_path / "train.jsonl", lines[0] + "\n\n  \n" + lines[1] + "\r\n")
    assert read_rows(path) == rows


def test_reads_csv_with_quoted_commas_and_an_excel_byte_order_mark(tmp_path):
    path = write(
        tmp_path / "train.csv", '\ufefftext,label\r\na good film,1\r\n"bad, sadly",0\r\n\r\n'
    )
    assert read_rows(path) == ROWS


def test_reads_tsv(tmp_path):
    path = write(tmp_path / "dev.tsv", "text\tlabel\na good film\t1\nbad, sadly\t0\n")
    assert read_rows(str(path)) == ROWS


def test_tsv_is_read_as_glue_writes_it_a_quote_is_text(tmp_path):
    """An opening quote never closed on its line swallowed the lines up to the next quote (six rows
    of a file became one, with no word); a quoted word at the start lost its quotes."""
    text = ('sentence\tlabel\n"the film opens with a bang \t1\nok \t1\n'
            'it is "so bad" it is good \t0\n"Great" movie, really\t1\n')  # fmt: skip
    rows, lines = read_rows_and_lines(write(tmp_path / "t.tsv", text))
    assert [r["sentence"] for r in rows] == [
        '"the film opens with a bang ', "ok ", 'it is "so bad" it is good ', '"Great" movie, really'
    ]  # fmt: skip
    assert lines == [2, 3, 4, 5]


def test_tsv_value_wholly_in_quotes_with_doubled_quotes_is_unquoted_as_pandas_writes_it(tmp_path):
    pd = pytest.importorskip("pandas")
    texts = [
        'it is "so bad" it is good',
        "a\ttab inside",
        "",
        "plain",
    ]  # pandas quotes the first two
    pd.DataFrame({"sentence": texts, "label": [0, 1, 1, 0]}).to_csv(
        tmp_path / "p.tsv", sep="\t", index=False
    )
    rows = read_rows(tmp_path / "p.tsv")
    assert rows == [{"sentence": t, "label": y} for t, y in zip(texts, "0110")]


# --- bad files ------------------------------------------------------------------------------------


def test_missing_file_is_named_with_the_format_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl does not exist; expected a \.jsonl"):
        read_rows(tmp_path / "nope.jsonl")


def test_unknown_extension_lists_the_supported_ones(tmp_path):
    path = write(tmp_path / "train.json", "[]")
    with pytest.raises(ValueError, match=r"train\.json: unknown extension '\.json'") as err:
        read_rows(path)
    assert all(ext in str(err.value) for ext in (".jsonl", ".csv", ".tsv"))


def test_a_folder_is_not_a_file(tmp_path):
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(IsADirectoryError, match=r"data\.csv is a folder"):
        read_rows(tmp_path / "data.csv")


def test_latin1_file_names_line_byte_and_iconv(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\nok,1\ncaf\u00e9 au lait,0\n", "latin1")
    with pytest.raises(ValueError) as err:
        read_rows(path)
    message = str(err.value)
    assert "train.csv is not UTF-8" in message and "byte 0xe9 at line 3, byte 4" in message
    assert "iconv -f latin1 -t utf-8 train.csv" in message


def test_utf16_file_is_recognised(tmp_path):
    path = write(tmp_path / "train.tsv", "text\tlabel\nok\t1\n", "utf-16")
    with pytest.raises(ValueError, match="UTF-16 byte-order mark.*iconv -f utf-16"):
        read_rows(path)


def test_malformed_json_line_names_line_column_and_json_message(tmp_path):
    path = write(
        tmp_path / "train.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b" "label": 0}\n'
    )
    with pytest.raises(ValueError) as err:
        read_rows(path)
    assert str(err.value) == (
        f"{path}, line 3, column 14: not valid JSON (Expecting ',' delimiter); every line must "
        'be one JSON object like {"text": "...", "label": 1}'
    )


def test_pretty_printed_json_is_recognised(tmp_path):
    path = write(tmp_path / "train.jsonl", '[\n  {"text": "a", "label": 1}\n]\n')
    with pytest.raises(ValueError, match="line 1, column 2: not valid JSON.*jq -c"):
        read_rows(path)


@pytest.mark.parametrize(
    "line, kind", [('["a", 1]', "array"), ('"just text"', "string"), ("7", "number")]
)
def test_json_line_that_is_not_an_object(tmp_path, line, kind):
    path = write(tmp_path / "train.jsonl", '{"text": "a", "label": 1}\n' + line + "\n")
    with pytest.raises(
        ValueError, match=re.escape(f"train.jsonl, line 2: a JSON {kind} ({line}), not an object")
    ):
        read_rows(path)


@pytest.mark.parametrize(
    "name, text, said",
    [
        ("train.jsonl", "", "has no rows: it is empty or holds only blank lines"),
        ("train.jsonl", "\n  \n", "has no rows"),
        ("train.csv", "", "is empty; expected comma-separated values under a header line"),
        ("train.tsv", "text\tlabel\n", r"has a header line \(text, label\) but no rows below it"),
    ],
)
def test_empty_file_says_it_has_no_rows(tmp_path, name, text, said):
    with pytest.raises(ValueError, match=re.escape(name) + " " + said):
        read_rows(write(tmp_path / name, text))


def test_csv_row_with_an_unquoted_comma(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\ngood,1\nbad, sadly,0\n")
    with pytest.raises(ValueError) as err:
        read_rows(path)
    assert (
        "train.csv, line 3: 3 values, but the header (line 1) names 2 columns (text, label)"
        in str(err.value)
        and "double quotes" in str(err.value)
    )


@pytest.mark.parametrize(
    "text, said",
    [("text\tlabel\ngood\t1\nbad\tsadly\t0\n", r"line 3: 3 values.*replace tabs"),
     ('text\tlabel\n"Great" film\t1\t\n', r"line 2: 3 values.*replace tabs"),  # a stray tab
     ('text\tlabel\nok\t1\n"two\nlines"\t0\n', r"line 3: 1 value.*one row a line.*as \.csv")],
)  # fmt: skip
def test_tsv_row_with_a_tab_in_the_text_or_over_two_lines(tmp_path, text, said):
    with pytest.raises(ValueError, match=r"dev\.tsv, " + said):
        read_rows(write(tmp_path / "dev.tsv", text))


def test_csv_unclosed_quote_names_the_line_it_starts_on(tmp_path):
    path = write(tmp_path / "train.csv", 'text,label\nok,1\n"never closed,1\nok,0\nok,1\n')
    with pytest.raises(ValueError) as err:
        read_rows(path)
    assert "train.csv, line 3: 1 value" in str(err.value)
    assert "this row runs from line 3 to line 5: an opening double quote" in str(err.value)


def test_csv_multiline_quoted_value_is_fine(tmp_path):
    path = write(tmp_path / "train.csv", 'text,label\n"two\nlines",1\nok,0\n')
    assert read_rows(path) == [{"text": "two\nlines", "label": "1"}, {"text": "ok", "label": "0"}]


# --- columns --------------------------------------------------------------------------------------


def test_missing_column_names_it_the_columns_there_are_and_the_hint():
    rows = [{"sentence": "a", "Label": 1}]
    hint = "Name them with --text-column and --label-column."
    with pytest.raises(ValueError) as err:
        check_columns(rows, ["text", "label"], "train.csv", hint)
    assert str(err.value) == (
        "train.csv has no column 'text', 'label' (did you mean 'Label'?); its columns are "
        "'sentence', 'Label'. Name them with --text-column and --label-column."
    )


def test_a_later_row_missing_a_column_is_named():
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": 0}, {"text": "c"}]
    with pytest.raises(ValueError, match=r"train\.jsonl, row 3 has no column 'label'; its columns"):
        check_columns(rows, ["text", "label"], "train.jsonl")
    check_columns(rows[:2], ["text", "label"], "train.jsonl")  # right rows pass


# --- labels ---------------------------------------------------------------------------------------


def test_label_index_sorts_numbers_as_numbers_and_strings_as_strings():
    assert label_index([10, 2, 2, 10], "train.jsonl") == {2: 0, 10: 1}
    assert label_index(["pos", "neg", "pos"], "train.csv") == {"neg": 0, "pos": 1}
    assert label_index([True, False], "boolq.jsonl") == {False: 0, True: 1}


def test_label_index_with_mixed_types_lists_them():
    with pytest.raises(ValueError) as err:
        label_index([0, 1, "1", 2.0], "train.jsonl")
    assert str(err.value).startswith(
        "train.jsonl's labels mix types: int (0, 1) and str ('1') and float (2.0)"
    )


@pytest.mark.parametrize(
    "labels, said",
    [
        ([0, 1, None], "row 3: the label is null (missing)"),
        (["pos", "neg", ""], "row 3: the label is empty ('')"),
        (["pos", "  ", "neg"], "row 2: the label is blank ('  ')"),
        (["1", "0", "1 "], "row 3: the label '1 ' has spaces around it, so it would be a class of its "
         "own beside '1'; remove the spaces"),
        ([0.0, 0.5, 1.0], "row 2: the label 0.5 is not a whole number"),
        ([0.0, float("nan")], "row 2: the label nan is not a whole number"),
        ([0, {"a": 1}], "row 2: the label is a JSON object"),
    ],
)  # fmt: skip
def test_labels_that_would_become_classes_by_mistake_are_refused(labels, said):
    """A missing label, '1 ' beside '1', and a score used to be classes of their own."""
    with pytest.raises(ValueError, match=re.escape(f"train.tsv, {said}")):
        label_index(labels, "train.tsv")
    with pytest.raises(ValueError, match=re.escape(f"dev.tsv, {said}")):
        check_labels({0: 0, 1: 1}, labels, "dev.tsv")


def test_whole_floats_and_booleans_are_still_labels():
    assert label_index([1.0, 0.0, 1.0], "train.jsonl") == {0.0: 0, 1.0: 1}
    check_label_values([True, False, 3, "pos"], "train.jsonl")


def test_label_checks_name_the_file_line_given_the_lines():
    """Given each row's line (rows in any order, e.g. shuffled), the first line in the file is named."""
    with pytest.raises(ValueError, match=r"^train\.tsv, line 7: the label is empty"):
        label_index(["1", "", "0", ""], "train.tsv", lines=[2, 9, 3, 7])
    with pytest.raises(
        ValueError, match=r"label 'x' \(2 rows, first line 4\) that train never had"
    ):
        check_labels({"0": 0, "1": 1}, ["x", "0", "x"], "dev.tsv", lines=[8, 2, 4])


def test_texts_must_be_strings():
    rows = [{"q": "fine", "p": "fine"}, {"q": "fine", "p": None}, {"q": 3, "p": "x"}]
    check_texts(rows[:1], ["q", "p"], "train.jsonl")
    with pytest.raises(
        ValueError, match=r"^train\.jsonl, line 5: the 'p' value is null \(no text\)"
    ):
        check_texts(rows, ["q", "p"], "train.jsonl", lines=[1, 5, 6])
    with pytest.raises(
        ValueError, match=r"row 1: the 'q' value is a JSON number \(3\), not a text"
    ):
        check_texts(rows[2:], ["q", "p"], "train.jsonl")


def test_rows_come_with_the_line_they_start_on(tmp_path):
    path = write(tmp_path / "t.csv", 'text,label\n\na,1\n"two\nlines",0\nb,1\n')
    assert read_rows_and_lines(path) == (
        [
            {"text": "a", "label": "1"},
            {"text": "two\nlines", "label": "0"},
            {"text": "b", "label": "1"},
        ],
        [3, 4, 6],
    )
    path = write(tmp_path / "t.jsonl", '{"a": 1}\n\n{"a": 2}\n')
    assert read_rows_and_lines(path) == ([{"a": 1}, {"a": 2}], [1, 3])


def test_label_index_refuses_a_single_class_and_unhashable_labels():
    with pytest.raises(
        ValueError, match=r"train\.csv's labels are all '1' \(3 rows\).*two classes"
    ):
        label_index(["1", "1", "1"], "train.csv")
    with pytest.raises(
        ValueError, match=r"train\.jsonl, row 2: the label is a JSON array \(\[0, 1\]\)"
    ):
        label_index([0, [0, 1]], "train.jsonl")


def test_eval_labels_of_another_type():
    with pytest.raises(ValueError) as err:
        check_labels({0: 0, 1: 1}, ["0", "1", "1"], "dev.tsv")
    assert str(err.value).startswith(
        "train's labels are int (0, 1) but dev.tsv's are str ('0', '1')"
    )


def test_eval_label_train_never_saw():
    train = label_index(["neg", "pos"], "train.csv")
    check_labels(train, ["pos", "neg"], "dev.csv")  # right labels pass
    with pytest.raises(ValueError) as err:
        check_labels(train, ["pos", "neutral", "neg", "neutral"], "dev.csv")
    assert str(err.value).startswith(
        "dev.csv has label 'neutral' (2 rows, first row 2) that train never had; train's labels "
        "are 'neg', 'pos'"
    )


# --- integer labels -------------------------------------------------------------------------------


def test_int_labels_accepts_ints_and_digit_strings():
    assert int_labels([0, 1, "1", " 0\r", "+1"], "train.csv", allowed={0, 1}) == [0, 1, 1, 0, 1]
    assert int_labels(["3", -1], "train.csv") == [3, -1]


def test_string_labels_are_listed_with_a_mapping_to_use():
    values = ["neg", "pos", "pos", "1"]
    with pytest.raises(ValueError) as err:
        int_labels(values, "train.jsonl", allowed={0, 1})
    assert str(err.value) == (
        "train.jsonl: labels must be one of 0, 1 (class numbers, e.g. 0 = negative, 1 = positive), "
        "but found 'neg' (1 row, first row 1), 'pos' (2 rows, first row 2). Map each value to a "
        "class number first, e.g. {'neg': 0, 'pos': 1}."
    )


def test_many_distinct_bad_labels_are_cut_short():
    with pytest.raises(ValueError, match=r"'w10' \(1 row, first row 10\) and 3 more\."):
        int_labels([f"w{i}" for i in range(1, 14)], "train.jsonl")


def test_bools_and_floats_are_refused_with_a_reason():
    with pytest.raises(
        ValueError, match=r"found True \(1 row, first row 2\).*Booleans: write 0 and 1"
    ):
        int_labels([0, True], "train.jsonl")
    with pytest.raises(ValueError, match=r"found 0\.7 \(1 row, first row 1\).*threshold them"):
        int_labels([0.7, 1], "train.jsonl")


def test_labels_outside_allowed_are_named():
    with pytest.raises(ValueError) as err:
        int_labels([0, 1, 2, "-1", 2], "test.jsonl", allowed={0, 1})
    assert str(err.value) == (
        "test.jsonl: labels must be one of 0, 1, but found 2 (2 rows, first row 3), "
        "-1 (1 row, first row 4). Drop those rows, or map each label to one of 0, 1 first."
    )


def test_a_file_of_blank_lines_is_called_empty(tmp_path):
    """It was "has a header line (   ) but no rows below it"."""
    path = tmp_path / "blank.tsv"
    path.write_text("\n\n   \n\n")
    with pytest.raises(ValueError, match=r"blank\.tsv is empty \(only blank lines\); expected"):
        read_rows(path)


@pytest.mark.parametrize(
    "text, lines",
    [("", []), ("a", ["a"]), ("a\n", ["a"]), ("a\r\nb\rc\n\n", ["a", "b", "c", ""]),
     ("\n  \n", ["", "  "]), ("x\x85y\u2028z\x0cw\nv", ["x\x85y\u2028z\x0cw", "v"])],
)  # fmt: skip
def test_split_lines_ends_lines_where_a_file_does_and_nowhere_else(text, lines):
    """As str.splitlines for \\n, \\r\\n and \\r (a last line break ends a line, it does not start
    an empty one: "2 lines, all blank" stays 2), but not at U+0085, U+2028 or a form feed."""
    from helpers.tables import split_lines

    assert split_lines(text) == lines


@pytest.mark.parametrize("name, text", [("d.tsv", "sentence\tlabel\tlabel\nhi\t1\t0\n"),
                                        ("d.csv", "text,label,text\nhello,1,\n")])  # fmt: skip
def test_a_header_naming_a_column_twice_is_refused(tmp_path, name, text):
    """Each row was a dict of the header's names: the last column of a name won, silently (a wrong
    label, or an empty text reported as "the text is empty")."""
    path = write(tmp_path / name, text)
    with pytest.raises(
        ValueError,
        match=rf"{re.escape(str(path))}, line 1: the header names the column '(label|text)' more than once",
    ):
        read_rows(path)


def test_columns_without_names_are_not_a_name_given_twice(tmp_path):
    """A header ending in commas (Excel writes them) names no column twice: it still loads."""
    path = write(tmp_path / "d.csv", "text,label,,\ngood,1,,\n")
    assert read_rows(path) == [{"text": "good", "label": "1", "": ""}]
