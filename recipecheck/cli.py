"""Command-line interface (click)."""
from __future__ import annotations

import importlib
import os

import click

# Commands that need torch live in recipecheck.runtime and are imported only when invoked,
# so `recipecheck lint` never imports torch.
_LAZY_COMMANDS = {
    "run": ("recipecheck.runtime.cli", "run_command"),
    "validate": ("recipecheck.runtime.experiments.cli", "validate_command"),
}


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

            @click.command(name=name, context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1, type=click.UNPROCESSED)
            def unavailable(args):
                raise click.ClickException(
                    f"`recipecheck {name}` needs the runtime extra ({missing} is not importable): "
                    "pip install 'recipecheck[runtime]'"
                )

            return unavailable


@click.group(cls=_Group)
@click.version_option(package_name="recipecheck")
def main() -> None:
    """recipecheck: lint PyTorch training recipes and monitor live training runs."""


# --------------------------------------------------------------------------- lint

_FORMATS = ("text", "json", "github", "sarif")


def _split_codes(values: tuple[str, ...]) -> list[str] | None:
    if not values:
        return None
    out = []
    for v in values:
        out += [c for c in v.replace(" ", ",").split(",") if c]
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
def lint_command(paths, select, ignore, extend_select, fmt, output_file, exit_zero, jobs, statistics,
                 config_file, no_cache, fix, unsafe_fixes, diff, color):
    """Lint training scripts (files or directories; default: the current directory)."""
    from recipecheck.lint import LintOptions, run_lint

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
    code = run_lint(opts, fmt=fmt, output_file=output_file, statistics=statistics, color=color)
    raise SystemExit(0 if exit_zero and code == 1 else code)


@main.command("rules")
@click.option("--format", "fmt", type=click.Choice(("text", "json", "markdown")), default="text")
def rules_command(fmt):
    """List every rule: code, name, severity, on by default, fixable."""
    import json as _json

    from rich.console import Console
    from rich.table import Table

    from recipecheck.rule import all_rules

    rows = [(r.CODE, r.NAME, r.SEVERITY.value, r.enabled_by_default(), r.FIX or "")
            for r in all_rules()]
    if fmt == "json":
        click.echo(_json.dumps([{"code": c, "name": n, "severity": s, "default": d, "fix": f or None}
                                for c, n, s, d, f in rows], indent=2))
        return
    if fmt == "markdown":
        click.echo(markdown_rule_table())
        return
    table = Table(box=None, header_style="bold")
    for col in ("code", "name", "severity", "default", "fixable"):
        table.add_column(col)
    for c, n, s, d, f in rows:
        table.add_row(c, n, s, "on" if d else "off", f)
    Console(highlight=False).print(table)


@main.command("explain")
@click.argument("code")
def explain_command(code):
    """Print a rule's manual."""
    from recipecheck.rule import rule_by_code

    rule = rule_by_code(code)
    if rule is None:
        _fail(f"no rule has the code {code!r} (see `recipecheck rules`)")
    click.echo(rule.manual())


@main.command("recipe")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.option("--color/--no-color", default=None, help="Force colours on or off (default: on a TTY).")
def recipe_command(path, fmt, color):
    """Show a script's (or notebook's) training recipe and ranked advice from every rule.

    Optimizer and hyperparameters, LR schedule with where it is stepped and its curve, warmup,
    batch size, epochs, clipping, accumulation, AMP, init, normalization, regularizers and the
    evaluation protocol, as the static analysis sees them (the script is never run).
    """
    import json as _json
    import sys as _sys

    from recipecheck.recipe import build_recipe, render_text

    from recipecheck.files import regular_file_error

    why = regular_file_error(path)  # a FIFO would block the read forever
    if why is not None:
        _fail(f"{path}: {why}")
    try:
        data = open(path, "rb").read()
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

        recipe = run_deep(build_recipe, text, path)
    except Exception as exc:  # an internal error: one line, exit 2, like `lint`
        _fail(f"internal error while reading the recipe of {path}: {type(exc).__name__}: {exc}")
    if fmt == "json":
        click.echo(_json.dumps(recipe.to_json(), indent=2))
    else:
        render_text(recipe, _sys.stdout, color)
    raise SystemExit(0 if recipe.parsed else 1)


def markdown_rule_table() -> str:
    """The README's rule table (a test keeps the README in sync with it)."""
    from recipecheck.rule import all_rules

    lines = ["| code | name | severity | default | fix | summary |", "|---|---|---|---|---|---|"]
    for r in all_rules():
        lines.append(f"| {r.CODE} | {r.NAME} | {r.SEVERITY.value} | "
                     f"{'on' if r.enabled_by_default() else 'off'} | {r.FIX or ''} | {r.MESSAGE} |")
    return "\n".join(lines)
