"""Advice: every rule's findings ranked, plus recipe-level observations; `build_recipe`.
"""

from __future__ import annotations

import libcst as cst

from recipecheck.program import torchnames as tn
from recipecheck.program.model import build_program
from recipecheck.recipe.facts import Advice, Recipe
from recipecheck.recipe.evaluate import fmt
from recipecheck.recipe.extract import extract


_SEV_RANK = {"error": 0, "warning": 1, "info": 2}


def _observations(recipe: Recipe, p_uses_conv: bool, transformer: bool,
                  classifier: bool = True) -> list[Advice]:
    """Recipe-level advice no single rule gives. Regularization and augmentation advice is for
    supervised classifiers only (GANs and VAEs are trained differently)."""
    out = []
    reg = recipe.regularization
    if classifier and recipe.optimizers and not reg.get("weight_decay") and not reg.get("dropout") and \
            not reg.get("augmentation") and not reg.get("mixup_cutmix"):
        out.append(Advice(0, None, "info", "no explicit regularization",
                          "no weight decay, dropout or augmentation was found: add weight decay "
                          "(AdamW's decoupled decay, or L2 1e-4 to 5e-4 with SGD) and watch the "
                          "train/validation gap", None, source="recipe"))
    if classifier and p_uses_conv and recipe.batch_size is not None and not reg.get("augmentation") and \
            not reg.get("mixup_cutmix"):
        out.append(Advice(0, None, "info", "no data augmentation",
                          "an image model with no random transform in its data pipeline: random "
                          "crops and horizontal flips are the cheapest regularizer for images", None,
                          source="recipe"))
    sgd = [o for o in recipe.optimizers if o.name == "SGD" and o.lr and o.momentum]
    effective = (recipe.batch_size or 0) * (recipe.accumulation_steps or 1)
    if sgd and effective >= 1024:  # the rule is about large batches; small ones vary widely
        suggested = 0.1 * effective / 256
        ratio = sgd[0].lr / suggested
        if ratio >= 4 or ratio <= 0.25:
            out.append(Advice(0, None, "info", "LR far from the linear-scaling rule",
                              f"SGD+momentum at lr={fmt(sgd[0].lr)} for batch {fmt(effective)}: the "
                              f"linear-scaling rule (0.1 per 256 examples, Goyal et al. 2017) suggests "
                              f"about {fmt(suggested)}; {'large-batch runs also need warmup (RC206)' if ratio <= 0.25 and effective >= 1024 else 'check the LR with a short LR range test'}",
                              None, source="recipe"))
    if transformer and recipe.optimizers and not recipe.grad_clip:
        out.append(Advice(0, None, "info", "no gradient clipping",
                          "transformer training usually clips the global gradient norm at 1.0 "
                          "(clip_grad_norm_ after backward, before step) to survive loss spikes",
                          None, source="recipe"))
    return out


def advise(source: str, path: str, recipe: Recipe, findings=None) -> list[Advice]:
    """All rules' findings (info included), ranked, then recipe-level observations."""
    from recipecheck.engine import lint_source
    from recipecheck.rule import all_rules

    if findings is None:
        findings = lint_source(source, path, [r() for r in all_rules()]).findings
    advice = []
    for f in findings:
        advice.append(Advice(0, f.code, f.severity.value, f.name.replace("-", " "), f.message,
                             f.line, f.extra.get("cell")))
    advice.sort(key=lambda a: (_SEV_RANK[a.severity], a.cell or 0, a.line or 0, a.code or ""))
    try:
        p = getattr(recipe, "_program", None)
        if p is None:
            if not recipe.parsed:  # too deep or a syntax error: never handed to libcst again
                raise ValueError("not parsed")
            p = build_program(cst.parse_module(source))
        conv = any(cs.qualname and tn.last(cs.qualname).startswith("Conv") and
                   cs.qualname.startswith("torch.nn") for cs in p.calls)
        transformer = p.uses_transformer()
        classifier = any(cs.qualname and tn.last(cs.qualname) in (
            "CrossEntropyLoss", "cross_entropy", "nll_loss", "NLLLoss") for cs in p.calls)
    except Exception:
        conv = transformer = classifier = False
    covered = {a.code for a in advice}
    for obs in _observations(recipe, conv, transformer, classifier):
        if obs.title == "no gradient clipping" and "RC605" in covered:
            continue
        advice.append(obs)
    for i, a in enumerate(advice, 1):
        a.rank = i
    return advice


def build_recipe(source: str, path: str) -> Recipe:
    """Recipe and advice for a script or a notebook's text."""
    findings = None
    program_source = source
    if path.endswith(".ipynb"):
        from recipecheck.notebook import NotebookError, lint_notebook, parse_notebook
        from recipecheck.rule import all_rules

        try:
            program_source = parse_notebook(source).source
        except NotebookError as exc:
            r = Recipe(path=path, parsed=False)
            r.advice = [Advice(1, "RC900", "error", "syntax error", exc.message, exc.line)]
            return r
        findings = lint_notebook(source, path, [r() for r in all_rules()]).findings
    try:
        recipe = extract(program_source, path)
    except RecursionError:
        recipe = Recipe(path=path, parsed=False)
    recipe.advice = advise(program_source, path, recipe, findings)
    prog = getattr(recipe, "_program", None)
    if prog is not None and prog.link is not None:
        from recipecheck.program.link import release

        release(prog)  # links into shared neighbour models made for this file
    if path.endswith(".ipynb"):
        nb = parse_notebook(source)
        for facts in (*recipe.optimizers, *recipe.schedules):
            facts.cell, facts.line = nb.locate(facts.line)
    return recipe
