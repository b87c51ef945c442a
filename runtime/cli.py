"""``recipecheck run``: run an unmodified training script under the runtime monitor."""

from __future__ import annotations

import sys

import click


@click.command(
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
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def run_command(report, no_report, sanity, checks, num_classes, script, script_args):
    """Run SCRIPT [SCRIPT_ARGS...] like `python SCRIPT ...`, monitoring the training.

    Everything after the script path goes to the script. Exit code and exceptions of the script
    are preserved; the summary is printed and the report written at the end (also on Ctrl-C and
    when the script raises).

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
    code = run_script(script, list(script_args), report=None if no_report else report, checks=checks,
                      sanity=sanity, num_classes=num_classes)
    sys.exit(code)
