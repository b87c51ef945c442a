"""PyTorch Lightning integration: ``RecipecheckCallback`` runs the recipecheck monitor over ``fit``.

Usage::

    from recipecheck.runtime.integrations.lightning import RecipecheckCallback

    trainer = lightning.Trainer(callbacks=[RecipecheckCallback(report="recipecheck-report")])
    trainer.fit(model, train_loader, val_loader)

Hooks: ``on_fit_start`` attaches the monitor to the LightningModule, the trainer's optimizers
and LR schedulers (and a loss module found among the module's children, or ``criterion=``);
``on_before_backward`` feeds the loss of each step when there is no loss module to hook;
``on_train_epoch_start`` marks epochs; ``on_validation_epoch_end`` passes the validation
metrics (``val_*``/``val/*`` keys of ``trainer.callback_metrics``) to ``log_val`` (falling back
to ``on_validation_end`` when Lightning fills the epoch metrics only there), and
``on_train_epoch_end`` the training ones to ``log_train``; ``on_fit_end`` detaches, writes
``report.json``/``report.html`` (rank 0) and prints the summary; ``on_exception`` does the same
for a failed run. ``callback.findings`` holds the findings afterwards.

Needs the extra ``lightning`` (``lightning>=2.0``; the older ``pytorch_lightning`` package works
too).
"""

from __future__ import annotations

from typing import Any, Optional

from ._common import Session, missing, pick_metrics

try:  # lazily: only this module needs Lightning
    import lightning.pytorch as _pl
except ImportError as _exc:  # pragma: no cover - depends on the environment
    try:
        import pytorch_lightning as _pl  # type: ignore[no-redef]
    except ImportError:
        raise missing("PyTorch Lightning", "lightning", "lightning", _exc) from None

import torch

__all__ = ["RecipecheckCallback"]

VAL_PREFIXES = ("val_", "val/", "valid_", "valid/", "validation_", "validation/")
TRAIN_PREFIXES = ("train_", "train/")


def _find_criterion(module: Any) -> Optional[torch.nn.Module]:
    for child in module.children():
        if isinstance(child, torch.nn.modules.loss._Loss):
            return child
    return None


class RecipecheckCallback(_pl.Callback):
    """Run the recipecheck runtime monitor during ``Trainer.fit``.

    Parameters are those of :func:`recipecheck.runtime.monitor`: ``report`` (a folder, or None
    for no files), ``num_classes``, ``criterion`` (default: the first loss module among the
    LightningModule's children), ``checks`` and further monitor options.
    """

    def __init__(self, report: Any = "recipecheck-report", num_classes: Optional[int] = None,
                 criterion: Any = None, checks: Any = None, **monitor_options: Any) -> None:
        super().__init__()
        self._session = Session(report, num_classes, criterion, checks, monitor_options)
        self._observe_loss = True
        self._val_logged: Optional[int] = None

    # the monitor and its results --------------------------------------------------------------
    @property
    def monitor(self) -> Any:
        return self._session.mon

    @property
    def findings(self) -> list:
        if self._session.active and self._session.mon is not None:
            return list(self._session.mon.findings)
        return self._session.findings

    # hooks -------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        optimizers = list(getattr(trainer, "optimizers", None) or [])
        schedulers = [getattr(cfg, "scheduler", cfg) for cfg in (getattr(trainer, "lr_scheduler_configs", None) or [])]
        criterion = self._session.criterion if self._session.criterion is not None else _find_criterion(pl_module)
        self._observe_loss = criterion is None
        self._val_logged = None
        self._session.start(pl_module, optimizers, schedulers, criterion)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "current_epoch", 0) > 0:
            self._session.call("next_epoch")

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        if self._observe_loss and isinstance(loss, torch.Tensor):
            self._session.call("observe_loss", loss)

    def _log_val(self, trainer: Any) -> None:
        if getattr(trainer, "sanity_checking", False):
            return
        epoch = getattr(trainer, "current_epoch", None)
        if self._val_logged == epoch:
            return
        metrics = pick_metrics(getattr(trainer, "callback_metrics", {}) or {}, VAL_PREFIXES)
        if metrics:
            self._val_logged = epoch
            self._session.call("log_val", epoch=epoch, **metrics)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_val(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_val(trainer)  # no-op when on_validation_epoch_end already saw the metrics

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        metrics = pick_metrics(getattr(trainer, "callback_metrics", {}) or {}, TRAIN_PREFIXES)
        if metrics:
            self._session.call("log_train", epoch=getattr(trainer, "current_epoch", None), **metrics)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._session.stop(clean=True)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._session.stop(clean=False, exc=exception)

    def teardown(self, trainer: Any, pl_module: Any, stage: Optional[str] = None) -> None:
        if self._session.active:  # fit ended without on_fit_end (e.g. interrupted)
            self._session.stop(clean=False)
