"""Jupyter notebooks: code cells linted as one program, cell positions, magics, --fix, bad input."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from recipecheck.cli import main
from recipecheck.notebook import fix_notebook, lint_notebook, parse_notebook
from recipecheck.rule import all_rules

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "fixtures" / "notebooks" / "steplr_per_batch.ipynb"
RULES = [r() for r in all_rules()]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _lines(src: str) -> list[str]:
    lines = src.split("\n")
    return [l + "\n" for l in lines[:-1]] + [lines[-1]]


def notebook(*cells, as_list=True, language="python"):
    """A minimal nbformat-4 notebook; a cell is source text, or ("markdown", text)."""
    out = []
    for i, c in enumerate(cells):
        kind, src = c if isinstance(c, tuple) else ("code", c)
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {"tags": [f"t{i}"]},
                "source": _lines(src) if as_list else src}
        if kind == "code":
            cell["execution_count"] = i + 1
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": [f"out {i}\n"]}]
        out.append(cell)
    return {"cells": out,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": language,
                                        "name": "python3"},
                         "language_info": {"name": language}},
            "nbformat": 4, "nbformat_minor": 5}


def write(tmp_path, nb, name="nb.ipynb") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return p


SETUP = """\
%matplotlib inline
!pip install -q torch
import torch
import torch.nn as nn

model = nn.Linear(10, 2)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)"""

# missing zero_grad: RC101 has a safe fix (insert optimizer.zero_grad())
LOOP_NO_ZERO_GRAD = """\
for epoch in range(90):
    for x, y in train_loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    scheduler.step()"""

LOOP_OK = """\
for epoch in range(90):
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    scheduler.step()"""


def errors(findings):
    return [(f.extra.get("cell"), f.line, f.column, f.code) for f in findings
            if f.severity.value != "info"]


# --------------------------------------------------------------------------- lint


def test_bundled_notebook_reports_rc201_in_cell_3():
    res = lint_notebook(BUNDLED.read_bytes(), str(BUNDLED), RULES)
    assert errors(res.findings) == [(3, 17, 9, "RC201")]


def test_bundled_notebook_text_and_json_positions():
    res = run("lint", "--no-cache", str(BUNDLED))
    assert res.exit_code == 1
    assert f"{BUNDLED}:cell 3:17:9: RC201 [error]" in res.output
    res = run("lint", "--no-cache", "--format", "json", str(BUNDLED))
    data = json.loads(res.output)
    assert [(d["code"], d["cell"], d["line"], d["column"]) for d in data] == [("RC201", 3, 17, 9)]


def test_cells_are_one_program_and_markdown_counts_in_cell_numbers(tmp_path):
    p = write(tmp_path, notebook(("markdown", "# Title"), SETUP, ("markdown", "## Train"),
                                 LOOP_NO_ZERO_GRAD))
    res = lint_notebook(p.read_text(), str(p), RULES)
    # the optimizer is built in cell 2, stepped in cell 4: one program
    assert errors(res.findings) == [(4, 5, 9, "RC101")]


def test_magics_and_shell_lines_are_skipped_and_lines_keep_their_numbers(tmp_path):
    loop = ("%%time\n"
            "for epoch in range(90):\n"
            "    %time x = 1\n"
            "    for x, y in train_loader:\n"
            "        !echo step\n"
            "        optimizer.zero_grad()\n"
            "        criterion(model(x), y).backward()\n"
            "        optimizer.step()\n"
            "        scheduler.step()\n"
            "files = !ls\n"
            "optimizer?\n")
    bash = "%%bash\nfor f in *.txt; do\n  echo $f\ndone"
    p = write(tmp_path, notebook(SETUP, bash, loop))
    res = lint_notebook(p.read_text(), str(p), RULES)
    assert "RC900" not in {f.code for f in res.findings}
    assert errors(res.findings) == [(3, 9, 9, "RC201")]


def test_noqa_in_a_cell(tmp_path):
    loop = LOOP_OK.replace("    scheduler.step()", "        scheduler.step()  # noqa: RC201")
    p = write(tmp_path, notebook(SETUP, loop))
    assert errors(lint_notebook(p.read_text(), str(p), RULES).findings) == []
    loop = LOOP_OK.replace("    scheduler.step()", "        scheduler.step()")
    p = write(tmp_path, notebook(SETUP, loop))
    assert errors(lint_notebook(p.read_text(), str(p), RULES).findings) == [(2, 7, 9, "RC201")]


def test_syntax_error_in_a_cell_is_reported_in_that_cell(tmp_path):
    p = write(tmp_path, notebook(SETUP, "x = 1\ndef broken(:\n    pass"))
    res = lint_notebook(p.read_text(), str(p), RULES)
    assert [(f.code, f.extra.get("cell"), f.line) for f in res.findings] == [("RC900", 2, 2)]


def test_string_sources_and_empty_cells(tmp_path):
    p = write(tmp_path, notebook(SETUP, "", LOOP_NO_ZERO_GRAD, as_list=False))
    res = lint_notebook(p.read_text(), str(p), RULES)
    assert errors(res.findings) == [(3, 5, 9, "RC101")]


def test_directories_pick_up_notebooks_but_not_checkpoints(tmp_path):
    write(tmp_path, notebook(SETUP, LOOP_NO_ZERO_GRAD), "train.ipynb")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    write(tmp_path / ".ipynb_checkpoints", notebook(SETUP, LOOP_NO_ZERO_GRAD), "train-checkpoint.ipynb")
    res = run("lint", "--no-cache", "--format", "json", str(tmp_path))
    data = json.loads(res.output)
    assert [(Path(d["path"]).name, d["cell"], d["code"]) for d in data] == [("train.ipynb", 2, "RC101")]


def test_non_python_notebook_is_skipped(tmp_path):
    p = write(tmp_path, notebook("x <- 1", language="R"))
    res = lint_notebook(p.read_text(), str(p), RULES)
    assert res.findings == [] and "not a Python notebook" in res.notice


def test_cache_keeps_the_cell(tmp_path):
    p = write(tmp_path, notebook(SETUP, LOOP_NO_ZERO_GRAD))
    first = run("lint", "--format", "json", str(p)).output
    second = run("lint", "--format", "json", str(p)).output
    assert first == second and json.loads(second)[0]["cell"] == 2


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize("text, needle", [
    ('{"cells": [', "not valid JSON"),
    ("[1, 2]", "top level is not a JSON object"),
    ('{"metadata": {}, "nbformat": 4}', 'no "cells" list'),
    ('{"worksheets": [], "nbformat": 3}', "nbformat 3"),
    ('{"cells": {"a": 1}}', '"cells" is a dict'),
    ('{"cells": [{"cell_type": "code", "source": 42}]}', "cell 1: `source` must be"),
    ('{"cells": [{"cell_type": "code", "source": ["x = 1\\n", 3]}]}', "cell 1: `source` must be"),
    ('{"cells": ["not a cell"]}', "cell 1 is not a JSON object"),
], ids=["json", "list", "no-cells", "nbformat3", "cells-dict", "source-int", "source-mixed", "cell-str"])
def test_malformed_notebooks_get_rc900_not_a_traceback(tmp_path, text, needle):
    p = tmp_path / "bad.ipynb"
    p.write_text(text)
    res = lint_notebook(p.read_bytes(), str(p), RULES)
    assert [f.code for f in res.findings] == ["RC900"]
    assert needle in res.findings[0].message
    cli = run("lint", "--no-cache", str(p))
    assert cli.exit_code == 1 and "RC900" in cli.output and "Traceback" not in cli.output
    cli = run("lint", "--no-cache", "--fix", str(p))
    assert "Traceback" not in cli.output and p.read_text() == text


def test_invalid_utf8_notebook(tmp_path):
    p = tmp_path / "bad.ipynb"
    p.write_bytes(b'{"cells": [], "x": "\xff"}')
    res = lint_notebook(p.read_bytes(), str(p), RULES)
    assert [f.code for f in res.findings] == ["RC900"]


# --------------------------------------------------------------------------- fix


def test_fix_rewrites_only_the_changed_cell_and_keeps_everything_else(tmp_path):
    nb = notebook(("markdown", "# Title"), SETUP, LOOP_NO_ZERO_GRAD, "print('done')")
    p = write(tmp_path, nb)
    before = p.read_text()
    res = run("lint", "--no-cache", "--fix", str(p))
    assert "fixed 1 file" in res.output
    after = p.read_text()
    new = json.loads(after)
    old = json.loads(before)
    # same indentation (nbformat's 1), same key order, trailing newline
    assert after == json.dumps(new, indent=1, ensure_ascii=False) + "\n"
    assert [list(c) for c in new["cells"]] == [list(c) for c in old["cells"]]
    assert list(new) == list(old) and new["metadata"] == old["metadata"]
    for i in (0, 1, 3):
        assert new["cells"][i] == old["cells"][i]  # magics in cell 2 untouched too
    changed = new["cells"][2]
    assert changed["outputs"] == old["cells"][2]["outputs"]
    assert changed["metadata"] == old["cells"][2]["metadata"]
    assert changed["execution_count"] == old["cells"][2]["execution_count"]
    assert "".join(changed["source"]) == LOOP_NO_ZERO_GRAD.replace(
        "    for x, y in train_loader:\n",
        "    for x, y in train_loader:\n        optimizer.zero_grad()\n")
    assert isinstance(changed["source"], list) and not changed["source"][-1].endswith("\n")
    # idempotent
    run("lint", "--no-cache", "--fix", str(p))
    assert p.read_text() == after


def test_fix_in_a_cell_with_magics_restores_them(tmp_path):
    loop = "%%time\n!nvidia-smi\n" + LOOP_NO_ZERO_GRAD + "\n%time print(1)\n"
    p = write(tmp_path, notebook(SETUP, loop, as_list=False))
    new, res = fix_notebook(p.read_text(), str(p), RULES)
    cell = json.loads(new)["cells"][1]["source"]
    assert isinstance(cell, str)
    assert cell.startswith("%%time\n!nvidia-smi\nfor epoch") and cell.endswith("\n%time print(1)\n")
    assert "        optimizer.zero_grad()\n" in cell
    assert "RC101" not in {f.code for f in res.findings}


def test_unsafe_fix_and_diff_on_the_bundled_notebook(tmp_path):
    p = tmp_path / "nb.ipynb"
    p.write_bytes(BUNDLED.read_bytes())
    res = run("lint", "--no-cache", "--fix", str(p))  # RC201's fix is unsafe: nothing changes
    assert p.read_bytes() == BUNDLED.read_bytes()
    res = run("lint", "--no-cache", "--diff", "--unsafe-fixes", str(p))
    assert f"--- a/{p}:cell 3" in res.output
    assert "-        scheduler.step()" in res.output and "+    scheduler.step()" in res.output
    assert p.read_bytes() == BUNDLED.read_bytes()
    run("lint", "--no-cache", "--fix", "--unsafe-fixes", str(p))
    new = json.loads(p.read_text())
    old = json.loads(BUNDLED.read_text())
    assert [c for i, c in enumerate(new["cells"]) if i != 2] == \
        [c for i, c in enumerate(old["cells"]) if i != 2]
    assert errors(lint_notebook(p.read_text(), str(p), RULES).findings) == []


def test_fix_keeps_a_compact_notebook_compact(tmp_path):
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(notebook(SETUP, LOOP_NO_ZERO_GRAD)))
    run("lint", "--no-cache", "--fix", str(p))
    text = p.read_text()
    assert "\n" not in text and "optimizer.zero_grad()" in text


def test_parse_notebook_masks_with_placeholders():
    nb = parse_notebook(json.dumps(notebook("%pip install x\nimport torch\n!ls\n")))
    assert nb.source.splitlines()[1:] == ["pass  # recipecheck:magic 0", "import torch",
                                          "pass  # recipecheck:magic 1"]


def test_truncated_and_mutated_notebooks_never_raise(tmp_path):
    text = BUNDLED.read_text()
    for cut in range(0, len(text), max(1, len(text) // 60)):
        res = lint_notebook(text[:cut], "nb.ipynb", RULES)
        assert res.notice or [f.code for f in res.findings] == ["RC900"]
    data = json.loads(text)
    mutations = [
        lambda d: d["cells"][1].update(source=None),
        lambda d: d["cells"][1].update(cell_type=None),
        lambda d: d.update(metadata=[]),
        lambda d: d["metadata"].update(language_info="python"),
        lambda d: d["cells"].append({"cell_type": "code"}),
        lambda d: d["cells"][2].update(source=["for x in y:\n", "!ls"]),
        lambda d: d["cells"][2].update(source=["%%bash\n", "  echo hi\n", "   !echo\n"]),
        lambda d: d["cells"][2].update(source=["x = (\n"]),
    ]
    for i, mutate in enumerate(mutations):
        d = json.loads(text)
        mutate(d)
        src = json.dumps(d)
        lint_notebook(src, "nb.ipynb", RULES)
        fix_notebook(src, "nb.ipynb", RULES, mode="unsafe")


def test_github_and_sarif_name_the_cell():
    res = run("lint", "--no-cache", "--format", "github", str(BUNDLED))
    assert "::RC201 cell 3: scheduler.step()" in res.output
    res = run("lint", "--no-cache", "--format", "sarif", str(BUNDLED))
    result = json.loads(res.output)["runs"][0]["results"][0]
    assert result["message"]["text"].startswith("cell 3: ")
