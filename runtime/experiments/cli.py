"""``recipecheck validate [CODES...]``: run the validation experiments and show the evidence."""

from __future__ import annotations

import json
import math
import platform
import pprint
import sys
import time
from pathlib import Path
from typing import Any

import click

from .base import Experiment, Result, format_value, select


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become null, tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _record(exp: Experiment, res: Result) -> dict[str, Any]:
    return {
        "rule": exp.rule,
        "claim": exp.claim,
        "buggy": _clean(res.buggy),
        "fixed": _clean(res.fixed),
        "verdict": res.verdict,
        "seconds": round(res.seconds, 3),
        "headline": exp.headline,
        "buggy_label": exp.buggy_label,
        "fixed_label": exp.fixed_label,
        "details": res.details,
    }


def _run_all(exps: list[Experiment], seed: int, device: str, show_progress: bool) -> list[tuple[Experiment, Result]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    results = []
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]validate[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("", total=len(exps))
        for exp in exps:
            progress.update(task, description=exp.rule)
            results.append((exp, exp.run(seed, device)))
            progress.advance(task)
    return results


def _table(results: list[tuple[Experiment, Result]], total: float, details: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"recipecheck validate: {len(results)} experiment{'s' if len(results) != 1 else ''} in {total:.1f} s", show_lines=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("claim", ratio=4)
    table.add_column("metric", ratio=1, overflow="fold")
    table.add_column("buggy", ratio=1)
    table.add_column("fixed", ratio=1)
    table.add_column("verdict", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    colors = {"pass": "green", "fail": "bold red", "skip": "yellow"}
    for exp, res in results:
        claim = exp.claim + (f"\n[dim]{res.details}[/dim]" if details or res.verdict != "pass" else "")
        table.add_row(
            exp.rule,
            claim,
            exp.headline,
            f"{format_value(res.buggy.get(exp.headline))}\n[dim]{exp.buggy_label}[/dim]",
            f"{format_value(res.fixed.get(exp.headline))}\n[dim]{exp.fixed_label}[/dim]",
            f"[{colors.get(res.verdict, 'white')}]{res.verdict}[/]",
            f"{res.seconds:.1f}",
        )
    console.print(table)


def _warm_up(device: str) -> None:
    """One tiny forward/backward so torch's lazy initialization is not billed to the first experiment."""
    import torch

    from ..reference.trainer import single_thread

    with single_thread():
        w = torch.zeros(4, 4, device=device, requires_grad=True)
        (w @ torch.ones(4, 4, device=device)).sum().backward()
        torch.nn.functional.cross_entropy(torch.zeros(2, 3, device=device), torch.zeros(2, dtype=torch.long, device=device))


def write_evidence(results: list[tuple[Experiment, Result]], out_dir: Path, total: float, device: str, seed: int) -> None:
    """Write ``EVIDENCE.md`` (for the rule manuals) and ``_evidence_data.py`` (for :func:`evidence`)."""
    import torch

    env = f"torch {torch.__version__}, Python {platform.python_version()}, {device}, seed {seed}"
    data = {}
    lines = [
        "# Measured evidence for the rules",
        "",
        "Written by `recipecheck validate --write-evidence runtime/experiments` from one real run "
        f"({env}; whole catalog {total:.1f} s). Each experiment runs the buggy and the fixed recipe "
        "on the same seed with the reference trainer; the verdict checks the claim with the margin "
        "given in its details.",
        "",
        "| rule | claim | metric | buggy | fixed | verdict | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for exp, res in results:
        b = format_value(res.buggy.get(exp.headline))
        f = format_value(res.fixed.get(exp.headline))
        lines.append(
            f"| {exp.rule} | {exp.claim} | `{exp.headline}` | {b} ({exp.buggy_label}) | {f} ({exp.fixed_label}) "
            f"| {res.verdict} | {res.seconds:.1f} |"
        )
        data[exp.rule] = {
            "claim": exp.claim,
            "summary": exp.summary(res),
            "details": res.details,
            "verdict": res.verdict,
            "headline": exp.headline,
            "buggy": _clean(res.buggy),
            "fixed": _clean(res.fixed),
            "seconds": round(res.seconds, 2),
        }
    lines += ["", "## Details", ""]
    for exp, res in results:
        lines.append(f"- **{exp.rule}** ({exp.name}): {res.details}")
    lines.append("")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "EVIDENCE.md").write_text("\n".join(lines), encoding="utf-8")
    py = (
        '"""Stored evidence from one reference run of the validation experiments (generated; do not edit).\n\n'
        "Regenerate with `recipecheck validate --write-evidence runtime/experiments`.\n"
        '"""\n\n'
        f"ENVIRONMENT = {env!r}\n"
        f"TOTAL_SECONDS = {round(total, 1)!r}\n\n"
        f"EVIDENCE = {pprint.pformat(data, width=100, sort_dicts=False)}\n"
    )
    (out_dir / "_evidence_data.py").write_text(py, encoding="utf-8")


@click.command("validate")
@click.argument("codes", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output: a rich table, or JSON {\"experiments\": [...]} on stdout.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write one PNG per experiment into this folder (needs matplotlib).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed shared by the buggy and fixed runs.")
@click.option("--device", default="cpu", show_default=True, help="torch device to run on (cpu, cuda, cuda:1, mps).")
@click.option("--details", "-v", is_flag=True, help="Show each experiment's measured details under its claim.")
@click.option("--list", "list_only", is_flag=True, help="List the selected experiments without running them.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@click.option("--write-evidence", "evidence_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              hidden=True, help="Also write EVIDENCE.md and _evidence_data.py into this folder.")
def validate_command(codes, fmt, plot_dir, seed, device, details, list_only, no_progress, evidence_dir):
    """Run the experiments that validate each rule's claim (all, or those matching CODES).

    CODES are rule codes or prefixes: RC201, RC2 (a block), sanity. Each experiment runs
    the buggy and the fixed recipe on the same seed and checks the claimed effect with a
    margin. Exits 1 when a claim does not hold, 2 on a usage error.
    """
    exps = select(codes)
    if not exps:
        click.echo(f"recipecheck validate: no experiment matches {' '.join(codes)!r}", err=True)
        sys.exit(2)
    if list_only:
        for exp in exps:
            click.echo(f"{exp.rule:28s} {exp.claim}")
        return
    if plot_dir is not None:
        from .plotting import PlottingUnavailable, require_matplotlib

        try:
            require_matplotlib()
        except PlottingUnavailable as exc:
            click.echo(f"recipecheck validate: {exc}", err=True)
            sys.exit(2)
    _warm_up(device)
    start = time.perf_counter()
    results = _run_all(exps, seed, device, show_progress=not no_progress and fmt == "table")
    total = time.perf_counter() - start
    ran = [(e, r) for e, r in results if r.verdict != "skip"]
    skipped = [(e, r) for e, r in results if r.verdict == "skip"]
    if fmt == "json":
        payload = {
            "experiments": [_record(e, r) for e, r in ran],
            "skipped": [{"rule": e.rule, "claim": e.claim, "reason": r.details} for e, r in skipped],
            "seconds": round(total, 3),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        _table(results, total, details)
    if plot_dir is not None:
        from .plotting import plot_result

        for exp, res in ran:
            plot_result(exp, res, plot_dir)
        if fmt == "table":
            click.echo(f"wrote {len(ran)} plots to {plot_dir}", err=True)
    if evidence_dir is not None:
        write_evidence(results, evidence_dir, total, device, seed)
    if any(r.verdict == "fail" for _, r in results):
        sys.exit(1)
