"""Issue 11: filesystem accidents, notebooks with IPython syntax, and `--fix` never losing data.

The tests run as whatever user runs the suite; where root would bypass a permission, the
failure is simulated (a patched call raising PermissionError) instead of skipped.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from recipecheck import lint as lint_mod
from recipecheck.files import iter_files
from recipecheck.lint import LintOptions, run_lint
from recipecheck.notebook import fix_notebook, lint_notebook
from recipecheck.rule import all_rules

RULES = [r() for r in all_rules()]
BUGGY = (
    "import torch.nn as nn\nfrom torch.utils.data import DataLoader\n"
    "model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())\n"
    "train_loader = DataLoader(train_ds, batch_size=2, shuffle=True)\n"
    "for epoch in range(10):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
    "        loss = crit(model(x), y)\n        loss.backward()\n        opt.step()\n"
)
# RC507 has a safe fix: `training=self.training` is added to the functional dropout
FIXABLE = ("import torch.nn as nn\nimport torch.nn.functional as F\n\n\nclass Net(nn.Module):\n"
           "    def forward(self, x):\n        x = F.dropout(x, p=0.5)\n        return x\n")
FIXED_LINE = "F.dropout(x, p=0.5, training=self.training)"


def lint(*args: str, **kw) -> tuple[int, str, str]:
    """run_lint in-process; (exit code, stdout, stderr)."""
    opts = LintOptions(paths=list(args), use_cache=False, jobs=1, fix=kw.pop("fix", None),
                       diff=kw.pop("diff", False))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_lint(opts, **kw)
    return code, out.getvalue(), err.getvalue()


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recipecheck", *args], capture_output=True,
                          text=True, timeout=timeout)


# --------------------------------------------------------------------------- item 2

def test_a_fifo_inside_a_directory_is_skipped_not_opened(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    os.mkfifo(tmp_path / "x.py")
    proc = cli("lint", "--no-cache", str(tmp_path), timeout=120)  # hung forever before
    assert proc.returncode == 1
    assert "RC509" in proc.stdout and "1 file" in proc.stdout
    assert "x.py: skipped" in proc.stderr and "FIFO" in proc.stderr


@pytest.mark.parametrize("command", ["lint", "recipe"])
def test_naming_a_fifo_or_a_device_is_an_error(tmp_path, command):
    fifo = tmp_path / "x.py"
    os.mkfifo(fifo)
    for target in (str(fifo), os.devnull):
        proc = cli(command, target, timeout=120)
        assert proc.returncode == 2, (target, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "error" in proc.stderr
        assert "FIFO" in proc.stderr or "device" in proc.stderr or "regular file" in proc.stderr


# --------------------------------------------------------------------------- item 6

def test_symlink_loops_in_the_tree_are_notices(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "a.py").symlink_to(tmp_path / "b.py")
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "again").symlink_to(sub)
    code, out, err = lint(str(tmp_path))
    assert code == 1 and "RC509" in out
    assert "Traceback" not in err
    assert "a.py: skipped" in err and "b.py: skipped" in err


def test_an_unreadable_subdirectory_is_a_notice(tmp_path, monkeypatch):
    (tmp_path / "train.py").write_text(BUGGY)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "hidden.py").write_text(BUGGY)
    real_is_file, real_scandir = Path.is_file, os.scandir

    def is_file(self):  # what stat() does in a directory without the x permission
        if str(self).startswith(str(locked) + os.sep):
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    monkeypatch.setattr(os, "scandir", scandir)
    notices: list[str] = []
    found = list(iter_files([str(tmp_path)], lambda p: False, notices))
    assert found == [tmp_path / "train.py"]
    assert any("locked" in n and "Permission denied" in n for n in notices)


def test_output_file_in_a_missing_directory_fails_before_linting(tmp_path, monkeypatch):
    (tmp_path / "train.py").write_text(BUGGY)
    monkeypatch.setattr(lint_mod, "run_jobs", lambda *a, **k: pytest.fail("linted anyway"))
    code, out, err = lint(str(tmp_path), output_file=str(tmp_path / "nope" / "report.txt"))
    assert code == 2 and "does not exist" in err and err.count("\n") == 1


def test_output_file_on_a_full_device_is_exit_2(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    (tmp_path / "train.py").write_text(BUGGY)
    proc = cli("lint", "--no-cache", str(tmp_path), "-o", "/dev/full")
    assert proc.returncode == 2  # was 1 ("findings") with the report lost
    assert "No space left" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_file_in_an_unwritable_directory_is_exit_2(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code, _, err = lint(str(tmp_path / "train.py"), output_file=str(ro / "r.txt"))
    assert code == 2 and "permission denied" in err.lower()


# --------------------------------------------------------------------------- item 7

def _nb(*sources: str, **cell_kw) -> str:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": src} for src in sources]
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {"language": "python"}},
                       "nbformat": 4, "nbformat_minor": 5}, indent=1)


NB_TRAIN = ("import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))\n"
            "criterion = nn.CrossEntropyLoss()\nfor x, y in loader:\n"
            "    loss = criterion(model(x), y)\n    loss.backward()\n")


@pytest.mark.parametrize("cell", [
    'print("%d of %d done"\n      % (i, n))\n',                       # % formatting, continued
    'msg = ("epoch %d"\n       %\n       epoch)\n',
    'cmd = "!rm -rf /"\nprint("wow!")\n',                               # ! inside strings
    's = """\n%notmagic\n!notshell\n"""\n',                            # inside a triple quote
    'total = 1 + \\\n    2\n',                                          # line continuation
    '%matplotlib inline\n!pip install torch \\\n    torchvision\nfiles = !ls\nnn.Linear?\n??model\n',
    '%%time\nfor i in range(3):\n    pass\n',                           # Python-bodied cell magic
    '%%bash\necho "(" unbalanced\n',                                    # non-Python cell magic
])
def test_ipython_syntax_is_masked_only_at_the_start_of_a_logical_line(cell):
    res = lint_notebook(_nb(NB_TRAIN, cell), "nb.ipynb", RULES)
    assert "RC900" not in [f.code for f in res.findings], res.findings
    assert "RC506" in [f.code for f in res.findings]


def test_a_cell_that_does_not_parse_costs_that_cell_only():
    res = lint_notebook(_nb("import torch\n", "x = (1,\n", NB_TRAIN, "def broken(:\n    pass\n"),
                        "nb.ipynb", RULES)
    by_code = {}
    for f in res.findings:
        by_code.setdefault(f.code, []).append(f.extra["cell"])
    assert by_code.get("RC900") == [2, 4]
    assert by_code.get("RC506") == [3]


def test_notebook_fix_changes_only_the_fixed_cells_source_bytes():
    cells = [{"cell_type": "code", "execution_count": 1, "metadata": {"big": 1e400, "t": "caf\u00e9 \u2713"},
              "outputs": [{"output_type": "stream", "name": "stdout", "text": ["tab\there\n"]}],
              "source": ["import torch.nn as nn\n", "import torch.nn.functional as F\n"]},
             {"cell_type": "markdown", "metadata": {}, "source": ["\u00e9\u00e8 \\u escapes"]},
             {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [],
              "source": ["class Net(nn.Module):\n", "\tdef forward(self, x):\n",
                         "\t\tx = F.dropout(x, p=0.5)\n", "\t\treturn x\n"]}]
    text = json.dumps({"cells": cells, "metadata": {"kernelspec": {"language": "python"}},
                       "nbformat": 4, "nbformat_minor": 5}, indent="\t", ensure_ascii=True)
    text = text.replace("Infinity", "1e400").replace("\n", "\r\n") + "\r\n"
    new, _ = fix_notebook(text, "nb.ipynb", RULES)
    assert new != text
    old_line = '"\\t\\tx = F.dropout(x, p=0.5)\\n",'
    new_line = '"\\t\\tx = F.dropout(x, p=0.5, training=self.training)\\n",'
    assert old_line in text and new == text.replace(old_line, new_line)


# --------------------------------------------------------------------------- item 8

def _fix(path: Path, **kw) -> tuple[int, str, str]:
    return lint(str(path), fix="safe", **kw)


def test_fix_keeps_the_mode(tmp_path):
    p = tmp_path / "net.py"
    p.write_text(FIXABLE)
    p.chmod(0o755)
    _fix(p)
    assert FIXED_LINE in p.read_text()
    assert stat.S_IMODE(p.stat().st_mode) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_fix_keeps_the_owner(tmp_path):
    p = tmp_path / "net.py"
    p.write_text(FIXABLE)
    os.chown(p, 12345, 12345)
    _fix(p)
    assert FIXED_LINE in p.read_text()
    assert (p.stat().st_uid, p.stat().st_gid) == (12345, 12345)


def test_fix_follows_a_symlink_and_keeps_it(tmp_path):
    target = tmp_path / "real.py"
    target.write_text(FIXABLE)
    link = tmp_path / "link.py"
    link.symlink_to(target)
    _fix(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert FIXED_LINE in target.read_text()


def test_fix_keeps_hard_links(tmp_path):
    a = tmp_path / "a.py"
    a.write_text(FIXABLE)
    b = tmp_path / "b.txt"
    os.link(a, b)
    _fix(a)
    assert os.path.samefile(a, b) and FIXED_LINE in b.read_text()


def test_fix_refuses_a_read_only_file(tmp_path):
    p = tmp_path / "net.py"
    p.write_text(FIXABLE)
    p.chmod(0o444)
    code, _, err = _fix(p)
    assert p.read_text() == FIXABLE
    assert "read-only" in err


def test_fix_never_overwrites_an_edit_made_meanwhile(tmp_path, monkeypatch):
    p = tmp_path / "net.py"
    p.write_text(FIXABLE)
    real = lint_mod.fix_source

    def fix_while_editing(*a, **k):
        got = real(*a, **k)
        p.write_text(FIXABLE + "# saved by the editor meanwhile\n")
        return got

    monkeypatch.setattr(lint_mod, "fix_source", fix_while_editing)
    _, _, err = _fix(p)
    assert p.read_text().endswith("# saved by the editor meanwhile\n")
    assert "changed while" in err


def test_fix_with_a_latin1_cookie_does_not_double_encode(tmp_path):
    p = tmp_path / "net.py"
    raw = ("# -*- coding: latin-1 -*-\n# caf\u00e9\n" + FIXABLE).encode("utf-8")  # UTF-8 bytes
    p.write_bytes(raw)
    _fix(p)
    new = p.read_bytes()
    assert FIXED_LINE.encode() in new
    assert new.replace(FIXED_LINE.encode(), b"F.dropout(x, p=0.5)") == raw


def test_fix_in_an_unwritable_directory_writes_in_place(tmp_path, monkeypatch):
    p = tmp_path / "net.py"
    p.write_text(FIXABLE)
    inode = p.stat().st_ino

    def no_temp_files(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", no_temp_files)
    code, _, err = _fix(p)
    assert "Traceback" not in err and FIXED_LINE in p.read_text()
    assert p.stat().st_ino == inode


@pytest.mark.parametrize("prefix,ending", [(b"\xef\xbb\xbf", b"\n"), (b"", b"\r"), (b"\xef\xbb\xbf", b"\r\n")])
def test_fix_keeps_a_bom_and_the_final_line_ending(tmp_path, prefix, ending):
    p = tmp_path / "net.py"
    body = FIXABLE.rstrip("\n").replace("\n", ending.decode()).encode()
    p.write_bytes(prefix + body + ending)
    _fix(p)
    new = p.read_bytes()
    assert new.startswith(prefix) and new.endswith(b"return x" + ending)
    assert FIXED_LINE.encode() in new


def test_diff_with_json_format_keeps_stdout_json(tmp_path):
    p = tmp_path / "net.py"
    p.write_text(FIXABLE)
    proc = cli("lint", "--no-cache", "--diff", "--format", "json", str(p))
    findings = json.loads(proc.stdout)
    assert [f["code"] for f in findings] == ["RC507"]
    assert "+++ b/" in proc.stderr
    assert p.read_text() == FIXABLE
