"""`recipecheck lint`: files -> settings -> jobs -> findings -> output and exit code."""

from __future__ import annotations

import codecs
import difflib
import io
import os
import sys
import tokenize
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click

from recipecheck import output
from recipecheck.config import ConfigError, Settings, load_file, settings_for
from recipecheck.engine import (Job, RuleSet, decode_source, fix_source, lint_source, run_jobs,
                                severity_at_least)
from recipecheck.finding import Finding
from recipecheck.files import iter_files
from recipecheck.writing import WriteSkipped, write_fixed
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


def _ruleset(settings: Settings, opts: LintOptions, memo: dict | None = None) -> RuleSet:
    cfg = settings.config
    select = opts.select if opts.select is not None else cfg.select
    ignore = [*cfg.ignore, *opts.ignore]
    extend = [*cfg.extend_select, *opts.extend_select]
    # files under one configuration share one selection: resolving it cost more than a
    # small file's analysis when done per file
    key = (None if select is None else tuple(select), tuple(ignore), tuple(extend))
    codes = memo.get(key) if memo is not None else None
    if codes is None:
        codes = tuple(r.CODE for r in select_rules(select, ignore, extend))
        if memo is not None:
            memo[key] = codes
    return RuleSet(codes=codes, options={c: o for c, o in cfg.options.items() if c in codes})


def collect_jobs(opts: LintOptions, describe_fixes: bool = True,
                 notices: list[str] | None = None) -> tuple[list[Job], dict[str, Settings]]:
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

    selections: dict = {}
    for path in iter_files(opts.paths, excluded, notices):
        s = settings_for(path, override)
        _ = root_settings
        rs = _ruleset(s, opts, selections)
        ignore = tuple(s.ignores_for(path))
        jobs.append(Job(path=str(path), ruleset=rs, ignore=ignore, max_file_size=s.config.max_file_size,
                        describe_fixes=describe_fixes))
        by_path[str(path)] = s
    return jobs, by_path


def _line_ending(text: str) -> str:
    for end in ("\r\n", "\n", "\r"):
        if text.endswith(end):
            return end
    return ""


def _keep_ending(old: str, new: str) -> str:
    """libcst normalizes a file's final line ending (a lone final CR is dropped): keep the
    original one."""
    a, b = _line_ending(old), _line_ending(new)
    if a == b:
        return new
    return new[:len(new) - len(b)] + a


def _decode_for_fix(job: Job, data: bytes) -> tuple[str, str] | None:
    """(text, encoding) of a file to fix; None when it is not text we can write back."""
    if job.path.endswith(".ipynb"):
        try:
            return data.decode("utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"), \
                "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
        except UnicodeDecodeError:
            return None
    text, _, _ = decode_source(data)
    if text is None:
        return None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return None
    return text, encoding


def _fix_files(jobs: list[Job], opts: LintOptions, diff_stream=None) -> tuple[list[Finding], list[str], int]:
    """Apply fixes (or print a diff); return the remaining findings, notices, files changed."""
    findings: list[Finding] = []
    notices: list[str] = []
    changed = 0
    diff_stream = diff_stream or sys.stdout
    for job in jobs:
        path = Path(job.path)
        try:
            data = path.read_bytes()
        except OSError:
            data = None
        decoded = _decode_for_fix(job, data) if data is not None else None
        if decoded is None:
            res = run_jobs([job], 1, use_cache=False)[0]
            findings += res.findings
            if res.notice:
                notices.append(f"{job.path}: skipped: {res.notice}")
            continue
        text, encoding = decoded
        rules = job.ruleset.instantiate()
        fixer, linter = fix_source, lint_source
        if job.path.endswith(".ipynb"):  # fixes rewrite only the changed cells' source
            from recipecheck.notebook import fix_notebook as fixer, lint_notebook as linter
        new_text, res = fixer(text, job.path, rules, mode=opts.fix or "safe", ignore=job.ignore,
                              max_file_size=job.max_file_size)
        if res.notice:
            notices.append(f"{job.path}: skipped: {res.notice}")
        if new_text != text:
            new_text = _keep_ending(text, new_text)
        if new_text != text:
            if opts.diff:
                if job.path.endswith(".ipynb"):
                    from recipecheck.notebook import cell_diff
                    diff_stream.write(cell_diff(text, new_text, job.path))
                else:
                    diff_stream.write("".join(difflib.unified_diff(
                        text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                        fromfile=f"a/{job.path}", tofile=f"b/{job.path}")))
                changed += 1
                findings += linter(text, job.path, rules, ignore=job.ignore).findings
                continue
            try:
                write_fixed(job.path, data, new_text.encode(encoding))
            except (WriteSkipped, UnicodeEncodeError, LookupError) as exc:
                why = str(exc) if isinstance(exc, WriteSkipped) else \
                    f"the fixed text cannot be written in the file's encoding ({encoding})"
                notices.append(f"{job.path}: not fixed: {why}")
                findings += linter(text, job.path, rules, ignore=job.ignore).findings
                continue
            changed += 1
        findings += res.findings
    return findings, notices, changed


# Cost model of the worker split, relative to linting a file (per byte of source): reading a
# module only as a neighbour costs its parse and its build, not the rules; a file whose parse
# a worker already made as a neighbour costs that much less to lint there.
_NEIGHBOUR_COST = 0.6
_PARSE_SHARE = 0.45


def _worker_groups(jobs: list[Job], n_workers: int) -> list[list[int]] | None:
    """The jobs' indices split into one group per worker, so that files reading the same
    project modules are linted in the same process (None: no file imports another project
    module, any split will do).

    Every worker parses and builds each neighbour its files read; a module imported all over
    the project costs that in every worker that needs it. The split is greedy: files with the
    largest import closure first, each to the worker where it adds least to the busiest load
    (its own cost, plus the neighbours that worker has not read yet). Inside a group, every
    file comes after the project files it imports. Decided by the import scan alone (no parse).
    """
    if os.environ.get("RECIPECHECK_NO_PROJECT") == "1":
        return None
    from recipecheck.program.project import MAX_MODULES, bindings, project_of, read_text

    size: dict[str, int] = {}
    direct: dict[str, list[str]] = {}

    def deps(path: str) -> list[str]:
        got = direct.get(path)
        if got is None:
            got = direct[path] = []
            project = project_of(path)
            text = read_text(path) if project is not None and not path.endswith(".ipynb") else None
            size[path] = len(text) if text is not None else 0
            if text is not None:
                for b in bindings(project, path, text).values():
                    got.append(os.path.abspath(b.path))
                    t, hops = b, 0
                    # `from pkg import Net` re-exported by pkg/__init__.py from pkg/net.py: the
                    # file reads pkg/net.py too (as far as the import scan can tell)
                    while t is not None and t.attr and t.path.endswith("__init__.py") and hops < 4:
                        init = read_text(t.path)
                        t = bindings(project, t.path, init).get(t.attr) if init is not None else None
                        if t is not None:
                            got.append(os.path.abspath(t.path))
                        hops += 1
                got[:] = dict.fromkeys(got)
        return got

    paths = [os.path.abspath(j.path) for j in jobs]
    closure: list[list[str]] = []
    for p in paths:
        seen = {p: None}
        queue = list(deps(p))
        while queue and len(seen) <= MAX_MODULES:
            q = queue.pop()
            if q not in seen:
                seen[q] = None
                queue += deps(q)
        seen.pop(p)
        closure.append([q for q in seen if q in size])
    if not any(closure):
        return None

    def own(i: int) -> float:
        return max(size.get(paths[i], 0), 1)

    load = [0.0] * n_workers
    read: list[set[str]] = [set() for _ in range(n_workers)]  # parsed there (linted or neighbour)
    groups: list[list[int]] = [[] for _ in range(n_workers)]
    by_closure = sorted(range(len(jobs)), key=lambda i: (-sum(size[q] for q in closure[i]), -own(i), i))
    for i in by_closure:
        best, best_w, best_add = None, 0, 0.0
        for w in range(n_workers):
            add = own(i) * ((1 - _PARSE_SHARE) if paths[i] in read[w] else 1.0)
            add += _NEIGHBOUR_COST * sum(size[q] for q in closure[i] if q not in read[w])
            key = (load[w] + add, load[w])
            if best is None or key < best:
                best, best_w, best_add = key, w, add
        load[best_w] += best_add
        read[best_w].add(paths[i])
        read[best_w].update(closure[i])
        groups[best_w].append(i)
    index = {p: i for i, p in enumerate(paths)}
    out = []
    for g in groups:  # dependencies first inside a group, the given order otherwise
        mine = set(g)
        ordered: list[int] = []
        done: set[int] = set()
        for root in sorted(g):
            stack = [root]
            while stack:
                node = stack[-1]
                if node in done:
                    stack.pop()
                    continue
                nxt = [index[q] for q in direct.get(paths[node], ()) if index.get(q) in mine and index[q] not in done
                       and index[q] not in stack]
                if nxt:
                    stack.append(nxt[0])
                else:
                    done.add(node)
                    ordered.append(stack.pop())
        if ordered:
            out.append(ordered)
    return out


@contextmanager
def _collector_tuned():
    """Fewer cyclic garbage collections while linting.

    A lint allocates millions of small objects (syntax trees, program models) and keeps the
    parses and neighbour models of a project alive for reuse; with the default thresholds the
    collector traverses that whole heap again and again (a quarter of the lint time), and in
    forked workers every traversal also copies the pages the parent shares with them. What is
    alive before the lint (the rules, libcst) is frozen: never traversed, shared by workers.

    In the console script, what the lint leaves alive is frozen too: the process ends after the
    report, and restoring the thresholds would otherwise start a collection of the whole heap
    (all parses and neighbour models, ~0.2 s on a 200-module project) on the next allocation,
    and the interpreter's shutdown another one. In-process callers get the collector's settings
    back, and what the lint left alive joins the oldest generation without a traversal (a
    freeze followed by an unfreeze): mostly the parses and neighbour models kept for the next
    run, collectable at the next full collection like everything else there.
    """
    import gc

    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(old[0], 50_000), max(old[1], 20), max(old[2], 20))
    try:
        yield
    finally:
        entry = sys.modules.get("recipecheck.entry")
        if entry is not None and getattr(entry, "PROCESS_ENDS_AFTER_COMMAND", False):
            gc.freeze()
            gc.set_threshold(*old)
        else:
            gc.freeze()
            gc.unfreeze()
            gc.set_threshold(*old)


def _check_output_file(output_file: str) -> str | None:
    """Why the report cannot be written to `output_file` (checked before linting)."""
    parent = os.path.dirname(os.path.abspath(output_file))
    if os.path.isdir(output_file):
        return f"{output_file}: is a directory"
    if not os.path.isdir(parent):
        return f"{output_file}: the directory {parent} does not exist"
    if os.path.exists(output_file):
        if not os.access(output_file, os.W_OK):
            return f"{output_file}: permission denied"
    elif not os.access(parent, os.W_OK | os.X_OK):
        return f"{output_file}: permission denied (cannot create a file in {parent})"
    return None


def run_lint(opts: LintOptions, fmt: str = "text", output_file: str | None = None,
             statistics: bool = False, color: bool | None = None,
             output_format: str | None = None) -> int:
    if output_file:
        why = _check_output_file(output_file)
        if why is not None:
            click.echo(f"recipecheck: error: {why}", err=True)
            return 2
    collect_notices: list[str] = []
    try:
        jobs, settings_by_path = collect_jobs(opts, describe_fixes=fmt in ("json", "sarif"),
                                              notices=collect_notices)
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
        # a diff next to a machine-readable report goes to stderr: stdout stays valid JSON/SARIF
        findings, notices, changed = _fix_files(
            jobs, opts, diff_stream=sys.stderr if fmt != "text" and not output_file else sys.stdout)
        if not opts.diff:
            click.echo(f"recipecheck: fixed {changed} file{'s' if changed != 1 else ''}.", err=True)
    else:
        from recipecheck.program import summary

        summary.set_disk_cache(opts.use_cache)  # module summaries live beside the results
        if "recipecheck.program.project" in sys.modules:  # a new run reads every file afresh
            sys.modules["recipecheck.program.project"].new_run()
        try:
            with _collector_tuned():
                # also in one process: a module linted before the files that import it is read
                # by them from its whole parse, not parsed again statement by statement
                groups = _worker_groups(jobs, max(opts.jobs, 1)) if len(jobs) >= 4 else None
                if groups is None:
                    results = run_jobs(jobs, opts.jobs, use_cache=opts.use_cache)
                else:
                    order = [i for g in groups for i in g]
                    ordered = run_jobs([jobs[i] for i in order], opts.jobs, use_cache=opts.use_cache,
                                       groups=[len(g) for g in groups])
                    results = [ordered[0]] * len(jobs)
                    for i, r in zip(order, ordered):
                        results[i] = r
        finally:
            summary.set_disk_cache(False)
        findings = []
        for r in results:
            findings += r.findings
            errors += r.errors
            if r.errors:
                unchecked.append(r.path)
            if r.notice:
                notices.append(f"{r.path}: skipped: {r.notice}")
    findings.sort(key=Finding.sort_key)
    for n in [*collect_notices, *notices]:
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
    try:
        stream = open(output_file, "w", encoding="utf-8") if output_file else sys.stdout
    except OSError as exc:
        click.echo(f"recipecheck: error: cannot write {output_file}: {exc.strerror or exc}", err=True)
        return 2
    try:
        if not (opts.diff and opts.fix and fmt == "text" and not statistics):
            output.write_report(findings, stream, fmt=fmt, statistics_only=statistics, color=color,
                                output_format=output_format, summary=summary)
        stream.flush()
    except OSError as exc:  # a full disk, /dev/full: the report is lost, say so
        click.echo(f"recipecheck: error: cannot write the report"
                   f"{' to ' + output_file if output_file else ''}: {exc.strerror or exc}", err=True)
        return 2
    finally:
        if output_file:
            try:
                stream.close()
            except OSError:
                pass

    if errors:
        return 2
    failing = [f for f in findings
               if severity_at_least(f, settings_by_path.get(f.path, _default()).fail_on)]
    return 1 if failing else 0


def _default() -> Settings:
    from recipecheck.config import default_settings

    return default_settings()
