"""The `recipecheck` console script. `--version` answers before click and the CLI are imported:
a pre-commit hook or an editor integration probes it often, and the import costs more than the
answer."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from recipecheck import __version__

        sys.stdout.write(f"recipecheck, version {__version__}\n")  # click's version_option wording
        return
    from recipecheck.cli import main as cli

    cli()
