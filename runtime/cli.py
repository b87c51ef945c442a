"""``recipecheck run``: run an unmodified training script under the runtime monitor."""

from __future__ import annotations

import os
import sys

import click


class _RunCommand(click.Command):
    """Like python, everything after ``-m MODULE`` (or after the script path) belongs to the
    script, even options that ``recipecheck run`` also has (``-m train --report x``)."""

    def parse_args(self, ctx, args):
        takes_value = {o for p in self.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts}
        i = 0
        while i < len(args):
            a = args[i]
            if a == "--" or not a.startswith("-"):
                break  # the script path: click stops there (no interspersed args)
            if a == "-m" and i + 1 < len(args):
                rest = args[i + 2:]
                args = args[: i + 2] + (["--", *rest] if rest else [])
                break
            i += 2 if a in takes_value else 1
        return super().parse_args(ctx, args)


@click.command(
    cls=_RunCommand,
    name="run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--report", "report", default="recipecheck-report", show_default=True,
              help="Folder for report.json and report.html.")
@click.option("--no-report", is_flag=True, help="Write no report files (summary only).")
@click.option("--sanity", is_flag=True, help="Run the sanity suite (RT101/RT102/RT114/RT115) before training.")
@click.option("--checks", "checks", default=None,
              help="Comma-separated RT codes to run (e.g. RT103,RT106), or -RTxxx to drop one.")
@click.option("--num-classes", type=int, default=None, help="Number of classes, for RT101.")
@click.option("--fail-on", "fail_on", type=click.Choice(["error", "warning"]), default=None,
              help="Exit 1 when the monitor reports a finding of this severity or worse (for CI); a "
                   "script that fails keeps its own exit code, which the report records either way.")
@click.option("-m", "module", default=None, metavar="MODULE",
              help="Run a module as `python -m MODULE ...` does; every argument after it goes to it.")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED, metavar="SCRIPT [ARGS]...")
def run_command(report, no_report, sanity, checks, num_classes, fail_on, module, script_args):
    """Run SCRIPT [ARGS...] (or -m MODULE [ARGS...]) like python, monitoring the training.

    Everything after the script path (or module name) goes to the script. Exit code and
    exceptions of the script are preserved; the summary is printed and the report written at
    the end (also on Ctrl-C and when the script raises). Under torchrun
    (`torchrun --nproc-per-node N --no-python recipecheck run train.py`) every rank is
    monitored and rank 0 writes one report.

    Discovery uses torch's global optimizer-step and module-forward hooks; while the script
    runs, torch.Tensor.backward (the loss of each step) and DataLoader.__iter__ (epochs, sampler)
    are wrapped by reversible patches that are removed when the script ends.
    """
    from .launcher import run_script

    try:
        from .monitor import _build_checks

        _build_checks(checks)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc))
    script = None
    args = list(script_args)
    if module is None:
        if not args:
            raise click.UsageError("missing the script to run (or -m MODULE)")
        script = args.pop(0)
        if not os.path.isfile(script):
            raise click.UsageError(f"no such script: {script!r}")
    code = run_script(script, args, module=module, report=None if no_report else report, checks=checks,
                      sanity=sanity, num_classes=num_classes, fail_on=fail_on)
    sys.exit(code)
