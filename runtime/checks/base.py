"""The base class of runtime checks (RT codes).

A check is a small class with a code, a catalog name and severity (``shared/RULES.md``), an
optional static twin (RC code), a sampling ``schedule`` and *observe-only* callbacks. The
monitor calls a callback only when the check's class overrides it, so an unused callback costs
nothing. Callbacks must never modify tensors, never return anything, and never use the global
RNG. Device statistics are handed to the monitor with ``mon.defer(self, key, tensor)`` and come
back as host floats in ``on_values`` at the next batched read (every ``read_every`` steps).

Callbacks (all optional):

``setup(mon)``
    once, when the monitor attaches.
``on_model(mon, model)`` / ``on_optimizer(mon, optimizer)`` / ``on_scheduler(mon, scheduler)``
    when an object is attached (given to the API or discovered by ``recipecheck run``).
``on_model_input(mon, model, args, kwargs)``
    every forward of a monitored (root) model: with grad enabled ("train"), without ("eval") or
    both, as the class attribute ``model_inputs`` says; ``mon.pause(self)`` stops the calls (and
    ``mon.pause(self, paused=False)`` resumes them) when a check needs no more inputs for now.
``on_model_output(mon, model, output)``
    the output of every training/eval forward of a monitored model (paused like ``on_model_input``).
``on_pre_step(mon, optimizer)`` / ``on_post_step(mon, optimizer)``
    around ``optimizer.step()`` at the steps where ``schedule(mon.step)`` is true.
``on_activation(mon, layer, module, output)``
    the output of every module of a type in ``activation_types`` during the training forward
    passes of steps where ``activation_schedule(step)`` is true (hooks exist only then).
``on_values(mon, step, key, values)``
    host values (list of floats) of a tensor deferred with ``mon.defer``.
``on_read(mon, losses)``
    after each batched read; ``losses`` is the list of ``(step, mean loss)`` read this time.
``on_epoch(mon, epoch)``
    a new epoch (pass over the training data) begins.
``on_train_loader(mon, loader)``
    ``recipecheck run`` only: the DataLoader that feeds the optimizer steps was identified.
``on_log(mon, split, metrics)``
    ``mon.log_train(...)`` (split "train") or ``mon.log_val(...)`` (split "val").
``finalize(mon)``
    once, at exit, after the last read.

``skip_reason(mon)`` (not a callback) says, at exit, why the check could not judge this run (None
when it did); the monitor prints and reports it, so a silent check never reads as a clean run.
``optimizer`` may be a stand-in for manual parameter updates (``p.data.add_(-lr * p.grad)`` loops,
``recipecheck run`` only): it has ``param_groups`` (lr None) and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from ..stats import Always, Never, Schedule

CALLBACKS = (
    "setup",
    "on_model",
    "on_optimizer",
    "on_scheduler",
    "on_model_input",
    "on_model_output",
    "on_pre_step",
    "on_post_step",
    "on_activation",
    "on_values",
    "on_read",
    "on_epoch",
    "on_train_loader",
    "on_log",
    "finalize",
)


class Check:
    """Base class of a runtime check; see the module docstring for the callbacks."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[str] = "warning"
    static_twin: ClassVar[Optional[str]] = None
    schedule: Schedule = Always()
    activation_types: ClassVar[tuple] = ()
    activation_schedule: Schedule = Never()
    model_inputs: ClassVar[str] = "all"  # forwards on_model_input sees: "train" (grad on), "eval", "all"

    def __init__(self, **options: Any) -> None:
        for key, value in options.items():
            if not hasattr(self, key):
                raise TypeError(f"{type(self).__name__} has no option {key!r}")
            setattr(self, key, value)
        self.disabled = False

    def emit(self, mon, message: str, *, step: Optional[int] = None, where: Optional[str] = None,
             epoch: Optional[int] = None, key: Any = None):
        """Report a finding (once per check and ``key``/``where``); returns it or None."""
        return mon.add_finding(self, message, step=step, where=where, epoch=epoch, key=key)

    def skip_reason(self, mon) -> Optional[str]:
        """Why this check could not judge the run (None: it did). Set ``self._skip`` or override."""
        return getattr(self, "_skip", None)

    def twin_note(self) -> str:
        return f" Static twin: {self.static_twin}." if self.static_twin else ""

    def release(self) -> None:
        """Drop references to tensors/modules (called at monitor exit so the model can be freed)."""
        keep = {"disabled"}
        for k in list(vars(self)):
            if k not in keep and not isinstance(vars(self)[k], (int, float, str, bool, type(None))):
                setattr(self, k, None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code}>"


def overrides(check: Check, callback: str) -> bool:
    fn = getattr(type(check), callback, None)
    return fn is not None and fn is not getattr(Check, callback, None)


# default no-op callbacks so that `overrides` can compare against them
for _cb in CALLBACKS:
    if not hasattr(Check, _cb):
        setattr(Check, _cb, lambda self, *a, **k: None)
del _cb
