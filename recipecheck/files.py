"""Which files `recipecheck lint PATHS` looks at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

SKIP_DIRS = {
    ".git", ".hg", ".svn", "__pycache__", "build", "dist", ".venv", "venv", "env", ".env",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules", ".eggs",
    "site-packages", ".ipynb_checkpoints",
}
EXTENSIONS = (".py", ".pyi", ".ipynb")


def _is_virtualenv(d: Path) -> bool:
    return (d / "pyvenv.cfg").is_file()


def iter_files(paths: list[str], excluded: Callable[[Path], bool]) -> Iterator[Path]:
    """Python files under `paths`; explicitly named files are always included."""
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            if p not in seen:
                seen.add(p)
                yield p
            continue
        if not p.is_dir():
            continue
        for root, dirs, files in os.walk(p):
            rootp = Path(root)
            dirs[:] = sorted(
                d for d in dirs
                if d not in SKIP_DIRS and not d.endswith(".egg-info")
                and not _is_virtualenv(rootp / d) and not excluded(rootp / d)
            )
            for name in sorted(files):
                if name.endswith(EXTENSIONS):
                    fp = rootp / name
                    if fp not in seen and not excluded(fp):
                        seen.add(fp)
                        yield fp
