"""Output formats: text (ruff-style, rich colours on a TTY; `full` with the source line and a
caret under the range, or `concise`, one line per finding), json, github, sarif."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import IO

from recipecheck import __version__
from recipecheck.finding import Finding, Severity

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
DOCS_URI = "https://github.com/recipecheck/recipecheck#rules"
RULE_DOCS_URI = "https://github.com/recipecheck/recipecheck/blob/main/docs/rules"  # scripts/update_docs.py


def _console(stream: IO[str], color: bool | None):
    from rich.console import Console

    # color=None: colours only when the stream is a terminal (plain when piped)
    return Console(file=stream, force_terminal=color if color else None, no_color=color is False,
                   highlight=False, soft_wrap=True, emoji=False)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _header(f: Finding):
    from rich.text import Text

    line = Text()
    cell = f"cell {f.extra['cell']}:" if "cell" in f.extra else ""  # notebooks
    line.append(f"{f.path}:{cell}{f.line}:{f.column}:", style="bold")
    line.append(" ")
    line.append(f.code, style=_STYLE[f.severity])
    line.append(f" [{f.severity.value}] ")
    line.append(f.message)
    return line


class _Sources:
    """Lines of the reported files, read once each, for the `full` format's excerpts."""

    def __init__(self, sources: dict[str, str] | None = None) -> None:
        self._text: dict[tuple[str, int | None], list[str] | None] = {}
        self._given = sources or {}

    def lines(self, f: Finding) -> list[str] | None:
        cell = f.extra.get("cell")
        key = (f.path, cell)
        if key not in self._text:
            self._text[key] = self._read(f.path, cell)
        return self._text[key]

    def _read(self, path: str, cell: int | None) -> list[str] | None:
        try:
            text = self._given[path] if path in self._given else \
                open(path, encoding="utf-8", errors="replace").read()
            if cell is not None:
                src = json.loads(text)["cells"][cell - 1]["source"]
                text = "".join(src) if isinstance(src, list) else src
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None
        return text.splitlines()


def _excerpt(f: Finding, lines: list[str] | None):
    """The reported line with a caret under the range (first line only for a multi-line one)."""
    from rich.text import Text

    if not lines or not 1 <= f.line <= len(lines):
        return None
    src = lines[f.line - 1].expandtabs(1)
    width = len(str(f.line))
    start = max(f.column - 1, 0)
    end = f.end_column - 1 if f.end_line == f.line else len(src.rstrip())
    end = max(end, start + 1)
    gutter = " " * width + " |"
    out = Text()
    out.append(gutter + "\n", style="blue")
    out.append(f"{f.line} | ", style="blue")
    out.append(src + "\n")
    out.append(gutter + " ", style="blue")
    out.append(" " * start + "^" * (end - start), style=_STYLE[f.severity])
    return out


def render_text(findings: list[Finding], stream: IO[str], color: bool | None = None,
                output_format: str = "concise", sources: dict[str, str] | None = None) -> None:
    """`concise`: one line per finding. `full`: findings grouped by file, each with the source
    line, a caret under the reported range and the fix's title."""
    from rich.text import Text

    console = _console(stream, color)
    if output_format != "full":
        for f in findings:
            line = _header(f)
            if f.fix is not None:
                line.append(f" (fix available{', unsafe' if f.fix.safety == 'unsafe' else ''})",
                            style="dim")
            console.print(line)
        return
    files = _Sources(sources)
    current = None
    for f in findings:
        if f.path != current:
            if current is not None:
                console.print()
            n = sum(1 for g in findings if g.path == f.path)
            console.print(Text(f"{f.path} ({_plural(n, 'finding')})", style="bold underline"))
            current = f.path
        console.print(_header(f))
        ex = _excerpt(f, files.lines(f))
        if ex is not None:
            console.print(ex)
        if f.fix is not None:
            how = "--fix" if f.fix.safety == "safe" else "unsafe: --fix --unsafe-fixes"
            console.print(Text(f"{' ' * (len(str(f.line)) + 1)}= fix: {f.fix.description} ({how})",
                               style="cyan"))


@dataclass
class Summary:
    """What the closing line of the text output reports besides the findings."""

    n_files: int
    unchecked: list[str] = field(default_factory=list)  # files not fully checked (internal error)
    hidden_unsafe: int = 0  # unsafe fixes left out because --unsafe-fixes was not given


def summary_lines(findings: list[Finding], summary: Summary, fixable_hint: bool = True) -> list[tuple[str, str]]:
    """(text, style) lines closing the text output."""
    out: list[tuple[str, str]] = []
    n_files = summary.n_files
    unchecked = len(set(summary.unchecked))
    if n_files == 0:
        out.append(("No Python files were found (nothing was checked).", "yellow"))
        return out
    if not findings and not unchecked:
        out.append((f"All checks passed ({_plural(n_files, 'file')}).", "green"))
    elif not findings:
        out.append((f"No findings in {_plural(n_files, 'file')}, but {unchecked} of them "
                    f"{'was' if unchecked == 1 else 'were'} not fully checked (internal error, "
                    "see above): the result is incomplete.", "bold red"))
    else:
        by_sev = Counter(f.severity for f in findings)
        parts = [_plural(by_sev[s], s.value) for s in
                 (Severity.ERROR, Severity.WARNING, Severity.INFO) if by_sev[s]]
        msg = f"Found {_plural(len(findings), 'finding')} ({', '.join(parts)}) in {_plural(n_files, 'file')}."
        fixable = sum(1 for f in findings if f.fix is not None and f.fix.safety == "safe")
        unsafe = sum(1 for f in findings if f.fix is not None and f.fix.safety == "unsafe")
        if fixable_hint and fixable:
            msg += f" {fixable} fixable with --fix."
        if fixable_hint and unsafe and not summary.hidden_unsafe:
            msg += (f" {_plural(unsafe, 'unsafe fix', 'unsafe fixes')} available with "
                    "--fix --unsafe-fixes (review each one).")
        out.append((msg, "bold"))
        if unchecked:
            out.append((f"{unchecked} of the {_plural(n_files, 'file')} "
                        f"{'was' if unchecked == 1 else 'were'} not fully checked (internal error, "
                        "see above): the result is incomplete.", "bold red"))
    if summary.hidden_unsafe:
        out.append((f"{_plural(summary.hidden_unsafe, 'unsafe fix', 'unsafe fixes')} "
                    f"{'was' if summary.hidden_unsafe == 1 else 'were'} not applied: "
                    "add --unsafe-fixes to include them (review each one).", "yellow"))
    return out


def render_summary(findings: list[Finding], n_files: int | Summary, stream: IO[str],
                   color: bool | None = None, fixable_hint: bool = True) -> None:
    from rich.text import Text

    summary = n_files if isinstance(n_files, Summary) else Summary(n_files)
    console = _console(stream, color)
    for text, style in summary_lines(findings, summary, fixable_hint):
        console.print(Text(text, style=style))


def statistics(findings: list[Finding]) -> list[dict]:
    counts = Counter((f.code, f.name, f.severity.value) for f in findings)
    fixable = Counter(f.code for f in findings if f.fix is not None)
    return [{"code": code, "name": name, "severity": sev, "count": n, "fixable": fixable[code]}
            for (code, name, sev), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0]))]


def render_statistics(findings: list[Finding], stream: IO[str], color: bool | None = None,
                      fmt: str = "text") -> None:
    """One row per rule with its count; `--format json` gives the same rows as JSON."""
    rows = statistics(findings)
    if fmt == "json":
        stream.write(json.dumps(rows, indent=2) + "\n")
        return
    if fmt not in ("text", "concise", "full"):
        raise ValueError(f"--statistics supports the text and json formats, not {fmt}")
    from rich.table import Table

    console = _console(stream, color)
    table = Table(show_header=True, header_style="bold", box=None)
    for col in ("count", "code", "name", "severity"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for r in rows:
        table.add_row(str(r["count"]), r["code"], r["name"], r["severity"])
    console.print(table)


def write_report(findings: list[Finding], stream: IO[str], *, fmt: str = "text",
                 statistics_only: bool = False, color: bool | None = None,
                 output_format: str | None = None, summary: Summary | None = None,
                 text: bool = True, sources: dict[str, str] | None = None) -> None:
    """Everything `lint` writes to its report stream, in the chosen format.

    `output_format` None: `full` on a terminal, `concise` otherwise. `text=False` (the diff
    of --diff was written instead) prints only the summary of the text format.
    """
    if statistics_only:
        render_statistics(findings, stream, color, fmt)
    elif fmt == "json":
        stream.write(to_json(findings) + "\n")
    elif fmt == "sarif":
        stream.write(to_sarif(findings) + "\n")
    elif fmt == "github":
        stream.write(to_github(findings))
    else:
        if text:
            style = output_format or ("full" if is_terminal(stream) else "concise")
            render_text(findings, stream, color, style, sources)
        render_summary(findings, summary or Summary(len({f.path for f in findings})), stream, color,
                       fixable_hint=text)


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
    from recipecheck.rule import all_rules

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
            "helpUri": f"{RULE_DOCS_URI}/{r.CODE}.md",
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
