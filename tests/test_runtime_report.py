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
    assert series_kind("loss/opt1-Generator") == "loss"  # a second optimizer's losses (a GAN's G)
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


# ---------------------------------------------------------------- plots an engineer can read (issue 10 item 10)


def _figure():
    pytest.importorskip("matplotlib")
    from recipecheck.runtime.report import _import_matplotlib

    return _import_matplotlib()


def _labels(fig):
    return fig.axes[0].get_legend_handles_labels()[1]


def test_many_lines_are_grouped_by_depth_with_extremes_labelled():
    from recipecheck.runtime.report import _plot_lines

    steps = list(range(1, 31))
    items = [(f"update_ratio/layer{i // 4}.{i % 4}.conv.weight", {"step": steps, "value": [1e-3 * (1 + i)] * 30})
             for i in range(40)]
    fig = _plot_lines(_figure(), items, "u", "ratio", log=True)
    labels = _labels(fig)
    assert len(labels) <= 8  # 4 depth groups + highest + lowest, not 40 unlabelled lines
    assert labels[0].startswith("input side: layer0.0.conv.weight .. ") and "(10)" in labels[0]
    assert any(l.startswith("output side:") for l in labels)
    assert "highest: layer9.3.conv.weight" in labels and "lowest: layer0.0.conv.weight" in labels
    # a few lines stay individual lines, each labelled
    fig = _plot_lines(_figure(), items[:3], "u", "ratio", log=True)
    assert _labels(fig) == ["layer0.0.conv.weight", "layer0.1.conv.weight", "layer0.2.conv.weight"]


def test_lr_is_drawn_as_steps_and_findings_are_marked():
    from recipecheck.runtime.report import _plot_lines, finding_markers

    steps = list(range(1, 17)) + list(range(20, 101, 10))
    lr = {"step": steps, "value": [0.1 if s < 30 else 0.01 for s in steps]}
    markers = finding_markers([{"code": "RT105", "severity": "error", "step": 40},
                               {"code": "RT113", "severity": "info", "step": None},
                               {"code": "RT104", "severity": "error", "step": 500}])  # outside the plot
    assert markers == [(40, "RT105", "error"), (500, "RT104", "error")]
    fig = _plot_lines(_figure(), [("lr/group0", lr)], "Learning rate", "lr", log=True, markers=markers,
                      steps_style=True)
    ax = fig.axes[0]
    assert ax.get_lines()[0].get_drawstyle() == "steps-post"  # StepLR drops are jumps, not ramps
    marks = [t for t in ax.texts if (t.get_gid() or "").startswith("finding-")]
    assert [(t.get_gid(), t.get_position()[0]) for t in marks] == [("finding-RT105", 40)]


def test_loss_plot_marks_findings_at_their_step():
    from recipecheck.runtime.report import _plot_loss, finding_markers

    markers = finding_markers([f.to_json() for f in _findings()])
    fig = _plot_loss(_figure(), [("loss", _series(250)["loss"])], markers)
    assert sorted(t.get_gid() for t in fig.axes[0].texts) == ["finding-RT103", "finding-RT104"]  # RT113: no step
    fig = _plot_loss(_figure(), [("loss", _series(120)["loss"])], markers)
    assert [t.get_gid() for t in fig.axes[0].texts] == ["finding-RT104"]  # step 200 is past this run


def test_histograms_titled_by_module_name_and_type():
    from recipecheck.runtime.report import _plot_activations, activation_title

    assert activation_title("layer1.0.relu", {"first": {"module": "ReLU"}}) == "layer1.0.relu (ReLU)"
    assert activation_title("3", {"first": {}}) == "model[3]"  # a Sequential child: say what it is
    assert activation_title("features.3", {}) == "features.3"
    items = [("activations/encoder.act/first", {"edges": [0, 1, 2], "counts": [3, 4], "module": "GELU", "step": 1}),
             ("activations/encoder.act/last", {"edges": [0, 1, 2], "counts": [1, 6], "step": 200})]
    [(layer, title, fig)] = _plot_activations(_figure(), items)
    assert fig.axes[0].get_title() == "activations of encoder.act (GELU)"
    assert _labels(fig) == ["first (step 1)", "last (step 200)"]


def test_lr_range_test_on_a_log_axis_with_the_scripts_lr():
    from recipecheck.runtime.report import _plot_lr_range

    data = _series()["lr_range_test"]
    data = {**data, "loss": data["loss"][:-1] + [float("inf")]}
    fig = _plot_lr_range(_figure(), data, train_lr=0.1)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = _labels(fig)
    assert "suggested lr = 0.001" in labels and "the script's lr = 0.1" in labels


def test_page_uses_the_width_and_shows_sanity_as_a_table(tmp_path):
    run = {"script": "train.py", "steps": 30, "sanity": {
        "initial_loss": {"status": "ok", "loss": 1.1, "chance": 1.0986, "formula": "ln C = ln 3", "tolerance": 0.3,
                         "code": "RT101", "seconds": 0.01},
        "gradient_check": {"status": "great", "max_rel_error": 3e-10, "checked": 72, "planned": 90,
                           "tensors_checked": 24, "parameter_tensors": 80, "examples": 4, "budget_exhausted": True,
                           "budget_s": 60.0, "coordinates": [{"param": "secret_raw_json_marker"}],
                           "code": "RT102", "seconds": 60.2},
        "overfit": {"status": "fail", "initial_loss": 1.1, "final_loss": 0.9, "target_loss": 0.055,
                    "examples": 20, "steps": 200, "code": "RT114", "seconds": 3.0},
        "regularization": {"status": "crashed", "error": "TypeError: boom", "code": "RT115", "seconds": 0.0}},
        "lr_advice": "LR range test: suggested lr 1e-3"}
    write_report(tmp_path, [], {"loss": {"step": [1, 2, 3], "value": [1.0, 0.9, 0.8]}}, run)
    page = (tmp_path / "report.html").read_text()
    assert "max-width:1200px" not in page and "grid-template-columns" in page
    nav = re.search(r'<nav class="toc">(.*?)</nav>', page).group(1)
    assert re.findall(r'href="#(\w+)"', nav) == ["findings", "sanity", "loss", "run"]
    table = re.search(r'<table class="sanity">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r'<tr class="sanity ([^"]+)"><td>(RT\d+)</td>', table)
    assert rows == [("ok", "RT101"), ("ok", "RT102"), ("FAILED", "RT114"), ("crashed", "RT115")]
    assert "time budget of 60 s reached after 72 of 90" in table
    assert "72 coordinates in 24 of 80 parameter tensors" in table
    assert "TypeError: boom" in table and "suggested lr 1e-3" in page
    assert "secret_raw_json_marker" not in page  # not dumped as raw JSON in the run table


def test_sanity_text_for_the_terminal():
    from recipecheck.runtime.report import sanity_text

    text = sanity_text({"overfit": {"status": "ok", "initial_loss": 1.1, "final_loss": 0.05, "target_loss": 0.055,
                                    "examples": 20, "reached_at_step": 37, "seconds": 0.5},
                        "user_hooks_left_out": 2}, "LR range test: suggested lr 0.01")
    assert "RT114 overfit a tiny batch: ok [0.5 s] - loss 1.1 -> 0.05 on 20 examples" in text
    assert "reached at step 37" in text and "2 module hook(s)" in text and "suggested lr 0.01" in text
    assert "skipped (could not find" in sanity_text({"status": "skipped", "reason": "could not find a model"})


def test_gan_losses_of_every_optimizer_are_plotted_together_under_loss(tmp_path):
    pytest.importorskip("matplotlib")
    steps = list(range(1, 30))
    series = {"loss": {"step": steps, "value": [1.4 - 0.01 * s for s in steps]},
              "loss/opt1-Generator": {"step": steps, "value": [0.7 + 0.02 * s for s in steps]}}
    write_report(tmp_path, [], series, {})
    page = (tmp_path / "report.html").read_text()
    assert _plots_by_kind(page) == {"loss": 1}  # one loss plot, no "other" section
    assert 'data-kind="other"' not in page
    assert 'data-series="loss/opt1-Generator"' in page
