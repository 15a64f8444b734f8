"""Notebook 02, part 5: BERT's add & norm (post-LN) against pre-LN, measured. The same deep
character model, trained at a high learning rate with and without warm-up, one run per setting and
seed (the one training loop does the work)."""

from tqdm.auto import tqdm

from helpers.masking import STYLES, train_char_lm

SETTINGS = {  # label -> (norm, warm-up fraction)
    "post-LN, no warm-up": ("post", 0.0),
    "post-LN, 30% warm-up": ("post", 0.3),
    "pre-LN, no warm-up": ("pre", 0.0),
    "pre-LN, 30% warm-up": ("pre", 0.3),
}


def warmup_experiment(
    text: str,
    steps: int,
    depth: int = 6,
    seeds: int = 1,
    lr: float = 1e-2,
    device: str = "cpu",
) -> dict[str, list[dict]]:
    """{setting: one run per seed}; each run holds its train and validation losses (nats/char).
    No gradient clipping, so nothing hides what the normalisation does."""
    runs: dict[str, list[dict]] = {label: [] for label in SETTINGS}
    with tqdm(total=len(SETTINGS) * seeds, desc="post-LN vs pre-LN") as bar:
        for label, (norm, warmup) in SETTINGS.items():
            for seed in range(seeds):
                run = train_char_lm(text, STYLES[0], steps, lr=lr, seed=seed, device=device,
                                    progress=False, depth=depth, norm=norm, warmup=warmup, clip=None)  # fmt: skip
                runs[label].append({key: run[key] for key in ("step", "train", "valid")})
                bar.update()
    return runs


def final_losses(runs: dict[str, list[dict]]) -> dict[str, list[float]]:
    """{setting: the last validation loss of each seed's run}."""
    return {label: [run["valid"][-1] for run in seeded] for label, seeded in runs.items()}
