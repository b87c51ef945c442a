"""Writing a fixed file back without losing data.

A fix replaces the file atomically (a temporary file in the same directory, then a rename) so
that a crash never leaves half a file; the temporary file gets the original's mode and owner
before the rename. Where a rename would change what the file is, the new content is written in
place instead: a hard-linked file (a rename would split the links), a directory we cannot
create files in, an owner we cannot give the new file. Symlinks are followed: the target is
fixed and the link stays. Read-only files are never touched, and a file whose content changed
since it was read (an editor saved meanwhile) is skipped: the user's edit wins.
"""

from __future__ import annotations

import os
import stat
import tempfile


class WriteSkipped(Exception):
    """The fix was not written; the message says why (shown as a notice)."""


def _in_place(target: str, original: bytes, new: bytes) -> None:
    with open(target, "r+b") as fh:
        if fh.read() != original:
            raise WriteSkipped("the file changed while it was being fixed; it was left as it is")
        fh.seek(0)
        fh.write(new)
        fh.truncate()


def write_fixed(path: str, original: bytes, new: bytes) -> None:
    """Replace the content of `path` (read as `original`) by `new`; raises WriteSkipped."""
    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except OSError as exc:
        raise WriteSkipped(f"cannot stat the file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise WriteSkipped("not a regular file")
    if not st.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise WriteSkipped("the file is read-only; it was not fixed")
    try:
        if st.st_nlink > 1:
            _in_place(target, original, new)
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target),
                                       prefix=f".{os.path.basename(target)}.", suffix=".tmp")
        except OSError:  # the directory is not writable: the file itself may still be
            _in_place(target, original, new)
            return
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(new)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except OSError:  # cannot give the file its owner back: write in place
                    os.unlink(tmp)
                    _in_place(target, original, new)
                    return
            with open(target, "rb") as fh:
                if fh.read() != original:
                    raise WriteSkipped("the file changed while it was being fixed; "
                                       "it was left as it is")
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except WriteSkipped:
        raise
    except OSError as exc:
        raise WriteSkipped(f"cannot write the file: {exc.strerror or exc}") from None


def cache_write(path, text: str) -> None:
    """Write a cache entry atomically (temporary file, then rename); an unusable cache directory
    is skipped silently: a cache is an optimisation, never an error."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass
