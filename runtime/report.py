"""Runtime report: ``report.json``, a self-contained ``report.html`` and the terminal summary.

Computation is separate from presentation: the monitor and the sanity suite produce
:class:`~recipecheck.runtime.findings.RuntimeFinding` objects and *series*; this module only
renders them.

``report.json`` (a contract)::

    {"findings": [{"code", "name", "severity", "message", "step", "epoch", "where",
                   "static_twin"}, ...],
     "series":   {name: {...}, ...},
     "run":      {...free-form run metadata...}}

Series names and shapes understood by the HTML page (anything else is still written to
``report.json`` and shown as a generic step/value plot or table):

* ``"loss"``: ``{"step": [int], "value": [float]}`` (plotted with a moving average)
* ``"lr/group{i}"``: learning rate per step of parameter group ``i``
* ``"update_ratio/{param}"``: ``||dw||/||w||`` per step, log axis, healthy band around 1e-3
* ``"grad_norm/{layer}"``: per-layer gradient norm per step, log axis
* ``"train/{metric}"`` and ``"val/{metric}"``: train/validation curves (paired by metric)
* ``"activations/{layer}/first"`` and ``".../last"``: ``{"edges": [...], "counts": [...]}``
* ``"lr_range_test"``: ``{"lr": [...], "loss": [...], "suggested_lr": float}`` (optionally
  ``"steepest_region": [lo, hi]``)

Non-finite floats (NaN/Inf, e.g. the loss of a diverged run) are written to ``report.json``
as ``null`` so that the file is strict JSON.

Plots are PNG images embedded as base64 ``data:`` URIs, drawn with matplotlib when it is
importable (the optional extra ``plots``); without matplotlib the page shows the same data as
plain tables. Every piece of user-provided text is HTML-escaped.

Messages may carry their remedy after a ``"Fix:"`` marker ("what happened, why it hurts.
Fix: what to do"); the terminal summary shows that part in its *fix* column, and falls back to a
short per-code remedy otherwise.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from .findings import RuntimeFinding

__all__ = [
    "write_report",
    "read_report",
    "render_html",
    "render_summary",
    "summary_text",
    "finding_to_dict",
    "series_kind",
    "moving_average",
    "DEFAULT_FIXES",
    "REPORT_JSON",
    "REPORT_HTML",
]

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"

FINDING_KEYS = ("code", "name", "severity", "message", "step", "epoch", "where", "static_twin")
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

#: Short remedies per runtime code, used by the summary when a message has no "Fix:" part.
DEFAULT_FIXES: dict[str, str] = {
    "RT101": "check the last layer's init/bias, the loss/label pairing and for a double softmax",
    "RT102": "fix the custom backward (autograd.Function) or the op whose gradient disagrees",
    "RT103": "scale the learning rate so that update/weight is about 1e-3",
    "RT104": "call optimizer.zero_grad() once per optimizer step",
    "RT105": "step an epoch-based scheduler once per epoch, outside the batch loop",
    "RT106": "lower the LR, clip gradients, check the data and log/div/sqrt for bad inputs",
    "RT107": "lower the LR, fix the init scale, or use normalization / leaky activations",
    "RT108": "add normalization or residual connections, fix the init, clip gradients",
    "RT109": "initialize weights randomly (e.g. Kaiming/Xavier), never to a constant",
    "RT110": "use shuffle=True (or a random sampler) for the training loader",
    "RT111": "call model.eval() before evaluation and model.train() afterwards",
    "RT112": "tune the learning rate (try an LR range test) and check the data pipeline",
    "RT113": "use early stopping or more regularization (weight decay, dropout, augmentation)",
    "RT114": "debug the model/loss on a tiny batch until it can memorize it",
    "RT115": "make sure the regularization term actually reaches the loss/optimizer",
}

_MAX_PLOT_POINTS = 4000  # points per line in a plot (strided beyond)
_MAX_TABLE_ROWS = 60  # rows per series in the plain tables
_MAX_LEGEND = 12


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def finding_to_dict(finding: Union[RuntimeFinding, Mapping[str, Any], Any]) -> dict[str, Any]:
    """Return the report.json entry for one finding (a RuntimeFinding or a mapping)."""
    if isinstance(finding, RuntimeFinding):
        data = finding.to_json()
    elif isinstance(finding, Mapping):
        data = dict(finding)
    elif hasattr(finding, "to_json"):
        data = dict(finding.to_json())
    else:
        raise TypeError(f"not a finding: {finding!r}")
    out = {key: data.get(key) for key in FINDING_KEYS}
    for key, value in data.items():  # keep extra keys, after the contract keys
        if key not in out:
            out[key] = value
    return _jsonable(out)


def _jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types: tensors/arrays to lists, NaN/Inf to None."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if hasattr(obj, "tolist"):  # torch tensors, numpy arrays and numpy scalars
        try:
            return _jsonable(obj.detach().cpu().tolist() if hasattr(obj, "detach") else obj.tolist())
        except Exception:  # pragma: no cover - exotic array types
            pass
    if hasattr(obj, "item"):
        try:
            return _jsonable(obj.item())
        except Exception:  # pragma: no cover
            pass
    return str(obj)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_report(
    directory: Union[str, os.PathLike],
    findings: Sequence[Union[RuntimeFinding, Mapping[str, Any]]],
    series: Mapping[str, Any],
    run: Mapping[str, Any],
) -> None:
    """Write ``report.json`` and ``report.html`` into ``directory`` (created if needed).

    ``findings`` are :class:`RuntimeFinding` objects (or mappings with the same keys),
    ``series`` maps a series name to its data (see the module docstring) and ``run`` is free
    run metadata (script, argv, device, steps, duration, ...). Files are written atomically
    (temporary file + rename), so an interrupted write never leaves a truncated report.
    """
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "findings": [finding_to_dict(f) for f in findings],
        "series": _jsonable(dict(series or {})),
        "run": _jsonable(dict(run or {})),
    }
    _atomic_write(out_dir / REPORT_JSON, json.dumps(data, indent=1, allow_nan=False) + "\n")
    _atomic_write(out_dir / REPORT_HTML, render_html(data["findings"], data["series"], data["run"]))


def read_report(directory: Union[str, os.PathLike]) -> dict[str, Any]:
    """Load ``report.json`` from ``directory`` (or from the path of the file itself)."""
    path = Path(directory)
    if path.is_dir():
        path = path / REPORT_JSON
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------------------------
# series helpers
# --------------------------------------------------------------------------------------------


def series_kind(name: str, data: Any = None) -> str:
    """Classify a series name: loss, lr, update_ratio, grad_norm, metrics, activations,
    lr_range_test, or other."""
    if name == "lr_range_test":
        return "lr_range_test"
    if name == "loss":
        return "loss"
    head = name.split("/", 1)[0]
    if head == "loss" and "/" in name:  # loss/<label>: the losses of the other optimizers (a GAN's G)
        return "loss"
    if head == "lr" and "/" in name:
        return "lr"
    if head in ("update_ratio", "grad_norm", "activations"):
        return head
    if head in ("train", "val") and "/" in name:
        return "metrics"
    return "other"


def moving_average(values: Sequence[Optional[float]], window: Optional[int] = None) -> list[Optional[float]]:
    """Trailing moving average that skips non-finite/missing values.

    ``window`` defaults to ``clamp(len(values) // 20, 1, 50)``.
    """
    n = len(values)
    if window is None:
        window = max(1, min(50, n // 20))
    out: list[Optional[float]] = []
    buf: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        ok = v is not None and isinstance(v, (int, float)) and math.isfinite(v)
        buf.append(float(v) if ok else math.nan)
        if ok:
            total += float(v)
        if len(buf) > window:
            old = buf.pop(0)
            if math.isfinite(old):
                total -= old
        finite = [b for b in buf if math.isfinite(b)]
        out.append(total / len(finite) if finite else None)
    return out


def _xy(data: Any) -> tuple[list, list]:
    if not isinstance(data, Mapping):
        return [], []
    steps = list(data.get("step") or [])
    values = list(data.get("value") or [])
    if not steps:
        steps = list(range(len(values)))
    n = min(len(steps), len(values))
    return steps[:n], values[:n]


def _float(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _stride(xs: list, ys: list, limit: int = _MAX_PLOT_POINTS) -> tuple[list, list]:
    if len(xs) <= limit:
        return xs, ys
    k = math.ceil(len(xs) / limit)
    return xs[::k], ys[::k]


def _group_series(series: Mapping[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    groups: dict[str, list[tuple[str, Any]]] = {}
    for name in series:
        groups.setdefault(series_kind(name, series[name]), []).append((name, series[name]))
    return groups


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_e = html.escape

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em 2em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
tr.error td.sev{color:#b00020;font-weight:bold}tr.warning td.sev{color:#b36b00;font-weight:bold}
tr.info td.sev{color:#1f5fa8}
figure.plot{margin:1em 0}figure.plot img{width:100%;height:auto;border:1px solid #eee}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:0 1.5em}
table.findings,table.sanity{width:100%}table.sanity td.status{font-weight:bold}
tr.sanity.ok td.status{color:#1b7f1b}tr.sanity.FAILED td.status,tr.sanity.crashed td.status{color:#b00020}
tr.sanity.warning td.status{color:#b36b00}.overview{color:#444}
nav.toc{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #eee;z-index:1}
figcaption{font-size:.9em;color:#555}
details{margin:.3em 0 1em 0}.muted{color:#777}.ok{color:#1b7f1b;font-weight:bold}
code{background:#f6f6f6;padding:0 .2em}
"""

_KIND_TITLES = {
    "loss": "Loss per step",
    "lr": "Learning rate per step",
    "update_ratio": "Update/weight ratio per parameter",
    "grad_norm": "Gradient norm per layer",
    "metrics": "Train / validation curves",
    "activations": "Activation histograms (first and last sampled step)",
    "lr_range_test": "LR range test",
    "other": "Other series",
}
_KIND_ORDER = ["loss", "lr", "update_ratio", "grad_norm", "metrics", "activations", "lr_range_test", "other"]


def _import_matplotlib():
    """Return ``matplotlib.figure.Figure`` or None when matplotlib is not importable."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except Exception:
        return None
    return Figure


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.6g}"
    return str(v)


def _findings_table(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return '<p class="ok">No findings.</p>'
    rows = []
    head = "".join(f"<th>{_e(h)}</th>" for h in ("code", "severity", "name", "message", "step", "epoch", "where", "static twin"))
    for f in _sorted_findings(findings):
        sev = str(f.get("severity") or "")
        cells = [
            f"<td class=\"code\">{_e(str(f.get('code') or ''))}</td>",
            f"<td class=\"sev\">{_e(sev)}</td>",
            f"<td>{_e(str(f.get('name') or ''))}</td>",
            f"<td>{_e(str(f.get('message') or ''))}</td>",
            f"<td>{_e(_fmt(f.get('step')))}</td>",
            f"<td>{_e(_fmt(f.get('epoch')))}</td>",
            f"<td>{_e(str(f.get('where') or ''))}</td>",
            f"<td>{_e(str(f.get('static_twin') or ''))}</td>",
        ]
        rows.append(f'<tr class="finding {_e(sev)}">{"".join(cells)}</tr>')
    return f'<table class="findings"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _run_table(run: Mapping[str, Any]) -> str:
    if not run:
        return ""
    rows = "".join(
        f"<tr><th>{_e(str(k))}</th><td>{_e(v if isinstance(v, str) else json.dumps(v, default=str))}</td></tr>"
        for k, v in run.items()
        if k not in ("sanity", "lr_advice")  # shown as the sanity table above
    )
    return f'<h2 id="run">Run</h2><table class="run">{rows}</table>'


def _rows_sampled(n: int, limit: int = _MAX_TABLE_ROWS) -> list[int]:
    if n <= limit:
        return list(range(n))
    k = math.ceil(n / limit)
    idx = list(range(0, n, k))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


def _series_table(name: str, data: Any) -> str:
    """A plain HTML table of one series (sampled rows); malformed data is shown raw."""
    try:
        return _series_table_unchecked(name, data)
    except Exception:
        return (
            f'<table class="series" data-series="{_e(name)}"><caption>{_e(name)}</caption>'
            f"<tr><td><code>{_e(json.dumps(data, default=str)[:2000])}</code></td></tr></table>"
        )


def _series_table_unchecked(name: str, data: Any) -> str:
    cap = f"<caption>{_e(name)}</caption>"
    if isinstance(data, Mapping) and "edges" in data and "counts" in data:
        edges = list(data.get("edges") or [])
        counts = list(data.get("counts") or [])
        rows = "".join(
            f"<tr><td>{_e(_fmt(edges[i]))}</td><td>{_e(_fmt(edges[i + 1]) if i + 1 < len(edges) else '')}</td>"
            f"<td>{_e(_fmt(counts[i]))}</td></tr>"
            for i in _rows_sampled(len(counts))
        )
        return f'<table class="series" data-series="{_e(name)}">{cap}<tr><th>from</th><th>to</th><th>count</th></tr>{rows}</table>'
    if isinstance(data, Mapping) and "lr" in data and "loss" in data:
        lrs, losses = list(data.get("lr") or []), list(data.get("loss") or [])
        n = min(len(lrs), len(losses))
        rows = "".join(f"<tr><td>{_e(_fmt(lrs[i]))}</td><td>{_e(_fmt(losses[i]))}</td></tr>" for i in _rows_sampled(n))
        extra = ""
        if data.get("suggested_lr") is not None:
            extra = f"<p>Suggested learning rate: <b>{_e(_fmt(data.get('suggested_lr')))}</b></p>"
        return extra + f'<table class="series" data-series="{_e(name)}">{cap}<tr><th>lr</th><th>loss</th></tr>{rows}</table>'
    if isinstance(data, Mapping) and ("value" in data or "step" in data):
        xs, ys = _xy(data)
        rows = "".join(f"<tr><td>{_e(_fmt(xs[i]))}</td><td>{_e(_fmt(ys[i]))}</td></tr>" for i in _rows_sampled(len(xs)))
        return f'<table class="series" data-series="{_e(name)}">{cap}<tr><th>step</th><th>value</th></tr>{rows}</table>'
    return f'<table class="series" data-series="{_e(name)}">{cap}<tr><td><code>{_e(json.dumps(data, default=str)[:2000])}</code></td></tr></table>'


def _fig_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


_WIDE = (15, 4.2)  # full page width: loss, learning rate, per-layer series
_NARROW = (7.5, 3.6)  # small multiples in a grid: metrics, histograms
_SEV_COLORS = {"error": "#b00020", "warning": "#c77700", "info": "#1f5fa8"}
_GROUPS = 4  # depth groups when a plot would have too many lines to label


def _new_axes(Figure, title: str, xlabel: str, ylabel: str, size=_NARROW):
    fig = Figure(figsize=size)
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _positive(ys: list) -> bool:
    vals = [v for v in (_float(y) for y in ys) if math.isfinite(v)]
    return bool(vals) and all(v > 0 for v in vals)


def _legend(ax, n: int) -> None:
    if 0 < n <= _MAX_LEGEND + 4 and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def finding_markers(findings: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, str]]:
    """(step, code, severity) of the findings that happened at a training step, one per code and
    step, in step order: the marks drawn on the step plots."""
    seen, out = set(), []
    for f in findings:
        step = f.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            continue
        key = (step, str(f.get("code")))
        if key not in seen:
            seen.add(key)
            out.append((step, str(f.get("code")), str(f.get("severity") or "info")))
    return sorted(out)


def _mark_findings(ax, markers: Sequence[tuple[int, str, str]], xs: Sequence[Any]) -> None:
    """Dashed vertical lines with the finding's code at the step where it was reported."""
    finite = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    if not markers or not finite:
        return
    lo, hi = min(finite), max(finite)
    span = max(1, hi - lo)
    levels: dict[int, int] = {}
    for step, code, sev in markers:
        if not (lo - 0.02 * span <= step <= hi + 0.02 * span):
            continue
        color = _SEV_COLORS.get(sev, "#555")
        ax.axvline(step, color=color, linestyle=":", linewidth=1.2, alpha=0.9)
        bucket = int((step - lo) / span * 40)  # stagger labels of nearby findings
        level = levels.get(bucket, 0)
        levels[bucket] = level + 1
        ax.text(step, 0.98 - 0.08 * (level % 4), f" {code}", transform=ax.get_xaxis_transform(), color=color,
                fontsize="small", fontweight="bold", va="top", ha="left", gid=f"finding-{code}")


def _depth_groups(items: list) -> list[tuple[str, list]]:
    """Contiguous groups of series in model order (input side first), labelled by their names."""
    n = len(items)
    k = min(_GROUPS, n)
    bounds = [round(i * n / k) for i in range(k + 1)]
    out = []
    for g in range(k):
        chunk = items[bounds[g]:bounds[g + 1]]
        if not chunk:
            continue
        first, last = chunk[0][0].split("/", 1)[-1], chunk[-1][0].split("/", 1)[-1]
        where = "input side" if g == 0 else "output side" if g == k - 1 else f"depth group {g + 1}"
        label = f"{where}: {first}" + (f" .. {last}" if len(chunk) > 1 else "") + f" ({len(chunk)})"
        out.append((label, chunk))
    return out


def _plot_many(ax, items, steps_style: bool = False) -> None:
    """Too many lines to label: per depth group, the median line and the min..max band; the
    series with the highest and the lowest last value are drawn and labelled on their own."""
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
    per_series = []
    for name, data in items:
        xs, ys = _xy(data)
        pts = {x: _float(y) for x, y in zip(xs, ys) if math.isfinite(_float(y))}
        per_series.append((name, pts))
    for gi, (label, chunk) in enumerate(_depth_groups(per_series)):
        steps = sorted({x for _, pts in chunk for x in pts})
        med, lo, hi, sx = [], [], [], []
        for x in steps:
            vals = sorted(pts[x] for _, pts in chunk if x in pts)
            if not vals:
                continue
            sx.append(x)
            med.append(vals[len(vals) // 2] if len(vals) % 2 else 0.5 * (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]))
            lo.append(vals[0])
            hi.append(vals[-1])
        sx, med = _stride(sx, med)
        c = colors[gi % len(colors)]
        ax.plot(sx, med, color=c, linewidth=1.6, label=f"{label}, median", marker="o" if len(sx) < 40 else None,
                markersize=3)
        if len(lo) > 1:
            bx, blo = _stride(sorted({x for _, pts in chunk for x in pts}), lo)
            _, bhi = _stride(sorted({x for _, pts in chunk for x in pts}), hi)
            ax.fill_between(bx, blo, bhi, color=c, alpha=0.15, linewidth=0)
    last = [(name, pts[max(pts)]) for name, pts in per_series if pts]
    if len(last) >= 2:
        top = max(last, key=lambda t: t[1])
        bottom = min(last, key=lambda t: t[1])
        for (name, _), style, tag in ((top, "--", "highest"), (bottom, ":", "lowest")):
            pts = dict(per_series)[name]
            xs = sorted(pts)
            ax.plot(xs, [pts[x] for x in xs], color="black", linestyle=style, linewidth=1.0,
                    label=f"{tag}: {name.split('/', 1)[-1]}")


def _plot_lines(Figure, items, title, ylabel, log=False, band=None, markers=(), steps_style=False, size=_WIDE):
    fig, ax = _new_axes(Figure, title, "step", ylabel, size=size)
    all_pos = True
    xs_all: list = []
    for _, data in items:
        xs, ys = _xy(data)
        xs_all += xs
        all_pos = all_pos and _positive(ys)
    if len(items) > _MAX_LEGEND:
        _plot_many(ax, items)
        n_labels = 2 * _GROUPS
    else:
        for name, data in items:
            xs, ys = _stride(*_xy(data))
            ys = [_float(y) for y in ys]
            ax.plot(xs, ys, label=name.split("/", 1)[-1] if "/" in name else name, linewidth=1.2,
                    marker="o" if len(xs) < 40 else None, markersize=3,
                    drawstyle="steps-post" if steps_style else "default")
        n_labels = len(items)
    if band is not None:
        lo, mid, hi = band
        ax.axhspan(lo, hi, color="tab:green", alpha=0.12, label="healthy band")
        ax.axhline(mid, color="tab:green", linestyle="--", linewidth=1)
    if log and (all_pos or band is not None):
        ax.set_yscale("log")
    _mark_findings(ax, markers, xs_all)
    _legend(ax, n_labels + (1 if band is not None else 0))
    return fig


def _plot_loss(Figure, items, markers=()):
    fig, ax = _new_axes(Figure, "Loss", "step", "loss", size=_WIDE)
    xs_all: list = []
    for name, data in items:
        xs, ys = _xy(data)
        xs_all += xs
        ys = [_float(y) for y in ys]
        ma = moving_average(ys)
        sx, sy = _stride(xs, ys)
        ax.plot(sx, sy, label=name, linewidth=0.8, alpha=0.45, marker="o" if len(sx) < 40 else None, markersize=3)
        mx, my = _stride(xs, [math.nan if v is None else v for v in ma])
        ax.plot(mx, my, label=f"{name} (moving average)", linewidth=1.8)
        finite = [v for v in ys if math.isfinite(v)]
        if finite and min(finite) > 0 and max(finite) / min(finite) > 1e3:
            ax.set_yscale("log")  # a loss spanning many decades reads better on a log axis
    _mark_findings(ax, markers, xs_all)
    _legend(ax, 2 * len(items))
    return fig


def _plot_metrics(Figure, items, markers=()):
    metrics: dict[str, list[tuple[str, Any]]] = {}
    for name, data in items:
        split, metric = name.split("/", 1)
        metrics.setdefault(metric, []).append((split, data))
    figs = []
    for metric, curves in sorted(metrics.items()):
        fig, ax = _new_axes(Figure, f"{metric}: train vs validation", "step", metric)
        xs_all: list = []
        for split, data in sorted(curves):
            xs, ys = _stride(*_xy(data))
            xs_all += xs
            ax.plot(xs, [_float(y) for y in ys], label=split, marker="o" if len(xs) < 40 else None, markersize=3)
        _mark_findings(ax, [m for m in markers if m[1] == "RT113"], xs_all)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
        figs.append((metric, fig))
    return figs


def _activation_layers(items) -> dict[str, dict[str, Any]]:
    layers: dict[str, dict[str, Any]] = {}
    for name, data in items:
        body = name[len("activations/"):]
        layer, _, which = body.rpartition("/")
        if not layer:
            layer, which = body, "histogram"
        layers.setdefault(layer, {})[which] = data
    return layers


def activation_title(layer: str, hists: Mapping[str, Any]) -> str:
    """``features.3 (ReLU)``: the module's qualified name in the model and, when the series
    carries it, its type; a bare index ("3", a Sequential child) says which module it is."""
    module = next((d.get("module") for d in hists.values() if isinstance(d, Mapping) and d.get("module")), None)
    name = layer if layer else "model"
    if name.replace(".", "").isdigit():
        name = f"model[{']['.join(name.split('.'))}]"
    return f"{name} ({module})" if module else name


def _plot_activations(Figure, items):
    figs = []
    for layer, hists in sorted(_activation_layers(items).items()):
        title = activation_title(layer, hists)
        fig, ax = _new_axes(Figure, f"activations of {title}", "activation value", "count")
        for which in sorted(hists, key=lambda w: {"first": 0, "last": 1}.get(w, 2)):
            data = hists[which]
            if not isinstance(data, Mapping):
                continue
            edges = [_float(x) for x in data.get("edges") or []]
            counts = [_float(x) for x in data.get("counts") or []]
            if len(edges) == len(counts) + 1 and counts:
                label = which if data.get("step") is None else f"{which} (step {data.get('step')})"
                ax.stairs(counts, edges, label=label, fill=which == "first", alpha=0.5 if which == "first" else 1.0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
        figs.append((layer, title, fig))
    return figs


def _plot_lr_range(Figure, data, train_lr: Optional[float] = None):
    fig, ax = _new_axes(Figure, "LR range test", "learning rate (log scale)", "loss", size=(11, 4))
    lrs = [_float(x) for x in data.get("lr") or []]
    losses = [_float(x) for x in data.get("loss") or []]
    n = min(len(lrs), len(losses))
    pts = [(a, b) for a, b in zip(lrs[:n], losses[:n]) if a > 0 and math.isfinite(a)]
    ax.plot([a for a, _ in pts], [b for _, b in pts], label="loss (smoothed)")
    raw = data.get("raw_loss")
    if raw:
        rp = [(a, _float(b)) for a, b in zip(lrs, raw) if a > 0 and math.isfinite(a)]
        ax.plot([a for a, _ in rp], [b for _, b in rp], alpha=0.3, linewidth=0.8, label="loss (raw)")
    finite = [b for _, b in pts if math.isfinite(b)]
    if finite:  # the divergence at the end would squash the interesting part
        lo, first = min(finite), finite[0]
        ax.set_ylim(lo - 0.1 * max(abs(first - lo), 1e-6), first + 0.5 * max(abs(first - lo), 1e-6))
    region = data.get("steepest_region")
    if region and len(region) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in region):
        ax.axvspan(region[0], region[1], color="tab:green", alpha=0.12, label="steepest descent")
    sug = data.get("suggested_lr")
    if isinstance(sug, (int, float)) and math.isfinite(sug) and sug > 0:
        ax.axvline(sug, color="tab:red", linestyle="--", label=f"suggested lr = {sug:.3g}")
    if isinstance(train_lr, (int, float)) and math.isfinite(train_lr) and train_lr > 0:
        ax.axvline(train_lr, color="black", linestyle=":", label=f"the script's lr = {train_lr:.3g}")
    if pts:
        ax.set_xscale("log")  # the test sweeps LRs exponentially: a linear axis hides all but the end
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="best")
    return fig


def _figure_html(kind: str, label: str, fig=None, png: Optional[str] = None, tables: str = "", note: str = "") -> str:
    img = ""
    if png is not None:
        img = f'<img alt="{_e(label)}" src="data:image/png;base64,{png}">'
    cap = f"<figcaption>{_e(label)}{(' - ' + _e(note)) if note else ''}</figcaption>"
    details = ""
    if tables:
        opened = "" if png is not None else " open"
        details = f"<details{opened}><summary>data</summary>{tables}</details>"
    return f'<figure class="plot" data-kind="{_e(kind)}">{img}{cap}{details}</figure>'


def _train_lr(series: Mapping[str, Any]) -> Optional[float]:
    data = series.get("lr/group0")
    if isinstance(data, Mapping):
        for v in data.get("value") or []:
            f = _float(v)
            if math.isfinite(f) and f > 0:
                return f
    return None


def _render_kind(Figure, kind: str, items: list[tuple[str, Any]], markers=(), series=None) -> str:
    """HTML for all series of one kind: plots (when matplotlib works) plus data tables."""
    tables_all = "".join(_series_table(n, d) for n, d in items)
    if Figure is None:
        return _figure_html(kind, _KIND_TITLES[kind], tables=tables_all, note="matplotlib not installed: tables only")
    grouped = len(items) > _MAX_LEGEND
    many = (f" - {len(items)} tensors: median and min..max band per depth group, highest and lowest labelled"
            if grouped else "")
    try:
        if kind == "loss":
            return _figure_html(kind, "loss with moving average; dotted lines: findings at their step",
                                png=_fig_png(_plot_loss(Figure, items, markers)), tables=tables_all)
        if kind == "lr":
            fig = _plot_lines(Figure, items, "Learning rate", "lr", log=True, markers=markers, steps_style=True)
            return _figure_html(kind, "learning rate per step (drawn as steps: a schedule's drops are jumps)",
                                png=_fig_png(fig), tables=tables_all)
        if kind == "update_ratio":
            fig = _plot_lines(Figure, items, "Update/weight ratio ||dw||/||w||", "ratio", log=True,
                              band=(1e-4, 1e-3, 1e-2), markers=markers)
            return _figure_html(kind, "update/weight ratio (band: 1e-4..1e-2, dashed: 1e-3)" + many,
                                png=_fig_png(fig), tables=tables_all)
        if kind == "grad_norm":
            fig = _plot_lines(Figure, items, "Gradient norm per layer", "||grad||", log=True, markers=markers)
            return _figure_html(kind, "per-layer gradient norms" + many, png=_fig_png(fig), tables=tables_all)
        if kind == "metrics":
            parts = []
            by_metric: dict[str, list] = {}
            for n, d in items:
                by_metric.setdefault(n.split("/", 1)[1], []).append((n, d))
            for metric, fig in _plot_metrics(Figure, items, markers):
                tables = "".join(_series_table(n, d) for n, d in by_metric.get(metric, []))
                parts.append(_figure_html(kind, f"{metric}: train vs validation", png=_fig_png(fig), tables=tables))
            return '<div class="grid">' + "".join(parts) + "</div>"
        if kind == "activations":
            parts = []
            for layer, title, fig in _plot_activations(Figure, items):
                tables = "".join(
                    _series_table(n, d) for n, d in items if n[len("activations/"):].rpartition("/")[0] == layer
                )
                parts.append(_figure_html(kind, f"activations of {title}: first vs last sampled step",
                                          png=_fig_png(fig), tables=tables))
            return '<div class="grid">' + "".join(parts) + "</div>"
        if kind == "lr_range_test":
            train_lr = _train_lr(series or {})
            return "".join(
                _figure_html(kind, "LR range test: loss vs learning rate (log axis)",
                             png=_fig_png(_plot_lr_range(Figure, d, train_lr)), tables=_series_table(n, d))
                for n, d in items
                if isinstance(d, Mapping)
            )
        # other: one plot per prefix for step/value series, tables for anything else
        plottable = [(n, d) for n, d in items if isinstance(d, Mapping) and "value" in d]
        rest = [(n, d) for n, d in items if (n, d) not in plottable]
        parts = []
        prefixes: dict[str, list] = {}
        for n, d in plottable:
            prefixes.setdefault(n.split("/", 1)[0], []).append((n, d))
        for prefix, group in sorted(prefixes.items()):
            fig = _plot_lines(Figure, group, prefix, "value", markers=markers)
            parts.append(_figure_html(kind, prefix, png=_fig_png(fig), tables="".join(_series_table(n, d) for n, d in group)))
        if rest:
            parts.append(_figure_html(kind, "other data", tables="".join(_series_table(n, d) for n, d in rest)))
        return "".join(parts)
    except Exception as exc:  # plotting must never break the report
        return _figure_html(kind, _KIND_TITLES[kind], tables=tables_all, note=f"plot failed: {type(exc).__name__}: {exc}")


def render_html(findings: Sequence[Any], series: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """Return the self-contained HTML page (no external resources)."""
    fdicts = [finding_to_dict(f) for f in findings]
    series = _jsonable(dict(series or {}))
    run = _jsonable(dict(run or {}))
    Figure = _import_matplotlib()
    counts = _severity_counts(fdicts)
    title = "recipecheck runtime report"
    if run.get("script") or run.get("module"):
        title += f": {run.get('script') or '-m ' + str(run.get('module'))}"
    nav_slot = "<!-- nav -->"  # links to the sections present, filled in at the end
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(str(title))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(str(title))}</h1>",
        f'<p class="summary">{_e(_counts_line(counts, len(fdicts)))}</p>',
        _overview(run),
        nav_slot,
        '<h2 id="findings">Findings</h2>',
        _findings_table(fdicts),
        _sanity_html(run),
    ]
    markers = finding_markers(fdicts)
    groups = _group_series(series)
    if groups:
        if Figure is None:
            parts.append('<p class="muted">matplotlib is not installed (extra <code>plots</code>): series are shown as tables.</p>')
        for kind in _KIND_ORDER:
            if kind in groups:
                parts.append(f'<h2 id="{kind}">{_e(_KIND_TITLES[kind])}</h2>')
                parts.append(_render_kind(Figure, kind, groups[kind], markers, series))
    parts.append(_run_table(run))
    parts.append('<p class="muted">Generated by recipecheck.</p></body></html>')
    links = [("findings", "Findings")] + ([("sanity", "Sanity checks")] if isinstance(run.get("sanity"), Mapping) else [])
    links += [(k, _KIND_TITLES[k]) for k in _KIND_ORDER if k in groups] + ([("run", "Run")] if run else [])
    parts[parts.index(nav_slot)] = ('<nav class="toc">' + " | ".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in links)
                                    + "</nav>")
    return "\n".join(p for p in parts if p)


def _overview(run: Mapping[str, Any]) -> str:
    """One line: steps, epochs, duration, device, exit code, ranks."""
    bits = []
    for key, label in (("steps", "optimizer steps"), ("epochs", "epochs"), ("duration_s", "seconds"),
                       ("device", "device"), ("world_size", "ranks"), ("exit_code", "exit code")):
        v = run.get(key)
        if v is None or (key == "world_size" and v == 1):
            continue
        bits.append(f"{label} {v}" if key in ("device", "exit_code") else f"{v} {label}")
    return f'<p class="overview">{_e(" · ".join(str(b) for b in bits))}</p>' if bits else ""


# --------------------------------------------------------------------------------------------
# sanity suite results (run["sanity"])
# --------------------------------------------------------------------------------------------

_SANITY_ORDER = (("initial_loss", "RT101", "initial loss vs chance"),
                 ("gradient_check", "RT102", "gradient check (float64)"),
                 ("overfit", "RT114", "overfit a tiny batch"),
                 ("regularization", "RT115", "regularization raises the loss"))
_SANITY_STATUS = {"great": "ok", "ok": "ok", "warn": "warning", "fail": "FAILED", "error": "FAILED",
                  "skipped": "skipped", "crashed": "crashed", "unavailable": "skipped",
                  "inconclusive": "inconclusive"}


def _g(v: Any, spec: str = ".4g") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "?"


def _sanity_result(key: str, d: Mapping[str, Any]) -> str:
    status = d.get("status")
    if status == "crashed":
        return f"the check itself failed: {d.get('error')}"
    if status == "skipped":
        return str(d.get("reason") or "skipped")
    if key == "initial_loss":
        return (f"loss {_g(d.get('loss'))} vs chance {_g(d.get('chance'))} ({d.get('formula')}), "
                f"tolerance {_g(d.get('tolerance'), '.3g')}")
    if key == "gradient_check":
        text = (f"max relative error {_g(d.get('max_rel_error'), '.2g')} over {d.get('checked')} coordinates in "
                f"{d.get('tensors_checked', '?')} of {d.get('parameter_tensors', '?')} parameter tensors, "
                f"{d.get('examples')} examples")
        if d.get("kink_coordinates"):
            text += f"; {d['kink_coordinates']} on a ReLU-type kink (not counted)"
        if d.get("kinks_possible"):
            text += "; the model has kinks (ReLU-type, max, clamp): errors up to 1e-2 are finite-difference artifacts"
        if d.get("budget_exhausted"):
            text += f"; time budget of {_g(d.get('budget_s'), 'g')} s reached after {d.get('checked')} of {d.get('planned')}"
        return text
    if key == "overfit":
        text = (f"loss {_g(d.get('initial_loss'))} -> {_g(d.get('final_loss'))} on {d.get('examples')} examples "
                f"(target {_g(d.get('target_loss'), '.3g')})")
        if d.get("reached_at_step") is not None:
            text += f", reached at step {d['reached_at_step']}"
        elif d.get("steps") is not None:
            text += f", not reached in {d['steps']} steps"
        if d.get("reason"):
            text += f": {d['reason']}"
        return text
    if key == "regularization":
        if d.get("mode") == "regularizer":
            objective = ", ".join(_g(v) for v in d.get("objective") or [])
            return (f"loss + s*penalty = {objective} for s = {d.get('strengths')}; penalty has a gradient: "
                    f"{d.get('penalty_has_gradient')}")
        wd = d.get("weight_decay")
        return (f"weight decay {wd} raised 10x, data gradient zero: dw.w = {_g(d.get('update_dot_weight'), '.3g')} "
                f"({'toward zero' if (d.get('update_dot_weight') or 0) < 0 else 'not toward zero'})")
    return json.dumps(d, default=str)[:300]


def sanity_rows(sanity: Mapping[str, Any]) -> list[dict[str, str]]:
    """The rows of the sanity results table: check, what it tests, status, result, seconds."""
    rows = []
    if not isinstance(sanity, Mapping):
        return rows
    for key, code, title in _SANITY_ORDER:
        d = sanity.get(key)
        if not isinstance(d, Mapping):
            continue
        try:
            result = _sanity_result(key, d)
        except Exception:  # odd details never break the table
            result = json.dumps(d, default=str)[:300]
        rows.append({"code": code, "check": title, "status": _SANITY_STATUS.get(str(d.get("status")), str(d.get("status"))),
                     "result": result, "seconds": _fmt(d.get("seconds")) if d.get("seconds") is not None else ""})
    return rows


def sanity_text(sanity: Mapping[str, Any], lr_advice: Optional[str] = None) -> str:
    """Plain-text sanity results (CI logs)."""
    if isinstance(sanity, Mapping) and sanity.get("status") in ("skipped", "unavailable"):
        return f"recipecheck sanity: skipped ({sanity.get('reason') or sanity.get('status')})\n"
    lines = ["recipecheck sanity results:"]
    for r in sanity_rows(sanity):
        secs = f" [{r['seconds']} s]" if r["seconds"] else ""
        lines.append(f"  {r['code']} {r['check']}: {r['status']}{secs} - {r['result']}")
    if isinstance(sanity, Mapping) and sanity.get("user_hooks_left_out"):
        lines.append(f"  ({sanity['user_hooks_left_out']} module hook(s) of the script were left out of the copies)")
    if lr_advice:
        lines.append(f"  {lr_advice}")
    return "\n".join(lines) + "\n"


def render_sanity(sanity: Mapping[str, Any], lr_advice: Optional[str] = None, console: Any = None) -> str:
    """Print the sanity results (a rich table on a terminal, plain text otherwise) on stderr."""
    text = sanity_text(sanity, lr_advice)
    if console is None:
        try:
            from rich.console import Console

            console = Console(stderr=True)
        except Exception:
            sys.stderr.write(text)
            return text
    if not getattr(console, "is_terminal", False):
        file = getattr(console, "file", None) or sys.stderr
        file.write(text)
        return text
    from rich.table import Table
    from rich.text import Text

    table = Table(title="recipecheck sanity results", show_lines=False)
    for col in ("check", "", "status", "result", "s"):
        table.add_column(col, overflow="fold")
    styles = {"ok": "green", "warning": "yellow", "FAILED": "bold red", "crashed": "bold red", "skipped": "dim"}
    for r in sanity_rows(sanity):
        table.add_row(r["code"], r["check"], Text(r["status"], style=styles.get(r["status"], "")), r["result"], r["seconds"])
    console.print(table)
    if lr_advice:
        console.print(Text(lr_advice))
    return text


def _sanity_html(run: Mapping[str, Any]) -> str:
    sanity = run.get("sanity")
    if not isinstance(sanity, Mapping):
        return ""
    if sanity.get("status") in ("skipped", "unavailable"):
        return f'<h2 id="sanity">Sanity checks</h2><p class="muted">skipped: {_e(str(sanity.get("reason") or sanity.get("status")))}</p>'
    rows = "".join(
        f'<tr class="sanity {_e(r["status"])}"><td>{_e(r["code"])}</td><td>{_e(r["check"])}</td>'
        f'<td class="status">{_e(r["status"])}</td><td>{_e(r["result"])}</td><td>{_e(r["seconds"])}</td></tr>'
        for r in sanity_rows(sanity))
    extra = ""
    if sanity.get("user_hooks_left_out"):
        extra += f'<p class="muted">{int(sanity["user_hooks_left_out"])} module hook(s) of the script were left out of the copies the checks ran on.</p>'
    if run.get("lr_advice"):
        extra += f"<p>{_e(str(run['lr_advice']))}</p>"
    return ('<h2 id="sanity">Sanity checks (before training, on copies)</h2><table class="sanity"><thead><tr>'
            "<th>code</th><th>check</th><th>status</th><th>result</th><th>seconds</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{extra}")


# --------------------------------------------------------------------------------------------
# terminal summary
# --------------------------------------------------------------------------------------------


def _sorted_findings(findings: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(f):
        step = f.get("step")
        return (_SEVERITY_ORDER.get(str(f.get("severity")), 3), step if isinstance(step, int) else 1 << 62, str(f.get("code")))

    return sorted(findings, key=key)


def _severity_counts(findings: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        sev = str(f.get("severity") or "info")
        counts[sev] = counts.get(sev, 0) + 1
    return counts


def _counts_line(counts: Mapping[str, int], total: int) -> str:
    if not total:
        return "recipecheck: no runtime findings."
    parts = [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in ("error", "warning", "info") if counts.get(s)]
    parts += [f"{v} {k}" for k, v in counts.items() if k not in _SEVERITY_ORDER]
    return f"recipecheck: {total} runtime finding{'s' if total != 1 else ''} ({', '.join(parts)})"


_FIX_RE = re.compile(r"\s*\bfix:\s*", re.IGNORECASE)


def _split_fix(f: Mapping[str, Any]) -> tuple[str, str]:
    """Split a message into (what happened, fix)."""
    message = str(f.get("message") or "")
    m = _FIX_RE.search(message)
    if m:
        return message[: m.start()].strip(), message[m.end():].strip()
    return message, DEFAULT_FIXES.get(str(f.get("code")), "")


def _when(f: Mapping[str, Any]) -> str:
    parts = []
    if f.get("step") is not None:
        parts.append(f"step {f['step']}")
    if f.get("epoch") is not None:
        parts.append(f"epoch {f['epoch']}")
    return ", ".join(parts)


def summary_text(findings: Sequence[Any]) -> str:
    """The plain-text summary (used when the output is not a terminal)."""
    fdicts = [finding_to_dict(f) for f in findings]
    lines = [_counts_line(_severity_counts(fdicts), len(fdicts))]
    for f in _sorted_findings(fdicts):
        what, fix = _split_fix(f)
        head = f"{f.get('code')} [{f.get('severity')}] {f.get('name')}"
        when = _when(f)
        if when:
            head += f" at {when}"
        if f.get("where"):
            head += f" in {f['where']}"
        if f.get("static_twin"):
            head += f" (static twin: {f['static_twin']})"
        lines.append(head)
        if what:
            lines.append(f"    {what}")
        if fix:
            lines.append(f"    fix: {fix}")
    return "\n".join(lines) + "\n"


def render_summary(findings: Sequence[Any], console: Any = None) -> str:
    """Print the end-of-run summary of ``findings`` and return it as plain text.

    With a rich ``Console`` attached to a terminal (default: a new console on stderr, so the
    script's own stdout stays clean) the summary is a rich table with the columns code,
    severity, what happened, when (step/epoch), where (param/layer), fix and static twin.
    When the output is not a terminal (or rich is missing) plain text is written instead.
    """
    text = summary_text(findings)
    if console is None:
        try:
            from rich.console import Console

            console = Console(stderr=True)
        except Exception:  # rich missing: plain text on stderr
            sys.stderr.write(text)
            return text
    if not getattr(console, "is_terminal", False):
        file = getattr(console, "file", None)
        if file is not None:
            file.write(text)
            try:
                file.flush()
            except Exception:
                pass
        else:
            console.print(text, markup=False, highlight=False, end="")
        return text
    from rich.table import Table
    from rich.text import Text

    fdicts = [finding_to_dict(f) for f in findings]
    counts = _severity_counts(fdicts)
    if not fdicts:
        console.print(Text(_counts_line(counts, 0), style="green"))
        return text
    table = Table(title=_counts_line(counts, len(fdicts)), show_lines=True, expand=False)
    for col in ("code", "severity", "what happened", "when", "where", "fix", "static twin"):
        table.add_column(col, overflow="fold")
    styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for f in _sorted_findings(fdicts):
        what, fix = _split_fix(f)
        sev = str(f.get("severity") or "")
        table.add_row(
            Text(str(f.get("code") or "")),
            Text(sev, style=styles.get(sev, "")),
            Text(f"{f.get('name') or ''}: {what}" if what else str(f.get("name") or "")),
            Text(_when(f)),
            Text(str(f.get("where") or "")),
            Text(fix),
            Text(str(f.get("static_twin") or "")),
        )
    console.print(table)
    return text
