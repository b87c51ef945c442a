"""`recipecheck lint`: files -> settings -> jobs -> findings -> output and exit code."""

from __future__ import annotations

import difflib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import click

from recipecheck import output
from recipecheck.config import ConfigError, Settings, load_file, settings_for
from recipecheck.engine import (Job, RuleSet, fix_source, lint_source, run_jobs,
                                severity_at_least)
from recipecheck.finding import Finding
from recipecheck.files import iter_files
from recipecheck.rule import select_rules, validate_selector


@dataclass
class LintOptions:
    paths: list[str]
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    config_file: str | None = None
    jobs: int = 1
    use_cache: bool = True
    fix: str | None = None  # None | "safe" | "unsafe"
    diff: bool = False

    def __post_init__(self) -> None:
        if self.select is not None:
            self.select = [validate_selector(s) for s in self.select]
        self.ignore = [validate_selector(s) for s in self.ignore]
        self.extend_select = [validate_selector(s) for s in self.extend_select]


def _ruleset(settings: Settings, opts: LintOptions) -> RuleSet:
    cfg = settings.config
    select = opts.select if opts.select is not None else cfg.select
    rules = select_rules(select, [*cfg.ignore, *opts.ignore], [*cfg.extend_select, *opts.extend_select])
    codes = tuple(r.CODE for r in rules)
    return RuleSet(codes=codes, options={c: o for c, o in cfg.options.items() if c in codes})


def collect_jobs(opts: LintOptions, describe_fixes: bool = True) -> tuple[list[Job], dict[str, Settings]]:
    override = Path(opts.config_file) if opts.config_file else None
    if override is not None:
        load_file(override)  # fail early on a bad explicit config
    jobs: list[Job] = []
    by_path: dict[str, Settings] = {}
    for raw in opts.paths:
        if not Path(raw).exists():
            raise ConfigError(f"{raw}: no such file or directory")
    root_settings = {raw: settings_for(Path(raw), override) for raw in opts.paths}

    explicit = [Path(raw) for raw in opts.paths]

    def excluded(p: Path) -> bool:
        return settings_for(p, override).is_excluded(p, explicit)

    for path in iter_files(opts.paths, excluded):
        s = settings_for(path, override)
        _ = root_settings
        rs = _ruleset(s, opts)
        ignore = tuple(s.ignores_for(path))
        jobs.append(Job(path=str(path), ruleset=rs, ignore=ignore, max_file_size=s.config.max_file_size,
                        describe_fixes=describe_fixes))
        by_path[str(path)] = s
    return jobs, by_path


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fix_files(jobs: list[Job], opts: LintOptions) -> tuple[list[Finding], list[str], int]:
    """Apply fixes (or print a diff); return the remaining findings, notices, files changed."""
    findings: list[Finding] = []
    notices: list[str] = []
    changed = 0
    for job in jobs:
        path = Path(job.path)
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            res = run_jobs([job], 1, use_cache=False)[0]
            findings += res.findings
            if res.notice:
                notices.append(f"{job.path}: skipped: {res.notice}")
            continue
        rules = job.ruleset.instantiate()
        fixer, linter = fix_source, lint_source
        if job.path.endswith(".ipynb"):  # fixes rewrite only the changed cells' source
            from recipecheck.notebook import fix_notebook as fixer, lint_notebook as linter
        new_text, res = fixer(text, job.path, rules, mode=opts.fix or "safe", ignore=job.ignore,
                              max_file_size=job.max_file_size)
        if res.notice:
            notices.append(f"{job.path}: skipped: {res.notice}")
        if new_text != text:
            changed += 1
            if opts.diff:
                if job.path.endswith(".ipynb"):
                    from recipecheck.notebook import cell_diff
                    sys.stdout.write(cell_diff(text, new_text, job.path))
                else:
                    sys.stdout.write("".join(difflib.unified_diff(
                        text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                        fromfile=f"a/{job.path}", tofile=f"b/{job.path}")))
                findings += linter(text, job.path, rules, ignore=job.ignore).findings
                continue
            _atomic_write(path, new_text)
        findings += res.findings
    return findings, notices, changed


def run_lint(opts: LintOptions, fmt: str = "text", output_file: str | None = None,
             statistics: bool = False, color: bool | None = None,
             output_format: str | None = None) -> int:
    try:
        jobs, settings_by_path = collect_jobs(opts, describe_fixes=fmt in ("json", "sarif"))
    except ConfigError as exc:
        click.echo(f"recipecheck: error: {exc}", err=True)
        return 2
    except ValueError as exc:
        click.echo(f"recipecheck: error: {exc}", err=True)
        return 2

    errors: list[str] = []
    notices: list[str] = []
    unchecked: list[str] = []
    if opts.fix is not None:
        findings, notices, changed = _fix_files(jobs, opts)
        if not opts.diff:
            click.echo(f"recipecheck: fixed {changed} file{'s' if changed != 1 else ''}.", err=True)
    else:
        results = run_jobs(jobs, opts.jobs, use_cache=opts.use_cache)
        findings = []
        for r in results:
            findings += r.findings
            errors += r.errors
            if r.errors:
                unchecked.append(r.path)
            if r.notice:
                notices.append(f"{r.path}: skipped: {r.notice}")
    findings.sort(key=Finding.sort_key)
    for n in notices:
        click.echo(f"recipecheck: {n}", err=True)
    for e in errors:  # before the report, so that its summary can point "above"
        click.echo(f"recipecheck: internal error: {e}", err=True)
    hidden = sum(1 for f in findings if f.fix is not None and f.fix.safety == "unsafe") \
        if opts.fix == "safe" else 0
    if opts.diff and hidden:
        click.echo(f"recipecheck: {hidden} unsafe fix{'es' if hidden != 1 else ''} not shown: "
                   "add --unsafe-fixes to include them (review each one).", err=True)

    if not jobs and (fmt != "text" or statistics):  # the text summary says it on stdout
        click.echo("recipecheck: no Python files were found (nothing was checked).", err=True)
    summary = output.Summary(n_files=len(jobs), unchecked=unchecked,
                             hidden_unsafe=0 if opts.diff else hidden)
    stream = open(output_file, "w", encoding="utf-8") if output_file else sys.stdout
    try:
        if not (opts.diff and opts.fix and fmt == "text" and not statistics):
            output.write_report(findings, stream, fmt=fmt, statistics_only=statistics, color=color,
                                output_format=output_format, summary=summary)
    finally:
        if output_file:
            stream.close()

    if errors:
        return 2
    failing = [f for f in findings
               if severity_at_least(f, settings_by_path.get(f.path, _default()).fail_on)]
    return 1 if failing else 0


def _default() -> Settings:
    from recipecheck.config import default_settings

    return default_settings()
