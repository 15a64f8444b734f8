"""Every notebook's knobs checked once, right after its parameters cell (``knobs.check("03", globals())``).

A knob of the wrong kind (``EPOCHS = 1.5``, ``MODELS = ("tiny")`` without its comma), out of range
(``BATCH_SIZE = 0``) or not among its choices (``TASK = "sst-2"``) stops with one line that names the
knob, its value and what it takes, instead of a traceback from deep inside torch several cells later.
"""

import importlib
import math
import numbers
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from helpers.config import ConfigError


class KnobError(ValueError):
    """A knob of the parameters cell that its notebook cannot use."""


@dataclass(frozen=True)
class Knob:
    """What one knob takes: ``kind`` "int", "float", "bool", "str", "path" (a string or a Path),
    "ints", "floats" or "strs" (a tuple, list or range of them, not empty); numbers from ``low`` to
    ``high``, or above ``above``; one of ``choices``; None when ``none``."""

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    none: bool = False
    above: float | None = None


def _number(value, kind: str) -> bool:
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return whole if kind == "int" else whole or isinstance(value, numbers.Real)


def _describe(knob: Knob) -> str:
    what = {"int": "a whole number", "float": "a finite number", "bool": "True or False",
            "str": "a non-empty string", "path": "a file or folder name (a string or a Path)",
            "ints": "a tuple of whole numbers", "floats": "a tuple of finite numbers",
            "strs": "a tuple of non-empty strings"}[knob.kind]  # fmt: skip
    if knob.choices is not None:
        what = "one of " + ", ".join(map(repr, knob.choices))
    if knob.low is not None and knob.high is not None:
        what += f" from {knob.low} to {knob.high}"
    elif knob.low is not None:
        what += f" ≥ {knob.low}"
    if knob.above is not None:
        what += f" > {knob.above}"
    return what + (", or None" if knob.none else "")


def _fits(value, knob: Knob) -> bool:
    if value is None:
        return knob.none
    if knob.kind in ("ints", "floats", "strs"):
        single = Knob(knob.kind[:-1], knob.low, knob.high, knob.choices, above=knob.above)
        return _sequence(value) and len(value) > 0 and all(_fits(v, single) for v in value)
    if knob.kind == "bool":
        return isinstance(value, bool)
    if knob.kind == "path":
        return isinstance(value, str | os.PathLike) and str(value) != ""
    if knob.kind == "str":
        return (
            isinstance(value, str)
            and value != ""
            and (knob.choices is None or value in knob.choices)
        )
    if not _number(value, knob.kind) or not math.isfinite(value):
        return False
    if knob.choices is not None and value not in knob.choices:
        return False
    return ((knob.low is None or value >= knob.low) and (knob.high is None or value <= knob.high)
            and (knob.above is None or value > knob.above))  # fmt: skip


def _sequence(value) -> bool:
    """A tuple, list, range or array: not text, not a dict."""
    return (
        hasattr(value, "__len__")
        and hasattr(value, "__iter__")
        and not isinstance(value, str | bytes | dict)
    )


def _pair_of_keys(value) -> str | None:
    ok = (_sequence(value) and len(value) == 2 and all(_number(v, "int") for v in value)
          and all(1 <= v <= 4 for v in value))  # fmt: skip
    return None if ok else "two key numbers from 1 to 4, e.g. (1, 3)"


def _variants(value) -> str | None:
    from helpers.gpt.attention import MASKS, VARIANTS  # notebook 07's lesson: loaded when checked

    ok = (
        _sequence(value)
        and len(value) > 0
        and all(_sequence(v) and len(v) == 2 and v[0] in VARIANTS and v[1] in MASKS for v in value)
    )
    return None if ok else (f"(attention, mask) pairs, attention one of {', '.join(VARIANTS)} and "
                            f"mask one of {', '.join(MASKS)}, e.g. (('dot', 'inf'),)")  # fmt: skip


def _lrs(value) -> str | None:
    rates = Knob("floats", high=1.0, above=0)
    ok = (isinstance(value, dict) and set(value) == {"pretrain", "finetune"}
          and all(v == () or _fits(v, rates) for v in value.values()) and any(value.values()))  # fmt: skip
    return None if ok else ('a dict {"pretrain": (rates, ...), "finetune": (rates, ...)}, rates > 0 '
                            "(one of them may be (), to leave that option out)")  # fmt: skip


def _sampling(value) -> str | None:
    known = {"temperature": Knob("float", 0, 100), "top_k": Knob("int", 1, None, none=True),
             "top_p": Knob("float", high=1, none=True, above=0)}  # fmt: skip
    ok = isinstance(value, dict) and all(
        k in known and _fits(v, known[k]) for k, v in value.items()
    )
    return None if ok else ("a dict with temperature (≥ 0), top_k (≥ 1 or None) and top_p (above 0, at most 1, "
                            "or None), e.g. dict(temperature=0.8, top_k=50, top_p=0.95)")  # fmt: skip


def _sentence(value) -> str | None:
    ok = isinstance(value, str) and 0 < len(value.split()) <= 100
    return (
        None
        if ok
        else "a sentence of 1 to 100 words (the heatmaps draw a row and a column a token)"
    )


def _words(value) -> str | None:
    from helpers.tokenization.bpe import is_word

    ok = (
        isinstance(value, list | tuple)
        and 0 < len(value) <= 20
        and all(isinstance(word, str) and len(word) <= 30 and is_word(word) for word in value)
    )
    return (
        None
        if ok
        else "1 to 20 single words of up to 30 characters (BPE cuts text into words first)"
    )


def _fields_of(config: str, **others) -> Callable:
    """A dict knob that is the fields of the config class ``config`` ("module.Class"; imported when a
    value is checked, so that one notebook's check loads no other notebook's lesson), with
    ``others``, which the notebook adds."""

    def takes(value: object) -> str | None:
        module, name = config.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        try:
            cls(**value, **others)
        except (
            ConfigError,
            TypeError,
            ValueError,
        ) as err:  # a field it lacks, or a value it refuses
            return f"a dict of {cls.__name__}'s fields, as it accepts them ({err})"
        return None

    return takes


def _models_with_t5(value) -> str | None:
    t5 = re.compile(r"(^|[/-])t5([-_]|$)", re.IGNORECASE)  # t5-small, google/flan-t5-base; not mt5
    ok = _fits(value, Knob("strs")) and any(t5.search(m) for m in value)
    return (
        None
        if ok
        else 'a tuple of model names with a T5 among them (part 6 reads the first), e.g. ("distilbert-base-uncased", "t5-small")'
    )


POSITIVE_INT, POSITIVE_FLOAT = Knob("int", low=1), Knob("float", above=0)
SPLITS = ("train", "validation", "test")

GPT_RUN, MLM_RUN = "helpers.gpt.runs.GPTRunConfig", "helpers.mlm.runs.MlmConfig"  # dict knobs

# Each notebook's knobs; a Callable returns what the knob takes when the value does not fit.
KNOBS: dict[str, dict[str, Knob | Callable]] = {
    "01": {"SWEEP_POINTS": Knob("int", 2, 10_000), "SELECTION_STRENGTH": Knob("float", 0, 20),
           "SELECTED_KEY": Knob("int", 1, 4), "COPY_STRENGTH": Knob("float", 0, 20),
           "AVERAGING_STRENGTH": Knob("float", 0, 20), "AVERAGED_KEYS": _pair_of_keys,
           "EXPLORER_SCALE": Knob("float", 0, 5)},
    "02": {"LM_STEPS": POSITIVE_INT, "SAMPLE_CHARS": Knob("int", 1, 100_000),
           "LM_SAMPLES": Knob("int", 1, 100), "HEADS": POSITIVE_INT, "NORM_STEPS": POSITIVE_INT,
           "NORM_SEEDS": POSITIVE_INT, "NORM_DEPTH": POSITIVE_INT, "NORM_LR": POSITIVE_FLOAT,
           "SENTENCE": _sentence, "TIMING_TOKENS": Knob("ints", 1, 8192),
           "LOOP_MAX_TOKENS": POSITIVE_INT, "BLOCK_REPEATS": POSITIVE_INT},
    "03": {"CONFIG": Knob("str", choices=("course", "best")), "EPOCHS": Knob("int", 1, none=True),
           "MAX_LEN": Knob("int", 1, 4096, none=True), "USE_MY_MODULES": Knob("bool"),
           "REVIEW_INDEX": Knob("int", 0), "SHOW_MISTAKES": Knob("int", 0)},
    "04": {"MODEL": Knob("path"), "TASK": Knob("str", choices=("sst2", "boolq")), "LR": POSITIVE_FLOAT,
           "EPOCHS": POSITIVE_INT, "BATCH_SIZE": POSITIVE_INT, "MAX_LENGTH": Knob("int", 1, 512),
           "SANITY_LR": POSITIVE_FLOAT, "CURVE_EPOCHS": POSITIVE_INT, "SEEDS": POSITIVE_INT,
           "HOMEWORK": Knob("bool"), "GRID_LRS": Knob("floats", above=0), "GRID_EPOCHS": Knob("ints", 1),
           "RANDOM_SEARCH": Knob("int", 0), "COMPARE": Knob("strs")},
    "05": {"USE_MY_MODULES": Knob("bool"), "MODEL": Knob("path"), "TRAIN_MODEL": Knob("path"),
           "MAX_TRAIN": Knob("int", 1, none=True), "MAX_EVAL": Knob("int", 1, none=True),
           "MAX_LEN": Knob("int", 1, 512), "EPOCHS": POSITIVE_INT, "BATCH_SIZE": POSITIVE_INT,
           "DROPOUTS": Knob("floats", 0, 0.99), "LRS": _lrs},
    "06": {"BPE_LINES": POSITIVE_INT, "BPE_MERGES": POSITIVE_INT, "SLIDER_WORDS": _words,
           "VOCAB_SIZE": POSITIVE_INT, "WIKITEXT_SPLIT": Knob("str", choices=SPLITS),
           "WIKITEXT_FILE": Knob("path", none=True), "MLM": _fields_of(MLM_RUN, seed=0),
           "SAVE_DIR": Knob("path", none=True), "SST_TRAIN": POSITIVE_INT, "SST_EVAL": Knob("int", 1, none=True),
           "EPOCHS": POSITIVE_INT, "SEEDS": POSITIVE_INT, "MINILM_SEEDS": Knob("int", 0),
           "SMALL_LR": POSITIVE_FLOAT, "MINILM_LR": POSITIVE_FLOAT, "DEMO_SEED": Knob("int"),
           "WHOLE_WORD_RATE": Knob("float", 0, 1), "RESCALE_STD": POSITIVE_FLOAT},
    "07": {"STUDY": _fields_of(GPT_RUN), "WORD": _fields_of(GPT_RUN), "VARIANTS": _variants, "WIKITEXT_SPLIT": Knob("str", choices=SPLITS),
           "WIKITEXT_FILE": Knob("path", none=True), "SAMPLE_TOKENS": Knob("int", 1, 100_000),
           "PROMPT": Knob("str"), "SENTENCES": Knob("strs")},
    "08": {"MODEL": Knob("path"), "PREFIXES": Knob("strs"), "SAMPLES": POSITIVE_INT,
           "TOKENS": Knob("int", 1, 10_000), "SEED": Knob("int"), "SAMPLING": _sampling,
           "LENGTHS": Knob("ints", 1, 1024), "GENERATE_TOKENS": Knob("int", 1, 10_000)},
    "09": {"PROCESSES": Knob("ints", 1, 8), "GPT_ITERS": POSITIVE_INT, "ACCUMULATE": POSITIVE_INT,
           "MODELS": _models_with_t5, "LRS": Knob("floats", above=0), "EPOCHS": Knob("ints", 1),
           "BATCH_SIZE": POSITIVE_INT, "RUN_TASKS": Knob("bool")},
}  # fmt: skip


def _processes_divide(values: dict) -> str | None:
    processes, accumulate = values.get("PROCESSES", ()), values.get("ACCUMULATE", 1)
    if bad := [p for p in processes if accumulate % p]:
        return (f"PROCESSES = {processes!r} with ACCUMULATE = {accumulate!r} in the parameters cell: "
                f"each process count must divide ACCUMULATE (the batches of one step are split "
                f"evenly over the processes); {bad[0]} does not")  # fmt: skip
    return None


# Knobs that must agree with each other: a message when they do not.
TOGETHER: dict[str, list[Callable[[dict], str | None]]] = {"09": [_processes_divide]}


def check(notebook: str, values: dict) -> None:
    """A KnobError naming the first knob of ``notebook`` in ``values`` (the notebook's globals) that
    its spec does not take, then any knobs that disagree; knobs not set yet are skipped."""
    for name, spec in KNOBS[notebook].items():
        if name not in values:
            continue
        value = values[name]
        if isinstance(spec, Knob):
            takes = None if _fits(value, spec) else _describe(spec)
        else:
            takes = spec(value)
        if takes is not None:
            raise KnobError(f"{name} = {value!r} in the parameters cell: it takes {takes}")
    for disagree in TOGETHER.get(notebook, []):
        if message := disagree(values):
            raise KnobError(message)


def check_index(name: str, value: int, count: int, what: str) -> None:
    """A KnobError when the index knob ``name`` does not pick one of ``count`` ``what`` (how many
    there are depends on the profile and the data, so it is checked once they are loaded)."""
    if not 0 <= value < count:
        raise KnobError(f"{name} = {value!r} in the parameters cell: it takes a whole number from 0 "
                        f"to {count - 1} (this run has {count:,} {what})")  # fmt: skip
