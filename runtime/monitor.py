"""The runtime monitor: observe a live training run and run the RT checks on it.

Two ways in:

* the API, for custom loops::

      with recipecheck.runtime.monitor(model, optimizer, criterion=criterion) as mon:
          for epoch in range(epochs):
              for x, y in loader:
                  ...  # the usual zero_grad / forward / backward / step
              mon.log_val(loss=val_loss, acc=val_acc)
      mon.findings  # list of RuntimeFinding

  The monitor attaches only to the objects it is given: step post-hooks on the optimizer(s)
  (pre-hooks only before sampled steps), a *call tap* on the model and on the criterion (the loss
  of each step; without a criterion call ``mon.observe_loss(loss)``), and, only during sampled
  steps, call taps on activation modules. A call tap is the instance attribute
  ``_compiled_call_impl`` that ``Module.__call__`` uses when set; ``Module.__getstate__`` drops it,
  so ``torch.save(model)``, pickling, ``copy.deepcopy`` (EMA, best-model copies), ``torch.jit``
  and ``torch.export`` behave exactly as without the monitor and copies carry no monitor state.
  The monitor never registers module hooks (full-backward hooks would break
  ``ReLU(inplace=True)``; forward hooks would be pickled with the model).

* ``recipecheck run train.py ...`` (see :mod:`recipecheck.runtime.launcher`) builds a
  ``Monitor(global_hooks=True, patch_backward=True, patch_dataloader=True)``: torch's global
  optimizer step hooks find the optimizers, global module forward hooks (only until the first
  optimizer step) find the model(s) and criterion, and documented, reversible patches, active only
  inside that command, give the loss (the tensor ``backward()`` is called on; before
  ``GradScaler.scale``) and the training loader's passes (``DataLoader.__iter__``). The type and
  class count of a functional loss (``F.cross_entropy``, ``F.nll_loss``, ``F.binary_cross_entropy*``)
  are read from the autograd graph of that tensor (shapes only; TorchScript sees no patch). A script that updates its parameters
  by hand (no optimizer: ``p.data.add_(p.grad, alpha=-lr)``) is recognized when the gradients are
  reset or the parameters change between two ``backward()`` calls: each backward is then a step.

Losses. A loss belongs to the next optimizer step of any optimizer: the step's loss is the sum of
the tensors ``backward()`` was called on since that optimizer's previous step (the micro-batches of
gradient accumulation, what the script optimizes; a GAN discriminator's real and fake losses), or
the mean of a given criterion's outputs. The step-counting optimizer's losses are the series
``loss``; every other optimizer's are ``loss/<label>`` (e.g. ``loss/opt1-Generator``).

At exit ``run["observed"]`` says what was seen and ``run["checks_ran"]`` /
``run["checks_skipped"]`` (code -> reason) which checks could judge the run; the summary prints
both, and says so plainly when nothing was observed.

Every hook handle and patch is owned by the monitor and removed on exit, also when the training
raises. Hooks return None, never modify tensors and never touch the global RNG. Statistics stay
on the device: the per-step loss is kept as a detached device scalar (no copy, no sync) and checks
hand device tensors to :meth:`Monitor.defer`; everything is stacked and read back in one transfer
every ``read_every`` optimizer steps (no ``.item()``/``.cpu()`` per step). Checks run on sampled
steps only (their schedules are expanded ``read_every`` steps at a time, so an ordinary step costs
a dict lookup), and activation hooks exist only during sampled steps. A check that raises is
disabled, the error is recorded in ``run["check_errors"]``, and training goes on.
"""

from __future__ import annotations

import bisect
import gc
import json
import os
import sys
import time
import traceback
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from .checks import all_check_classes
from .checks.base import CALLBACKS, Check, overrides
from .findings import RuntimeFinding
from .stats import Always, SeriesStore
from . import ddp as _ddp

__all__ = ["Monitor", "monitor"]

_LOSS_TYPES = (torch.nn.modules.loss._Loss,)


def _as_list(obj) -> list:
    if obj is None:
        return []
    if isinstance(obj, (list, tuple)):
        return [o for o in obj if o is not None]
    return [obj]


def _first_tensor(args, kwargs):
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
    if kwargs:
        for a in kwargs.values():
            if isinstance(a, torch.Tensor):
                return a
    for a in args:  # (x, y) tuples / dict batches passed as one argument
        if isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    return b
        elif isinstance(a, dict):
            for b in a.values():
                if isinstance(b, torch.Tensor):
                    return b
    return None


def _is_scheduler(obj) -> bool:
    lrs = torch.optim.lr_scheduler
    bases = tuple(c for c in (getattr(lrs, "LRScheduler", None), getattr(lrs, "_LRScheduler", None),
                              getattr(lrs, "ReduceLROnPlateau", None)) if c is not None)
    return isinstance(obj, bases)


class Monitor:
    """Observe a training run; see the module docstring.

    Parameters
    ----------
    model, optimizer, scheduler, criterion:
        objects to attach to (a single object or a list); all optional.
    num_classes:
        the number of classes, when the criterion's input does not tell (RT101).
    report:
        folder for ``report.json``/``report.html`` written at exit, or None (no files).
    checks:
        None (all checks), or a list of codes ("RT103"), check classes or check instances;
        a code prefixed with "-" ("-RT110") removes it from the default set.
    read_every:
        optimizer steps between two batched reads of the device statistics.
    summary:
        print the terminal summary at exit.
    """

    def __init__(
        self,
        model=None,
        optimizer=None,
        scheduler=None,
        criterion=None,
        num_classes: Optional[int] = None,
        report: Union[str, os.PathLike, None] = "recipecheck-report",
        checks: Optional[Sequence[Any]] = None,
        *,
        read_every: int = 100,
        max_points: int = 1024,
        summary: bool = True,
        console: Any = None,
        distributed: Optional[bool] = None,
        global_hooks: bool = False,
        patch_backward: bool = False,
        patch_dataloader: bool = False,
        run_info: Optional[dict] = None,
    ) -> None:
        self._init_models = _as_list(model)
        self._init_optimizers = _as_list(optimizer)
        self._init_schedulers = _as_list(scheduler)
        self._init_criteria = _as_list(criterion)
        self.num_classes = num_classes
        self.report_dir = report
        self.read_every = max(1, int(read_every))
        self.summary = summary
        self.console = console
        self.global_hooks = global_hooks
        self.patch_backward = patch_backward
        self.patch_dataloader = patch_dataloader

        self.checks: list[Check] = _build_checks(checks)
        self.findings: list[RuntimeFinding] = []
        self.series = SeriesStore(max_points=max_points)
        self.run: dict[str, Any] = dict(run_info or {})
        self.run.setdefault("check_errors", [])

        self.step = 0  # optimizer steps started by the primary optimizer (1-based during a step)
        self.epoch = 0
        self.models: list[torch.nn.Module] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list[Any] = []
        self.criteria: list[torch.nn.Module] = []
        self.criterion_info: Optional[dict] = None  # first training call: type, logits shape
        self.loss_source: Optional[str] = None  # "criterion" | "explicit" | "backward"

        self._dist = _ddp.DistContext.detect(distributed)
        self._handles: list[Any] = []
        self._act_handles: list[Any] = []
        self._disc_handles: list[Any] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self._pnames: dict[torch.Tensor, str] = {}
        self._opt_steps: dict[int, int] = {}
        self._primary: Optional[weakref.ref] = None
        self._in_step = False
        self._active = False
        self._closed = False
        self._pending_epoch = False
        self._steps_since_epoch = 0
        self._epoch_source: Optional[str] = None
        self._loss_vals: list[torch.Tensor] = []
        # runs of _loss_vals: ((series label or None for "loss", step, mean?), number of values)
        self._loss_keys: list[tuple] = []
        self._pending: list[torch.Tensor] = []  # losses since the last optimizer step (any optimizer)
        self._init_vals: list[torch.Tensor] = []  # per-call loss values before the first step ends (RT101)
        self._init_open = True
        # the criterion tap's fast path (append the detached loss, nothing else) once nothing else
        # is left to do at a criterion call: criterion seen, step 1 over, losses from the criterion
        self._crit_fast = False
        self.init_loss: Optional[float] = None  # mean per-call loss of step 1 (criterion/functional loss)
        self.loss_reads: dict[str, list] = {}  # series name -> [(step, value)] read at the last flush
        self._opt_labels: dict[int, str] = {}
        self._n_backward = 0
        self._n_losses = 0
        self._taps: dict[int, "_Tap"] = {}
        self._fn_watch = True  # the loss graph is inspected once for a functional loss's kind
        self._suspended = False  # True while the sanity suite runs its own forward/backward passes
        # manual update loops (no optimizer): "watch" until an optimizer step or a manual update is seen
        self._manual_state = "watch" if patch_backward else "off"
        self._manual_opt = None
        self._manual_open = False
        self._watch = None
        self._output_watchers: list = []
        self._scaled = None  # (weakref to scaler.scale(loss)'s result, the unscaled loss)
        self.notes: list[str] = []
        self._epoch_steps: list[int] = []  # the first step of epoch 1, 2, ... (epoch_at)
        self._loss_cap = 4 * self.read_every + 16
        self.lr_every = 10  # LR series: every step for the first 16, then every 10th
        self._opt_ids: set[int] = set()
        self._idle_primary = 0
        self._primary_opt = None  # strong reference while attached (dropped at close)
        self._pre_handles: dict[int, list] = {}  # id(optimizer) -> [handle, step, optimizer]
        self._pre_ran = None
        self._plan_map: dict = {}
        self._plan_start = self._plan_end = 0
        self._deferred: list[tuple[Check, int, Any, torch.Tensor]] = []
        self._cache: dict = {}
        self._emitted: set = set()
        self._dispatch: dict[str, list] = {}
        self._paused: set = set()
        self._act_modules: dict[int, list] = {}
        self._armed_for: Optional[int] = None
        self._depth = 0
        self._cand_roots: "weakref.WeakSet" = weakref.WeakSet()
        self._cand_criteria: "weakref.WeakSet" = weakref.WeakSet()
        self._loaders: dict[int, dict] = {}
        self._last_loader: Optional[weakref.ref] = None
        self._train_loader: Optional[weakref.ref] = None
        self._t0 = 0.0
        self._first_batch: Optional[tuple] = None  # (inputs, targets) seen first, for --sanity
        self._first_args: Optional[tuple] = None  # positional arguments of that first training forward
        self.before_first_step = None  # callable(mon, optimizer), e.g. the sanity suite
        self._rebuild_dispatch()

    # ----------------------------------------------------------------------------------------
    # context manager
    # ----------------------------------------------------------------------------------------

    def __enter__(self) -> "Monitor":
        self.attach()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exc_type is None)

    def attach(self) -> "Monitor":
        if self._active:
            return self
        if self._closed:
            # the objects it watched were released at close: a second `with mon:` would watch nothing
            raise RuntimeError("this Monitor was closed and has released the objects it watched; "
                               "create a new Monitor (or recipecheck.runtime.monitor(...)) for another run")
        self._active = True
        self._t0 = time.perf_counter()
        self.run.setdefault("torch", torch.__version__)
        self.run.setdefault("python", sys.version.split()[0])
        self.run["world_size"] = self._dist.world_size
        self.run["rank"] = self._dist.rank
        self.run["checks"] = [c.code for c in self.checks]
        try:
            for chk, fn in self._callbacks("setup"):
                self._call(chk, fn)
            self._rebuild_dispatch()  # setup may have set instance schedules
            for m in self._init_models:
                self.add_model(m)
            for o in self._init_optimizers:
                self.add_optimizer(o)
            for s in self._init_schedulers:
                self.add_scheduler(s)
            for c in self._init_criteria:
                self.add_criterion(c)
            if self.global_hooks:
                from torch.optim.optimizer import (
                    register_optimizer_step_post_hook,
                    register_optimizer_step_pre_hook,
                )

                self._handles.append(register_optimizer_step_pre_hook(self._on_pre_step))
                self._handles.append(register_optimizer_step_post_hook(self._on_post_step))
                self._start_discovery()
            if self.patch_backward:
                self._patch(torch.Tensor, "backward", _make_backward_patch(self, torch.Tensor.backward))
                try:  # `scaler.scale(loss).backward()`: record the loss, not loss * 65536
                    from torch.amp.grad_scaler import GradScaler

                    self._patch(GradScaler, "scale", _make_scale_patch(self, GradScaler.__dict__["scale"]))
                except Exception:
                    pass

            if self.patch_dataloader:
                from torch.utils.data import DataLoader

                self._patch(DataLoader, "__iter__", _make_iter_patch(self, DataLoader.__iter__))
        except BaseException:
            self._remove_all_hooks()
            self._active = False
            raise
        return self

    def close(self, clean: bool = True) -> None:
        """Detach everything, run the final read and checks, write the report (rank 0)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._manual_open and self._manual_opt is not None:
                self._pre_ran = self._manual_opt  # closes the current step, does not start one
                self._on_post_step(self._manual_opt, (), {})  # the update after the last backward
        except Exception as exc:
            self._note_error("monitor", exc)
        self._remove_all_hooks()
        self._active = False
        try:
            if self._pending and self.optimizers:  # losses after the last optimizer step
                self._assign_pending(self._primary_opt or self.optimizers[0], True, self.step + 1)
            self.flush(reduce=clean)
            for chk, fn in self._callbacks("finalize"):
                self._call(chk, fn)
        except Exception as exc:  # never let the monitor's own wrap-up hide the training result
            self._note_error("monitor", exc)
        try:
            self._record_coverage()
        except Exception as exc:
            self._note_error("monitor", exc)
        self.run["steps"] = self.step
        self.run["epochs"] = self.epoch + (1 if self.step else 0)
        if self.notes:
            self.run["notes"] = list(dict.fromkeys(self.notes))
        self.run["duration_s"] = round(time.perf_counter() - self._t0, 3)
        if self.models:
            try:
                p = next(self.models[0].parameters())
                self.run.setdefault("device", str(p.device))
            except StopIteration:
                pass
        if clean and self._dist.enabled:
            self.findings = self._dist.gather_findings(self.findings)
        self._release()
        if self._dist.rank == 0:
            written = False
            if self.report_dir is not None:
                try:
                    self.write_report(self.report_dir)
                    written = True
                except Exception as exc:
                    sys.stderr.write(f"recipecheck: could not write the report: {exc!r}\n")
            if self.summary:
                self.print_summary()
                if written:
                    sys.stderr.write(f"recipecheck: report written to {os.fspath(self.report_dir)}/report.json "
                                     f"(and report.html)\n")

    def _note_error(self, where: str, exc: BaseException) -> None:
        self.run["check_errors"].append({"check": where, "error": _safe_str(exc), "step": self.step})

    def _record_coverage(self) -> None:
        """What was observed and which checks ran or were skipped (and why), into ``run``."""
        opts = []
        for o in self.optimizers:
            opts.append("manual updates (no optimizer)" if o is self._manual_opt else self._opt_label(o, full=True))
        observed = {
            "optimizer_steps": self.step if self._manual_opt is None else 0,
            "manual_update_steps": self.step if self._manual_opt is not None else 0,
            "optimizers": opts,
            "backward_calls": self._n_backward,
            "losses": self._n_losses,
            "loss_source": self.loss_source,
            "loss_series": sorted(n for n in self.series.names() if n == "loss" or n.startswith("loss/")),
            "models": [type(m).__name__ for m in self.models],
            "criterion": (self.criterion_info or {}).get("type"),
            "epochs_seen": self.epoch + (1 if self.step else 0),
            "epoch_source": self._epoch_source,
        }
        self.run["observed"] = observed
        ran, skipped = [], {}
        errors = {e.get("check"): e.get("error") for e in self.run.get("check_errors", [])}
        for chk in self.checks:
            reason = None
            if chk.code in errors and chk.disabled:
                reason = f"the check failed and was disabled: {errors[chk.code]}"
            elif self.step == 0:
                reason = "no optimizer step and no manual parameter update was observed"
            else:
                try:
                    reason = chk.skip_reason(self)
                except Exception as exc:
                    reason = None
                    self._note_error(chk.code, exc)
            if reason:
                skipped[chk.code] = reason
            else:
                ran.append(chk.code)
        self.run["checks_ran"] = ran
        self.run["checks_skipped"] = skipped

    def coverage_text(self) -> str:
        """One paragraph: what the monitor saw and which checks ran (printed with the summary)."""
        obs = self.run.get("observed")
        if obs is None:
            return ""
        skipped = self.run.get("checks_skipped") or {}
        if self.step == 0:
            what = (f"{obs['backward_calls']} backward() call(s)" if obs["backward_calls"] else
                    "no backward() call" if self.patch_backward else "no loss")
            return (f"recipecheck: nothing to check: no optimizer step and no manual parameter update was "
                    f"observed ({what}, {len(self.models)} model(s)), so no runtime check ran. "
                    f"{'Is training behind a condition, or in a subprocess?' if self.patch_backward else 'Were the model and optimizer passed to the monitor?'}\n")
        if obs["manual_update_steps"]:
            steps = f"{obs['manual_update_steps']} manual update step(s) (no optimizer: one backward() = one step)"
        else:
            steps = f"{obs['optimizer_steps']} optimizer step(s) of {', '.join(obs['optimizers']) or '?'}"
        src = {"backward": "the tensor backward() was called on", "criterion": "the loss module's output",
               "explicit": "mon.observe_loss()"}.get(obs["loss_source"] or "", "none observed")
        epochs = (f"{obs['epochs_seen']} epoch(s) (boundaries from {obs['epoch_source']})" if obs["epoch_source"]
                  else "epoch boundaries unknown (no DataLoader pass, log_val or next_epoch)")
        lines = [f"recipecheck: observed {steps}, {epochs}, "
                 f"loss from {src} ({obs['losses']} value(s)); checks run: {', '.join(self.run.get('checks_ran') or []) or 'none'}"]
        for code, why in skipped.items():
            lines.append(f"  {code} skipped: {why}")
        return "\n".join(lines) + "\n"

    def _release(self) -> None:
        """Drop every reference to the user's objects so that they can be garbage-collected."""
        for chk in self.checks:
            try:
                chk.release()
            except Exception:
                pass
        self.models = []
        self.optimizers = []
        self.schedulers = []
        self.criteria = []
        self._init_models = self._init_optimizers = self._init_schedulers = self._init_criteria = []
        self._pnames = {}
        self._cache = {}
        self._deferred = []
        self._act_modules = {}
        self._loss_vals = []
        self._primary = None
        self._primary_opt = None
        self._pre_ran = None
        self._loaders = {}
        self._last_loader = self._train_loader = None
        self._first_batch = None
        self._first_args = None
        self.before_first_step = None
        self._dispatch = {}

    def _remove_all_hooks(self) -> None:
        pre = [entry[0] for entry in self._pre_handles.values()]
        for h in self._disc_handles + pre + self._handles:
            try:
                h.remove()
            except Exception:
                pass
        self._act_handles, self._disc_handles, self._handles, self._pre_handles = [], [], [], {}
        self._armed_for = None
        for tap in list(self._taps.values()):
            tap.model = tap.criterion = False
            tap.act = None
            _untap(tap)
        self._taps = {}
        for owner, attr, wrapper in reversed(self._patches):
            _unpatch(owner, attr, wrapper)
        self._patches = []

    def _patch(self, owner, attr: str, wrapper) -> None:
        """Install ``wrapper`` (whose ``__wrapped__`` is the current attribute) on ``owner``."""
        self._patches.append((owner, attr, wrapper))
        setattr(owner, attr, wrapper)

    def _tap(self, mod: torch.nn.Module) -> "_Tap":
        tap = self._taps.get(id(mod))
        if tap is not None and tap.mod is mod:
            return tap
        tap = _Tap(self, mod, mod.__dict__.get("_compiled_call_impl"))
        # Module.__getstate__ drops `_compiled_call_impl`: pickling, torch.save, deepcopy and copy of
        # the module never see the tap, and jit/export/fx ignore it (they do not call __call__)
        mod.__dict__["_compiled_call_impl"] = tap
        self._taps[id(mod)] = tap
        return tap

    def _release_tap(self, mod) -> None:
        tap = self._taps.get(id(mod))
        if tap is not None and not (tap.model or tap.criterion or tap.act):
            del self._taps[id(mod)]
            _untap(tap)

    # ----------------------------------------------------------------------------------------
    # attaching objects
    # ----------------------------------------------------------------------------------------

    def add_model(self, model: torch.nn.Module) -> None:
        if not isinstance(model, torch.nn.Module) or any(m is model for m in self.models):
            return
        self.models.append(model)
        # names of a second model get a prefix so that series and findings stay apart
        prefix = f"model{len(self.models) - 1}." if len(self.models) > 1 else ""
        for name, p in model.named_parameters():
            self._pnames.setdefault(p, prefix + name)
        self._tap(model).model = True
        self._plan_start = self._plan_end = 0  # re-plan: activation layers may have been added
        types = tuple({t for c in self.checks for t in c.activation_types})
        if types:
            self._act_modules[id(model)] = [
                (name, m) for name, m in model.named_modules() if isinstance(m, types)
            ]
        for chk, fn in self._callbacks("on_model"):
            self._call(chk, fn, model)
        if self.step == 0 and not self._in_step:
            self._arm_activations(1)

    def add_optimizer(self, optimizer) -> None:
        if any(o is optimizer for o in self.optimizers):
            return
        self.optimizers.append(optimizer)
        self._opt_ids.add(id(optimizer))
        if self._primary is None:
            self._primary = weakref.ref(optimizer)
        self._opt_steps[id(optimizer)] = 0
        if not self.global_hooks:
            self._handles.append(optimizer.register_step_post_hook(self._on_post_step))
            plan = self._plan_for(self.step + 1)
            if plan is not None and plan.pre:
                self._arm_pre(self.step + 1)
        for chk, fn in self._callbacks("on_optimizer"):
            self._call(chk, fn, optimizer)

    def add_scheduler(self, scheduler) -> None:
        if any(s is scheduler for s in self.schedulers):
            return
        self.schedulers.append(scheduler)
        for chk, fn in self._callbacks("on_scheduler"):
            self._call(chk, fn, scheduler)

    def add_criterion(self, criterion) -> None:
        if not isinstance(criterion, torch.nn.Module) or any(c is criterion for c in self.criteria):
            return
        self.criteria.append(criterion)
        self._tap(criterion).criterion = True

    # ----------------------------------------------------------------------------------------
    # public helpers for checks
    # ----------------------------------------------------------------------------------------

    def param_name(self, p: torch.Tensor, default: str = "?") -> str:
        return self._pnames.get(p, default)

    def params(self, optimizer) -> list[tuple[str, torch.Tensor]]:
        """(name, parameter) of every trainable parameter of ``optimizer``, in group order."""
        out = []
        for gi, group in enumerate(optimizer.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.requires_grad:
                    out.append((self._pnames.get(p) or f"group{gi}.param{pi}", p))
        return out

    def grad_norms(self, optimizer):
        """(names, device tensor of per-parameter gradient L2 norms), cached for this step."""
        key = ("grad_norms", id(optimizer), self.step, self._in_step)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        named = [(n, p) for n, p in self.params(optimizer) if p.grad is not None and not p.grad.is_sparse]
        if not named:
            res = ([], None)
        else:
            with torch.no_grad():
                norms = _foreach_norm([p.grad for _, p in named])
                res = ([n for n, _ in named], _stack(norms))
        self._cache = {key: res}
        return res

    def pause(self, check: Check, callback: str = "on_model_input", paused: bool = True) -> None:
        """Stop (or, with ``paused=False``, resume) calling ``check.callback`` on the hot path."""
        key = (check, callback)
        if paused and key not in self._paused:
            self._paused.add(key)
            self._rebuild_dispatch()
        elif not paused and key in self._paused:
            self._paused.discard(key)
            self._rebuild_dispatch()

    def own(self, handle) -> None:
        """Take ownership of a hook handle a check registered (removed at exit at the latest)."""
        self._handles.append(handle)

    def defer(self, check: Check, key: Any, tensor: torch.Tensor) -> None:
        """Hand a device tensor to the next batched read; it comes back in ``check.on_values``."""
        self._deferred.append((check, self.step, key, tensor.detach()))

    def add_finding(self, check: Check, message: str, *, step=None, where=None, epoch=None, key=None):
        dedup = (check.code, key if key is not None else where)
        if dedup in self._emitted:
            return None
        self._emitted.add(dedup)
        if step is None:
            step = self.step
        if epoch is None:
            epoch = self.epoch_at(step) if step < self.step and self._epoch_steps else self.epoch
        f = RuntimeFinding(check.code, check.name, check.severity, message, step=step, epoch=epoch,
                           where=where, static_twin=check.static_twin)
        self.findings.append(f)
        return f

    def observe_loss(self, loss: torch.Tensor, logits: Optional[torch.Tensor] = None,
                     target: Optional[torch.Tensor] = None) -> None:
        """Record the loss of the current step (a scalar tensor; stays on its device). With gradient
        accumulation, call it with each micro-batch's (scaled) loss: the step's loss is their sum,
        what the optimizer step optimizes."""
        self._crit_fast = False
        if self.loss_source != "explicit":
            self.loss_source = "explicit"
            self._pending = []  # criterion outputs recorded so far would be counted twice
        self._record_loss(loss)
        if logits is not None and self.criterion_info is None:
            self._note_criterion(None, logits, target)

    def log_train(self, epoch: Optional[int] = None, **metrics: float) -> None:
        """Record training metrics (e.g. ``loss=..., acc=...``) for the train/val curves (RT113)."""
        try:
            self._log("train", epoch, metrics)
        except Exception as exc:  # never raise into the training script
            self._note_error("log_train", exc)

    def log_val(self, epoch: Optional[int] = None, **metrics: float) -> None:
        """Record validation metrics; also marks the end of an epoch (unless epochs are known
        from the training loader or :meth:`next_epoch`)."""
        try:
            self._log("val", epoch, metrics)
        except Exception as exc:
            self._note_error("log_val", exc)

    def withdraw(self, finding: RuntimeFinding, reason: str) -> None:
        """Take back a finding that later evidence contradicts (kept in ``run["withdrawn"]``)."""
        if finding in self.findings:
            self.findings.remove(finding)
            self.run.setdefault("withdrawn", []).append({**finding.to_json(), "withdrawn_because": reason,
                                                         "withdrawn_at_step": self.step})

    def next_epoch(self) -> None:
        """Mark the start of a new pass over the training data."""
        self._epoch_source = "api"
        self._begin_epoch(self.epoch + 1)

    # ----------------------------------------------------------------------------------------
    # reads and reports
    # ----------------------------------------------------------------------------------------

    def flush(self, reduce: bool = False) -> None:
        """Read the device statistics back in one batch and run the checks' analyses."""
        losses: list[tuple[int, float]] = []
        self.loss_reads = {}
        sync = reduce and self._dist.enabled  # every rank takes part, even with nothing to read
        init = self._init_vals if (not self._init_open and self._init_vals) else []
        if init:
            self._init_vals = []
        if self._loss_vals or sync or init:
            vals, keys = self._loss_vals, self._loss_keys
            self._loss_vals, self._loss_keys = [], []
            if vals or init:
                allv = vals + init
                try:  # the usual case: 0-d losses of one dtype on one device, a single op
                    buf = torch.stack(allv).to(torch.float32)
                except RuntimeError:
                    dev = allv[0].device
                    buf = torch.stack([v.reshape(()).to(dev, torch.float32) for v in allv])
            else:
                buf = torch.zeros(0)
            if sync:
                buf = self._dist.mean_if_aligned(buf)
            values = buf.tolist()
            if init:
                iv = values[len(vals):]
                self.init_loss = sum(iv) / len(iv)
                values = values[:len(vals)]
            acc: dict[tuple, list[float]] = {}
            o = 0
            for k, n in keys:
                got = acc.get(k)
                if got is None:
                    acc[k] = values[o:o + n]
                else:
                    got += values[o:o + n]
                o += n
            # insertion order is time order, so each series' steps come out non-decreasing
            per_label: dict[Optional[str], tuple[list, list]] = {}
            for (label, s, mean), vs in acc.items():
                # a loss module's outputs are averaged (the script's scaling is not visible there);
                # the tensors backward() was called on are summed: what the optimizer step optimizes
                v = sum(vs) / len(vs) if mean else (vs[0] if len(vs) == 1 else sum(vs))
                entry = per_label.get(label)
                if entry is None:
                    entry = per_label[label] = ([], [])
                entry[0].append(s)
                entry[1].append(v)
            for label, (ss, vs) in per_label.items():
                name = "loss" if label is None else f"loss/{label}"
                pairs = list(zip(ss, vs))
                self.loss_reads[name] = pairs
                if name == "loss":
                    losses = pairs
                self.series.extend(name, ss, vs)
        deferred, self._deferred = self._deferred, []
        if deferred:
            by_dev: dict[Any, list[int]] = {}
            for i, (_, _, _, t) in enumerate(deferred):
                by_dev.setdefault(t.device, []).append(i)
            host: list[Optional[list[float]]] = [None] * len(deferred)
            for dev, idx in by_dev.items():
                dt = torch.float32 if dev.type == "mps" else torch.float64  # mps has no float64
                parts = [deferred[i][3].reshape(-1) for i in idx]
                if all(t.dtype == torch.float32 for t in parts):
                    flat = torch.cat(parts).to(dt)  # one conversion (float32 -> float64 is exact)
                else:
                    flat = torch.cat([t.to(dt) for t in parts])
                vals = flat.tolist()
                o = 0
                for i in idx:
                    n = deferred[i][3].numel()
                    host[i] = vals[o:o + n]
                    o += n
            for (chk, step, key, _), vals in zip(deferred, host):
                if not chk.disabled:
                    self._call(chk, chk.on_values, step, key, vals)
        for chk, fn in self._callbacks("on_read"):
            self._call(chk, fn, losses)

    def to_report(self) -> dict:
        return {"findings": [f.to_json() for f in self.findings], "series": self.series.to_json(),
                "run": dict(self.run)}

    def write_report(self, directory) -> None:
        try:
            from .report import write_report
        except ImportError:
            write_report = None
        if write_report is not None:
            write_report(directory, self.findings, self.series.to_json(), self.run)
            return
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "report.json").write_text(json.dumps(self.to_report(), indent=1, default=str))

    def print_summary(self) -> None:
        text = ""
        try:
            text = self.coverage_text()
        except Exception as exc:
            self._note_error("monitor", exc)
        if text:
            out = getattr(self.console, "file", None) or sys.stderr
            try:
                out.write(text)
            except Exception:
                pass
        if self.step == 0 and not self.findings:
            return  # "no runtime findings" would claim a clean run that nobody checked
        try:
            from .report import render_summary
        except ImportError:
            render_summary = None
        if render_summary is not None:
            render_summary(self.findings, console=self.console)
            return
        for f in self.findings:  # pragma: no cover - fallback while report.py is missing
            sys.stderr.write(f"{f.code} [{f.severity}] step {f.step}: {f.message}\n")

    # ----------------------------------------------------------------------------------------
    # dispatch
    # ----------------------------------------------------------------------------------------

    def _rebuild_dispatch(self) -> None:
        d: dict[str, list] = {}
        for cb in CALLBACKS:
            d[cb] = [(c, getattr(c, cb)) for c in self.checks if not c.disabled and overrides(c, cb)]
        d["_pre"] = [(c, f, c.schedule) for c, f in d["on_pre_step"]]
        # post-step callbacks due at every step are called directly, not planned step by step
        self._post_always = [(c, f) for c, f in d["on_post_step"] if type(c.schedule) is Always]
        d["_post"] = [(c, f, c.schedule) for c, f in d["on_post_step"] if type(c.schedule) is not Always]
        self._dispatch = d
        self._train_inputs = [(c, f) for c, f in d["on_model_input"]
                              if c.model_inputs in ("all", "train") and (c, "on_model_input") not in self._paused]
        self._eval_inputs = [(c, f) for c, f in d["on_model_input"]
                             if c.model_inputs in ("all", "eval") and (c, "on_model_input") not in self._paused]
        self._act_checks = [c for c in self.checks if not c.disabled and c.activation_types]
        self._output_watchers = [c for c, _ in d["on_model_output"] if (c, "on_model_output") not in self._paused]
        self._plan_start = self._plan_end = 0  # schedules are re-planned

    def _callbacks(self, name: str) -> list:
        return self._dispatch.get(name, [])

    def _call(self, chk: Check, fn, *args) -> None:
        if chk.disabled:
            return
        try:
            fn(self, *args)
        except Exception as exc:
            self._disable(chk, exc)

    def _disable(self, chk: Check, exc: BaseException) -> None:
        chk.disabled = True
        self.run["check_errors"].append({
            "check": chk.code,
            "error": _safe_str(exc),
            "step": self.step,
            "traceback": _safe_traceback(exc),
        })
        self._rebuild_dispatch()

    # ----------------------------------------------------------------------------------------
    # hooks (observe only; each returns None)
    # ----------------------------------------------------------------------------------------

    # Steps. The post-hook runs at every step; in API mode the pre-hook exists only before the
    # steps where some check needs the state before the update (armed at the previous post-step),
    # so an ordinary step costs one hook call. Under `recipecheck run` the global pre-hook stays
    # (it discovers new optimizers).

    def _is_primary(self, optimizer) -> bool:
        """Whether ``optimizer`` counts the steps (called once per optimizer step)."""
        if optimizer is self._primary_opt or (self._primary is not None and self._primary() is optimizer):
            self._idle_primary = 0
            self._primary_opt = optimizer
            return True
        # a later training phase with a new optimizer becomes the step counter once the first
        # one has been idle for 16 of its steps (alternating GAN optimizers, even with several
        # critic steps per generator step, keep the first)
        self._idle_primary += 1
        if self._idle_primary > 16 or self._primary is None or self._primary() is None:
            self._primary = weakref.ref(optimizer)
            self._primary_opt = optimizer
            self._idle_primary = 0
            return True
        return False

    def _begin_step(self, optimizer) -> None:
        if self.step == 0 and self.before_first_step is not None:
            self._run_before_first_step(optimizer)
        self.step += 1
        if self._pending_epoch:
            self._pending_epoch = False
            self._begin_epoch(self.epoch + 1)
        self._steps_since_epoch += 1
        if self._act_handles:
            self._disarm_activations()
        step = self.step
        if step <= 16 or step % self.lr_every == 0:
            self._record_lrs(optimizer)

    def _on_pre_step(self, optimizer, args, kwargs) -> None:
        if self._suspended:
            return
        if self._manual_state == "watch" and optimizer is not self._manual_opt:
            self._manual_state, self._watch = "off", None  # a real optimizer: not a manual loop
        if self.global_hooks and id(optimizer) not in self._opt_ids:
            self._discover(optimizer)
        if self._is_primary(optimizer):
            self._begin_step(optimizer)
        self._pre_ran = optimizer
        self._in_step = True
        step = self.step
        plan = self._plan_map.get(step) if self._plan_start <= step < self._plan_end else self._plan_for(step)
        if plan is not None:
            for chk, fn in plan.pre:
                self._call(chk, fn, optimizer)

    def _on_post_step(self, optimizer, args, kwargs) -> None:
        if self._suspended:
            return
        if self._pre_ran is optimizer:
            primary = optimizer is self._primary_opt
        else:
            if self.global_hooks and id(optimizer) not in self._opt_ids:
                self._discover(optimizer)
            if optimizer is self._primary_opt:  # _is_primary's common cases, inlined
                self._idle_primary = 0
                primary = True
            elif self._primary_opt is not None and self._idle_primary < 16:
                self._idle_primary += 1  # another optimizer (a GAN's second one): not the step counter
                primary = False
            else:
                primary = self._is_primary(optimizer)
            if primary:
                self._begin_step(optimizer)
        self._pre_ran = None
        self._in_step = False
        pending = self._pending
        if pending and optimizer is not self._manual_opt:  # _assign_pending inlined (every step)
            self._pending = []
            label = None if primary else (self._opt_labels.get(id(optimizer)) or self._opt_label(optimizer))
            key = (label, self.step, self.loss_source == "criterion")
            self._loss_vals += pending
            self._loss_keys.append((key, len(pending)))
            if len(self._loss_vals) >= self._loss_cap:
                self.flush()
        if primary and self._init_open:
            self._init_open = False
        step = self.step
        plan = self._plan_map.get(step) if self._plan_start <= step < self._plan_end else self._plan_for(step)
        for chk, fn in (self._post_always + plan.post) if plan is not None else self._post_always:
            if not chk.disabled:  # self._call inlined
                try:
                    fn(self, optimizer)
                except Exception as exc:
                    self._disable(chk, exc)
        if primary:
            if self._pre_handles:
                self._disarm_pre(step)
            if self.patch_dataloader:
                self._note_train_loader()
            if step % self.read_every == 0:
                self.flush(reduce=True)
            s1 = step + 1
            nxt = self._plan_map.get(s1) if self._plan_start <= s1 < self._plan_end else self._plan_for(s1)
            if nxt is not None:
                if nxt.act:
                    self._arm_activations(s1, nxt.act)
                if nxt.pre:
                    self._arm_pre(s1)

    def _arm_pre(self, step: int) -> None:
        """Pre-hooks on every optimizer for ``step`` (each kept until that step is over)."""
        if self.global_hooks:
            return
        for opt in self.optimizers:
            entry = self._pre_handles.get(id(opt))
            if entry is None:
                self._pre_handles[id(opt)] = [opt.register_step_pre_hook(self._on_pre_step), step, opt]
            else:
                entry[1] = step

    def _disarm_pre(self, done: int) -> None:
        """Remove the pre-hooks whose step is over: the primary's at its post-step ``done``, the
        other optimizers' one primary step later (they may step after the primary). Never called
        from inside a pre-hook (torch iterates the hook dict while calling them)."""
        for key, (handle, step, opt) in list(self._pre_handles.items()):
            if step < done or (step == done and opt is self._primary_opt):
                handle.remove()
                del self._pre_handles[key]

    def _run_before_first_step(self, optimizer) -> None:
        fn, self.before_first_step = self.before_first_step, None
        if optimizer is self._manual_opt:
            self.notes.append("the sanity suite needs an optimizer; this script updates its parameters by hand")
            self.run["sanity"] = {"status": "skipped", "reason": "no optimizer (manual parameter updates)"}
            return
        # the suite's own forward/backward passes and optimizer steps are not the training run's
        self._suspended = True
        pending, self._pending = self._pending, []
        try:
            fn(self, optimizer)
        except Exception as exc:
            self.run["check_errors"].append({"check": "sanity", "error": _safe_str(exc), "step": 0})
        finally:
            self._suspended = False
            self._pending = pending
        self._first_batch = None
        self._first_args = None

    # manual update loops (recipecheck run, no optimizer) -----------------------------------------

    def _before_backward(self, tensor) -> None:
        self._n_backward += 1
        if self._manual_state == "watch" and self._watch is not None and self._updated_since_watch():
            self._enter_manual()
        if tensor.requires_grad and tensor.numel() == 1:
            self.loss_source = "backward"
            if self.criterion_info is None and self._fn_watch:
                self._loss_kind_from_graph(tensor)
            scaled = self._scaled
            if scaled is not None and scaled[0]() is tensor:
                tensor = scaled[1]  # the loss before GradScaler.scale (the scale changes over time)
            self._scaled = None
            self._record_loss(tensor)

    def _loss_kind_from_graph(self, loss) -> None:
        """A functional loss (F.cross_entropy, F.nll_loss, F.binary_cross_entropy*; no loss module):
        its type and class count from the autograd graph of the tensor backward() is called on.
        Shapes only (no device read), and nothing is patched that TorchScript could see."""
        self._fn_watch = False  # looked at once
        node = loss.grad_fn
        for _ in range(6):  # through the scaling of an accumulation (/ n, * w, + reg)
            if node is None:
                return
            name = type(node).__name__
            if name.startswith("NllLoss"):
                logp = getattr(node, "_saved_self", None)
                target = getattr(node, "_saved_target", None)
                nxt = node.next_functions[0][0] if node.next_functions else None
                kind = "CrossEntropyLoss" if nxt is not None and type(nxt).__name__.startswith("LogSoftmax") else "NLLLoss"
                self._note_criterion(None, logp, target)
                red = getattr(node, "_saved_reduction", 1)
                self.criterion_info.update(type=kind, functional=True,
                                           reduction={0: "none", 1: "mean", 2: "sum"}.get(red, "mean"))
                return
            if name.startswith("BinaryCrossEntropy"):
                self._note_criterion(None, None, None)
                self.criterion_info.update(type="BCEWithLogitsLoss" if "Logits" in name else "BCELoss", functional=True)
                return
            nxt = [f for f, _ in node.next_functions if f is not None]
            node = nxt[0] if nxt else None

    def _after_backward(self) -> None:
        if self._manual_state == "watch":
            if self._n_backward == 1:
                self._init_cut = len(self._init_vals)
            self._set_watch()
        elif self._manual_state == "on":
            # end of backward k: the update of step k-1 is done, the gradients of step k are here
            P = self._manual_opt
            if self._manual_open:
                self._pre_ran = P
                self._on_post_step(P, (), {})
            self._on_pre_step(P, (), {})
            self._assign_pending(P, True)
            self._manual_open = True

    def _set_watch(self) -> None:
        """Remember one trainable parameter, its gradient tensor and its version after a backward."""
        for root in list(self._cand_roots) + self.models:
            for p in root.parameters():
                if p.requires_grad and p.grad is not None:
                    self._watch = (weakref.ref(p), weakref.ref(p.grad), p._version, p.grad._version)
                    return

    def _updated_since_watch(self) -> bool:
        """Between two backward calls and without any optimizer step: the gradients were reset or
        the parameters changed in place, i.e. the script updates its parameters by hand."""
        pref, gref, version, gversion = self._watch
        p = pref()
        if p is None:
            return False
        g = p.grad
        # nothing touches the gradients between the micro-batches of an accumulation; a manual loop
        # resets them (None / new tensor / zero_), clips them in place, or updates p in place
        return g is None or g is not gref() or p._version != version or g._version != gversion

    def _enter_manual(self) -> None:
        params, seen = [], set()
        for root in list(self._cand_roots) + self.models:
            for p in root.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        self._watch = None
        if not params:
            self._manual_state = "off"
            return
        self._manual_state = "on"
        # losses computed after the first update are not initial losses
        del self._init_vals[getattr(self, "_init_cut", len(self._init_vals)):]
        P = self._manual_opt = _ManualUpdates(params)
        self.notes.append("no optimizer: parameters are updated by hand; each backward() is one step")
        self._on_pre_step(P, (), {})
        self._assign_pending(P, True)  # the first backward's loss is step 1
        self._init_open = False
        self._manual_open = True

    def _plan_for(self, step: int):
        """What runs at ``step``: the schedules are evaluated ``read_every`` steps at a time in one
        tight loop, so a step where no check is due costs one dict lookup."""
        if not (self._plan_start <= step < self._plan_end):
            start, end = step, step + self.read_every
            plan: dict[int, _StepPlan] = {}
            for attr, entries in (("pre", self._dispatch.get("_pre", ())), ("post", self._dispatch.get("_post", ()))):
                for chk, fn, sched in entries:
                    for s in _steps_in(sched, start, end):
                        sp = plan.get(s)
                        if sp is None:
                            sp = plan[s] = _StepPlan()
                        getattr(sp, attr).append((chk, fn))
            if self._act_modules:
                for chk in self._act_checks:
                    for s in _steps_in(chk.activation_schedule, start, end):
                        sp = plan.get(s)
                        if sp is None:
                            sp = plan[s] = _StepPlan()
                        sp.act.append(chk)
            self._plan_map, self._plan_start, self._plan_end = plan, start, end
        return self._plan_map.get(step)

    def _record_lrs(self, optimizer) -> None:
        for i, g in enumerate(optimizer.param_groups):
            lr = g.get("lr")
            if isinstance(lr, torch.Tensor):
                continue  # a tensor LR would need a device read; skip it in the series
            if lr is not None:
                self.series.append(f"lr/group{i}", self.step, float(lr))

    def _on_model_input(self, model, args, kwargs) -> None:
        for chk, fn in self._train_inputs if torch.is_grad_enabled() else self._eval_inputs:
            self._call(chk, fn, model, args, kwargs)

    def _on_criterion(self, criterion, args, output) -> None:
        if self._crit_fast and output.numel() == 1:
            # the steady state (criterion seen, step 1 over, losses from the criterion): the tap
            # checked that the output is a tensor that requires grad
            pending = self._pending
            pending.append(output.detach())
            self._n_losses += 1
            if len(pending) >= self._loss_cap:
                del pending[: len(pending) // 2]
            return
        if not (isinstance(output, torch.Tensor) and output.requires_grad):
            return  # evaluation (no_grad) or not a loss
        if self.criterion_info is None:
            self._note_criterion(criterion, args[0] if args else None, args[1] if len(args) > 1 else None)
        if output.numel() != 1:
            return
        if self._init_open:
            self._init_vals.append(output.detach())
        if self.loss_source in (None, "criterion") and not self.patch_backward:
            self.loss_source = "criterion"
            # _record_loss inlined: this runs at every criterion call of the training loop
            pending = self._pending
            pending.append(output.detach())
            self._n_losses += 1
            if len(pending) >= self._loss_cap:
                del pending[: len(pending) // 2]
            self._crit_fast = not self._init_open and self.criterion_info is not None

    def _note_criterion(self, criterion, logits, target) -> None:
        info = {"type": type(criterion).__name__ if criterion is not None else None}
        if isinstance(logits, torch.Tensor):
            info["logits_shape"] = tuple(logits.shape)
        if isinstance(target, torch.Tensor):
            info["target_shape"] = tuple(target.shape)
            info["target_float"] = target.is_floating_point()
        if criterion is not None:
            info["reduction"] = getattr(criterion, "reduction", None)
            info["label_smoothing"] = getattr(criterion, "label_smoothing", 0.0)
            info["has_weight"] = getattr(criterion, "weight", None) is not None
            info["pos_weight"] = getattr(criterion, "pos_weight", None) is not None
        self.criterion_info = info

    def _record_loss(self, loss) -> None:
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            return
        # a detached alias (no copy, no sync); it belongs to the next optimizer step of any
        # optimizer (the D losses of a GAN to optD.step(), the micro-batches of an accumulation to
        # the step that follows them) and is read in one transfer at the next batched read
        self._pending.append(loss.detach())
        self._n_losses += 1
        if len(self._pending) >= self._loss_cap:  # many backward calls and no step: keep memory bounded
            del self._pending[: len(self._pending) // 2]

    def _assign_pending(self, optimizer, primary: bool, step: Optional[int] = None) -> None:
        vals, self._pending = self._pending, []
        label = None if primary else (self._opt_labels.get(id(optimizer)) or self._opt_label(optimizer))
        key = (label, self.step if step is None else step, self.loss_source == "criterion")
        if vals:
            self._loss_vals.extend(vals)
            self._loss_keys.append((key, len(vals)))
        if len(self._loss_vals) >= self._loss_cap:
            self.flush()

    def _opt_label(self, optimizer, full: bool = False) -> str:
        """A stable, readable name for an optimizer's loss series: the class of the model it trains."""
        label = self._opt_labels.get(id(optimizer))
        if label is None:
            owner = None
            try:
                first = next(p for g in optimizer.param_groups for p in g["params"])
                for m in self.models:
                    if any(q is first for q in m.parameters()):
                        owner = type(m).__name__
                        break
            except Exception:
                pass
            idx = next((i for i, o in enumerate(self.optimizers) if o is optimizer), len(self.optimizers))
            label = f"opt{idx}" + (f"-{owner}" if owner else "")
            self._opt_labels[id(optimizer)] = label
        if full:
            return f"{type(optimizer).__name__} ({label})"
        return label

    # activation hooks exist only during sampled steps ---------------------------------------

    def _arm_activations(self, step: int, wanted: Optional[list] = None) -> None:
        if self._armed_for == step or not self._act_modules:
            return
        self._disarm_activations()
        if wanted is None:
            plan = self._plan_for(step)
            wanted = plan.act if plan is not None else None
        wanted = [c for c in wanted or () if not c.disabled]
        if not wanted:
            return
        self._armed_for = step
        for mods in self._act_modules.values():
            for name, mod in mods:
                chks = [c for c in wanted if isinstance(mod, c.activation_types)]
                if chks:
                    self._tap(mod).act = (name, chks)
                    self._act_handles.append(mod)

    def _disarm_activations(self) -> None:
        if self._act_handles:
            for mod in self._act_handles:
                tap = self._taps.get(id(mod))
                if tap is not None:
                    tap.act = None
                    self._release_tap(mod)
            self._act_handles = []
        self._armed_for = None

    # epochs --------------------------------------------------------------------------------

    def epoch_at(self, step: int) -> int:
        """The epoch (0-based) that optimizer step ``step`` belonged to, as far as boundaries are known."""
        return bisect.bisect_right(self._epoch_steps, step)

    def _begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._epoch_steps.append(self.step)  # this step is the first of the new epoch
        self._steps_since_epoch = 0
        for chk, fn in self._callbacks("on_epoch"):
            self._call(chk, fn, epoch)

    def _log(self, split: str, epoch: Optional[int], metrics: dict) -> None:
        clean = {}
        for k, v in metrics.items():
            try:
                if isinstance(v, torch.Tensor):
                    if v.numel() != 1:  # not a scalar metric: note it, never raise into the script
                        self.notes.append(f"{split}/{k}: a tensor of {v.numel()} elements is not a scalar metric; ignored")
                        continue
                    v = v.detach().item()
                clean[k] = float(v)
            except Exception:
                continue
        for k, v in clean.items():
            self.series.append(f"{split}/{k}", self.step, v)
        if split == "val":
            self.flush(reduce=False)
        for chk, fn in self._callbacks("on_log"):
            self._call(chk, fn, split, clean)
        if split == "val" and self._epoch_source in (None, "log"):
            if epoch is not None:
                self._epoch_source = "log"
                if epoch + 1 != self.epoch:
                    self._pending_epoch = True
            elif self._steps_since_epoch > 0:
                self._epoch_source = "log"
                self._pending_epoch = True

    # recipecheck run: discovery --------------------------------------------------------------

    def _start_discovery(self) -> None:
        if self._disc_handles:
            return
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        self._depth = 0
        self._disc_handles.append(register_module_forward_pre_hook(self._disc_pre))
        self._disc_handles.append(register_module_forward_hook(self._disc_post, always_call=True))

    def _stop_discovery(self) -> None:
        for h in self._disc_handles:
            h.remove()
        self._disc_handles = []

    def _disc_pre(self, module, args) -> None:
        if isinstance(module, _LOSS_TYPES):
            if torch.is_grad_enabled():
                self._cand_criteria.add(module)
        elif self._depth == 0 and module.training and torch.is_grad_enabled():
            self._cand_roots.add(module)
            if self._first_batch is None and self.before_first_step is not None:
                self._first_batch = (_first_tensor(args, None), None)
                self._first_args = args  # forward(x, y) computing its own loss needs all of them
        self._depth += 1

    def _disc_post(self, module, args, output) -> None:
        self._depth = max(0, self._depth - 1)
        if isinstance(module, _LOSS_TYPES) and torch.is_grad_enabled() and \
                (self.criterion_info is None or self.criterion_info.get("functional")):
            self._note_criterion(module, args[0] if args else None, args[1] if len(args) > 1 else None)
            if self._init_open and isinstance(output, torch.Tensor) and output.requires_grad and output.numel() == 1:
                self._init_vals.append(output.detach())
            if self._first_batch is not None and self._first_batch[1] is None and len(args) > 1:
                self._first_batch = (self._first_batch[0], args[1])

    def _discover(self, optimizer) -> None:
        """A new optimizer in ``recipecheck run``: find its model(s), criterion and schedulers."""
        self.add_optimizer(optimizer)
        pset = {p for _, p in self.params(optimizer)}
        for root in list(self._cand_roots):
            if any(p in pset for p in root.parameters()):
                self.add_model(root)
        covered = {p for m in self.models for p in m.parameters()}
        if not pset <= covered:
            # one pass over the heap for all uncovered parameters (functional_call, parameters kept
            # outside modules), never one gc scan per parameter
            for root in _find_root_modules(pset - covered):
                if not any(root is m for m in self.models):
                    self.add_model(root)
                    covered |= set(root.parameters())
        for c in list(self._cand_criteria):
            self.add_criterion(c)
        try:
            for ref in gc.get_referrers(optimizer):
                if _is_scheduler(ref) and getattr(ref, "optimizer", None) is optimizer:
                    self.add_scheduler(ref)
        except Exception:
            pass
        # per-model taps take over; a model that appears later is found from its parameters
        self._stop_discovery()

    def _on_loader_iter(self, loader) -> None:
        info = self._loaders.get(id(loader))
        if info is None or info["ref"]() is not loader:
            info = self._loaders[id(loader)] = {"ref": weakref.ref(loader), "passes": 0, "steps": 0}
        info["passes"] += 1
        self._last_loader = info["ref"]
        if self._train_loader is not None and self._train_loader() is loader and info["steps"] > 0:
            self._epoch_source = "loader"
            self._pending_epoch = True

    def _note_train_loader(self) -> None:
        """Attribute this optimizer step to the loader iterated last; the loader with the most
        steps is the training loader (an eval loader iterated mid-epoch never wins)."""
        loader = self._last_loader() if self._last_loader is not None else None
        if loader is None:
            return
        info = self._loaders[id(loader)]
        info["steps"] += 1
        current = self._train_loader() if self._train_loader is not None else None
        if current is loader:
            return
        cur_steps = self._loaders[id(current)]["steps"] if current is not None and id(current) in self._loaders else -1
        if info["steps"] > cur_steps:
            self._train_loader = info["ref"]
            self._epoch_source = "loader"
            for chk, fn in self._callbacks("on_train_loader"):
                self._call(chk, fn, loader)


# --------------------------------------------------------------------------------------------


class _StepPlan:
    __slots__ = ("pre", "post", "act")

    def __init__(self):
        self.pre: list = []
        self.post: list = []
        self.act: list = []

    def add(self, attr, item):
        getattr(self, attr).append(item)


def _safe_str(exc: BaseException) -> str:
    """``Type: message`` that never raises (an exception's own __str__ may)."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:
        return f"{type(exc).__name__}: <str() of the exception failed>"


def _safe_traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
    except Exception:
        return ""


# torch.jit.trace and torch.compile/export tracing call modules too: those calls are not training
_is_tracing = getattr(torch._C, "_is_tracing", lambda: False)
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


class _Tap:
    """The monitor's view of one module's calls, installed as the instance attribute
    ``_compiled_call_impl`` (which ``Module.__call__`` calls instead of ``_call_impl`` when set).

    Unlike a forward hook it is not part of the module's state: ``Module.__getstate__`` drops it, so
    pickling, ``torch.save(model)``, ``copy.deepcopy`` and ``copy.copy`` behave as without the monitor
    and copies carry nothing; ``torch.jit.script``/``torch.export`` do not see it; the module's own
    hooks run exactly as before. A tap chains to a ``_compiled_call_impl`` that was already there
    (``module.compile()``, another monitor). It holds the monitor and the module weakly.
    """

    __slots__ = ("mon", "mod", "inner", "model", "criterion", "act", "__weakref__")

    def __init__(self, mon: "Monitor", mod, inner):
        # strong references, dropped by _untap at exit (the monitor holds the module anyway):
        # the tap runs at every call of the module, a weakref call there is measurable
        self.mon = mon
        self.mod = mod
        self.inner = inner
        self.model = False
        self.criterion = False
        self.act = None  # (layer name, checks) while activation sampling is armed

    def __call__(self, *args, **kwargs):
        mod, mon = self.mod, self.mon
        call = self.inner if self.inner is not None else mod._call_impl
        if mon is None or not mon._active or mon._suspended or _is_tracing() or _is_compiling():
            return call(*args, **kwargs)
        # (the common paths are inlined: this runs at every call of the model and the criterion)
        if self.model and (mon._train_inputs if torch.is_grad_enabled() else mon._eval_inputs):
            try:
                mon._on_model_input(mod, args, kwargs)
            except Exception:  # the monitor must never break the user's forward
                pass
        out = call(*args, **kwargs)
        if self.criterion:
            if isinstance(out, torch.Tensor) and out.requires_grad:  # not an evaluation loss
                try:
                    mon._on_criterion(mod, args, out)
                except Exception:
                    pass
        if self.act is not None or (self.model and mon._output_watchers):
            try:
                if self.act is not None and mod.training and torch.is_grad_enabled() and isinstance(out, torch.Tensor):
                    name, checks = self.act
                    for chk in checks:
                        mon._call(chk, chk.on_activation, name, mod, out)
                if self.model and mon._output_watchers:
                    for chk in mon._output_watchers:
                        mon._call(chk, chk.on_model_output, mod, out)
            except Exception:
                pass
        return out


def _untap(tap: _Tap) -> None:
    """Remove ``tap`` from its module, also when another tap was installed over it later."""
    mod = tap.mod
    tap.mon = None  # from now on a pass-through (if something keeps calling it)
    if mod is None:
        return
    d = mod.__dict__
    cur = d.get("_compiled_call_impl")
    if cur is tap:
        if tap.inner is None:
            d.pop("_compiled_call_impl", None)
        else:
            d["_compiled_call_impl"] = tap.inner
        return
    while isinstance(cur, _Tap):
        if cur.inner is tap:
            cur.inner = tap.inner
            return
        cur = cur.inner
    # something else replaced it (e.g. module.compile() after attach): the tap stays a pass-through


def _unpatch(owner, attr: str, wrapper) -> None:
    """Undo a patch, also when another monitor patched over it and is closed later (the chain of
    ``__wrapped__`` is relinked around ``wrapper``)."""
    cur = owner.__dict__.get(attr)
    if cur is wrapper:
        setattr(owner, attr, wrapper.__wrapped__)
        return
    while cur is not None and hasattr(cur, "__wrapped__"):
        if cur.__wrapped__ is wrapper:
            cur.__wrapped__ = wrapper.__wrapped__
            return
        cur = cur.__wrapped__
    wrapper.__recipecheck_dead__ = True  # not found: become a pass-through


class _ManualUpdates:
    """Stands in for the optimizer of a loop that updates its parameters by hand
    (``p.data.add_(p.grad, alpha=-lr)``): checks see its ``param_groups`` like an optimizer's."""

    def __init__(self, params):
        self.param_groups = [{"params": list(params), "lr": None}]
        self.defaults: dict = {}
        self.state: dict = {}

    def __repr__(self) -> str:
        return "<manual parameter updates>"


def _make_backward_patch(mon: Monitor, original):
    def backward(self, *args, **kwargs):
        live = mon._active and not mon._suspended and not backward.__recipecheck_dead__
        if live:
            try:
                mon._before_backward(self)
            except Exception:  # the monitor must never break the script's backward
                pass
        out = backward.__wrapped__(self, *args, **kwargs)
        if live and mon._manual_state != "off":
            try:
                mon._after_backward()
            except Exception:
                pass
        return out

    backward.__doc__ = original.__doc__
    backward.__wrapped__ = original
    backward.__recipecheck_dead__ = False
    return backward


def _make_iter_patch(mon: Monitor, original):
    def __iter__(self):
        if mon._active and not __iter__.__recipecheck_dead__:
            try:
                mon._on_loader_iter(self)
            except Exception:
                pass
        return __iter__.__wrapped__(self)

    __iter__.__wrapped__ = original
    __iter__.__recipecheck_dead__ = False
    return __iter__


def _make_scale_patch(mon: Monitor, original):
    def scale(self, outputs):
        out = scale.__wrapped__(self, outputs)
        if mon._active and not scale.__recipecheck_dead__ and isinstance(outputs, torch.Tensor) \
                and out is not outputs and isinstance(out, torch.Tensor):
            try:
                mon._scaled = (weakref.ref(out), outputs.detach())
            except Exception:
                pass
        return out

    scale.__doc__ = original.__doc__
    scale.__wrapped__ = original
    scale.__recipecheck_dead__ = False
    return scale


def _steps_in(schedule, start: int, end: int) -> list:
    fn = getattr(schedule, "steps_in", None)
    if fn is not None:
        return fn(start, end)
    return [s for s in range(start, end) if schedule(s)]  # a plain predicate


def _foreach_norm(tensors: list) -> list:
    try:
        return list(torch._foreach_norm(tensors))
    except Exception:
        return [t.norm() for t in tensors]


def _stack(tensors: list) -> torch.Tensor:
    dev = tensors[0].device
    return torch.stack([t.to(dev, torch.float32, non_blocking=True) for t in tensors])


def _find_root_modules(params) -> list:
    """The outermost Modules that own any of ``params``, found in one pass over the gc heap."""
    want = {id(p) for p in params}
    if not want:
        return []
    owners, parent = [], {}
    try:
        Module = torch.nn.Module
        for obj in gc.get_objects():
            if issubclass(type(obj), Module):  # type(), not isinstance: no __class__ property runs
                d = obj.__dict__
                for child in (d.get("_modules") or {}).values():
                    if child is not None:
                        parent.setdefault(id(child), obj)
                if any(id(p) in want for p in (d.get("_parameters") or {}).values() if p is not None):
                    owners.append(obj)
    except Exception:
        return []
    roots, seen = [], set()
    for mod in owners:
        hops = set()
        while id(mod) in parent and id(mod) not in hops:
            hops.add(id(mod))
            mod = parent[id(mod)]
        if id(mod) not in seen:
            seen.add(id(mod))
            roots.append(mod)
    return roots


def _build_checks(spec) -> list[Check]:
    classes = all_check_classes()
    by_code = {c.code: c for c in classes}
    if spec is None:
        return [c() for c in classes]
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    out: list[Check] = []
    removed = set()
    codes_only = True
    for item in spec:
        if isinstance(item, Check):
            out.append(item)
            codes_only = False
        elif isinstance(item, type) and issubclass(item, Check):
            out.append(item())
            codes_only = False
        elif isinstance(item, str):
            code = item.strip().upper()
            if code.startswith("-"):
                removed.add(code[1:])
                continue
            if code not in by_code:
                raise ValueError(f"unknown runtime check {item!r}; known: {', '.join(sorted(by_code))}")
            out.append(by_code[code]())
        else:
            raise TypeError(f"not a check: {item!r}")
    if removed and not out and codes_only:
        out = [c() for c in classes]
    return [c for c in out if c.code not in removed]


@contextmanager
def monitor(model=None, optimizer=None, scheduler=None, criterion=None, num_classes=None,
            report: Union[str, os.PathLike, None] = "recipecheck-report", checks=None, **options):
    """Monitor a training loop: ``with monitor(model, optimizer, ...) as mon: ...``.

    See :class:`Monitor` for the parameters. On exit (also when the block raises) every hook is
    removed, the last statistics are read, the report is written to ``report`` (unless None)
    and ``mon.findings`` / ``mon.series`` hold the results.
    """
    mon = Monitor(model, optimizer, scheduler, criterion, num_classes, report, checks, **options)
    mon.attach()
    try:
        yield mon
    except BaseException:
        mon.close(clean=False)
        raise
    else:
        mon.close(clean=True)
