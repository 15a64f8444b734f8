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
}  # fmt: skip


def sizes_for(notebook: str, profile: str) -> dict:
    """The sizes notebook ``notebook`` (e.g. "01") uses in ``profile``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if notebook not in SIZES:
        known = ", ".join(sorted(SIZES))
        raise ValueError(f"no sizes for notebook {notebook!r}; known notebooks: {known}")
    return dict(SIZES[notebook][profile])
