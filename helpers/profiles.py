"""The one place that decides how big each notebook runs.

Four profiles:
- ``class``: a GPU runtime (Colab's T4 and up), sized so each notebook fits a 75-minute class (a
  target: not measured on a T4).
- ``full``:  a GPU, whole data sets (notebook 06 keeps its 4,000 labelled phrases), every experiment
  of the course (homework; HELPERS_PROFILE=full).
- ``quick``: a laptop CPU, subsets and smaller models, 6 s to about 23 minutes a notebook (README's
  table, on a 2-core CPU).
- ``smoke``: the test suite, offline and tiny, seconds a notebook.

Each notebook's sizes are a typed config (``Sizes01`` ...); a notebook reads them as ``lab.sizes.lm_steps``.
``sizes_for("02", profile)`` picks them; ``helpers.setup`` does it for you.
"""

from helpers.config import Config, ConfigError

PROFILES: tuple[str, ...] = ("class", "full", "quick", "smoke")

PROFILE_NOTES: dict[str, str] = {
    "class": "GPU: sized for a 75-minute class (a target, not measured on a T4); HELPERS_PROFILE=full for whole data sets and the homework runs",
    "full": "GPU: whole data sets, every experiment, the homework runs included",
    "quick": "CPU: smaller data and models, minutes per notebook; on a GPU, class or full",
    "smoke": "tests: offline, tiny, seconds per notebook",
}


class Sizes01(Config):
    sweep_points: int  # resolution of the loss curve in part b


class Sizes02(Config):
    synthetic: bool  # offline stand-in text (smoke), else Tiny Shakespeare
    lm_steps: int  # training steps of each masking-lesson language model
    timing_tokens: tuple[int, ...]  # sequence lengths of the speed plot
    loop_max_tokens: int  # the loop version is timed only up to here
    block_repeats: int  # timed repeats of the from-scratch vs torch block comparison
    norm_steps: int  # training steps of each run of the post-LN vs pre-LN experiment
    norm_seeds: int  # seeds per setting of that experiment (the spread in its plot)
    norm_depth: int  # blocks in its character model


class Sizes03(Config):
    synthetic: bool  # offline stand-in data
    max_train: int | None  # training reviews used (None = all 25k)
    max_test: int | None  # test reviews used (None = all 25k)
    glove_dim: int  # GloVe size: 50 or 100 (16 for the synthetic vectors)
    epochs: int | None  # overrides the run config's (None = keep it)
    max_len: int | None  # overrides the run config's (None = keep it)


class Sizes04(Config):
    synthetic: bool  # offline stand-in data
    model: str  # the model most cells fine-tune ("minilm" = all-MiniLM-L6-v2, "tiny" = 2-layer random BERT)
    max_train: int | None  # training examples used (None = all)
    max_eval: int | None  # dev and test examples used (None = all: 872 each for SST-2)
    lr: float  # the main run's learning rate
    epochs: int  # the main run's
    curve_epochs: int  # the long run that shows overfitting
    sanity_lr: float  # lr of the 10-example sanity check (a random tiny BERT needs more)
    search_train: int  # training examples per hyperparameter-search run
    grid_lrs: tuple[float, ...]  # the course's grid
    grid_epochs: tuple[int, ...]
    compare: tuple[str, ...]  # the models compared
    seeds: int  # seeds of the final run: its figures are their mean and spread
    homework: bool  # run the grid search and the model comparison (the cost is printed first)


class Sizes05(Config):
    model: str  # the checkpoint part 3's BERT loads ("minilm" = all-MiniLM-L6-v2)
    synthetic: bool  # part 6: stand-in sentences (offline), else minBERT's SST-5 and CFIMDB files
    train_model: str  # part 6: the BERT trained frozen and fine-tuned (a name, folder or hub id)
    max_train: int | None  # part 6: training sentences per data set (None = all)
    max_eval: int | None  # part 6: dev and test sentences per data set (None = all)
    max_len: int  # part 6: tokens per sentence (CFIMDB's reviews are cut here)
    epochs: int  # part 6: each run's epochs
    batch_size: int
    dropouts: tuple[float, ...]  # part 6's grid: hidden dropout values
    lrs: dict  # part 6's grid: learning rates per option: {"pretrain": (...), "finetune": (...)}


class Sizes06(Config):
    synthetic: bool  # offline stand-in text and sentences (smoke), else Tiny Shakespeare, WikiText-2, SST-2
    bpe_lines: int  # Tiny Shakespeare lines for part 1's from-scratch BPE against tokenizers'
    bpe_merges: int  # merges learnt there
    vocab_size: int  # part 2's WordPiece and BPE vocabularies
    wikitext_split: str  # part 4 pretrains on this WikiText-2 split (its last 10% held out)
    mlm: dict  # part 4: helpers.mlm.MlmConfig's fields (the small BERT, the tokenizer, the budget)
    sst_train: int  # part 5: SST-2 training phrases
    sst_eval: int | None  # part 5: dev and test sentences (None: all, 872 each)
    finetune_epochs: int
    seeds: int  # part 5: seeds per small model (pretrained and random twin)
    minilm_seeds: int  # part 5: seeds for MiniLM (0: leave it out)


class Sizes07(Config):
    synthetic: bool  # offline stand-in text (smoke), else Tiny Shakespeare and WikiText-2
    study: dict  # parts 3-5: helpers.gpt.GPTRunConfig's fields, the same for every variant
    variants: tuple[tuple[str, str], ...]  # (attention, mask) pairs trained in the study
    word: dict  # part 7: the word-level run's GPTRunConfig fields
    wikitext_split: str  # part 7 trains on this WikiText-2 split (its last 10% of lines: dev)
    sample_tokens: int  # characters (or words) per sample shown


class Sizes08(Config):
    model: str  # GPT-2 checkpoint: "gpt2", "distilgpt2" (hub) or "tiny" (the offline stand-in)
    tokens: int  # new tokens per sample in the prefix table
    lengths: tuple[int, ...]  # sequence lengths at which the KV cache is timed
    generate_tokens: int  # tokens generated for the tokens/s comparison


class Sizes09(Config):
    gpt_iters: int  # part 3: optimizer steps of the GPT run made in 1 and in 2 processes
    synthetic: bool  # offline stand-in rows (smoke), else SST-2 (hub, or ../shared's copy)
    max_train: int | None  # training rows each array task fine-tunes on
    max_eval: int | None  # dev and test rows
    models: tuple[str, ...]  # part 4's model list (with T5); the grid runs on the first
    lrs: tuple[float, ...]  # part 4's grid of learning rates
    epochs: tuple[int, ...]  # and of epochs
    batch_size: int


# Notebook 06's pretraining, as measured with python -m helpers.mlm (README): a small BERT, ~10 CPU minutes
# (`quick` fixes the 26 epochs that budget gave on one thread, so a busy laptop still gets all of them).
# Batches of 8: four times the steps of 32 for the same tokens, which is what gets it past predicting
# only frequent words (held-out perplexity 581 -> 70 in 26 epochs, seed 0; with batches of 32: 585 -> 213).
MLM_06 = dict(layers=2, hidden=128, heads=4, vocab_size=4000, seq_len=64, batch_size=8, lr=1e-3, minutes=9.5)  # fmt: skip

# Notebook 07's study: every attention variant with the right mask, and dot-product with the leaky one.
VARIANTS_07 = (("dot", "inf"), ("additive", "inf"), ("shared-qk", "inf"), ("shared-qkv", "inf"), ("dot", "zero"))  # fmt: skip

# One notebook's sizes: what ``sizes_for`` returns.
Sizes = Sizes01 | Sizes02 | Sizes03 | Sizes04 | Sizes05 | Sizes06 | Sizes07 | Sizes08 | Sizes09

SIZES: dict[str, dict[str, Sizes]] = {
    "01": {
        "full": Sizes01(sweep_points=401),
        "quick": Sizes01(sweep_points=201),
        "smoke": Sizes01(sweep_points=41),
    },
    "02": {
        "full": Sizes02(synthetic=False, lm_steps=1500, timing_tokens=(16, 32, 64, 128, 256, 512, 1024), loop_max_tokens=128,
                        block_repeats=30, norm_steps=600, norm_seeds=3, norm_depth=6),
        "quick": Sizes02(synthetic=False, lm_steps=400, timing_tokens=(16, 32, 64, 128, 256, 512), loop_max_tokens=64,
                         block_repeats=10, norm_steps=300, norm_seeds=1, norm_depth=6),
        "smoke": Sizes02(synthetic=True, lm_steps=20, timing_tokens=(8, 16), loop_max_tokens=16, block_repeats=2,
                         norm_steps=10, norm_seeds=1, norm_depth=2),
    },
    "03": {
        "full": Sizes03(synthetic=False, max_train=None, max_test=None, glove_dim=100, epochs=None, max_len=None),
        "quick": Sizes03(synthetic=False, max_train=4000, max_test=2000, glove_dim=50, epochs=None, max_len=None),
        "smoke": Sizes03(synthetic=True, max_train=300, max_test=100, glove_dim=16, epochs=2, max_len=64),
    },
    "04": {
        "class": Sizes04(synthetic=False, model="distilbert-base-uncased", max_train=4000, max_eval=None, lr=5e-5,
                         epochs=3, curve_epochs=4, sanity_lr=1e-4, search_train=4000, grid_lrs=(2e-5, 5e-5, 1e-4),
                         grid_epochs=(2, 3), compare=("distilbert-base-uncased", "bert-base-uncased", "roberta-base"),
                         seeds=3, homework=False),
        "full": Sizes04(synthetic=False, model="distilbert-base-uncased", max_train=None, max_eval=None, lr=5e-5,
                        epochs=3, curve_epochs=10, sanity_lr=1e-4, search_train=8000, grid_lrs=(1e-4, 5e-4, 1e-3, 2e-5, 3e-5, 5e-5),
                        grid_epochs=(5, 7, 9), compare=("distilbert-base-uncased", "bert-base-uncased",
                        "bert-large-uncased", "bert-large-cased", "roberta-base", "roberta-large", "t5-small"), seeds=3,
                        homework=True),
        "quick": Sizes04(synthetic=False, model="minilm", max_train=1000, max_eval=400, lr=1e-4, epochs=2,
                         curve_epochs=3, sanity_lr=1e-4, search_train=500, grid_lrs=(1e-4, 5e-5), grid_epochs=(1, 2),
                         compare=("minilm", "distilbert-base-uncased"), seeds=3, homework=False),
        "smoke": Sizes04(synthetic=True, model="tiny", max_train=32, max_eval=16, lr=1e-3, epochs=1, curve_epochs=2,
                         sanity_lr=3e-3, search_train=16, grid_lrs=(1e-3,), grid_epochs=(1,),
                         compare=("tiny", "bert-base-uncased"),  # offline: the second fails, as shown
                         seeds=2, homework=True),  # a tiny homework: the tests run its code
    },
    "05": {
        "class": Sizes05(model="minilm", synthetic=False, train_model="minilm", max_train=2000, max_eval=500,
                         max_len=128, epochs=4, batch_size=16, dropouts=(0.1, 0.3),
                         lrs={"pretrain": (1e-3, 1e-2), "finetune": (2e-5, 5e-5, 1e-4)}),
        "full": Sizes05(model="minilm", synthetic=False, train_model="bert-base-uncased", max_train=None,
                        max_eval=None, max_len=256, epochs=10, batch_size=8, dropouts=(0.1, 0.3),
                        lrs={"pretrain": (1e-3, 1e-2), "finetune": (1e-5, 2e-5, 5e-5)}),
        "quick": Sizes05(model="minilm", synthetic=False, train_model="minilm", max_train=800, max_eval=200,
                         max_len=64, epochs=3, batch_size=16, dropouts=(0.1,),
                         lrs={"pretrain": (1e-3, 1e-2), "finetune": (1e-4,)}),
        "smoke": Sizes05(model="minilm", synthetic=True, train_model="minilm", max_train=24, max_eval=12,
                         max_len=16, epochs=1, batch_size=8, dropouts=(0.3,),
                         lrs={"pretrain": (1e-3,), "finetune": (1e-5,)}),
    },
    "06": {
        "class": Sizes06(synthetic=False, bpe_lines=2000, bpe_merges=300, vocab_size=8000, wikitext_split="train",
                         mlm=MLM_06, sst_train=4000, sst_eval=None, finetune_epochs=3, seeds=3, minilm_seeds=3),
        "full": Sizes06(synthetic=False, bpe_lines=2000, bpe_merges=300, vocab_size=8000, wikitext_split="train",
                        mlm={**MLM_06, "layers": 4, "hidden": 256, "heads": 4, "minutes": 30.0}, sst_train=4000,
                        sst_eval=None, finetune_epochs=3, seeds=3, minilm_seeds=3),
        "quick": Sizes06(synthetic=False, bpe_lines=1000, bpe_merges=200, vocab_size=8000, wikitext_split="validation",
                         mlm={**MLM_06, "minutes": None, "epochs": 26}, sst_train=4000, sst_eval=None, finetune_epochs=3, seeds=2,
                         minilm_seeds=0),
        "smoke": Sizes06(synthetic=True, bpe_lines=60, bpe_merges=30, vocab_size=120, wikitext_split="validation",
                         mlm=dict(layers=1, hidden=16, heads=2, vocab_size=120, seq_len=16, batch_size=8, epochs=2),
                         sst_train=24, sst_eval=12, finetune_epochs=1, seeds=1, minilm_seeds=1),
    },
    "07": {
        "class": Sizes07(synthetic=False, study=dict(layers=4, heads=4, embd=256, block_size=128, batch_size=64, iters=2000, lr=1e-3),
                         variants=VARIANTS_07, word=dict(level="word", layers=4, heads=4, embd=256, block_size=64,
                         batch_size=64, iters=2000, lr=1e-3, dropout=0.1), wikitext_split="train", sample_tokens=300),
        "full": Sizes07(synthetic=False, study=dict(layers=6, heads=6, embd=384, block_size=256, batch_size=64, iters=5000, lr=1e-3,
                        dropout=0.2), variants=VARIANTS_07, word=dict(level="word", layers=6, heads=6, embd=384, block_size=128,
                        batch_size=64, iters=5000, lr=1e-3, dropout=0.2), wikitext_split="train", sample_tokens=500),
        "quick": Sizes07(synthetic=False, study=dict(layers=4, heads=4, embd=128, block_size=64, batch_size=32, iters=600, lr=2e-3),
                         variants=VARIANTS_07, word=dict(level="word", layers=2, heads=4, embd=128, block_size=32, batch_size=32,
                         iters=600, lr=2e-3, dropout=0.1), wikitext_split="validation", sample_tokens=300),
        "smoke": Sizes07(synthetic=True, study=dict(layers=2, heads=2, embd=32, block_size=32, batch_size=16, iters=30, lr=3e-3,
                         evals=3, eval_batches=2), variants=VARIANTS_07, word=dict(level="word", layers=1, heads=2, embd=32,
                         block_size=16, batch_size=16, iters=30, lr=3e-3, evals=3, eval_batches=2),
                         wikitext_split="validation", sample_tokens=80),
    },
    "08": {
        "class": Sizes08(model="gpt2", tokens=30, lengths=(16, 64, 128, 256, 512, 768, 1000), generate_tokens=200),
        "full": Sizes08(model="gpt2-medium", tokens=40, lengths=(16, 64, 128, 256, 512, 768, 1000), generate_tokens=300),
        "quick": Sizes08(model="distilgpt2", tokens=20, lengths=(16, 64, 128, 256, 512), generate_tokens=100),
        "smoke": Sizes08(model="tiny", tokens=8, lengths=(8, 32, 96), generate_tokens=20),
    },
    "09": {
        "class": Sizes09(gpt_iters=300, synthetic=False, max_train=2000, max_eval=None,
                         models=("distilbert-base-uncased", "t5-small"), lrs=(5e-5, 1e-4, 3e-4), epochs=(2,), batch_size=32),
        "full": Sizes09(gpt_iters=600, synthetic=False, max_train=None, max_eval=None,
                        models=("distilbert-base-uncased", "bert-base-uncased", "roberta-base", "t5-small"),
                        lrs=(2e-5, 5e-5, 1e-4, 3e-4), epochs=(2, 3), batch_size=32),
        "quick": Sizes09(gpt_iters=200, synthetic=False, max_train=500, max_eval=200, models=("minilm", "t5-small"),
                         lrs=(1e-4, 3e-4), epochs=(1,), batch_size=16),
        "smoke": Sizes09(gpt_iters=8, synthetic=True, max_train=32, max_eval=16, models=("tiny", "t5-tiny"),
                         lrs=(1e-3,), epochs=(1,), batch_size=16),
    },
}  # fmt: skip
for _notebook in ("01", "02", "03"):  # a class runs these at their full sizes: minutes on a GPU
    SIZES[_notebook].setdefault("class", SIZES[_notebook]["full"])


def sizes_for(notebook: str, profile: str) -> Sizes:
    """The sizes notebook ``notebook`` (e.g. "01") uses in ``profile``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if notebook not in SIZES:
        known = ", ".join(sorted(SIZES))
        raise ValueError(f"no sizes for notebook {notebook!r}; known notebooks: {known}")
    return SIZES[notebook][profile]


def made_to_order(**counts: int | None) -> None:
    """A ConfigError naming the first of ``counts`` that is None ("all") where the data is synthetic:
    made-up data is generated to a count, it has no "all"."""
    for name, count in counts.items():
        if count is None:
            raise ConfigError(
                f"{name} is None (all rows), but the smoke profile's synthetic examples are made to "
                "a count: give a number"
            )
