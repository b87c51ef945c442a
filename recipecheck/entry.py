"""The `recipecheck` console script. `--version` answers before click and the CLI are imported:
a pre-commit hook or an editor integration probes it often, and the import costs more than the
answer."""

from __future__ import annotations

import sys


# True once the console script runs: the process ends when the command returns, so work that
# only frees memory for later (collecting a lint's heap) can be skipped (see lint._collector_tuned)
PROCESS_ENDS_AFTER_COMMAND = False


def main() -> None:
    global PROCESS_ENDS_AFTER_COMMAND
    PROCESS_ENDS_AFTER_COMMAND = True
    if sys.argv[1:] == ["--version"]:
        from recipecheck import __version__

        sys.stdout.write(f"recipecheck, version {__version__}\n")  # click's version_option wording
        return
    from recipecheck.cli import main as cli

    cli()
