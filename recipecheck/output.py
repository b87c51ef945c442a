"""Output formats: text (ruff-style, rich colours on a TTY), json, github, sarif."""

from __future__ import annotations

import json
from collections import Counter
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from recipecheck import __version__
from recipecheck.finding import Finding, Severity
from recipecheck.rule import all_rules

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
DOCS_URI = "https://github.com/recipecheck/recipecheck#rules"


def _console(stream: IO[str], color: bool | None) -> Console:
    # color=None: colours only when the stream is a terminal (plain when piped)
    return Console(file=stream, force_terminal=color if color else None, no_color=color is False,
                   highlight=False, soft_wrap=True, emoji=False)


def render_text(findings: list[Finding], stream: IO[str], color: bool | None = None) -> None:
    console = _console(stream, color)
    for f in findings:
        line = Text()
        cell = f"cell {f.extra['cell']}:" if "cell" in f.extra else ""  # notebooks
        line.append(f"{f.path}:{cell}{f.line}:{f.column}:", style="bold")
        line.append(" ")
        line.append(f.code, style=_STYLE[f.severity])
        line.append(f" [{f.severity.value}] ")
        line.append(f.message)
        if f.fix is not None:
            line.append(f" (fix available{', unsafe' if f.fix.safety == 'unsafe' else ''})",
                        style="dim")
        console.print(line)


def render_summary(findings: list[Finding], n_files: int, stream: IO[str], color: bool | None = None,
                   fixable_hint: bool = True) -> None:
    console = _console(stream, color)
    if not findings:
        console.print(Text(f"All checks passed ({n_files} file{'s' if n_files != 1 else ''}).",
                           style="green"))
        return
    by_sev = Counter(f.severity for f in findings)
    parts = [f"{by_sev[s]} {s.value}{'s' if by_sev[s] != 1 else ''}" for s in
             (Severity.ERROR, Severity.WARNING, Severity.INFO) if by_sev[s]]
    msg = f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''} ({', '.join(parts)}) " \
          f"in {n_files} file{'s' if n_files != 1 else ''}."
    fixable = sum(1 for f in findings if f.fix is not None and f.fix.safety == "safe")
    if fixable and fixable_hint:
        msg += f" {fixable} fixable with --fix."
    console.print(Text(msg, style="bold"))


def render_statistics(findings: list[Finding], stream: IO[str], color: bool | None = None) -> None:
    console = _console(stream, color)
    counts = Counter((f.code, f.name, f.severity.value) for f in findings)
    table = Table(show_header=True, header_style="bold", box=None)
    for col in ("count", "code", "name", "severity"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for (code, name, sev), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0])):
        table.add_row(str(n), code, name, sev)
    console.print(table)


def to_json(findings: list[Finding]) -> str:
    return json.dumps([f.to_json() for f in findings], indent=2)


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def to_github(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        props = (f"file={_gh_escape(f.path, True)},line={f.line},col={f.column},"
                 f"endLine={f.end_line},endColumn={f.end_column},"
                 f"title={_gh_escape(f'{f.code} {f.name}', True)}")
        cell = f"cell {f.extra['cell']}: " if "cell" in f.extra else ""  # notebooks
        lines.append(f"::{_GITHUB_LEVEL[f.severity]} {props}::{_gh_escape(f'{f.code} {cell}{f.message}')}")
    return "\n".join(lines) + ("\n" if lines else "")


def to_sarif(findings: list[Finding]) -> str:
    rules = all_rules()
    index = {r.CODE: i for i, r in enumerate(rules)}
    driver_rules = []
    for r in rules:
        summary = " ".join(r.MESSAGE.split())
        driver_rules.append({
            "id": r.CODE,
            "name": r.NAME,
            "shortDescription": {"text": summary},
            "fullDescription": {"text": r.manual()},
            "helpUri": f"{DOCS_URI}",
            "defaultConfiguration": {"level": _SARIF_LEVEL[r.SEVERITY],
                                     "enabled": r.enabled_by_default()},
            "properties": {"tags": ["pytorch", "training"]},
        })
    results = []
    for f in findings:
        result = {
            "ruleId": f.code,
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": (f"cell {f.extra['cell']}: " if "cell" in f.extra else "") + f.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": f.path.replace("\\", "/")},
                    "region": {"startLine": f.line, "startColumn": f.column,
                               "endLine": f.end_line, "endColumn": max(f.end_column, 1)},
                }
            }],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        results.append(result)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "recipecheck", "version": __version__,
                                "informationUri": DOCS_URI, "rules": driver_rules}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2)
