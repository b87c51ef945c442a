"""`recipecheck lint -`: lint source read from stdin (editors, pipes, pre-commit wrappers).

`--stdin-filename PATH` names the source in messages and decides which configuration,
per-file ignores and notebook handling apply, as if the file were at PATH. With `--fix` the
fixed source is written to stdout and the remaining findings to stderr; with `--diff` the
diff goes to stdout.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from recipecheck import output
from recipecheck.config import ConfigError, load_file, settings_for
from recipecheck.engine import fix_source, lint_source, severity_at_least


def lint_stdin(opts, stdin_filename: str | None, *, fmt: str = "text", output_file: str | None = None,
               statistics: bool = False, color: bool | None = None,
               output_format: str | None = None) -> int:
    from recipecheck.lint import _ruleset

    display = stdin_filename or "-"
    path = Path(stdin_filename) if stdin_filename else Path.cwd() / "stdin.py"
    override = Path(opts.config_file) if opts.config_file else None
    try:
        if override is not None:
            load_file(override)
        settings = settings_for(path, override)
    except ConfigError as exc:
        click.echo(f"recipecheck: error: {exc}", err=True)
        return 2
    data = sys.stdin.buffer.read()
    rules = _ruleset(settings, opts).instantiate()
    ignore = tuple(settings.ignores_for(path))
    max_size = settings.config.max_file_size
    notebook = display.endswith(".ipynb")
    fixed = None
    if opts.fix is not None and not notebook:
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            fixed, res = fix_source(text, display, rules, mode=opts.fix, ignore=ignore,
                                    max_file_size=max_size)
        else:
            res = lint_source(data, display, rules, ignore=ignore, max_file_size=max_size)
    elif notebook:
        from recipecheck.notebook import lint_notebook

        res = lint_notebook(data, display, rules, ignore=ignore, max_file_size=max_size)
    else:
        res = lint_source(data, display, rules, ignore=ignore, max_file_size=max_size,
                          describe_fixes=fmt in ("json", "sarif"))
    if res.notice:
        click.echo(f"recipecheck: {display}: skipped: {res.notice}", err=True)
    for e in res.errors:
        click.echo(f"recipecheck: internal error: {e}", err=True)

    report_stream = sys.stdout
    if opts.fix is not None and fixed is not None:
        source = data.decode("utf-8").removeprefix("\ufeff")
        if opts.diff:
            sys.stdout.write("".join(difflib.unified_diff(
                source.splitlines(keepends=True), fixed.splitlines(keepends=True),
                fromfile=f"a/{display}", tofile=f"b/{display}")))
        else:
            sys.stdout.write(fixed)
        report_stream = sys.stderr  # stdout carries the source
    hidden = sum(1 for f in res.findings if f.fix is not None and f.fix.safety == "unsafe") \
        if opts.fix == "safe" else 0
    summary = output.Summary(n_files=1, unchecked=[display] if res.errors else [],
                             hidden_unsafe=hidden)
    stream = open(output_file, "w", encoding="utf-8") if output_file else report_stream
    try:
        try:
            text_for_excerpts = (fixed or data.decode("utf-8", errors="replace")).removeprefix("\ufeff")
        except AttributeError:
            text_for_excerpts = ""
        output.write_report(sorted(res.findings, key=lambda f: f.sort_key()), stream, fmt=fmt,
                            statistics_only=statistics, color=color, output_format=output_format,
                            summary=summary, sources=None if notebook else {display: text_for_excerpts})
    finally:
        if output_file:
            stream.close()
    if res.errors:
        return 2
    return 1 if any(severity_at_least(f, settings.fail_on) for f in res.findings) else 0
