"""Run an unmodified training script under the runtime monitor (``recipecheck run``).

Like ``python train.py``: the script runs as ``__main__`` with ``sys.argv = [script, *args]``
(``argv[0]`` as typed, ``__file__`` absolute) and the script's folder first on ``sys.path``;
``module=`` runs ``python -m module`` instead (the working directory first on ``sys.path``,
``argv[0]`` the module's file). Exit code and exceptions are preserved (``sys.exit(n)`` exits
with n, an uncaught exception prints the traceback and exits with 1, Ctrl-C exits with 130);
``fail_on`` turns findings of a severity into exit code 1 for CI. Discovery uses torch's global
hooks:

* ``torch.optim.optimizer.register_optimizer_step_pre_hook`` / ``..._post_hook`` see every
  optimizer step; an optimizer seen for the first time is attached, together with the
  model(s) that own its parameters, the criterion and the LR scheduler(s) found from it;
* ``torch.nn.modules.module.register_module_forward_pre_hook`` / ``register_module_forward_hook``
  record root modules (called at depth 0 with grad enabled) and loss modules until the model of
  every optimizer is known, then they are removed (per-model hooks take over);
* reversible patches active only inside this command: ``torch.Tensor.backward`` (the loss
  of each step is the scalar tensor ``backward()`` is called on),
  ``torch.utils.data.DataLoader.__iter__`` (passes over the training loader = epochs, and its
  sampler for RT110), ``torch.distributed.destroy_process_group`` (under torchrun the monitor
  does its last reduction and gathers the findings on rank 0 just before the group goes) and,
  with ``--sanity`` only and until the first training loss, ``torch.Tensor.backward`` once more
  (the loss function, its targets and the input shape it saw are read from the loss's autograd
  node, for the sanity suite). All are restored
  when the script ends, also when it raises.

At the end (also on Ctrl-C and when the script raises) the terminal summary is printed and the
report is written (by rank 0 only under torch.distributed).
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .monitor import Monitor


SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def run_script(script: Optional[str] = None, args: Sequence[str] = (), *, module: Optional[str] = None,
               report: Optional[str] = "recipecheck-report", checks: Any = None, sanity: bool = False,
               num_classes: Optional[int] = None, console: Any = None, summary: bool = True,
               fail_on: Optional[str] = None) -> int:
    """Run ``script`` (or, with ``module``, ``python -m module``) with ``args`` under a monitor.

    Returns the script's exit code; with ``fail_on`` ("error" or "warning"), a script that
    exited 0 gives 1 when the monitor reported a finding of that severity or worse (the script's
    own exit code is kept in the report's ``run.exit_code``). Under ``torchrun`` every rank runs
    its monitor, statistics are reduced over the ranks and rank 0 writes the one report."""
    if (script is None) == (module is None):
        raise ValueError("give a script path or a module name, not both")
    if fail_on is not None and fail_on not in SEVERITY_RANK:
        raise ValueError(f"fail_on must be one of {sorted(SEVERITY_RANK)}, got {fail_on!r}")
    # __file__ absolute but symlinks kept, as under python (which puts the real directory on sys.path)
    path = Path(os.path.abspath(script)) if script is not None else None
    info = {"script": script, "module": module, "argv": [script if script is not None else f"-m {module}", *args],
            "mode": "recipecheck run"}
    if fail_on:
        info["fail_on"] = fail_on
    mon = Monitor(report=report, checks=checks, num_classes=num_classes, global_hooks=True,
                  patch_backward=True, patch_dataloader=True, summary=summary, console=console,
                  run_info={k: v for k, v in info.items() if v is not None})
    losses = _LossRecorder() if sanity else None
    if sanity:
        mon.before_first_step = _sanity_runner(num_classes, losses, console)
    old_argv, old_path = sys.argv, list(sys.path)
    # argv[0] as typed (python does not resolve it); run_module replaces it with the module's file
    sys.argv = [script if script is not None else "-m", *args]
    if path is not None:
        sys.path.insert(0, os.path.dirname(os.path.realpath(path)))
    else:
        sys.path.insert(0, os.getcwd())  # python -m puts the working directory first
    if module is not None:
        import importlib.util

        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError) as exc:
            found, why = False, str(exc)
        else:
            why = f"No module named {module}"
        if not found:  # as python -m says it, before anything runs
            sys.argv, sys.path[:] = old_argv, old_path
            sys.stderr.write(f"recipecheck run: {why}\n")
            return 1
    code: int = 0
    clean = True
    dist_patch = _DistClosePatch(mon)
    mon.attach()
    try:
        if losses is not None:
            losses.install()
        dist_patch.install()
        if path is not None:
            _run_file(path)
        else:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        clean = False
        code = 130
        sys.stderr.write("KeyboardInterrupt\n")
        mon.run["interrupted"] = True
    except BaseException as exc:  # the script's own error: print it as python would
        clean = False
        code = 1
        _print_script_traceback(exc)
        mon.run["exception"] = f"{type(exc).__name__}: {_safe_str(exc)}"
    finally:
        sys.argv = old_argv
        sys.path[:] = old_path
        if losses is not None:
            losses.remove()
        dist_patch.remove()
        mon.run["exit_code"] = code
        _note_ranks(mon)
        if dist_patch.closed_early:
            # the report was written when the process group went down; add the exit code now
            written = False
            if mon._dist.rank == 0 and report is not None:
                try:
                    mon.write_report(report)
                    written = True
                except Exception as exc:
                    sys.stderr.write(f"recipecheck: could not write the report: {exc!r}\n")
            if summary and mon._dist.rank == 0:
                mon.print_summary()
                if written:
                    sys.stderr.write(f"recipecheck: report written to {os.fspath(report)}/report.json "
                                     "(and report.html)\n")
        else:
            mon.close(clean)
    if fail_on and code == 0 and mon._dist.rank == 0:
        worst = max((SEVERITY_RANK.get(f.severity, 0) for f in mon.findings), default=-1)
        if worst >= SEVERITY_RANK[fail_on]:
            sys.stderr.write(f"recipecheck: failing (--fail-on {fail_on}): the monitor reported "
                             f"{'an error' if worst == 2 else 'a warning'}; the script itself exited 0.\n")
            code = 1
    return code


def _run_file(path: Path) -> None:
    """Run a script file as ``__main__`` the way ``python path`` does: ``__file__`` absolute,
    ``sys.argv[0]`` left as typed (``runpy.run_path`` would replace it with the path), and the
    module installed as ``sys.modules["__main__"]`` while it runs (pickling classes defined in
    the script, ``torch.save(model)``)."""
    import importlib.machinery
    import types

    with open(path, "rb") as fh:  # compile() honours a coding cookie in bytes
        code = compile(fh.read(), str(path), "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=str(path), __cached__=None, __package__=None, __spec__=None,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", str(path)),
                         __builtins__=__builtins__)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() raised>"


def _note_ranks(mon: Monitor) -> None:
    """Under torchrun the process group starts after the monitor: record where it ran."""
    try:
        if mon._dist.enabled:
            mon.run["world_size"] = mon._dist.world_size
            mon.run["rank"] = mon._dist.rank
    except Exception:
        pass


class _DistClosePatch:
    """Close the monitor just before the script destroys the default process group.

    A script launched by torchrun ends with ``dist.destroy_process_group()``; the monitor's last
    reduction and the gathering of findings on rank 0 need the group, so they run then. The
    patch is reversible and removed when the script ends."""

    def __init__(self, mon: Monitor):
        self.mon = mon
        self.closed_early = False
        self._orig = None

    def install(self) -> None:
        import torch.distributed as dist

        if not dist.is_available() or "destroy_process_group" not in dist.__dict__:
            return
        self._orig = dist.__dict__["destroy_process_group"]
        orig, patch = self._orig, self

        def destroy_process_group(group=None, *args, **kwargs):
            if not patch.closed_early and group is None and dist.is_initialized():
                patch.closed_early = True
                _note_ranks(patch.mon)
                summary, patch.mon.summary = patch.mon.summary, False  # printed after the script
                try:
                    patch.mon.close(True)
                except Exception as exc:  # the monitor never breaks the script's shutdown
                    sys.stderr.write(f"recipecheck: monitor wrap-up failed: {exc!r}\n")
                finally:
                    patch.mon.summary = summary
            return orig(group, *args, **kwargs)

        destroy_process_group.__wrapped__ = orig
        destroy_process_group.__doc__ = orig.__doc__
        dist.destroy_process_group = destroy_process_group

    def remove(self) -> None:
        if self._orig is not None:
            import torch.distributed as dist

            dist.destroy_process_group = self._orig
            self._orig = None


_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}
_SCALE_NODES = ("DivBackward0", "DivBackward1", "MulBackward0", "MulBackward1")


def _loss_call_from_graph(loss) -> Optional[tuple]:
    """``(loss function, input shape, target, kwargs)`` of the loss whose autograd node produced
    ``loss`` (through a scaling such as ``loss / accumulation_steps``), read from the node's saved
    arguments before ``backward()`` frees them; None for other graphs. Loss modules and
    functional losses leave the same nodes, so both are seen, with the reshaped input the loss
    took (``output.view(-1, vocab)``) and its keyword arguments."""
    import torch.nn.functional as F

    node = loss.grad_fn
    for _ in range(4):  # through a few scalings
        if node is None or type(node).__name__ not in _SCALE_NODES:
            break
        node = next((n for n, _ in node.next_functions if n is not None), None)
    if node is None:
        return None
    kind = type(node).__name__
    red = {"reduction": _REDUCTIONS.get(getattr(node, "_saved_reduction", 1), "mean")}
    if kind == "NllLossBackward0":
        ignore = int(node._saved_ignore_index)
        if ignore >= 1 << 63:  # the node stores the int64 as unsigned (-100 reads 2**64 - 100)
            ignore -= 1 << 64
        kw = dict(red, ignore_index=ignore)
        if node._saved_weight is not None:
            kw["weight"] = node._saved_weight
        prev = [type(n).__name__ for n, _ in node.next_functions if n is not None]
        # log_softmax then nll is cross-entropy; it is right for logits and for log-probabilities
        fn = F.cross_entropy if prev[:1] == ["LogSoftmaxBackward0"] else F.nll_loss
    elif kind == "BinaryCrossEntropyWithLogitsBackward0":
        fn, kw = F.binary_cross_entropy_with_logits, dict(red)
        for name in ("weight", "pos_weight"):
            if getattr(node, f"_saved_{name}", None) is not None:
                kw[name] = getattr(node, f"_saved_{name}")
    elif kind == "MseLossBackward0":
        fn, kw = F.mse_loss, red
    elif kind == "SmoothL1LossBackward0":
        fn, kw = F.smooth_l1_loss, dict(red, beta=float(node._saved_beta))
    elif kind == "HuberLossBackward0":
        fn, kw = F.huber_loss, dict(red, delta=float(node._saved_delta))
    else:
        return None
    return fn, tuple(node._saved_self.shape), node._saved_target, kw


class _LossRecorder:
    """Reads the loss function of the first ``backward()`` from its autograd graph (``--sanity``
    only): the functional loss (``F.cross_entropy``, ``F.nll_loss``, ...) or the one inside a
    loss module, the input shape it saw, its targets and keyword arguments. It wraps
    ``torch.Tensor.backward`` (over the monitor's own wrapper) until that first loss, and does
    not touch ``torch.nn.functional`` (TorchScript compiles those by their source)."""

    def __init__(self):
        self.call: Optional[tuple] = None
        self._orig = None
        self._mine = None
        self._tries = 0

    def install(self) -> None:
        rec = self
        orig = self._orig = torch.Tensor.__dict__["backward"]

        def backward(self, *args, **kwargs):
            if rec.call is None and rec._tries < 8:
                rec._tries += 1
                try:
                    if self.requires_grad and self.numel() == 1:
                        rec.call = _loss_call_from_graph(self)
                except Exception:  # reading the graph must never break the script's backward
                    pass
                if rec.call is not None or rec._tries >= 8:
                    rec.remove()
            return orig(self, *args, **kwargs)

        backward.__doc__ = orig.__doc__
        backward.__wrapped__ = orig
        self._mine = backward
        torch.Tensor.backward = backward

    def remove(self) -> None:
        # only when nothing was installed over it since (the monitor restores its own original)
        if self._mine is not None and torch.Tensor.__dict__.get("backward") is self._mine:
            torch.Tensor.backward = self._orig
        self._mine = None


def _exit_code(exc: SystemExit) -> int:
    c = exc.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c
    sys.stderr.write(f"{c}\n")
    return 1


def _print_script_traceback(exc: BaseException) -> None:
    """The traceback as python prints it: from the script's first frame, without runpy's and
    this launcher's."""
    tb = exc.__traceback__
    skip = {os.path.realpath(__file__), os.path.realpath(runpy.__file__)}
    t = tb
    while t is not None and os.path.realpath(t.tb_frame.f_code.co_filename) in skip:
        t = t.tb_next
    traceback.print_exception(type(exc), exc, t or tb, file=sys.stderr)


def _sanity_runner(num_classes, losses: Optional["_LossRecorder"] = None, console: Any = None):
    def run(mon: Monitor, optimizer) -> None:
        from . import sanity as _sanity

        if losses is not None:
            losses.remove()  # the first training loss has been computed by now
        model = mon.models[0] if mon.models else None
        while isinstance(getattr(model, "module", None), torch.nn.Module) and \
                type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
            model = model.module  # the copies are plain models (a DDP wrapper cannot be deep-copied)
        crit = mon.criteria[0] if mon.criteria else None
        x, y = mon._first_batch if mon._first_batch else (None, None)
        call = losses.call if losses is not None else None
        loss_fn = None
        if call is not None and (y is None or _same_tensor(call[2], y)):
            # what the first backward() differentiated: a functional loss, or the loss module's
            # own computation (with the reshaping of its input and its arguments)
            loss_fn = _sanity.ShapedLoss(call[0], call[1], **call[3])
        elif crit is not None:
            loss_fn = _sanity.ShapedLoss(crit)
        if y is None and call is not None:
            y = call[2]
        in_forward = call is not None and _targets_fed_to_forward(mon._first_args, call[2])
        if in_forward and x is not None:
            # nanoGPT/minGPT style `logits, loss = model(x, y)`: the model computes its loss (and,
            # in nanoGPT, its full logits) only when given the targets, so it is called as in training
            x = tuple(mon._first_args)
        missing = [what for what, v in (("a model", model), ("the loss (an nn.*Loss module or a functional "
                                        "loss such as F.cross_entropy)", loss_fn), ("the inputs", x), ("the targets", y))
                   if v is None]
        if missing:
            reason = f"could not find {', '.join(missing)} at the first optimizer step"
            sys.stderr.write(f"recipecheck: --sanity skipped: {reason}.\n")
            mon.run["sanity"] = {"status": "skipped", "reason": reason}
            return
        reason = _sanity_preflight(_sanity, model, loss_fn, x, y)
        if reason:
            sys.stderr.write(f"recipecheck: --sanity skipped: {reason}.\n")
            mon.run["sanity"] = {"status": "skipped", "reason": reason}
            return
        factory = _sanity.optimizer_factory_like(optimizer)
        # the monitor's own RT101 judges the first real loss: don't report it twice
        codes = tuple(c for c in ("RT101", "RT102", "RT114", "RT115")
                      if not (c == "RT101" and any(chk.code == "RT101" for chk in mon.checks)))
        user_hooks = _sanity.count_user_hooks(model)
        with _SanityProgress(console, enabled=mon._dist.rank == 0) as progress:
            res = _sanity.run_sanity(model, loss_fn, (x, y), optimizer_factory=factory,
                                     num_classes=num_classes or mon.num_classes, checks=codes,
                                     progress=progress.update, gradcheck_budget=SANITY_BUDGET_S,
                                     overfit_budget=2 * SANITY_BUDGET_S)
            mon.findings.extend(res.findings)
            details = dict(getattr(res, "details", {}))
            details["loss"] = repr(loss_fn)
            if in_forward:
                details["loss_in_forward"] = ("the model computes its loss in forward(inputs, targets); the suite "
                                              "calls it the same way and recomputes the loss from its logits")
            if user_hooks:
                details["user_hooks_left_out"] = user_hooks
            mon.run["sanity"] = details
            try:  # LR advisor: a range test on copies, with the first batch cycled
                from .lr_finder import lr_range_test

                progress.update("LR", 0, 1)
                # one batch, cycled: a few dozen examples show the LR at which the loss falls fastest
                if in_forward:  # inputs and the flattened targets do not share a batch dimension
                    lx, ly = x, y
                else:
                    lx, ly = _sanity._take(x, 64, y), _sanity._take(y, 64, x)
                lr = lr_range_test(model, loss_fn, [(lx, ly)], factory, num_iters=100, time_budget=SANITY_BUDGET_S,
                                   progress=lambda done, total: progress.update("LR", done, total))
                progress.update("LR", 1, 1)
                mon.series.set("lr_range_test", lr.to_series())
                mon.run["lr_advice"] = lr.advice()
            except Exception as exc:  # the advisor must never stop the training run
                mon.run["check_errors"].append({"check": "lr_range_test",
                                                "error": f"{type(exc).__name__}: {exc}", "step": 0})
        if mon._dist.rank == 0:
            try:
                from .report import render_sanity

                render_sanity(mon.run["sanity"], mon.run.get("lr_advice"), console=console)
            except Exception as exc:  # printing must never stop the training run
                sys.stderr.write(f"recipecheck: could not print the sanity results: {exc!r}\n")

    return run


#: seconds for the gradient check and for the LR range test each (twice that for RT114) under
#: ``recipecheck run --sanity``; the suite must not hold the real training back for long
SANITY_BUDGET_S = 60.0

def _targets_fed_to_forward(args: Any, target: Any) -> bool:
    """Whether the loss's target (or a view of it, ``targets.view(-1)``) was an argument of the
    model's first training forward besides the input: the loss is computed inside ``forward``."""
    if not isinstance(target, torch.Tensor) or not isinstance(args, tuple) or len(args) < 2:
        return False
    try:
        ptr = target.untyped_storage().data_ptr()
        return any(isinstance(a, torch.Tensor) and a.untyped_storage().data_ptr() == ptr for a in args[1:])
    except Exception:
        return False


def _sanity_preflight(_sanity, model, loss_fn, x, y) -> Optional[str]:
    """One forward and loss on a copy, before the suite: a model whose output cannot be paired
    with the loss the script differentiated is a reason to skip the suite, not three crashes."""
    try:
        with _sanity.preserve_rng(0), _sanity.isolated(), torch.no_grad():
            m = _sanity.clean_copy(model)
            m.train()  # as the suite runs its copies: training mode, dropout off
            _sanity._dropout_off(m)
            dev = _sanity._model_device(m)
            xx, yy = x, y
            if dev is not None:
                xx = _sanity._map_tensors(x, lambda t: t.to(dev))
                yy = _sanity._map_tensors(y, lambda t: t.to(dev))
            out = _sanity._forward(m, xx)
            loss = loss_fn(out, yy)
            if not isinstance(loss, torch.Tensor):
                return f"the loss {loss_fn!r} did not return a tensor on the model's output"
        return None
    except Exception as exc:
        what = type(model).__name__
        return (f"the loss the script differentiated ({loss_fn!r}) could not be recomputed from the output of "
                f"{what}(inputs) on the first batch ({type(exc).__name__}: {str(exc)[:200]}); the suite needs "
                f"loss_fn(model(inputs), targets)")


def _same_tensor(a: Any, b: Any) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and a.device == b.device and a.data_ptr() == b.data_ptr())


_STEP_TITLES = {"RT101": "RT101 initial loss", "RT102": "RT102 gradient check (float64)",
                "RT114": "RT114 overfit a tiny batch", "RT115": "RT115 regularization", "LR": "LR range test"}


class _SanityProgress:
    """Progress of the sanity suite on stderr: a rich progress bar on a terminal, one line per
    check otherwise (CI logs)."""

    def __init__(self, console: Any = None, enabled: bool = True):
        self.console = console
        self.enabled = enabled
        self._progress = None
        self._tasks: dict[str, Any] = {}
        self._t0: dict[str, float] = {}

    def __enter__(self) -> "_SanityProgress":
        if not self.enabled:
            return self
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            console = self.console if self.console is not None else Console(stderr=True)
            self.console = console
            if getattr(console, "is_terminal", False):
                self._progress = Progress(TextColumn("recipecheck sanity: {task.description}"), BarColumn(),
                                          TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                          console=console, transient=True)
                self._progress.start()
        except Exception:
            self._progress = None
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, code: str, done: int, total: int) -> None:
        import time

        if not self.enabled:
            return
        try:
            title = _STEP_TITLES.get(code, code)
            if self._progress is not None:
                task = self._tasks.get(code)
                if task is None:
                    task = self._tasks[code] = self._progress.add_task(title, total=max(1, total))
                self._progress.update(task, completed=done, total=max(1, total))
                return
            if done == 0 and code not in self._t0:
                self._t0[code] = time.perf_counter()
                self._write(f"recipecheck: sanity {title} ...")
            elif done >= total and total == 1 and code in self._t0:
                self._write(f"recipecheck: sanity {title} done in {time.perf_counter() - self._t0.pop(code):.2f} s")
        except Exception:  # progress output never stops the suite
            pass

    def _write(self, line: str) -> None:
        file = getattr(self.console, "file", None) or sys.stderr
        file.write(line + "\n")
        try:
            file.flush()
        except Exception:
            pass
