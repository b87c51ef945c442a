"""The recipe's records: what `recipecheck recipe` reports, as plain data (the JSON output).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class OptimizerFacts:
    name: str
    line: int
    target: str | None
    lr: float | None
    lr_text: str | None
    lr_is_default: bool = False
    momentum: float | None = None
    nesterov: bool | None = None
    betas: list[float | None] | None = None
    eps: float | None = None
    weight_decay: float | None = None
    param_groups: int = 1
    no_decay_group: bool = False
    group_weight_decays: list[float | None] = field(default_factory=list)
    cell: int | None = None  # notebooks: the cell, and `line` is the line within it
    condition: str | None = None  # built only under this `if` (with its default when known)
    module: str | None = None  # another project module that builds it (line is in that file)
    built_by: str | None = None  # the call in this file that returns it: `model.configure_optimizers(...)`
    groups_text: str | None = None  # parameter groups built by a call the analysis cannot read
    provenance: dict[str, Any] = field(default_factory=dict)  # hyperparameter -> where its value comes from


@dataclass
class ScheduleFacts:
    name: str
    line: int
    args: dict[str, Any]
    stepped: str | None  # per batch | per optimizer step | per epoch | per iteration | None
    steps: int | None  # scheduler.step() calls over the run, when known
    lr_start: float | None = None
    lr_peak: float | None = None
    lr_end: float | None = None
    warmup: str | None = None
    description: str = ""
    cell: int | None = None


@dataclass
class Advice:
    rank: int
    code: str | None
    severity: str
    title: str
    message: str
    line: int | None
    cell: int | None = None
    source: str = "rule"  # rule | recipe


@dataclass
class Recipe:
    path: str
    parsed: bool = True
    optimizers: list[OptimizerFacts] = field(default_factory=list)
    manual_update: str | None = None
    schedules: list[ScheduleFacts] = field(default_factory=list)
    manual_lr: list[str] = field(default_factory=list)
    warmup: str | None = None
    batch_size: float | None = None
    batch_size_text: str | None = None
    epochs: float | None = None
    epochs_text: str | None = None
    iterations: float | None = None
    grad_clip: list[str] = field(default_factory=list)
    accumulation_steps: float | None = None
    accumulation_text: str | None = None
    amp: list[str] = field(default_factory=list)
    initialization: list[str] = field(default_factory=list)
    input_normalization: list[str] = field(default_factory=list)
    regularization: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    advice: list[Advice] = field(default_factory=list)
    training_loop: bool = True  # False: nothing in the file (or what it calls) trains
    modules: list[str] = field(default_factory=list)  # other project modules read to inform it
    unresolved: dict[str, str] = field(default_factory=dict)  # row -> what could not be resolved, where
    provenance: dict[str, Any] = field(default_factory=dict)  # row -> where its value comes from

    def to_json(self) -> dict[str, Any]:
        return _rounded(asdict(self))


def _rounded(obj):
    """Floats to 12 significant digits, so 0.1 * 0.1 ** 2 reads 0.001 in JSON."""
    if isinstance(obj, float):
        return float(f"{obj:.12g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj
