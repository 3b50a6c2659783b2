"""``rnnkit plot``: the training curves of any run folder (its ``metrics.jsonl``) as a PNG."""

from __future__ import annotations

from pathlib import Path

from rnnkit.errors import CheckpointError, UsageError
from rnnkit.train.checkpoint import ENSEMBLE_FILE, METRICS_FILE, read_metrics
from rnnkit.train.rundir import no_symlink

LOSSES = ("train_loss", "val_loss")


def plot_curves(run_dir: Path, out: Path) -> list[str]:
    """Losses against step on the left; other validation metrics (F1, accuracy...) on the right.

    Returns the names of the curves drawn.
    """
    try:
        import matplotlib
    except ImportError:
        raise UsageError("rnnkit plot needs matplotlib: pip install 'rnnkit[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not (Path(run_dir) / METRICS_FILE).is_file():
        if (Path(run_dir) / ENSEMBLE_FILE).is_file():
            raise CheckpointError(
                f"{run_dir}: an ensemble; each member has its own curves: rnnkit plot {run_dir}/member-1"
            )
        raise CheckpointError(f"{run_dir}: no metrics.jsonl (not a run folder, or it never logged a step)")
    rows = read_metrics(run_dir)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        for key, value in row.items():
            if (key in LOSSES or key.startswith("val_")) and isinstance(value, int | float):
                steps, values = series.setdefault(key, ([], []))
                steps.append(row["step"])
                values.append(value)
    if not series:
        raise CheckpointError(f"{run_dir}: metrics.jsonl has no losses to plot yet")
    others = [k for k in series if k not in LOSSES]
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(11 if others else 6.5, 4), squeeze=False)
    left = axes[0][0]
    for key in LOSSES:
        if key in series:
            left.plot(*series[key], label=key.replace("_", " "), marker="o" if key == "val_loss" else None)
    left.set(xlabel="step", ylabel="loss", title=f"{Path(run_dir).name}: loss")
    left.legend()
    left.grid(alpha=0.3)
    if others:
        right = axes[0][1]
        for key in others:
            right.plot(*series[key], label=key.replace("_", " "), marker="o")
        right.set(xlabel="step", title="validation metrics")
        right.legend()
        right.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(no_symlink(out), dpi=110)
    plt.close(fig)
    return list(series)
