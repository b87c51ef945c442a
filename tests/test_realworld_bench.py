"""benchmarks/realworld.py: lint a corpus, compare with judged verdicts, per-rule precision."""

import importlib.util
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("realworld_bench", ROOT / "benchmarks" / "realworld.py")
rw = importlib.util.module_from_spec(_spec)
sys.modules["realworld_bench"] = rw  # dataclasses look their module up while the file loads
_spec.loader.exec_module(rw)

# one true RC101 (never reset) and one RC704 (checkpoint on the best test accuracy)
TRAIN = (
    "import torch\n"
    "model = torch.nn.Linear(4, 2)\n"
    "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
    "for epoch in range(10):\n"
    "    for x, y in train_loader:\n"
    "        loss = torch.nn.functional.cross_entropy(model(x), y)\n"
    "        loss.backward()\n"
    "        opt.step()\n"
)
SELECT = (
    "import torch\n"
    "best_acc = 0\n"
    "for epoch in range(10):\n"
    "    train(model, train_loader)\n"
    "    acc = evaluate(model, test_loader)\n"
    "    if acc > best_acc:\n"
    "        best_acc = acc\n"
    "        torch.save(model.state_dict(), 'best.pt')\n"
)


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "repo" / "sub").mkdir(parents=True)
    (tmp_path / "repo" / "train.py").write_text(TRAIN)
    (tmp_path / "repo" / "sub" / "select.py").write_text(SELECT)
    return tmp_path


def _items(corpus):
    return rw.lint_dir(str(corpus), None, 1)


def test_lint_dir_reports_paths_relative_to_the_corpus(corpus):
    keys = {(i.path, i.code) for i in _items(corpus)}
    assert ("repo/train.py", "RC101") in keys
    assert ("repo/sub/select.py", "RC704") in keys


def test_parse_verdicts_reads_paths_with_spaces_and_comments():
    v = rw.parse_verdicts("# judged at abc123\n\n"
                          "repo/1 - Intro.ipynb:12:RC605 -> debatable, short sequences\n"
                          "a.py:3:RC101 -> TP\n")
    assert v[("repo/1 - Intro.ipynb", 12, "RC605")].verdict == "debatable"
    assert v[("repo/1 - Intro.ipynb", 12, "RC605")].why == "short sequences"
    assert v[("a.py", 3, "RC101")].verdict == "TP"


@pytest.mark.parametrize("bad", ["a.py:3:RC101 TP", "a.py:x:RC101 -> TP", "a.py:3:RC101 -> maybe"])
def test_parse_verdicts_rejects_malformed_lines(bad):
    with pytest.raises(ValueError, match="<verdicts>:1"):
        rw.parse_verdicts(bad)


def test_conflicting_verdicts_are_an_error():
    with pytest.raises(ValueError, match="judged twice"):
        rw.parse_verdicts("a.py:3:RC101 -> TP, x\na.py:3:RC101 -> FP, y\n")


def test_compare_counts_per_rule_precision_unjudged_and_stale(corpus):
    items = _items(corpus)
    rc101 = next(i for i in items if i.code == "RC101")
    rc704 = next(i for i in items if i.code == "RC704")
    verdicts = rw.parse_verdicts(
        f"{rc101.path}:{rc101.line}:RC101 -> TP, never reset\n"
        # a verdict for a finding the linter no longer reports (a fixed FP): stale
        f"repo/train.py:1:RC301 -> FP, gone\n"
        # a file that is not in this corpus: ignored
        f"other/x.py:1:RC101 -> FP, another corpus\n")
    per_rule, severity, groups, unjudged, stale = rw.compare(items, verdicts, str(corpus))
    assert (per_rule["RC101"].tp, per_rule["RC101"].fp, per_rule["RC101"].unjudged) == (1, 0, 0)
    assert per_rule["RC101"].precision == 1.0
    assert per_rule["RC704"].unjudged == 1 and per_rule["RC704"].precision is None
    assert rc704 in unjudged and rc101 not in unjudged
    assert [(v.path, v.code) for v in stale] == [("repo/train.py", "RC301")]
    assert groups["error"].tp == 1 and groups["error+warning"].findings == len(
        [i for i in items if i.severity in ("error", "warning")])
    out = io.StringIO()
    rw.render(per_rule, severity, groups, unjudged, stale, out)
    text = out.getvalue()
    assert "RC101" in text and "100%" in text and "unjudged findings (" in text
    assert "verdicts no longer reported (1" in text


def test_debatable_counts_against_precision():
    row = rw.Row()
    for v in ("TP", "TP", "FP", "debatable", None):
        row.add(v)
    assert (row.findings, row.tp, row.fp, row.debatable, row.unjudged) == (5, 2, 1, 1, 1)
    assert row.precision == 0.5


def test_main_runs_end_to_end_and_rejects_a_missing_dir(corpus, tmp_path, capsys):
    vfile = tmp_path / "verdicts.txt"
    vfile.write_text("# nothing judged yet\n")
    assert rw.main([str(corpus), "--verdicts", str(vfile), "--select", "RC101"]) == 0
    out = capsys.readouterr().out
    assert "RC101" in out and "RC704" not in out.split("unjudged findings")[0]
    assert rw.main([str(tmp_path / "nope")]) == 2
