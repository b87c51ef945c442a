"""Shared plumbing of the framework callbacks: one monitor session per ``fit``/``train``."""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Mapping, Optional, Sequence

import torch

#: metric-name suffixes that are bookkeeping, not learning curves
_SKIP_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second", "_step")


def missing(framework: str, extra: str, package: str, exc: BaseException) -> ImportError:
    """The ImportError raised when an integration's framework is not installed."""
    err = ImportError(
        f"recipecheck's {framework} integration needs the '{package}' package, which is not installed "
        f"({exc}). Install the extra: pip install 'recipecheck[{extra}]' (or: pip install {package})."
    )
    err.name = package
    return err


def scalar(value: Any) -> Optional[float]:
    """A finite float from a number or a one-element tensor, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.detach().float().cpu().item()  # once per epoch/evaluation, not per step
    if isinstance(value, (int, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def pick_metrics(metrics: Mapping[str, Any], prefixes: Sequence[str], exclude: Iterable[str] = ()) -> dict[str, float]:
    """``{"val_loss": t, "val/acc": 0.9}`` -> ``{"loss": ..., "acc": 0.9}`` for the given prefixes."""
    out: dict[str, float] = {}
    excluded = set(exclude)
    for key, value in metrics.items():
        key = str(key)
        for prefix in prefixes:
            if key.startswith(prefix) and len(key) > len(prefix):
                name = key[len(prefix):]
                if name.endswith("_epoch"):
                    name = name[: -len("_epoch")]
                if name in excluded or any(("_" + name).endswith(s) for s in _SKIP_SUFFIXES):
                    break
                v = scalar(value)
                if v is not None:
                    out[name] = v
                break
    return out


def unwrap_optimizer(opt: Any) -> Any:
    """The torch optimizer inside wrappers (accelerate's AcceleratedOptimizer, LightningOptimizer)."""
    cur = opt
    for _ in range(5):
        inner = getattr(cur, "optimizer", None) or getattr(cur, "_optimizer", None)
        if inner is None or inner is cur:
            break
        cur = inner
    return cur if isinstance(cur, torch.optim.Optimizer) else opt


def unwrap_scheduler(sched: Any) -> Any:
    inner = getattr(sched, "scheduler", None)
    return inner if inner is not None and hasattr(inner, "step") else sched


class Session:
    """One monitor over one training run, opened and closed by framework hooks.

    A failure inside the monitor plumbing is turned into a warning and the session is dropped:
    the callbacks never crash the training they observe.
    """

    def __init__(self, report: Any, num_classes: Optional[int], criterion: Any, checks: Any,
                 options: Mapping[str, Any]) -> None:
        self.report = report
        self.num_classes = num_classes
        self.criterion = criterion
        self.checks = checks
        self.options = dict(options)
        self.mon: Any = None
        self._cm: Any = None
        self.findings: list = []

    @property
    def active(self) -> bool:
        return self._cm is not None

    def start(self, model: Any, optimizers: Sequence[Any], schedulers: Sequence[Any] = (),
              criterion: Any = None) -> None:
        if self.active:
            self.stop(clean=False)
        from ..monitor import monitor  # the API every integration goes through

        opts = [unwrap_optimizer(o) for o in optimizers if o is not None]
        scheds = [unwrap_scheduler(s) for s in schedulers if s is not None]
        try:
            cm = monitor(model, opts or None, scheds or None, criterion if criterion is not None else self.criterion,
                         self.num_classes, report=self.report, checks=self.checks, **self.options)
            self.mon = cm.__enter__()
            self._cm = cm
        except Exception as exc:
            self._fail("start", exc)

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        """``mon.<method>(...)`` if a session is open; errors become a warning."""
        if self.mon is None or not self.active:
            return
        try:
            getattr(self.mon, method)(*args, **kwargs)
        except Exception as exc:
            self._fail(method, exc)

    def stop(self, clean: bool = True, exc: Optional[BaseException] = None) -> None:
        """Close the monitor: final read, report (rank 0), summary."""
        cm, self._cm = self._cm, None
        if cm is None:
            return
        try:
            if clean:
                cm.__exit__(None, None, None)
            else:
                err = exc if exc is not None else RuntimeError("training ended abnormally")
                try:
                    cm.__exit__(type(err), err, err.__traceback__)
                except BaseException as raised:  # the context manager re-raises the training's error
                    if raised is not err:
                        raise
        except Exception as e:
            warnings.warn(f"recipecheck: closing the monitor failed: {e!r}", RuntimeWarning, stacklevel=2)
        finally:
            if self.mon is not None:
                self.findings = list(getattr(self.mon, "findings", []))

    def _fail(self, where: str, exc: BaseException) -> None:
        warnings.warn(f"recipecheck: the monitor failed in {where} ({exc!r}); monitoring is off for this run",
                      RuntimeWarning, stacklevel=3)
        cm, self._cm = self._cm, None
        if cm is not None:
            try:
                cm.__exit__(type(exc), exc, exc.__traceback__)
            except BaseException:
                pass
