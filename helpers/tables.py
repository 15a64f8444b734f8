"""Rows of tabular files (.jsonl, .csv, .tsv), and checks on their columns and labels.

The data layer's one reader of tables. Each mistake people make in such a file (another encoding, a
broken JSON line, a missing column, labels that the training and evaluation files spell differently)
raises an error that names the file, the line or row, and the value, and says what to do.

Rows are counted from 1 in the list a check is given (a file's data rows, if it was not shuffled);
given each row's line (``read_rows_and_lines``), a check names the line of the file instead.
"""

import csv
import difflib
import io
import json
import numbers
import re
from collections.abc import Iterable
from pathlib import Path

FORMATS = {
    ".jsonl": "one JSON object per line",
    ".csv": "comma-separated values under a header line that names the columns",
    ".tsv": "tab-separated values under a header line that names the columns, one row a line",
}
# A .tsv is read as GLUE writes it: every tab separates and every line is a row, so a quote is text
# ('"Great" film'); only a value wholly in quotes with each quote inside doubled, as pandas writes
# one, is unquoted.
QUOTED = re.compile(r'"((?:[^"]|"")*)"')
JSONL_EXAMPLE = '{"text": "...", "label": 1}'
QUOTES = (
    "an opening double quote that is never closed swallows the lines after it; a value that "
    'holds a quote must be in double quotes, with each quote inside doubled ("")'
)
NOT_JSON_LINES = (
    " (this looks like one JSON document, not JSON Lines: write each object on its own line, e.g. "
    "`jq -c '.[]' in.json > out.jsonl`)"
)
SHOWN = 10  # distinct values listed in a message before "and N more"


def read_rows(path: str | Path) -> list[dict]:
    """Every row of a .jsonl, .csv or .tsv file (chosen by extension) as a dict.

    Blank lines are skipped. Values of .csv/.tsv rows are strings; .jsonl rows keep JSON's types.
    Raises FileNotFoundError for a missing file and ValueError for anything else wrong in it.
    """
    return read_rows_and_lines(path)[0]


def read_rows_and_lines(path: str | Path) -> tuple[list[dict], list[int]]:
    """``read_rows``'s rows, and the line of the file each starts on (from 1), for messages."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        supported = "; ".join(f"{ext} ({what})" for ext, what in FORMATS.items())
        raise ValueError(
            f"{path}: unknown extension {path.suffix or '(none)'!r}; supported are {supported}. "
            "Rename the file if it is one of these."
        )
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; expected a {suffix} file: {FORMATS[suffix]}"
        )
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a {suffix} file: {FORMATS[suffix]}")
    text = read_utf8(path)
    if suffix == ".jsonl":
        return _jsonl_rows(text, path)
    return _delimited_rows(text, path, "," if suffix == ".csv" else "\t")


def read_utf8(path: str | Path) -> str:
    """The file's text (a UTF-8 byte-order mark, as Excel writes, is dropped); a ValueError naming the
    line and byte where it is not UTF-8."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start + 3 * data.startswith(b"\xef\xbb\xbf")  # counted after a UTF-8 BOM
        line = data.count(b"\n", 0, start) + 1
        column = start - data.rfind(b"\n", 0, start)  # in bytes, from 1
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
        source = "utf-16" if utf16 else "latin1"
        bom = " (it starts with a UTF-16 byte-order mark)" if utf16 else ""
        sheet = (
            ", or in a spreadsheet choose 'CSV UTF-8'" if path.suffix in (".csv", ".tsv") else ""
        )
        raise ValueError(
            f"{path} is not UTF-8 text{bom}: byte {data[start]:#04x} at line {line}, byte "
            f"{column} (offset {start}) is not UTF-8. Re-save it as UTF-8, e.g. "
            f"`iconv -f {source} -t utf-8 {path.name} > utf8-{path.name}` (put the file's real "
            f"encoding after -f){sheet}."
        ) from None


def split_lines(text: str) -> list[str]:
    """``text``'s lines, each ended by \\n, \\r\\n or \\r only: ``str.splitlines`` also ends one at
    \\x85, \\u2028 and other characters that real reviews hold (IMDB's do)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines  # a last line break ends a line, as splitlines


def _jsonl_rows(text: str, path: Path) -> tuple[list[dict], list[int]]:
    """One dict per non-blank line, and its line number."""
    rows, numbers = [], []
    lines = split_lines(text)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}, line {number}, column {err.colno}: not valid JSON ({err.msg}); every "
                f"line must be one JSON object like {JSONL_EXAMPLE}"
                + (NOT_JSON_LINES if line.strip() in ("[", "{") else "")
            ) from None
        if not isinstance(row, dict):
            raise ValueError(
                f"{path}, line {number}: a JSON {_json_kind(row)} ({_short(row)}), not an object; "
                f"every line must be one JSON object like {JSONL_EXAMPLE}"
                + (NOT_JSON_LINES if isinstance(row, list) else "")
            )
        rows.append(row)
        numbers.append(number)
    if not rows:
        raise ValueError(
            f"{path} has no rows: it is empty or holds only blank lines; expected one JSON object "
            f"per line like {JSONL_EXAMPLE}"
        )
    return rows, numbers


def _delimited_rows(text: str, path: Path, delimiter: str) -> tuple[list[dict], list[int]]:
    """One dict per non-blank line below the header, keyed by the header's column names, and the
    line each starts on."""
    tsv = delimiter == "\t"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)  # fmt: skip
    header: list[str] = []
    rows, numbers = [], []
    end = 0  # the line the last row ended on
    try:
        for raw in reader:
            start, end = end + 1, reader.line_num  # a quoted value may span lines
            values = _tsv_values(raw, len(header)) if tsv else raw
            if not values or (not header and not "".join(values).strip()):
                continue  # a blank line (before the header: spaces too)
            if not header:
                header, header_line = values, reader.line_num
                twice = sorted({name for name in header if name and header.count(name) > 1})
                if twice:  # a dict would keep the last column of a name and drop the others
                    raise ValueError(f"{path}, line {header_line}: the header names the column "
                                     f"{', '.join(map(repr, twice))} more than once ({', '.join(header)}); "
                                     "give each column its own name")  # fmt: skip
            elif len(values) != len(header):
                if start < end:
                    fix = f"this row runs from line {start} to line {end}: {QUOTES}"
                elif delimiter == ",":
                    fix = "put double quotes around a value that holds a comma"
                elif any(v.startswith('"') and v.count('"') % 2 for v in raw):  # never closed
                    fix = ("a .tsv is read one row a line, as GLUE writes it: write a value that runs "
                           "over lines on one line (or save the file as .csv)")  # fmt: skip
                else:
                    fix = "a value may not hold a tab: replace tabs inside texts with spaces"
                raise ValueError(
                    f"{path}, line {start}: {len(values)} value{'s' * (len(values) != 1)}, but the "
                    f"header (line {header_line}) names {len(header)} columns "
                    f"({', '.join(header)}); {fix}"
                )
            else:
                rows.append(dict(zip(header, values)))
                numbers.append(start)
    except csv.Error as err:
        quotes = "" if tsv else f"; {QUOTES}"  # in a .tsv a quote is text
        raise ValueError(f"{path}, line {end + 1}: {err}{quotes}") from None
    if not header:
        blank = " (only blank lines)" if text.strip() == "" and text else ""
        raise ValueError(f"{path} is empty{blank}; expected {FORMATS[path.suffix.lower()]}")
    if not rows:
        raise ValueError(f"{path} has a header line ({', '.join(header)}) but no rows below it")
    return rows, numbers


def _tsv_values(raw: list[str], width: int) -> list[str]:
    """A .tsv line's values: as written, each wholly quoted one unquoted; a line whose quoted values
    hold tabs (pandas quotes such a value) is read with CSV's quoting if that gives ``width`` values."""
    values = [_unquoted(v) for v in raw]
    if not width or len(values) == width or not any(v.startswith('"') for v in raw):
        return values
    try:
        quoted = next(csv.reader(["\t".join(raw)], delimiter="\t", strict=True))
    except csv.Error:  # not CSV's quoting either ('"Great" film')
        return values
    return quoted if len(quoted) == width else values


def _unquoted(value: str) -> str:
    """A .tsv value: the text inside quotes if it is wholly quoted, pandas-style, else as written."""
    quoted = QUOTED.fullmatch(value)
    return quoted.group(1).replace('""', '"') if quoted else value


def check_columns(rows: list[dict], needed: list[str], where: str, hint: str = "") -> None:
    """Raise ValueError naming the ``needed`` columns that ``rows`` lack, and the columns they have.

    ``where`` names the file; ``hint`` (e.g. "Name them with --text-column ...") ends the message.
    """
    if not rows:
        raise ValueError(f"{where} has no rows")
    for number, row in enumerate(rows, 1):
        missing = [column for column in needed if column not in row]
        if not missing:
            continue
        guesses = [
            difflib.get_close_matches(column, list(map(str, row)), n=1) for column in missing
        ]
        named = ", ".join(
            repr(column) + (f" (did you mean {guess[0]!r}?)" if guess else "")
            for column, guess in zip(missing, guesses)
        )
        have = ", ".join(map(repr, row)) or "none"
        first = f"{where} has no column" if number == 1 else f"{where}, row {number} has no column"
        raise ValueError(
            f"{first} {named}; its columns are {have}"
            + ("." if number == 1 else " (the rows before it have them).")
            + (f" {hint}" if hint else "")
        )


def check_texts(
    rows: list[dict], columns: list[str], where: str, lines: list[int] | None = None
) -> None:
    """Raise ValueError naming the first row whose value in one of ``columns`` is not a string (a
    JSON null, number, boolean, array or object): it would be read as its Python spelling ("None");
    or is empty or blank: a row with nothing to read.

    ``lines``: the file line of each row (``read_rows_and_lines``), named instead of the row.
    """
    for index, row in enumerate(rows):
        for column in columns:
            value = row.get(column)
            at = _at(index, lines)
            if isinstance(value, str) and not value.strip():
                raise ValueError(f"{where}, {at}: the {column!r} value is empty ({value!r}): the "
                                 "model would learn from a text that says nothing; write the text, "
                                 "or drop the row")  # fmt: skip
            if isinstance(value, str):
                continue
            kind = _json_kind(value)
            if value is None:
                said = "is null (no text)"
            else:
                said = f"is a JSON {kind} ({_short(value)}), not a text"
            raise ValueError(
                f"{where}, {at}: the {column!r} value {said}; every {column!r} must be a string: "
                "write the text, or drop the row"
                + (" (or is this the wrong column?)" if kind != "null" else "")
            )


def check_label_values(labels: list, where: str, lines: list[int] | None = None) -> None:
    """Raise ValueError naming the first label that would make a class by mistake: a missing one
    (JSON null, an empty or blank cell), one with spaces around it ('1 ' would be a class beside
    '1'), a float that is not a whole number (a score, such as 0.5), or a list or object.

    ``lines``: the file line of each label (``read_rows_and_lines``), named instead of the row.
    """
    for index, label in enumerate(labels):
        at = _at(index, lines)
        problem = None
        if label is None:
            problem = (
                "the label is null (missing); every row needs a label: fill it in or drop the row"
            )
        elif isinstance(label, str) and not label.strip():
            problem = (
                f"the label is {'empty' if not label else 'blank'} ({label!r}); every row needs a "
                "label: fill it in or drop the row"
            )
        elif isinstance(label, str) and label != label.strip():
            problem = (
                f"the label {label!r} has spaces around it, so it would be a class of its own beside "
                f"{label.strip()!r}; remove the spaces"
            )
        elif isinstance(label, float) and not label.is_integer():
            problem = (
                f"the label {label!r} is not a whole number; a fractional label is usually a score: "
                "threshold the scores into classes (e.g. 1 if score >= 0.5 else 0)"
            )
        elif isinstance(label, (list, dict)):
            problem = (
                f"the label is a JSON {_json_kind(label)} ({_short(label)}); a label must be one "
                "number, string or boolean"
            )
        if problem:
            raise ValueError(f"{where}, {at}: {problem}")


def label_index(train_labels: list, where: str, lines: list[int] | None = None) -> dict:
    """Each distinct label of the training file -> its class index, in sorted order (0, 1, ...).

    Raises ValueError if a label is missing, blank, has spaces around it, is a float that is not a
    whole number, or is a list or an object (``check_label_values``), if the labels mix types (1 and
    "1", or 1 and 1.0), or if there are fewer than two distinct labels (nothing to classify).
    ``lines``: the file line of each label, named instead of the row (in any order: the first is
    the lowest).
    """
    check_label_values(*_in_file_order(train_labels, lines, where))
    tally = _tally(_numbered(train_labels, lines), where)
    labels = [label for label, _, _ in tally.values()]
    if len({type(label) for label in labels}) > 1:
        raise ValueError(
            f"{where}'s labels mix types: {_typed(labels)}; give every label the same type "
            "(all whole numbers or all strings)"
        )
    if len(labels) < 2:
        found = f"are all {labels[0]!r}" if labels else "are missing: there are none"
        raise ValueError(
            f"{where}'s labels {found} ({len(train_labels)} rows); a classifier needs at least two "
            "classes. Is the label column the right one, or was the file filtered to one class?"
        )
    return {label: index for index, label in enumerate(sorted(labels))}


CONVERT = ("read both files the same way (e.g. both .jsonl), or convert the labels of one "
           "(int_labels turns '0'/'1' into 0/1)")  # fmt: skip


def check_labels(
    train_index: dict,
    eval_labels: list,
    where: str,
    lines: list[int] | None = None,
    train: str = "train",
    fix: str = CONVERT,
) -> None:
    """Raise ValueError if ``eval_labels`` (of file ``where``) hold a label the training file lacks.
    ``train`` names the training file in the message; ``fix`` is the advice for labels of another
    type (a command line passes its own: its user cannot call ``int_labels``).

    Labels of another type than the training labels (1 and "1") are named as such; a new value is
    named with its count and first row (or line, given ``lines``), beside the training labels.
    Missing and malformed labels are refused first (``check_label_values``).
    """
    check_label_values(*_in_file_order(eval_labels, lines, where))
    tally = _tally(_numbered(eval_labels, lines), where)
    train_types = {type(label) for label in train_index}
    if any(type(label) not in train_types for label, _, _ in tally.values()):
        raise ValueError(
            f"{train}'s labels are {_typed(train_index)} but {where}'s are "
            f"{_typed(label for label, _, _ in tally.values())}; {fix}"
        )
    unseen = {key: seen for key, seen in tally.items() if seen[0] not in train_index}
    if unseen:
        raise ValueError(
            f"{where} has label{'s' * (len(unseen) > 1)} {_listing(unseen, _unit(lines))} that "
            f"{train} never had; {train}'s labels are {', '.join(map(repr, train_index))}. A model "
            f"trained on {train} cannot predict it: drop those rows, or add examples to {train}."
        )


def int_labels(values: list, where: str, allowed: set[int] | None = None) -> list[int]:
    """Labels that must be whole numbers (class indices such as IMDB's 0 and 1), as ints.

    Accepted: ints, and strings of digits such as "1" or " 0" (a .csv/.tsv cell is always a
    string, so the same labels read from .csv and .jsonl agree). Refused with ValueError: booleans
    (True/False is an answer, not a class number: write which one is 1), floats, even 1.0 (a float
    label is usually a score, such as SST's 0.0 to 1.0 sentiment, that needs a threshold first),
    other strings ("pos"/"neg"), and, if ``allowed`` is given, numbers outside it. The message
    lists the values found, with counts and first rows.
    """
    numbers_found = [_as_int(value) for value in values]
    expected = f"one of {', '.join(map(str, sorted(allowed)))}" if allowed else "whole numbers"
    bad = _tally(
        ((row, value) for row, value in enumerate(values, 1) if numbers_found[row - 1] is None),
        where,
    )
    if bad:
        strings = sorted(label for label, _, _ in bad.values() if isinstance(label, str))
        targets = sorted(allowed) if allowed else list(range(len(strings)))
        example = (
            f", e.g. {dict(zip(strings, targets))}"
            if len(strings) == len(bad) == len(targets) and len(strings) <= SHOWN
            else ""
        )
        kinds = {type(label) for label, _, _ in bad.values()}
        notes = ("" if bool not in kinds else " Booleans: write 0 and 1, deciding which is 1.") + (
            "" if float not in kinds else " Floats look like scores: threshold them into classes."
        )
        raise ValueError(
            f"{where}: labels must be {expected} (class numbers, e.g. 0 = negative, 1 = positive), "
            f"but found {_listing(bad)}. Map each value to a class number first{example}.{notes}"
        )
    result = [number for number in numbers_found if number is not None]
    if allowed is not None:
        outside = _tally(
            ((row, number) for row, number in enumerate(result, 1) if number not in allowed), where
        )
        if outside:
            raise ValueError(
                f"{where}: labels must be {expected}, but found {_listing(outside)}. Drop those "
                f"rows, or map each label to {expected} first."
            )
    return result


# --- describing values in messages ----------------------------------------------------------------


def _unit(lines: list[int] | None) -> str:
    return "row" if lines is None else "line"


def _at(index: int, lines: list[int] | None) -> str:
    """ "row 3" (counted from 1) or, given each row's file line, "line 4"."""
    return f"row {index + 1}" if lines is None else f"line {lines[index]}"


def _numbered(values: list, lines: list[int] | None) -> list[tuple[int, object]]:
    """(row or line, value) pairs, lowest first."""
    return list(enumerate(values, 1)) if lines is None else sorted(zip(lines, values), key=_first)


def _first(pair: tuple) -> int:
    return pair[0]


def _in_file_order(values: list, lines: list[int] | None, where: str) -> tuple:
    """``check_label_values``'s arguments, the values (and lines) sorted by line: the first problem
    named is the first in the file."""
    if lines is None:
        return values, where, None
    pairs = _numbered(values, lines)
    return [value for _, value in pairs], where, [line for line, _ in pairs]


def _as_int(value: object) -> int | None:
    """``value`` as an int if it is an integer (not a bool) or a string of digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        return int(value)
    return None


def _tally(rows: Iterable[tuple[int, object]], where: str) -> dict[tuple, list]:
    """(type, label) -> [label, count, first row] over (row, label) pairs: 1, 1.0, True differ.

    A label that is a list or an object (unhashable) is refused.
    """
    tally: dict[tuple, list] = {}
    for row, label in rows:
        try:
            seen = tally.setdefault((type(label), label), [label, 0, row])
        except TypeError:  # unhashable: a JSON array or object
            raise ValueError(
                f"{where}, row {row}: the label is a JSON {_json_kind(label)} ({_short(label)}); a "
                "label must be one number, string or boolean"
            ) from None
        seen[1] += 1
    return tally


def _listing(tally: dict[tuple, list], unit: str = "row") -> str:
    """ "'neg' (3 rows, first row 1), 'pos' (1 row, first row 2)", at most SHOWN values."""
    shown = [
        f"{label!r} ({count} row{'s' if count > 1 else ''}, first {unit} {first})"
        for label, count, first in list(tally.values())[:SHOWN]
    ]
    more = len(tally) - SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _typed(labels: Iterable) -> str:
    """Distinct labels grouped by type: "int (0, 1) and str ('pos')"."""
    groups: dict[str, list] = {}
    for label in labels:
        groups.setdefault(type(label).__name__, []).append(label)
    return " and ".join(
        f"{name} ({', '.join(map(repr, values[:SHOWN]))}{', ...' if len(values) > SHOWN else ''})"
        for name, values in groups.items()
    )


def _json_kind(value: object) -> str:
    """JSON's name for the kind of ``value``."""
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _short(value: object, width: int = 60) -> str:
    """``value`` as JSON, cut to ``width`` characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."
