"""Which files `recipecheck lint PATHS` looks at."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Iterator

SKIP_DIRS = {
    ".git", ".hg", ".svn", "__pycache__", "build", "dist", ".venv", "venv", "env", ".env",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules", ".eggs",
    "site-packages", ".ipynb_checkpoints",
}
EXTENSIONS = (".py", ".pyi", ".ipynb")


class PathError(ValueError):
    """A path named on the command line cannot be linted (exit 2, one line)."""


def _is_virtualenv(d: Path) -> bool:
    try:
        return (d / "pyvenv.cfg").is_file()
    except OSError:  # an untraversable directory: os.walk reports it when it gets there
        return False


def _why_not_regular(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def regular_file_error(path: str) -> str | None:
    """Why `path` cannot be read as a source file (None when it is a regular file).

    Only regular files are ever opened: reading a FIFO blocks forever and a device never ends.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    return f"is {_why_not_regular(mode)}, not a regular file"


def iter_files(paths: list[str], excluded: Callable[[Path], bool],
               notices: list[str] | None = None) -> Iterator[Path]:
    """Python files under `paths`; explicitly named files are always included.

    Inside directories only regular files are yielded; FIFOs, devices, sockets, dangling links
    and symlink loops are skipped (with a notice when `notices` is given), and so are
    directories that cannot be read. A named path that is neither a regular file nor a
    directory raises PathError.
    """
    seen: set[Path] = set()

    def note(msg: str) -> None:
        if notices is not None:
            notices.append(msg)

    for raw in paths:
        p = Path(raw)
        try:
            mode = p.stat().st_mode
        except OSError as exc:
            raise PathError(f"{raw}: {exc.strerror or exc}") from None
        if stat.S_ISREG(mode):
            if p not in seen:
                seen.add(p)
                yield p
            continue
        if not stat.S_ISDIR(mode):
            raise PathError(f"{raw}: is {_why_not_regular(mode)}; only regular files and "
                            "directories can be linted")

        def walk_error(exc: OSError) -> None:
            note(f"{exc.filename}: skipped: cannot read the directory: {exc.strerror or exc}")

        for root, dirs, files in os.walk(p, onerror=walk_error):
            rootp = Path(root)
            # symlinked directories are not followed (os.walk's default): drop them before the
            # exclusion check, which resolves paths and would trip on a symlink loop
            dirs[:] = sorted(
                d for d in dirs
                if d not in SKIP_DIRS and not d.endswith(".egg-info")
                and not os.path.islink(rootp / d)
                and not _is_virtualenv(rootp / d) and not excluded(rootp / d)
            )
            for name in sorted(files):
                if not name.endswith(EXTENSIONS):
                    continue
                fp = rootp / name
                if fp in seen:
                    continue
                try:
                    mode = fp.stat().st_mode
                except OSError as exc:
                    note(f"{fp}: skipped: {exc.strerror or exc}")
                    continue
                if not stat.S_ISREG(mode):
                    note(f"{fp}: skipped: it is {_why_not_regular(mode)}")
                    continue
                if not excluded(fp):
                    seen.add(fp)
                    yield fp
