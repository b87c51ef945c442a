"""Rendering: the summary rows and the text output.
"""

from __future__ import annotations

from typing import IO

from recipecheck.recipe.facts import Advice, OptimizerFacts, Recipe
from recipecheck.recipe.evaluate import fmt


def _opt_line(o: OptimizerFacts) -> str:
    parts = [f"lr={fmt(o.lr) if o.lr is not None else (o.lr_text or '?')}"
             + (" (torch default)" if o.lr_is_default else "")]
    if o.momentum is not None:
        parts.append(f"momentum={fmt(o.momentum)}")
    if o.nesterov:
        parts.append("nesterov=True")
    if o.betas:
        parts.append("betas=(" + ", ".join(fmt(b) for b in o.betas) + ")")
    if o.eps is not None:
        parts.append(f"eps={fmt(o.eps)}")
    if o.weight_decay is not None:
        parts.append(f"weight_decay={fmt(o.weight_decay)}")
    if o.param_groups > 1:
        parts.append(f"{o.param_groups} param groups" + (" (no-decay group)" if o.no_decay_group else ""))
    if o.groups_text:
        parts.append(o.groups_text)
    who = f"{o.target} = " if o.target else ""
    if o.condition:
        return f"{who}{o.name}({', '.join(parts)}) {o.condition}  {_at(o)}"
    if o.module or o.built_by:
        where = f"built by {o.built_by or 'a helper'}" + (f" in {o.module}" if o.module else "")
        at = f"[{o.module}, line {o.line}]" if o.module else _at(o)
        return f"{where}: {o.name}({', '.join(parts)})  {at}"
    return f"{who}{o.name}({', '.join(parts)})  {_at(o)}"


def _at(facts) -> str:
    return f"[cell {facts.cell}, line {facts.line}]" if facts.cell else f"[line {facts.line}]"


def rows(recipe: Recipe) -> list[tuple[str, str]]:
    """(aspect, value) rows of the summary, in reading order."""
    out: list[tuple[str, str]] = []
    none = "none found"
    if not recipe.training_loop:
        out = [("Training loop", "none found in this file or in what it calls (nothing runs "
                                 "backward()): no recipe to summarise")]
        if recipe.optimizers:
            out.append(("Optimizer", "\n".join(_opt_line(o) for o in recipe.optimizers)))
        return out
    unresolved = recipe.unresolved
    opt_unknown = "unknown: " + unresolved["optimizer"] if "optimizer" in unresolved else None
    opt_lines = [_opt_line(o) for o in recipe.optimizers]
    if recipe.manual_update and opt_lines:
        opt_lines.append("otherwise " + recipe.manual_update)
    out.append(("Optimizer", "\n".join(opt_lines) or recipe.manual_update or opt_unknown or none))
    sched = [f"{sf.description}  {_at(sf)}" for sf in recipe.schedules] + recipe.manual_lr
    out.append(("LR schedule", "\n".join(sched) or (
        "unknown: the optimizer was not resolved" if opt_unknown else
        "constant LR (no scheduler, no manual decay)")))
    out.append(("Warmup", recipe.warmup or ("unknown: the optimizer was not resolved" if opt_unknown else none)))
    batch = fmt(recipe.batch_size) if recipe.batch_size is not None else (recipe.batch_size_text or "unknown")
    if recipe.batch_size is not None and recipe.accumulation_steps and recipe.accumulation_steps > 1:
        batch += (f" per micro-batch, {fmt(recipe.batch_size * recipe.accumulation_steps)} per optimizer "
                  f"step ({fmt(recipe.accumulation_steps)} accumulated)")
    out.append(("Batch size", batch))
    run = []
    if recipe.epochs is not None or recipe.epochs_text:
        run.append(f"{fmt(recipe.epochs)} epochs" if recipe.epochs is not None
                   else f"epochs: {recipe.epochs_text}")
    if recipe.iterations is not None:
        run.append(f"{fmt(recipe.iterations)} optimizer steps")
    out.append(("Length", ", ".join(run) or ("unknown: " + unresolved["length"] if "length" in unresolved
                                             else "unknown")))
    out.append(("Gradient clipping", ", ".join(recipe.grad_clip) or none))
    out.append(("Accumulation", recipe.accumulation_text or none))
    out.append(("Mixed precision", ", ".join(recipe.amp) or "no (fp32)"))
    out.append(("Initialization", "\n".join(recipe.initialization)))
    out.append(("Input normalization", "\n".join(recipe.input_normalization) or none))
    reg = recipe.regularization
    reg_lines = []
    labels = (("weight_decay", "weight decay"), ("dropout", "dropout"), ("augmentation", "augmentation"),
              ("mixup_cutmix", "mixup/cutmix"), ("early_stopping", "early stopping"), ("ema", "EMA"))
    for key, label in labels:
        if reg.get(key):
            reg_lines.append(f"{label}: {', '.join(reg[key])}")
    if reg.get("label_smoothing") is not None:
        reg_lines.append(f"label smoothing: {fmt(reg['label_smoothing'])}")
    out.append(("Regularization", "\n".join(reg_lines) or none))
    ev = recipe.evaluation
    ev_lines = []
    if ev.get("held_out_data"):
        ev_lines.append("held-out loaders: " + ", ".join(ev["held_out_data"]))
    if ev.get("eval_functions"):
        ev_lines.append("evaluated by: " + ", ".join(ev["eval_functions"]))
    ev_lines.append(f"model.eval(): {'yes' if ev.get('eval_mode') else 'no'}, "
                    f"no_grad/inference_mode: {'yes' if ev.get('no_grad') else 'no'}")
    if ev.get("model_selection"):
        ev_lines.append("selection: " + ev["model_selection"])
    out.append(("Evaluation", "\n".join(ev_lines)))
    if recipe.modules:
        out.append(("Modules read", ", ".join(recipe.modules)))
    return out


_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render_text(recipe: Recipe, stream: IO[str], color: bool | None = None) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream, force_terminal=color if color else None, no_color=color is False,
                      highlight=False, emoji=False, width=max(100, min(140, Console(file=stream).width)))
    if not recipe.parsed:
        console.print(Text(f"{recipe.path}: the file could not be parsed; no recipe.", style="bold red"))
    else:
        _render_summary(console, recipe)
    _render_advice(console, recipe)


def _render_summary(console, recipe: Recipe) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("aspect", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for aspect, value in rows(recipe):
        table.add_row(aspect, Text(value, style="dim" if value in ("none found", "unknown") else ""))
    console.print(Panel(table, title=Text(f"Training recipe: {recipe.path}", style="bold"),
                        title_align="left", expand=True))


def _render_advice(console, recipe: Recipe) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    if not recipe.advice:
        console.print(Panel(Text("No advice: every rule is satisfied.", style="green"),
                            title=Text("Advice", style="bold"), title_align="left"))
        return
    advice = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1, 1, 0))
    advice.add_column("rank", justify="right", style="bold", no_wrap=True)
    advice.add_column("code", no_wrap=True)
    advice.add_column("advice", overflow="fold")
    for a in recipe.advice:
        code = Text(a.code or "recipe", style=_STYLE.get(a.severity, ""))
        code.append(f"\n{a.severity}", style="dim")
        body = Text(a.title, style="bold")
        if a.line:
            body.append(f"  (cell {a.cell}, line {a.line})" if a.cell else f"  (line {a.line})", style="dim")
        body.append("\n" + a.message)
        advice.add_row(f"{a.rank}.", code, body)
    console.print(Panel(advice, title=Text("Advice, most important first", style="bold"),
                        title_align="left", expand=True))
