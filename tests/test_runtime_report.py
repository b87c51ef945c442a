"""Tests for the runtime report writer (report.json, report.html, terminal summary)."""

from __future__ import annotations

import io
import json
import math
import re
import sys

import pytest

from recipecheck.runtime.findings import RuntimeFinding
from recipecheck.runtime.report import (
    moving_average,
    read_report,
    render_html,
    render_summary,
    series_kind,
    summary_text,
    write_report,
)

KINDS = ["loss", "lr", "update_ratio", "grad_norm", "metrics", "activations", "lr_range_test"]


def _findings():
    return [
        RuntimeFinding(
            code="RT104",
            name="gradients-not-reset",
            severity="error",
            message="optimizer.step() ran twice without zero_grad <script>alert(1)</script>. Fix: call optimizer.zero_grad()",
            step=3,
            epoch=0,
            where="fc1.weight",
            static_twin="RC101",
        ),
        RuntimeFinding(
            code="RT103",
            name="update-ratio-off",
            severity="warning",
            message="update/weight about 3e-5 for 200 steps: LR is likely ~30x too low",
            step=200,
            where="layers.0.weight & <b>bias</b>",
        ),
        RuntimeFinding(code="RT113", name="overfitting-detected", severity="info", message="train/val gap grows", epoch=4),
    ]


def _series(n=120):
    steps = list(range(n))
    return {
        "loss": {"step": steps, "value": [2.3 * math.exp(-i / 40) + 0.05 * (i % 5) for i in steps]},
        "lr/group0": {"step": steps, "value": [0.1 * (0.99**i) for i in steps]},
        "update_ratio/fc1.weight": {"step": steps, "value": [1e-3 * (1 + 0.1 * (i % 3)) for i in steps]},
        "update_ratio/fc2.weight": {"step": steps, "value": [3e-5] * n},
        "grad_norm/fc1": {"step": steps, "value": [1.0 / (1 + i) for i in steps]},
        "grad_norm/fc2": {"step": steps, "value": [0.5] * n},
        "train/acc": {"step": [40, 80, 119], "value": [0.6, 0.8, 0.95]},
        "val/acc": {"step": [40, 80, 119], "value": [0.55, 0.7, 0.72]},
        "train/loss": {"step": [40, 80, 119], "value": [1.0, 0.5, 0.2]},
        "val/loss": {"step": [40, 80, 119], "value": [1.1, 0.8, 0.9]},
        "activations/fc1/first": {"edges": [-1.0, 0.0, 1.0, 2.0], "counts": [5, 10, 3]},
        "activations/fc1/last": {"edges": [-1.0, 0.0, 1.0, 2.0], "counts": [1, 12, 5]},
        "lr_range_test": {
            "lr": [1e-6 * 10 ** (i / 10) for i in range(50)],
            "loss": [2.3 - 0.02 * i if i < 40 else 2.0 + (i - 40) for i in range(50)],
            "suggested_lr": 1e-3,
            "steepest_region": [1e-4, 1e-2],
        },
    }


def test_report_json_round_trips_with_contract_keys(tmp_path, monkeypatch):
    import recipecheck.runtime.report as report

    monkeypatch.setattr(report, "_import_matplotlib", lambda: None)  # JSON only here; plots tested below
    findings, series = _findings(), _series()
    run = {"script": "train.py", "argv": ["--epochs", "3"], "steps": 120, "device": "cpu"}
    write_report(tmp_path / "out", findings, series, run)
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(data) == {"findings", "series", "run"}
    assert data == read_report(tmp_path / "out")
    assert len(data["findings"]) == 3
    for entry, finding in zip(data["findings"], findings):
        assert list(entry) == ["code", "name", "severity", "message", "step", "epoch", "where", "static_twin"]
        assert RuntimeFinding(**entry) == finding
    assert data["series"] == json.loads(json.dumps(series))
    assert data["run"] == run
    assert (tmp_path / "out" / "report.html").is_file()
    # no temporary files left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json"]


def test_report_json_is_strict_json_with_tensors_and_non_finite_values(tmp_path):
    torch = pytest.importorskip("torch")
    series = {
        "loss": {"step": torch.arange(4), "value": torch.tensor([1.0, float("nan"), float("inf"), 0.5])},
        "grad_norm/fc": {"step": (0, 1), "value": [torch.tensor(2.0), 3]},
    }
    write_report(tmp_path, [{"code": "RT106", "name": "non-finite-loss", "severity": "error", "message": "nan", "step": 1}], series, {"t": 1.5})
    text = (tmp_path / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["series"]["loss"] == {"step": [0, 1, 2, 3], "value": [1.0, None, None, 0.5]}
    assert data["series"]["grad_norm/fc"] == {"step": [0, 1], "value": [2.0, 3]}
    assert data["findings"][0]["where"] is None and data["findings"][0]["static_twin"] is None


def _plots_by_kind(page: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in re.finditer(r'<figure class="plot" data-kind="([a-z_]+)">(.*?)</figure>', page, re.S):
        if "data:image/png;base64," in m.group(2):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def test_html_contains_every_finding_escaped_and_one_plot_per_kind(tmp_path):
    pytest.importorskip("matplotlib")
    findings = _findings()
    write_report(tmp_path, findings, _series(), {"script": "<train>.py"})
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    for f in findings:
        assert f.code in page and f.name in page
    assert "<script>" not in page  # user text is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bias&lt;/b&gt;" in page and "&lt;train&gt;.py" in page
    assert len(re.findall(r'<tr class="finding', page)) == 3
    plots = _plots_by_kind(page)
    # one plot per kind, except metrics (one per metric: acc, loss) and activations (one per layer)
    assert plots == {"loss": 1, "lr": 1, "update_ratio": 1, "grad_norm": 1, "metrics": 2, "activations": 1, "lr_range_test": 1}
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "http://" not in page.replace("http://www.w3.org", "")


def test_html_without_matplotlib_renders_tables(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    findings = _findings()
    write_report(tmp_path, findings, _series(), {})
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png" not in page
    assert "matplotlib is not installed" in page
    for f in findings:
        assert f.code in page
    for kind in KINDS:
        assert f'data-kind="{kind}"' in page
    # every series is shown as a table
    for name in _series():
        assert f'data-series="{name}"' in page
    assert "Suggested learning rate" in page
    json.loads((tmp_path / "report.json").read_text())


def test_empty_report_and_unknown_series(tmp_path):
    write_report(tmp_path, [], {"custom/thing": {"step": [0, 1], "value": [1, 2]}, "blob": {"a": 1}}, {})
    page = (tmp_path / "report.html").read_text()
    assert "No findings" in page
    assert 'data-series="custom/thing"' in page and 'data-series="blob"' in page
    assert read_report(tmp_path / "report.json")["findings"] == []


def test_broken_series_never_break_the_report(tmp_path):
    series = {"loss": {"step": [0, 1, 2], "value": ["x", None, 1.0]}, "activations/a/first": {"edges": [0], "counts": [1, 2]}, "lr_range_test": {"lr": [], "loss": []}}
    write_report(tmp_path, [], series, {})
    assert (tmp_path / "report.html").read_text().endswith("</html>")


def test_series_kind_and_moving_average():
    assert series_kind("loss") == "loss"
    assert series_kind("lr/group0") == "lr"
    assert series_kind("update_ratio/a.b") == "update_ratio"
    assert series_kind("grad_norm/a") == "grad_norm"
    assert series_kind("train/acc") == series_kind("val/acc") == "metrics"
    assert series_kind("activations/x/first") == "activations"
    assert series_kind("lr_range_test") == "lr_range_test"
    assert series_kind("whatever") == "other"
    assert moving_average([1.0, 3.0, 5.0], window=2) == [1.0, 2.0, 4.0]
    assert moving_average([1.0, float("nan"), 3.0], window=3) == [1.0, 1.0, 2.0]
    assert moving_average([None, None], window=2) == [None, None]


def test_summary_plain_text_when_not_a_terminal():
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False)
    text = render_summary(_findings(), console=console)
    out = buf.getvalue()
    assert out == text == summary_text(_findings())
    assert "\x1b[" not in out and "┃" not in out and "│" not in out
    lines = out.splitlines()
    assert lines[0] == "recipecheck: 3 runtime findings (1 error, 1 warning, 1 info)"
    assert lines[1] == "RT104 [error] gradients-not-reset at step 3, epoch 0 in fc1.weight (static twin: RC101)"
    assert "    fix: call optimizer.zero_grad()" in lines
    # a message without "Fix:" gets the per-code default remedy
    assert any(line.startswith("    fix: scale the learning rate") for line in lines)
    assert render_summary([], console=Console(file=io.StringIO())) == "recipecheck: no runtime findings.\n"


def test_summary_rich_table_on_a_terminal():
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=200, color_system=None, record=True)
    render_summary(_findings(), console=console)
    out = console.export_text()
    for header in ("code", "severity", "what happened", "when", "where", "fix", "static twin"):
        assert header in out
    assert "RT104" in out and "RC101" in out and "step 3, epoch 0" in out and "fc1.weight" in out
    assert "call optimizer.zero_grad()" in out


def test_render_html_accepts_dicts():
    page = render_html([{"code": "RT999", "name": "x", "severity": "info", "message": "m"}], {}, {"k": [1, 2]})
    assert "RT999" in page and "[1, 2]" in page
