"""Command-line interface (click)."""
from __future__ import annotations

import importlib
import os

import click

from recipecheck import __version__

# Commands that need torch live in recipecheck.runtime and are imported only when invoked,
# so `recipecheck lint` never imports torch.
_LAZY_COMMANDS = {
    "run": ("recipecheck.runtime.cli", "run_command"),
    "validate": ("recipecheck.runtime.experiments.cli", "validate_command"),
}
# what `--help` says when the runtime extra is missing (the real help needs torch to load)
_LAZY_HELP = {
    "run": "Run SCRIPT [SCRIPT_ARGS...] like `python SCRIPT ...` under the runtime monitor "
           "(RT checks), without changing its results.",
    "validate": "Run the reference-trainer experiments that back each rule's claim "
                "(buggy vs fixed recipe on the same seed).",
}
INSTALL_HINT = "pip install 'recipecheck[runtime]'  (add --index-url " \
               "https://download.pytorch.org/whl/cpu to `pip install torch` for the CPU build)"


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(_LAZY_COMMANDS))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in _LAZY_COMMANDS:
            return cmd
        module, attr = _LAZY_COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            hint = (f"`recipecheck {name}` needs the runtime extra ({missing} is not importable): "
                    f"{INSTALL_HINT}")
            return _MissingExtra(name, hint, _standalone_command(module, attr))


def _standalone_command(module: str, attr: str) -> click.Command | None:
    """The real command object, loaded from its file without its package (which imports
    torch), for its help text and options; None when the module needs torch at import."""
    from importlib.util import module_from_spec, spec_from_file_location

    from recipecheck.catalog import runtime_root

    root = runtime_root()
    if root is None:
        return None
    path = root.joinpath(*module.split(".")[2:]).with_suffix(".py")
    try:
        spec = spec_from_file_location(f"_recipecheck_help_{module.replace('.', '_')}", path)
        mod = module_from_spec(spec)
        spec.loader.exec_module(mod)
        cmd = getattr(mod, attr)
    except Exception:  # e.g. a relative import of a torch module at the top
        return None
    return cmd if isinstance(cmd, click.Command) else None


class _MissingExtra(click.Command):
    """Stands in for a command whose extra is not installed: `--help` shows the command's help
    (its options when they can be read without torch) and the install hint; running it is a
    usage error (exit 2), never a traceback or an empty usage line."""

    def __init__(self, name: str, hint: str, template: click.Command | None) -> None:
        import inspect

        text = inspect.cleandoc(template.help if template is not None and template.help
                                else _LAZY_HELP[name])
        super().__init__(name, params=list(template.params) if template is not None else [],
                         help=f"{text}\n\n\b\nNot available here: {hint}",
                         short_help=_LAZY_HELP[name].split(" (")[0].rstrip("."),
                         context_settings={"ignore_unknown_options": True})
        self.hint = hint

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(a in ctx.help_option_names for a in args):
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(0)
        click.echo(f"recipecheck: error: {self.hint}", err=True)
        ctx.exit(2)  # a missing extra is a usage problem, not a finding
        return args


@click.group(cls=_Group)
@click.version_option(version=__version__, prog_name="recipecheck")  # no importlib.metadata scan
def main() -> None:
    """recipecheck: lint PyTorch training recipes and monitor live training runs."""


# --------------------------------------------------------------------------- lint

_FORMATS = ("text", "json", "github", "sarif")


def _split_codes(values: tuple[str, ...]) -> list[str] | None:
    if not values:
        return None
    out = []
    for v in values:
        codes = [c for c in v.replace(" ", ",").split(",") if c]
        # `--select ''` would otherwise select nothing and pass every file: an error instead
        out += codes or [""]
    return out


def _fail(msg: str) -> None:
    click.echo(f"recipecheck: error: {msg}", err=True)
    raise SystemExit(2)


@main.command("lint")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--select", multiple=True, help="Codes, prefixes (RC2) or ALL; replaces the default set.")
@click.option("--ignore", multiple=True, help="Codes or prefixes to switch off.")
@click.option("--extend-select", multiple=True, help="Codes or prefixes to add to the set.")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True)
@click.option("--output-file", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the report here instead of stdout.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--jobs", "-j", type=int, default=0, help="Worker processes (default: all cores).")
@click.option("--statistics", is_flag=True, help="Print a count per rule instead of each finding.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="Use this config file instead of discovering one per file.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the result cache.")
@click.option("--fix", is_flag=True, help="Apply safe fixes in place.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix/--diff, include unsafe fixes.")
@click.option("--diff", is_flag=True, help="Print the fixes as a diff; change nothing.")
@click.option("--color/--no-color", default=None, help="Force colours on or off (default: on a TTY).")
@click.option("--output-format", type=click.Choice(("full", "concise")), default=None,
              help="Text format: full (source line, caret under the range, fix title; default on a "
                   "terminal) or concise (one line per finding; default when piped).")
@click.option("--stdin-filename", default=None,
              help="With PATH `-`: the file name the source read from stdin is reported as "
                   "(and configured by).")
def lint_command(paths, select, ignore, extend_select, fmt, output_file, exit_zero, jobs, statistics,
                 config_file, no_cache, fix, unsafe_fixes, diff, color, output_format, stdin_filename):
    """Lint training scripts (files or directories; default: the current directory; `-`: stdin)."""
    from recipecheck.lint import LintOptions, run_lint

    if "-" in paths and len(paths) > 1:
        _fail("`-` (stdin) cannot be combined with other paths")
    try:
        opts = LintOptions(
            paths=list(paths) or ["."], select=_split_codes(select), ignore=_split_codes(ignore) or [],
            extend_select=_split_codes(extend_select) or [], config_file=config_file,
            jobs=jobs or (os.cpu_count() or 1), use_cache=not no_cache,
            fix="unsafe" if (fix or diff) and unsafe_fixes else ("safe" if fix or diff else None),
            diff=diff,
        )
    except ValueError as exc:
        _fail(str(exc))
    if statistics and fmt not in ("text", "json"):
        _fail(f"--statistics supports --format text or json, not {fmt}")
    if paths == ("-",):
        from recipecheck.stdin import lint_stdin

        code = lint_stdin(opts, stdin_filename, fmt=fmt, output_file=output_file,
                          statistics=statistics, color=color, output_format=output_format)
    else:
        if stdin_filename is not None:
            _fail("--stdin-filename needs the path `-` (read the source from stdin)")
        code = run_lint(opts, fmt=fmt, output_file=output_file, statistics=statistics, color=color,
                        output_format=output_format)
    raise SystemExit(0 if exit_zero and code == 1 else code)


@main.command("rules")
@click.option("--format", "fmt", type=click.Choice(("text", "json", "markdown")), default="text")
def rules_command(fmt):
    """List every rule (RC, static) and runtime check (RT): code, name, severity, default, fix."""
    import json as _json

    from recipecheck.catalog import rule_table, runtime_checks, runtime_table
    from recipecheck.rule import rule_index

    rows = [(r.CODE, r.NAME, r.SEVERITY.value, r.enabled_by_default(), r.FIX or "", "lint")
            for r in rule_index()]
    rows += [(c.code, c.name, c.severity, True, "", "run --sanity" if c.sanity else "run")
             for c in runtime_checks()]
    if fmt == "json":
        click.echo(_json.dumps([{"code": c, "name": n, "severity": s, "default": d, "fix": f or None,
                                 "command": cmd} for c, n, s, d, f, cmd in rows], indent=2))
        return
    if fmt == "markdown":
        click.echo(rule_table() + "\n\n" + runtime_table())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("code", "name", "severity", "default", "fixable", "found by"):
        table.add_column(col, no_wrap=True)
    for c, n, s, d, f, cmd in rows:
        table.add_row(c, n, s, "on" if d else "off", f, cmd)
    import sys as _sys

    from recipecheck.output import is_terminal

    # piped: never cut names at an assumed 80 columns
    Console(highlight=False, width=None if is_terminal(_sys.stdout) else 200).print(table)


@main.command("explain")
@click.argument("code")
@click.option("--format", "fmt", type=click.Choice(("text", "markdown")), default="text",
              show_default=True, help="markdown: the page of docs/rules/CODE.md.")
def explain_command(code, fmt):
    """Print a rule's (RCxxx) or runtime check's (RTxxx) manual."""
    from recipecheck.catalog import markdown_for, runtime_check
    from recipecheck.rule import rule_by_code

    code = code.strip().upper()
    if fmt == "markdown":
        page = markdown_for(code)
        if page is None:
            _fail(f"no rule or runtime check has the code {code!r} (see `recipecheck rules`)")
        click.echo(page, nl=False)
        return
    if code.startswith("RT"):
        info = runtime_check(code)
        if info is None:
            _fail(f"no runtime check has the code {code!r} (see `recipecheck rules`)")
        click.echo(info.manual())
        return
    rule = rule_by_code(code)
    if rule is None:
        _fail(f"no rule has the code {code!r} (see `recipecheck rules`)")
    click.echo(rule.manual())


@main.command("recipe")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.option("--color/--no-color", default=None, help="Force colours on or off (default: on a TTY).")
def recipe_command(paths, fmt, color):
    """Show each script's (or notebook's) training recipe and ranked advice from every rule.

    PATHS are files or directories (searched like `lint`). Optimizer and hyperparameters, LR
    schedule with where it is stepped and its curve, warmup, batch size, epochs, clipping,
    accumulation, AMP, init, normalization, regularizers and the evaluation protocol, as the
    static analysis sees them (the script is never run). With several files, `--format json`
    prints an array.
    """
    import json as _json
    import stat as _stat
    import sys as _sys
    from pathlib import Path

    from recipecheck.files import iter_files
    from recipecheck.recipe import build_recipe, render_text

    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        try:
            mode = p.stat().st_mode
        except OSError as exc:
            _fail(f"{raw}: {exc.strerror or exc}")
        if _stat.S_ISDIR(mode):
            found = list(iter_files([raw], lambda _p: False))
            if not found:
                click.echo(f"recipecheck: {raw}: no Python files were found", err=True)
            files += found
        elif _stat.S_ISREG(mode):
            files.append(p)
        else:  # a FIFO or a device would block or never end
            _fail(f"{raw}: not a regular file or directory")
    recipes = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            _fail(f"{path}: {exc.strerror or exc}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            _fail(f"{path}: not valid UTF-8")
        if text.startswith("\ufeff"):
            text = text[1:]
        try:
            from recipecheck.engine import run_deep  # the large-stack thread lint uses

            recipes.append(run_deep(build_recipe, text, str(path)))
        except Exception as exc:  # an internal error: one line, exit 2, like `lint`
            _fail(f"internal error while reading the recipe of {path}: {type(exc).__name__}: {exc}")
    if fmt == "json":
        docs = [r.to_json() for r in recipes]
        click.echo(_json.dumps(docs[0] if len(paths) == 1 and len(docs) == 1 and
                               Path(paths[0]).is_file() else docs, indent=2))
    else:
        for i, recipe in enumerate(recipes):
            if len(recipes) > 1:
                click.echo(("\n" if i else "") + f"==> {recipe.path} <==")
            render_text(recipe, _sys.stdout, color)
    raise SystemExit(0 if all(r.parsed for r in recipes) else 1)


def markdown_rule_table() -> str:
    """The README's rule table (generated by scripts/update_docs.py, checked by a test)."""
    from recipecheck.catalog import rule_table

    return rule_table()
