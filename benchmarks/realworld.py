"""Precision of the linter on a judged corpus of real training code.

    python benchmarks/realworld.py DIR [--verdicts FILE] [--select CODES] [--jobs N] [--all]

Lints DIR (default selection, or --select like `recipecheck lint`), groups the findings by
rule and compares them with a verdict file, one judgment per line:

    path:line:CODE -> TP|FP|debatable, why

`path` is relative to DIR; `#` starts a comment line. Prints, per rule: findings, TP, FP,
debatable, unjudged, and precision (TP over judged findings, debatable counted as not true),
then the totals for the default severities (error + warning), for errors alone, and lists
the unjudged findings (to judge) and the stale verdicts (a judged finding that is no longer
reported under a file that still exists: a fixed false positive, a lost true positive, or a
moved line). Verdicts for files that are not under DIR are ignored, so one verdict file can
cover several corpora.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

VERDICTS = ("TP", "FP", "debatable")
_SEV_ORDER = ["error", "warning", "info"]
LINE_RE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<code>RC\d{3})\s*->\s*(?P<verdict>TP|FP|debatable)\b"
    r"\s*,?\s*(?P<why>.*)$")


@dataclass(frozen=True)
class Verdict:
    path: str
    line: int
    code: str
    verdict: str
    why: str


@dataclass(frozen=True)
class Item:
    """One finding, keyed like a verdict."""

    path: str
    line: int
    code: str
    severity: str
    message: str


def parse_verdicts(text: str, source: str = "<verdicts>") -> dict[tuple[str, int, str], Verdict]:
    """Parse a verdict file; a malformed line is an error that names the line."""
    out: dict[tuple[str, int, str], Verdict] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = LINE_RE.match(line)
        if m is None:
            raise ValueError(f"{source}:{n}: expected `path:line:CODE -> TP|FP|debatable, why`, "
                             f"got {raw!r}")
        v = Verdict(m["path"].replace(os.sep, "/"), int(m["line"]), m["code"], m["verdict"],
                    m["why"].strip())
        key = (v.path, v.line, v.code)
        if key in out and out[key].verdict != v.verdict:
            raise ValueError(f"{source}:{n}: {v.path}:{v.line}:{v.code} judged twice "
                             f"({out[key].verdict} and {v.verdict})")
        out[key] = v
    return out


def lint_dir(root: str, select: list[str] | None, jobs: int) -> list[Item]:
    from recipecheck.engine import run_jobs
    from recipecheck.lint import LintOptions, collect_jobs

    opts = LintOptions(paths=[root], select=select, jobs=jobs, use_cache=False)
    job_list, _ = collect_jobs(opts, describe_fixes=False)
    items: list[Item] = []
    for res in run_jobs(job_list, jobs, use_cache=False):
        for e in res.errors:
            print(f"internal error: {e}", file=sys.stderr)
        for f in res.findings:
            rel = os.path.relpath(f.path, root).replace(os.sep, "/")
            items.append(Item(rel, f.line, f.code, f.severity.value, f.message))
    items.sort(key=lambda i: (i.path, i.line, i.code))
    return items


@dataclass
class Row:
    findings: int = 0
    tp: int = 0
    fp: int = 0
    debatable: int = 0
    unjudged: int = 0

    def add(self, verdict: str | None) -> None:
        self.findings += 1
        if verdict == "TP":
            self.tp += 1
        elif verdict == "FP":
            self.fp += 1
        elif verdict == "debatable":
            self.debatable += 1
        else:
            self.unjudged += 1

    @property
    def precision(self) -> float | None:
        judged = self.tp + self.fp + self.debatable
        return self.tp / judged if judged else None


def compare(items: list[Item], verdicts: dict[tuple[str, int, str], Verdict], root: str):
    """Rows per rule and per severity group, the unjudged findings, the stale verdicts."""
    per_rule: dict[str, Row] = defaultdict(Row)
    groups = {"error+warning": Row(), "error": Row(), "info": Row()}
    severity: dict[str, str] = {}  # "error", or "warning/info" when a rule lowered some
    unjudged: list[Item] = []
    seen = set()
    for it in items:
        key = (it.path, it.line, it.code)
        seen.add(key)
        v = verdicts.get(key)
        verdict = v.verdict if v else None
        per_rule[it.code].add(verdict)
        sevs = set(severity.get(it.code, "").split("/")) - {""}
        severity[it.code] = "/".join(sorted(sevs | {it.severity}, key=_SEV_ORDER.index))
        if it.severity in ("error", "warning"):
            groups["error+warning"].add(verdict)
        if it.severity in ("error", "info"):
            groups[it.severity].add(verdict)
        if v is None:
            unjudged.append(it)
    stale = [v for k, v in sorted(verdicts.items()) if k not in seen
             and (Path(root) / v.path).is_file()]
    return dict(sorted(per_rule.items())), severity, groups, unjudged, stale


def _pct(p: float | None) -> str:
    return "   -" if p is None else f"{100 * p:4.0f}%"


def render(per_rule, severity, groups, unjudged, stale, out=None) -> None:
    out = out or sys.stdout
    head = f"{'rule':<7} {'sev':<13} {'findings':>8} {'TP':>4} {'FP':>4} {'debat':>5} " \
           f"{'unjudged':>8} {'precision':>9}"
    print(head, file=out)
    print("-" * len(head), file=out)

    def line(name: str, sev: str, r: Row) -> None:
        print(f"{name:<7} {sev:<13} {r.findings:>8} {r.tp:>4} {r.fp:>4} {r.debatable:>5} "
              f"{r.unjudged:>8} {_pct(r.precision):>9}", file=out)

    for code, r in per_rule.items():
        line(code, severity[code], r)
    print("-" * len(head), file=out)
    for name, r in groups.items():
        line("total", name, r)
    if unjudged:
        print(f"\nunjudged findings ({len(unjudged)}):", file=out)
        for it in unjudged:
            print(f"{it.path}:{it.line}:{it.code} [{it.severity}] {it.message}", file=out)
    if stale:
        print(f"\nverdicts no longer reported ({len(stale)}; "
              f"{dict(Counter(v.verdict for v in stale))}):", file=out)
        for v in stale:
            print(f"{v.path}:{v.line}:{v.code} -> {v.verdict}, {v.why}", file=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--verdicts", help="verdict file (path:line:CODE -> TP|FP|debatable, why)")
    ap.add_argument("--select", help="codes, prefixes or ALL, comma-separated (default: the "
                                     "default selection)")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    if not Path(args.dir).is_dir():
        print(f"realworld: {args.dir}: not a directory", file=sys.stderr)
        return 2
    verdicts: dict = {}
    if args.verdicts:
        try:
            verdicts = parse_verdicts(Path(args.verdicts).read_text(encoding="utf-8"), args.verdicts)
        except (OSError, ValueError) as exc:
            print(f"realworld: {exc}", file=sys.stderr)
            return 2
    select = [s for s in args.select.split(",") if s.strip()] if args.select else None
    try:
        items = lint_dir(args.dir, select, args.jobs)
    except ValueError as exc:
        print(f"realworld: {exc}", file=sys.stderr)
        return 2
    render(*compare(items, verdicts, args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
