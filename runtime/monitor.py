"""The runtime monitor: observe a live training run and run the RT checks on it.

Two ways in:

* the API, for custom loops::

      with recipecheck.runtime.monitor(model, optimizer, criterion=criterion) as mon:
          for epoch in range(epochs):
              for x, y in loader:
                  ...  # the usual zero_grad / forward / backward / step
              mon.log_val(loss=val_loss, acc=val_acc)
      mon.findings  # list of RuntimeFinding

  The monitor attaches only to the objects it is given: step pre/post hooks on the
  optimizer(s), one forward pre-hook on the model, a forward hook on the criterion (the loss of
  each step; without a criterion call ``mon.observe_loss(loss)``), and, only during sampled
  steps, forward hooks on activation modules. It never uses full-backward module hooks (they
  break ``ReLU(inplace=True)``).

* ``recipecheck run train.py ...`` (see :mod:`recipecheck.runtime.launcher`) builds a
  ``Monitor(global_hooks=True, patch_backward=True, patch_dataloader=True)``: torch's global
  optimizer step hooks find the optimizers, global module forward hooks (only until the model
  of each optimizer is known) find the model(s) and criterion, and two documented, reversible
  patches, active only inside that command, give the loss (the tensor ``backward()`` is called
  on) and the training loader's passes (``DataLoader.__iter__``).

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
from .stats import SeriesStore
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
        self._loss_steps: list[int] = []
        self._loss_cap = 4 * self.read_every + 16
        self.lr_every = 10  # LR series: every step for the first 16, then every 10th
        self._opt_ids: set[int] = set()
        self._idle_primary = 0
        self._crit_fast = False
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
        self._remove_all_hooks()
        self._active = False
        try:
            self.flush(reduce=clean)
            for chk, fn in self._callbacks("finalize"):
                self._call(chk, fn)
        except Exception as exc:  # never let the monitor's own wrap-up hide the training result
            self.run["check_errors"].append({"check": "monitor", "error": repr(exc), "step": self.step})
        self.run["steps"] = self.step
        self.run["epochs"] = self.epoch + (1 if self.step else 0)
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
        self.before_first_step = None
        self._dispatch = {}

    def _remove_all_hooks(self) -> None:
        pre = [entry[0] for entry in self._pre_handles.values()]
        for h in self._act_handles + self._disc_handles + pre + self._handles:
            try:
                h.remove()
            except Exception:
                pass
        self._act_handles, self._disc_handles, self._handles, self._pre_handles = [], [], [], {}
        self._armed_for = None
        for owner, attr, original in reversed(self._patches):
            setattr(owner, attr, original)
        self._patches = []

    def _patch(self, owner, attr: str, replacement) -> None:
        original = owner.__dict__[attr]
        self._patches.append((owner, attr, original))
        setattr(owner, attr, replacement)

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
        self._handles.append(model.register_forward_pre_hook(self._on_model_input, with_kwargs=True))
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
        self._handles.append(criterion.register_forward_hook(self._on_criterion))

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
            epoch = self.epoch
        f = RuntimeFinding(check.code, check.name, check.severity, message, step=step, epoch=epoch,
                           where=where, static_twin=check.static_twin)
        self.findings.append(f)
        return f

    def observe_loss(self, loss: torch.Tensor, logits: Optional[torch.Tensor] = None,
                     target: Optional[torch.Tensor] = None) -> None:
        """Record the loss of the current step (a scalar tensor; stays on its device)."""
        if self.loss_source != "explicit":
            self.loss_source = "explicit"
            self._crit_fast = False
        self._record_loss(loss)
        if logits is not None and self.criterion_info is None:
            self._note_criterion(None, logits, target)

    def log_train(self, epoch: Optional[int] = None, **metrics: float) -> None:
        """Record training metrics (e.g. ``loss=..., acc=...``) for the train/val curves (RT113)."""
        self._log("train", epoch, metrics)

    def log_val(self, epoch: Optional[int] = None, **metrics: float) -> None:
        """Record validation metrics; also marks the end of an epoch (unless epochs are known
        from the training loader or :meth:`next_epoch`)."""
        self._log("val", epoch, metrics)

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
        sync = reduce and self._dist.enabled  # every rank takes part, even with nothing to read
        if self._loss_vals or sync:
            vals, steps = self._loss_vals, self._loss_steps
            self._loss_vals, self._loss_steps = [], []
            if vals:
                try:  # the usual case: 0-d losses of one dtype on one device, a single op
                    buf = torch.stack(vals).to(torch.float32)
                except RuntimeError:
                    dev = vals[0].device
                    buf = torch.stack([v.reshape(()).to(dev, torch.float32) for v in vals])
            else:
                buf = torch.zeros(0)
            if sync:
                buf = self._dist.mean_if_aligned(buf)
            values = buf.tolist()
            acc: dict[int, list[float]] = {}
            for s, v in zip(steps, values):
                acc.setdefault(s, []).append(v)
            for s in sorted(acc):
                v = sum(acc[s]) / len(acc[s])
                losses.append((s, v))
                self.series.append("loss", s, v)
        deferred, self._deferred = self._deferred, []
        if deferred:
            by_dev: dict[Any, list[int]] = {}
            for i, (_, _, _, t) in enumerate(deferred):
                by_dev.setdefault(t.device, []).append(i)
            host: list[Optional[list[float]]] = [None] * len(deferred)
            for dev, idx in by_dev.items():
                dt = torch.float32 if dev.type == "mps" else torch.float64  # mps has no float64
                flat = torch.cat([deferred[i][3].reshape(-1).to(dt) for i in idx])
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
        d["_post"] = [(c, f, c.schedule) for c, f in d["on_post_step"]]
        self._dispatch = d
        self._train_inputs = [(c, f) for c, f in d["on_model_input"]
                              if c.model_inputs in ("all", "train") and (c, "on_model_input") not in self._paused]
        self._eval_inputs = [(c, f) for c, f in d["on_model_input"]
                             if c.model_inputs in ("all", "eval") and (c, "on_model_input") not in self._paused]
        self._act_checks = [c for c in self.checks if not c.disabled and c.activation_types]
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
            "error": f"{type(exc).__name__}: {exc}",
            "step": self.step,
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:],
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
        if self._pre_ran is optimizer:
            primary = optimizer is self._primary_opt
        else:
            if self.global_hooks and id(optimizer) not in self._opt_ids:
                self._discover(optimizer)
            primary = self._is_primary(optimizer)
            if primary:
                self._begin_step(optimizer)
        self._pre_ran = None
        self._in_step = False
        step = self.step
        plan = self._plan_map.get(step) if self._plan_start <= step < self._plan_end else self._plan_for(step)
        if plan is not None:
            for chk, fn in plan.post:
                self._call(chk, fn, optimizer)
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
        try:
            fn(self, optimizer)
        except Exception as exc:
            self.run["check_errors"].append({"check": "sanity", "error": f"{type(exc).__name__}: {exc}", "step": 0})
        self._first_batch = None

    def _plan_for(self, step: int):
        """What runs at ``step``: the schedules are evaluated ``read_every`` steps at a time in one
        tight loop, so a step where no check is due costs one dict lookup."""
        if not (self._plan_start <= step < self._plan_end):
            start, end = step, step + self.read_every
            plan: dict[int, _StepPlan] = {}
            for attr, entries in (("pre", self._dispatch.get("_pre", ())), ("post", self._dispatch.get("_post", ()))):
                for chk, fn, sched in entries:
                    for s in _steps_in(sched, start, end):
                        plan.setdefault(s, _StepPlan()).add(attr, (chk, fn))
            if self._act_modules:
                for chk in self._act_checks:
                    for s in _steps_in(chk.activation_schedule, start, end):
                        plan.setdefault(s, _StepPlan()).act.append(chk)
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
        if not (isinstance(output, torch.Tensor) and output.requires_grad):
            return  # evaluation (no_grad) or not a loss
        if self._crit_fast:
            self._loss_vals.append(output.detach())
            self._loss_steps.append(self.step + 1 - self._in_step)
            if len(self._loss_vals) >= self._loss_cap:
                self.flush()
            return
        if self.criterion_info is None:
            self._note_criterion(criterion, args[0] if args else None, args[1] if len(args) > 1 else None)
        if self.loss_source in (None, "criterion") and not self.patch_backward:
            self.loss_source = "criterion"
            self._record_loss(output)
            # from now on a scalar criterion output is the loss: skip the checks above
            self._crit_fast = len(self.criteria) == 1 and output.numel() == 1

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
        # a detached alias (no copy, no sync); stacked and read in one transfer at the next read
        self._loss_vals.append(loss.detach())
        self._loss_steps.append(self.step if self._in_step else self.step + 1)
        if len(self._loss_vals) >= self._loss_cap:
            self.flush()  # many micro-batches per step: read early

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
                    self._act_handles.append(mod.register_forward_hook(_ActivationHook(self, name, chks)))

    def _disarm_activations(self) -> None:
        if self._act_handles:
            for h in self._act_handles:
                h.remove()
            self._act_handles = []
        self._armed_for = None

    # epochs --------------------------------------------------------------------------------

    def _begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._steps_since_epoch = 0
        for chk, fn in self._callbacks("on_epoch"):
            self._call(chk, fn, epoch)

    def _log(self, split: str, epoch: Optional[int], metrics: dict) -> None:
        clean = {}
        for k, v in metrics.items():
            try:
                clean[k] = float(v.detach().item() if isinstance(v, torch.Tensor) else v)
            except (TypeError, ValueError):
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
        self._depth += 1

    def _disc_post(self, module, args, output) -> None:
        self._depth = max(0, self._depth - 1)
        if isinstance(module, _LOSS_TYPES) and self.criterion_info is None and torch.is_grad_enabled():
            self._note_criterion(module, args[0] if args else None, args[1] if len(args) > 1 else None)
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
            for p in pset - covered:
                root = _find_root_module(p)
                if root is not None:
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
        if pset <= covered:
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


class _ActivationHook:
    __slots__ = ("mon", "name", "checks")

    def __init__(self, mon: Monitor, name: str, checks: list):
        self.mon, self.name, self.checks = mon, name, checks

    def __call__(self, module, args, output) -> None:
        if not (module.training and torch.is_grad_enabled()) or not isinstance(output, torch.Tensor):
            return
        for chk in self.checks:
            self.mon._call(chk, chk.on_activation, self.name, module, output)


def _make_backward_patch(mon: Monitor, original):
    def backward(self, *args, **kwargs):
        if mon._active:
            try:
                if self.requires_grad and self.numel() == 1:
                    mon.loss_source = "backward"
                    mon._record_loss(self)
            except Exception:  # the monitor must never break the script's backward
                pass
        return original(self, *args, **kwargs)

    backward.__doc__ = original.__doc__
    backward.__wrapped__ = original
    return backward


def _make_iter_patch(mon: Monitor, original):
    def __iter__(self):
        if mon._active:
            try:
                mon._on_loader_iter(self)
            except Exception:
                pass
        return original(self)

    __iter__.__wrapped__ = original
    return __iter__


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


def _find_root_module(param) -> Optional[torch.nn.Module]:
    """The outermost Module that (transitively) owns ``param``, found through gc referrers."""

    def owners(obj, attr):
        # obj <- module._parameters / module._modules (a dict) <- the module, either directly
        # (inline instance values) or through its materialized __dict__
        for d in gc.get_referrers(obj):
            if not isinstance(d, dict):
                continue
            for r in gc.get_referrers(d):
                if isinstance(r, torch.nn.Module) and r.__dict__.get(attr) is d:
                    yield r
                elif isinstance(r, dict) and r.get(attr) is d:
                    for m in gc.get_referrers(r):
                        if isinstance(m, torch.nn.Module) and m.__dict__ is r:
                            yield m

    try:
        mod = next(owners(param, "_parameters"), None)
        seen = set()
        while mod is not None and id(mod) not in seen:
            seen.add(id(mod))
            parent = next(owners(mod, "_modules"), None)
            if parent is None:
                return mod
            mod = parent
    except Exception:
        return None
    return None


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
