"""Hugging Face integration: ``RecipecheckCallback``, a ``transformers.TrainerCallback``.

Usage::

    from recipecheck.runtime.integrations.huggingface import RecipecheckCallback

    trainer = transformers.Trainer(model=model, args=args, train_dataset=ds, eval_dataset=ev,
                                   callbacks=[RecipecheckCallback(report="recipecheck-report")])
    trainer.train()

Hooks: ``on_train_begin`` attaches the monitor to the model, the optimizer and LR scheduler the
Trainer built (unwrapping accelerate's wrappers) and installs one forward hook on the model that
passes ``outputs.loss`` of training forwards to the monitor (Hugging Face models compute their
loss inside ``forward``); ``on_epoch_begin`` marks epochs; ``on_evaluate`` passes the
``eval_*`` metrics to ``log_val``; ``on_log`` passes the logged training ``loss`` to
``log_train``; ``on_train_end`` removes the hook, detaches, writes ``report.json`` /
``report.html`` (rank 0) and prints the summary. ``callback.findings`` holds the findings.
Transformers has no exception hook: when ``train()`` raises, call ``callback.close()``.

Needs the extra ``huggingface`` (``transformers>=4.30``).
"""

from __future__ import annotations

from typing import Any, Optional

from ._common import Session, missing, pick_metrics, scalar

try:  # lazily: only this module needs transformers
    from transformers import TrainerCallback as _TrainerCallback
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise missing("Hugging Face", "huggingface", "transformers", _exc) from None

import torch

__all__ = ["RecipecheckCallback", "RecipecheckTrainerCallback"]

_EVAL_EXCLUDE = ("runtime", "samples_per_second", "steps_per_second", "epoch")


def _loss_of(output: Any) -> Optional[torch.Tensor]:
    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, dict):
        loss = output.get("loss")
    return loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None


class RecipecheckCallback(_TrainerCallback):
    """Run the recipecheck runtime monitor during ``Trainer.train``.

    Parameters are those of :func:`recipecheck.runtime.monitor`: ``report`` (a folder, or None
    for no files), ``num_classes``, ``criterion``, ``checks`` and further monitor options.
    """

    def __init__(self, report: Any = "recipecheck-report", num_classes: Optional[int] = None,
                 criterion: Any = None, checks: Any = None, **monitor_options: Any) -> None:
        self._session = Session(report, num_classes, criterion, checks, monitor_options)
        self._hook = None
        self._epochs_begun = 0

    @property
    def monitor(self) -> Any:
        return self._session.mon

    @property
    def findings(self) -> list:
        if self._session.active and self._session.mon is not None:
            return list(self._session.mon.findings)
        return self._session.findings

    def _on_forward(self, module: Any, args: Any, output: Any) -> None:
        if module.training and torch.is_grad_enabled():
            loss = _loss_of(output)
            if loss is not None and loss.requires_grad:
                self._session.call("observe_loss", loss)
        return None

    # TrainerCallback hooks -------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       lr_scheduler: Any = None, **kwargs: Any) -> None:
        self._epochs_begun = 0
        if model is None:
            return
        self._session.start(model, [optimizer], [lr_scheduler])
        if self._session.active and self._session.criterion is None and isinstance(model, torch.nn.Module):
            self._hook = model.register_forward_hook(self._on_forward)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epochs_begun += 1
        if self._epochs_begun > 1:
            self._session.call("next_epoch")

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        vals = pick_metrics(metrics or {}, ("eval_",), exclude=_EVAL_EXCLUDE)
        if vals:
            self._session.call("log_val", **vals)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        loss = scalar((logs or {}).get("loss"))
        if loss is not None:
            self._session.call("log_train", loss=loss)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close(clean=True)

    def close(self, clean: bool = False) -> None:
        """Detach and write the report (idempotent); call it yourself when ``train()`` raised."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._session.stop(clean=clean)


RecipecheckTrainerCallback = RecipecheckCallback
