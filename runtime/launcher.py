"""Run an unmodified training script under the runtime monitor (``recipecheck run``).

Like ``python -m cProfile train.py``: the script runs with ``runpy`` as ``__main__``, with
``sys.argv = [script, *args]`` and the script's folder first on ``sys.path``; its exit code and
exceptions are preserved (``sys.exit(n)`` exits with n, an uncaught exception prints the
traceback and exits with 1, Ctrl-C exits with 130). Discovery uses torch's global hooks:

* ``torch.optim.optimizer.register_optimizer_step_pre_hook`` / ``..._post_hook`` see every
  optimizer step; an optimizer seen for the first time is attached, together with the
  model(s) that own its parameters, the criterion and the LR scheduler(s) found from it;
* ``torch.nn.modules.module.register_module_forward_pre_hook`` / ``register_module_forward_hook``
  record root modules (called at depth 0 with grad enabled) and loss modules until the model of
  every optimizer is known, then they are removed (per-model hooks take over);
* two reversible patches active only inside this command: ``torch.Tensor.backward`` (the loss
  of each step is the scalar tensor ``backward()`` is called on) and
  ``torch.utils.data.DataLoader.__iter__`` (passes over the training loader = epochs, and its
  sampler for RT110). Both are restored when the script ends, also when it raises.

At the end (also on Ctrl-C and when the script raises) the terminal summary is printed and the
report is written.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

from .monitor import Monitor


def run_script(script: str, args: Sequence[str] = (), *, report: Optional[str] = "recipecheck-report",
               checks: Any = None, sanity: bool = False, num_classes: Optional[int] = None,
               console: Any = None, summary: bool = True) -> int:
    """Run ``script`` with ``args`` under a monitor; returns the script's exit code."""
    path = Path(script)
    mon = Monitor(report=report, checks=checks, num_classes=num_classes, global_hooks=True,
                  patch_backward=True, patch_dataloader=True, summary=summary, console=console,
                  run_info={"script": str(path), "argv": [str(path), *args], "mode": "recipecheck run"})
    if sanity:
        mon.before_first_step = _sanity_runner(num_classes)
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    code: int = 0
    clean = True
    mon.attach()
    try:
        runpy.run_path(str(path), run_name="__main__")
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
        _print_script_traceback(exc, path)
        mon.run["exception"] = f"{type(exc).__name__}: {exc}"
    finally:
        sys.argv = old_argv
        sys.path[:] = old_path
        mon.run["exit_code"] = code
        mon.close(clean)
    return code


def _exit_code(exc: SystemExit) -> int:
    c = exc.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c
    sys.stderr.write(f"{c}\n")
    return 1


def _print_script_traceback(exc: BaseException, path: Path) -> None:
    tb = exc.__traceback__
    target = os.path.realpath(str(path))
    t = tb
    while t is not None and os.path.realpath(t.tb_frame.f_code.co_filename) != target:
        t = t.tb_next
    traceback.print_exception(type(exc), exc, t or tb, file=sys.stderr)


def _sanity_runner(num_classes):
    def run(mon: Monitor, optimizer) -> None:
        try:
            from . import sanity as _sanity
        except ImportError:
            sys.stderr.write("recipecheck: --sanity needs recipecheck.runtime.sanity, which is not "
                             "available in this installation; skipping the sanity suite.\n")
            mon.run["sanity"] = {"status": "unavailable"}
            return
        model = mon.models[0] if mon.models else None
        crit = mon.criteria[0] if mon.criteria else None
        x, y = mon._first_batch if mon._first_batch else (None, None)
        if model is None or crit is None or x is None or y is None:
            sys.stderr.write("recipecheck: --sanity needs a model, a loss module (nn.*Loss) and an (inputs, "
                             "targets) batch; could not find them all, skipping the sanity suite.\n")
            mon.run["sanity"] = {"status": "skipped"}
            return
        defaults = dict(optimizer.defaults)
        defaults.pop("differentiable", None)

        def factory(params, _cls=type(optimizer), _kw=defaults):
            return _cls(params, **_kw)

        # the monitor's own RT101 judges the first real loss: don't report it twice
        codes = tuple(c for c in ("RT101", "RT102", "RT114", "RT115")
                      if not (c == "RT101" and any(chk.code == "RT101" for chk in mon.checks)))
        res = _sanity.run_sanity(model, crit, (x, y), optimizer_factory=factory,
                                 num_classes=num_classes or mon.num_classes, checks=codes)
        mon.findings.extend(res.findings)
        mon.run["sanity"] = getattr(res, "details", {})
        try:  # LR advisor: a range test on copies, with the first batch cycled
            from .lr_finder import lr_range_test

            lr = lr_range_test(model, crit, (x, y), factory, num_iters=100)
            mon.series.set("lr_range_test", lr.to_series())
            mon.run["lr_advice"] = lr.advice()
        except Exception as exc:  # the advisor must never stop the training run
            mon.run["check_errors"].append({"check": "lr_range_test",
                                            "error": f"{type(exc).__name__}: {exc}", "step": 0})

    return run
