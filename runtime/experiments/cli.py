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


DEFAULT_SEEDS = 3  # several seeds, never one: every number comes with its spread


def _record(exp: Experiment, res: Result) -> dict[str, Any]:
    return {
        "rule": exp.rule,
        "experiment": exp.name,
        "claim": exp.claim,
        "buggy": _clean(res.buggy),
        "fixed": _clean(res.fixed),
        "verdict": res.verdict,
        "seconds": round(res.seconds, 3),
        "headline": exp.headline,
        "buggy_label": exp.buggy_label,
        "fixed_label": exp.fixed_label,
        "seeds": _clean(res.per_seed),
        "details": res.details,
    }


def _run_one(rule: str, seeds: list[int], device: str) -> Result:
    """Worker entry point: the experiment is found again by its rule (experiments hold closures)."""
    (exp,) = [e for e in select([rule]) if e.rule == rule]
    return exp.run_seeds(seeds, device)


def _run_all(exps: list[Experiment], seeds: list[int], device: str, show_progress: bool,
             jobs: int = 1) -> list[tuple[Experiment, Result]]:
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
        if jobs <= 1:
            for exp in exps:
                progress.update(task, description=exp.rule)
                results.append((exp, exp.run_seeds(seeds, device)))
                progress.advance(task)
            return results
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # each experiment runs on one thread, so experiments in parallel use the other cores;
        # the slowest first, so that the pool does not end waiting on one long experiment
        order = sorted(exps, key=lambda e: -_STORED_SECONDS.get(e.rule, 0.0))
        done: dict[str, Result] = {}
        # fork shares the imported modules (as DataLoader workers do); CUDA cannot be forked
        method = "fork" if device == "cpu" and "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(method)) as pool:
            futures = {pool.submit(_run_one, e.rule, seeds, device): e for e in order}
            for fut in as_completed(futures):
                exp = futures[fut]
                done[exp.rule] = fut.result()
                progress.update(task, description=exp.rule)
                progress.advance(task)
    return [(e, done[e.rule]) for e in exps]


def _stored_seconds() -> dict[str, float]:
    try:
        from ._evidence_data import EVIDENCE
    except ImportError:  # pragma: no cover - the stored evidence ships with the package
        return {}
    return {code: float(entry.get("seconds", 0.0)) for code, entry in EVIDENCE.items()}


_STORED_SECONDS = _stored_seconds()


def _table(results: list[tuple[Experiment, Result]], total: float, details: bool, seeds: list[int],
           unmeasured: list[dict[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    where = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}, mean \\[min, max]"
    table = Table(title=f"recipecheck validate: {len(results)} experiment{'s' if len(results) != 1 else ''} "
                        f"in {total:.1f} s ({where})", show_lines=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("claim", ratio=4)
    table.add_column("metric", ratio=1, overflow="fold")
    table.add_column("buggy", ratio=1)
    table.add_column("fixed", ratio=1)
    table.add_column("verdict", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    colors = {"pass": "green", "fail": "bold red", "skip": "yellow", "weak": "yellow"}
    for exp, res in results:
        claim = exp.claim + (f"\n[dim]{res.details}[/dim]" if details or res.verdict != "pass" else "")
        held = sum(r["verdict"] == "pass" for r in res.per_seed)
        table.add_row(
            exp.rule,
            claim,
            exp.headline,
            f"{_shown(res, exp, 'buggy')}\n[dim]{exp.buggy_label}[/dim]",
            f"{_shown(res, exp, 'fixed')}\n[dim]{exp.fixed_label}[/dim]",
            f"[{colors.get(res.verdict, 'white')}]{res.verdict}[/]"
            + (f"\n[dim]{held}/{len(res.per_seed)} seeds[/dim]" if len(res.per_seed) > 1 else ""),
            f"{res.seconds:.1f}",
        )
    for entry in unmeasured:
        table.add_row(entry["rule"], f"[dim]not measured: {entry['reason']}[/dim]", "-", "-", "-", "[dim]n/a[/dim]", "-")
    console.print(table)


def _shown(res: Result, exp: Experiment, side: str) -> str:
    vals = [r[side] for r in res.per_seed]
    if len(vals) > 1 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return f"{format_value(res.__dict__[side].get(exp.headline))} [{format_value(min(vals))}, {format_value(max(vals))}]"
    return format_value(res.__dict__[side].get(exp.headline))


def _warm_up(device: str) -> None:
    """One tiny forward/backward so torch's lazy initialization is not billed to the first experiment."""
    import torch

    from ..reference.trainer import single_thread

    with single_thread():
        w = torch.zeros(4, 4, device=device, requires_grad=True)
        (w @ torch.ones(4, 4, device=device)).sum().backward()
        torch.nn.functional.cross_entropy(torch.zeros(2, 3, device=device), torch.zeros(2, dtype=torch.long, device=device))


def write_evidence(results: list[tuple[Experiment, Result]], out_dir: Path, total: float, device: str,
                   seeds: list[int]) -> None:
    """Write ``EVIDENCE.md`` (for the rule manuals) and ``_evidence_data.py`` (for :func:`evidence`
    and the manuals' evidence paragraphs, see ``manuals.py``)."""
    import torch

    from .coverage import UNMEASURED

    where = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    env = f"torch {torch.__version__}, Python {platform.python_version()}, {device}, {where}"
    data = {}
    lines = [
        "# Measured evidence for the rules",
        "",
        f"Written by `recipecheck validate --seeds {len(seeds)} --write-evidence runtime/experiments` from one real "
        f"run ({env}; whole catalog {total:.1f} s), then quoted in the rule manuals by `python -m "
        "recipecheck.runtime.experiments.manuals`. Each experiment runs the buggy and the fixed recipe "
        "on the same seed with the reference trainer, once per seed; the table shows the headline "
        "metric as mean [min, max] over the seeds. The verdict checks the claim with the margin given "
        "in its details on every seed: `pass` = held on all, `weak` = on a majority only (an effect "
        "weaker than the rule's severity implies), `fail` = on half or fewer.",
        "",
        "| rule | claim | metric | buggy | fixed | verdict | held | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for exp, res in results:
        b, f = _shown(res, exp, "buggy"), _shown(res, exp, "fixed")
        held = sum(r["verdict"] == "pass" for r in res.per_seed)
        cells = [exp.rule, exp.claim, f"`{exp.headline}`", f"{b} ({exp.buggy_label})", f"{f} ({exp.fixed_label})",
                 res.verdict, f"{held}/{len(res.per_seed)}", f"{res.seconds:.1f}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        data[exp.rule] = {
            "claim": exp.claim,
            "summary": exp.summary(res),
            "manual": exp.manual_sentence(res),
            "details": res.details,
            "verdict": res.verdict,
            "headline": exp.headline,
            "buggy": _clean(res.buggy),
            "fixed": _clean(res.fixed),
            "seeds": _clean(res.per_seed),
            "seconds": round(res.seconds, 2),
        }
    lines += ["", "## Not measured", ""]
    for code, reason in sorted(UNMEASURED.items()):
        lines.append(f"- **{code}**: {reason}.")
    lines += ["", "## Details", ""]
    for exp, res in results:
        lines.append(f"- **{exp.rule}** ({exp.name}): {res.details}")
    lines.append("")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "EVIDENCE.md").write_text("\n".join(lines), encoding="utf-8")
    py = (
        '"""Stored evidence from one reference run of the validation experiments (generated; do not edit).\n\n'
        f"Regenerate with `recipecheck validate --seeds {len(seeds)} --write-evidence runtime/experiments`, then\n"
        "`python -m recipecheck.runtime.experiments.manuals` (the manuals quote it).\n"
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
@click.option("--seed", type=int, default=0, show_default=True, help="First seed (each seed is shared by the buggy and fixed runs).")
@click.option("--seeds", "n_seeds", type=click.IntRange(1, 100), default=DEFAULT_SEEDS, show_default=True,
              help="Number of seeds per experiment (seed, seed+1, ...); numbers are reported as mean [min, max].")
@click.option("--quick", is_flag=True, help="One seed per experiment and no slow experiments (for CI).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Experiments run in parallel in this many processes (each uses one thread).")
@click.option("--device", default="cpu", show_default=True, help="torch device to run on (cpu, cuda, cuda:1, mps).")
@click.option("--details", "-v", is_flag=True, help="Show each experiment's measured details under its claim.")
@click.option("--list", "list_only", is_flag=True, help="List the selected experiments without running them.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@click.option("--write-evidence", "evidence_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              hidden=True, help="Also write EVIDENCE.md and _evidence_data.py into this folder.")
def validate_command(codes, fmt, plot_dir, seed, n_seeds, quick, jobs, device, details, list_only, no_progress,
                     evidence_dir):
    """Run the experiments that validate each rule's claim (all, or those matching CODES).

    CODES are rule codes or prefixes: RC201, RC2 (a block), sanity. Each experiment runs
    the buggy and the fixed recipe on the same seed, for several seeds, and checks the claimed
    effect with a margin on each. Rules whose claim cannot be measured are listed with the
    reason. Exits 1 when a claim holds on half of the seeds or fewer, 2 on a usage error.
    """
    from .coverage import coverage

    wanted = [c.strip().lower() for c in codes if c.strip()]
    unmeasured = [c for c in coverage() if "reason" in c and (not wanted or any(c["rule"].lower().startswith(w) for w in wanted))]
    exps = select(codes)
    if quick:
        exps = [e for e in exps if not e.slow]
    if not exps and not unmeasured:
        click.echo(f"recipecheck validate: no experiment matches {' '.join(codes)!r}", err=True)
        sys.exit(2)
    seeds = [seed] if quick else list(range(seed, seed + n_seeds))
    if list_only:
        for exp in exps:
            click.echo(f"{exp.rule:28s} {exp.claim}")
        for entry in unmeasured:
            click.echo(f"{entry['rule']:28s} not measured: {entry['reason']}")
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
    results = _run_all(exps, seeds, device, show_progress=not no_progress and fmt == "table", jobs=jobs)
    total = time.perf_counter() - start
    ran = [(e, r) for e, r in results if r.verdict != "skip"]
    skipped = [(e, r) for e, r in results if r.verdict == "skip"]
    if fmt == "json":
        payload = {
            "experiments": [_record(e, r) for e, r in ran],
            "skipped": [{"rule": e.rule, "claim": e.claim, "reason": r.details} for e, r in skipped],
            "rules": [c for c in coverage() if not wanted or any(c["rule"].lower().startswith(w) for w in wanted)],
            "seeds": seeds,
            "seconds": round(total, 3),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        _table(results, total, details, seeds, unmeasured)
        click.echo(f"total: {len(results)} experiment{'s' if len(results) != 1 else ''} x {len(seeds)} "
                   f"seed{'s' if len(seeds) != 1 else ''} in {total:.1f} s"
                   + (f" ({jobs} processes)" if jobs > 1 else ""), err=True)
    if plot_dir is not None:
        from .plotting import plot_result

        for exp, res in ran:
            plot_result(exp, res, plot_dir)
        if fmt == "table":
            click.echo(f"wrote {len(ran)} plots to {plot_dir}", err=True)
    if evidence_dir is not None:
        write_evidence(results, evidence_dir, total, device, seeds)
    if any(r.verdict == "fail" for _, r in results):
        sys.exit(1)
