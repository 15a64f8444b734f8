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
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "01": {
        # checker_trials: random inputs each checker tries; sweep_points: resolution of line plots.
        "full": {"checker_trials": 50, "sweep_points": 401},
        "quick": {"checker_trials": 20, "sweep_points": 201},
        "smoke": {"checker_trials": 5, "sweep_points": 41},
    },
}


def sizes_for(notebook: str, profile: str) -> dict[str, int]:
    """The sizes notebook ``notebook`` (e.g. "01") uses in ``profile``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if notebook not in SIZES:
        known = ", ".join(sorted(SIZES))
        raise ValueError(f"no sizes for notebook {notebook!r}; known notebooks: {known}")
    return dict(SIZES[notebook][profile])
