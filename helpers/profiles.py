"""The one place that decides how big each notebook runs.

Three profiles:
- ``full``:  a GPU runtime (Colab), whole data sets, the course's settings.
- ``quick``: a laptop CPU, subsets and smaller models, a few minutes a notebook.
- ``smoke``: the test suite, offline and tiny, seconds a notebook.

A notebook asks for its sizes with ``sizes_for("01", profile)``; ``helpers.setup`` does it for you.
"""

PROFILES: tuple[str, ...] = ("full", "quick", "smoke")

PROFILE_NOTES: dict[str, str] = {
    "full": "GPU: whole data sets, the course's settings",
    "quick": "CPU: smaller data and models, minutes per notebook; HELPERS_PROFILE=full for everything",
    "smoke": "tests: offline, tiny, seconds per notebook",
}

# notebook -> profile -> knob -> value. Every knob a profile changes lives here.
SIZES: dict[str, dict[str, dict]] = {
    "01": {
        # sweep_points: resolution of the loss curve in part b.
        "full": {"sweep_points": 401},
        "quick": {"sweep_points": 201},
        "smoke": {"sweep_points": 41},
    },
    "02": {
        # lm_steps: training steps of each masking-lesson language model;
        # timing_tokens / loop_max_tokens: sequence lengths of the speed plot (loops only up to the max);
        # block_repeats: timed repeats of the from-scratch vs torch block comparison.
        "full": {
            "lm_steps": 1500,
            "timing_tokens": [16, 32, 64, 128, 256, 512, 1024],
            "loop_max_tokens": 128,
            "block_repeats": 30,
        },
        "quick": {
            "lm_steps": 400,
            "timing_tokens": [16, 32, 64, 128, 256, 512],
            "loop_max_tokens": 64,
            "block_repeats": 10,
        },
        "smoke": {
            "lm_steps": 20,
            "timing_tokens": [8, 16],
            "loop_max_tokens": 16,
            "block_repeats": 2,
        },
    },
    "03": {
        # synthetic: offline stand-in data; max_train / max_test: reviews used (None = all 25k);
        # glove_dim: GloVe size; epochs / max_len: override the config's (None = keep it).
        "full": {"synthetic": False, "max_train": None, "max_test": None, "glove_dim": 100, "epochs": None,
                 "max_len": None},
        "quick": {"synthetic": False, "max_train": 4000, "max_test": 2000, "glove_dim": 50, "epochs": None,
                  "max_len": None},
        "smoke": {"synthetic": True, "max_train": 300, "max_test": 100, "glove_dim": 16, "epochs": 2,
                  "max_len": 64},
    },
    "04": {
        # synthetic: offline stand-in data; model: the one most cells fine-tune ("minilm" = all-MiniLM-L6-v2,
        # "tiny" = a 2-layer random BERT); max_train / max_eval: examples used (None = all);
        # epochs: the main run's; curve_epochs: the long run that shows overfitting; search_train: training
        # examples per hyperparameter-search run; grid_*: the course's grid; compare: the models compared.
        "full": {"synthetic": False, "model": "distilbert-base-uncased", "max_train": None, "max_eval": None,
                 "epochs": 3, "curve_epochs": 10, "search_train": 8000, "grid_lrs": [1e-4, 5e-4, 1e-3, 2e-5, 3e-5, 5e-5],
                 "grid_epochs": [5, 7, 9], "compare": ["distilbert-base-uncased", "bert-base-uncased",
                 "bert-large-uncased", "bert-large-cased", "roberta-base", "roberta-large"]},
        "quick": {"synthetic": False, "model": "minilm", "max_train": 1000, "max_eval": 400, "epochs": 2,
                  "curve_epochs": 3, "search_train": 1000, "grid_lrs": [1e-4, 5e-5], "grid_epochs": [1, 2],
                  "compare": ["minilm", "distilbert-base-uncased"]},
        "smoke": {"synthetic": True, "model": "minilm", "max_train": 48, "max_eval": 24, "epochs": 2,
                  "curve_epochs": 2, "search_train": 24, "grid_lrs": [1e-4, 1e-3], "grid_epochs": [1],
                  "compare": ["tiny", "minilm", "bert-base-uncased"]},
    },
}  # fmt: skip


def sizes_for(notebook: str, profile: str) -> dict:
    """The sizes notebook ``notebook`` (e.g. "01") uses in ``profile``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if notebook not in SIZES:
        known = ", ".join(sorted(SIZES))
        raise ValueError(f"no sizes for notebook {notebook!r}; known notebooks: {known}")
    return dict(SIZES[notebook][profile])
