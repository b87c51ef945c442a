"""One PNG per experiment (matplotlib, the ``plots`` extra)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from .base import Experiment, Result


class PlottingUnavailable(ImportError):
    """matplotlib is not installed."""


def require_matplotlib():
    """Import matplotlib with a file-only backend, or raise :class:`PlottingUnavailable`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlottingUnavailable("--plot needs matplotlib: pip install 'recipecheck[plots]'") from exc
    return plt


def file_name(exp: Experiment) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{exp.rule}_{exp.name}") + ".png"


def plot_result(exp: Experiment, result: Result, out_dir: Path) -> Path:
    """Write ``<rule>_<name>.png`` into ``out_dir``: the recorded curves, or a bar chart of the headline metric."""
    plt = require_matplotlib()
    out_dir.mkdir(parents=True, exist_ok=True)
    panels = list(result.series.items())
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.6), squeeze=False)
    if panels:
        for ax, (name, curves) in zip(axes[0], panels):
            values = [v for c in curves.values() for v in c if isinstance(v, (int, float)) and math.isfinite(v)]
            for label, ys in curves.items():
                shown = {"buggy": f"buggy: {exp.buggy_label}", "fixed": f"fixed: {exp.fixed_label}"}.get(label, label)
                ax.plot(range(len(ys)), ys, label=shown, marker="o" if len(ys) <= 30 else None, markersize=3)
            positive = [v for v in values if v > 0]
            if positive and len(positive) == len(values) and max(positive) / min(positive) > 100:
                ax.set_yscale("log")
            ax.set_title(name)
            ax.set_xlabel("step" if any(len(c) > 30 for c in curves.values()) else "index")
            ax.legend(fontsize=7)
    else:
        ax = axes[0][0]
        vals = [result.buggy.get(exp.headline), result.fixed.get(exp.headline)]
        ax.bar([f"buggy\n{exp.buggy_label}", f"fixed\n{exp.fixed_label}"],
               [v if isinstance(v, (int, float)) else 0 for v in vals], color=["tab:red", "tab:green"])
        ax.set_ylabel(exp.headline)
    fig.suptitle(f"{exp.rule} [{result.verdict}]: {exp.headline}", fontsize=10)
    fig.tight_layout()
    path = out_dir / file_name(exp)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
