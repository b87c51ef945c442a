"""Extraction: the recipe of one script from its (project-linked) program model, and what
other project modules add or leave unresolved.
"""

from __future__ import annotations

import libcst as cst

from recipecheck.program.nodes import call_arg, iter_children
from recipecheck.program import hparams as hp, torchnames as tn
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import (
    MODULE_KEY, ClassInfo, Construction, FunctionInfo, ProgramModel, build_program,
)
from recipecheck.recipe.facts import OptimizerFacts, Recipe, ScheduleFacts
from recipecheck.recipe.evaluate import (
    _Src, _bool, _callers_args, _loop_count, _modulo_k, _numbers, _sample,
    _steps_optimizer_directly, _unwrap_iter, _where, fmt, lr_function, num,
)
from recipecheck.recipe.curves import _compose, _schedule


_NORM_LAYERS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm",
                "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm", "LocalResponseNorm")


_AUGMENT = ("Random", "ColorJitter", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix",
            "GaussianBlur", "ElasticTransform")


_DROPOUT = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"}


def _opt_facts(p: ProgramModel, s: _Src, c: Construction) -> OptimizerFacts:
    lr_expr = hp.opt_arg(c, "lr")
    lr = num(p, c.function, lr_expr)
    facts = OptimizerFacts(name=c.name, line=s.line(c.node), target=c.target, lr=lr,
                           lr_text=s.code(lr_expr) if lr_expr is not None else None)
    if lr is None and lr_expr is not None:
        facts.lr_text = _lr_provenance(p, s, c, lr_expr)
    if lr_expr is None and c.name in hp.TORCH_DEFAULT_LR:
        facts.lr = hp.TORCH_DEFAULT_LR[c.name]
        facts.lr_is_default = True
    if c.name == "Adadelta" and lr_expr is None:
        facts.lr, facts.lr_is_default = 1.0, True
    if c.name in ("SGD", "RMSprop"):
        facts.momentum = hp.opt_number(p, c, "momentum") if hp.opt_arg(c, "momentum") is not None else 0.0
    if c.name == "SGD":
        nest = hp.opt_arg(c, "nesterov")
        facts.nesterov = _bool(nest) if nest is not None else False
    betas = hp.opt_arg(c, "betas")
    if betas is not None:
        facts.betas = _numbers(p, c.function, betas)
    elif c.name in tn.ADAPTIVE_OPTIMIZERS:
        facts.betas = [0.9, 0.999]
    eps = hp.opt_arg(c, "eps")
    if eps is not None:
        facts.eps = num(p, c.function, eps)
    wd_expr = hp.opt_arg(c, "weight_decay")
    if wd_expr is not None:
        facts.weight_decay = num(p, c.function, wd_expr)
    elif c.name == "AdamW":
        facts.weight_decay = 0.01
    elif c.name in hp.TORCH_DEFAULT_LR or c.name == "Adadelta":
        facts.weight_decay = 0.0
    groups = hp.param_groups(c)
    if groups:
        facts.param_groups = len(groups)
        wds = []
        for g in groups:
            v = hp.dict_value(g, "weight_decay")
            wds.append(num(p, c.function, v) if v is not None else facts.weight_decay)
        facts.group_weight_decays = wds
        facts.no_decay_group = any(w == 0 for w in wds) and any(w for w in wds)
        nonzero = [w for w in wds if w]
        if nonzero:
            facts.weight_decay = nonzero[0]
        elif any(w is None for w in wds):
            facts.weight_decay = None  # a group's decay is unresolved: no default
    else:
        first = c.arg("params", 0)
        if isinstance(first, cst.Name):  # optim_groups built just before
            _groups_from_call(p, s, c, first, facts)
            for a in c.function.bindings(first.value):
                if isinstance(a.value, cst.List):
                    dicts = [el.value for el in a.value.elements if isinstance(el.value, cst.Dict)]
                    wds = []
                    for g in dicts:
                        v = hp.dict_value(g, "weight_decay")
                        wds.append(num(p, a.function, v) if v is not None else facts.weight_decay)
                    if dicts:
                        facts.param_groups = len(dicts)
                        facts.group_weight_decays = wds
                        facts.no_decay_group = any(w == 0 for w in wds) and any(w for w in wds)
                        nonzero = [w for w in wds if w]
                        if nonzero:
                            facts.weight_decay = nonzero[0]
                        elif any(w is None for w in wds):
                            facts.weight_decay = None  # a group's decay is unresolved: no default
    return facts


def _lr_provenance(p: ProgramModel, s: _Src, c: Construction, expr) -> str:
    """`args.lr` that the script computes: `args.lr (= args.blr * eff_batch_size / 256 when
    `args.lr is None`; blr=0.001)`."""
    from recipecheck.program.values import conditions_of, value_of

    d = dotted_name(expr)
    text = s.code(expr)
    if not d:
        return text
    binds = [a for a in p.assignments if a.target == d and a.augmented is None and a.value is not None]
    if not binds:
        v = value_of(p, c.function, expr)
        return f"{text} ({v.describe(fmt_value)})" if v.possibilities or v.unknown else text
    a = binds[-1]
    conds = conditions_of(a.function, a.node)
    when = f" when `{s.code(conds[-1])}`" if conds else ""
    known = []
    for n in _names_in(a.value):
        v = value_of(p, a.function, n)
        if v.number() is not None:
            known.append(f"{s.code(n)}={fmt(v.number())}")
    return f"{text} (= `{s.code(a.value)}`{when}" + (f"; {', '.join(known)})" if known else ")")


def _names_in(expr) -> list:
    out, stack = [], [expr]
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.Name, cst.Attribute)) and dotted_name(n):
            out.append(n)
            continue
        stack.extend(iter_children(n))
    return out[::-1]


def _groups_from_call(p: ProgramModel, s: _Src, c: Construction, first: cst.Name,
                      facts: OptimizerFacts) -> None:
    """`param_groups = param_groups_weight_decay(model, args.weight_decay)`: the groups (and
    their weight decay) come from a helper; the optimizer's own default does not apply."""
    from recipecheck.program.values import value_of

    binds = c.function.bindings(first.value)
    if len(binds) != 1 or not isinstance(binds[0].value, cst.Call):
        return
    call = binds[0].value
    shown = []
    for arg in call.args[1:]:
        v = value_of(p, binds[0].function, arg.value)
        name = arg.keyword.value if arg.keyword is not None else s.code(arg.value)
        if v.single() is not None and not isinstance(v.single(), str):
            shown.append(f"{name}={fmt_value(v.single())}")
            if "weight_decay" in name or (arg.keyword is None and "decay" in s.code(arg.value)
                                          and "layer" not in s.code(arg.value)):
                facts.weight_decay = v.number()
    if hp.opt_arg(c, "weight_decay") is None and c.name == "AdamW" and not any(
            "weight_decay" in x for x in shown):
        facts.weight_decay = None  # the groups set it: AdamW's 0.01 default does not apply
    facts.groups_text = f"param groups from `{dotted_name(call.func) or 'a helper'}()`" + (
        f" ({', '.join(shown)})" if shown else "")


def _train_loader_batch(p: ProgramModel, s: _Src) -> tuple[float | None, str | None]:
    loaders = []
    for xl in p.batch_loops:
        it = xl.loop.iter
        if it is None:
            continue
        for o in p.evaluate(xl.loop.function, _unwrap_iter(it)):
            if o.role == "loader":
                loaders.append(o)
    if not loaders:
        loaders = [c for c in p.constructions("loader") if c.target and "train" in c.target.lower()]
    if not loaders:
        loaders = [c for c in p.constructions("loader")
                   if not (c.target and any(k in c.target.lower() for k in ("val", "test", "eval", "dev")))]
    if not loaders and p.link is not None:  # a trainer class of another module builds it
        for xl in p.batch_loops:
            for f in {id(xl.loop.function): xl.loop.function}.values():
                for a in f.assignments:
                    if isinstance(a.value, cst.Call):
                        loaders += [o for o in p.evaluate(f, a.value) if o.role == "loader"]
    for c in loaders:
        expr = c.arg("batch_size", 1)
        if expr is not None:
            v = num(p, c.function, expr)
            if v is None:
                from recipecheck.program.values import value_of

                v = value_of(p, c.function, expr).number()
            return v, s.code(expr)
    for text in ("args.batch_size", "batch_size", "config.batch_size"):
        v = num(p, None, cst.parse_expression(text))
        if v is not None:
            return v, text
    return None, None


def _manual_lr(p: ProgramModel, s: _Src, iterations: float | None, epochs: float | None,
               recipe: Recipe) -> None:
    seen_fn = set()
    for xl in p.all_xloops():
        for e in xl.direct():
            ev = e.event
            if ev.kind != "lr_set":
                continue
            node = ev.node
            value = node.value if isinstance(node, (cst.Assign, cst.AugAssign)) else None
            where = _where(p, xl, e.conds)
            if where in ("per batch", "per iteration"):
                where = "per optimizer step"
            if ev.function.program is not None and ev.function.program is not p:
                # set by a helper of another module: lr_sched.adjust_learning_rate()
                helper = ev.function
                text = (f"manual{_shape_words(helper, helper.program)}: set by `{helper.name}()` in "
                        f"{_rel(p, helper.program.path)} {where}")
                if id(helper) not in seen_fn:
                    seen_fn.add(id(helper))
                    recipe.manual_lr.append(text)
                    if "warmup" in _shape_words(helper, helper.program):
                        recipe.warmup = recipe.warmup or (
                            f"linear warmup in `{helper.name}()` ({_rel(p, helper.program.path)})"
                            + _warmup_length(p, helper))
                continue
            # lr = get_lr(it); param_group["lr"] = lr
            fn = None
            call = value
            alternative = None
            if isinstance(value, cst.Name):
                f = ev.function
                for a in f.bindings(value.value) or p.module_function.bindings(value.value):
                    call = a.value
            if isinstance(call, cst.IfExp):
                # `lr = get_lr(it) if decay_lr else learning_rate`: the schedule, or a constant
                body, other = (call.body, call.orelse) if isinstance(call.body, cst.Call) else \
                    (call.orelse, call.body)
                if isinstance(body, cst.Call):
                    cond = s.code(call.test)
                    neg = "" if body is call.body else "not "
                    alternative = (f"only when `{neg}{cond}`; otherwise constant `{s.code(other)}`")
                    call = body
            if isinstance(call, cst.Call):
                d = dotted_name(call.func)
                fn = p._resolve_callee(ev.function, d) if d else None
            text = f"`{s.code(node)}` {where}"
            if fn is not None and id(fn) not in seen_fn:
                seen_fn.add(id(fn))
                horizon = (iterations if where == "per optimizer step" else epochs) or \
                    (epochs if where == "per epoch" else None)
                g = lr_function(p, fn)
                if g is not None and horizon:
                    n = int(min(horizon, 1_000_000))
                    sampled = _sample(g, n)
                    if sampled is not None:
                        samples, warm, peak = sampled
                        start, end = samples[0][1], samples[-1][1]
                        rest = ""
                        if peak > start * 1.0001 and warm > 0:
                            rest = f" -> {fmt(peak)} (peak at step {warm})"
                            recipe.warmup = recipe.warmup or f"{fn.name}(): warmup to {fmt(peak)} over {warm} steps"
                        shape = _shape_words(fn, p)
                        text = (f"manual{shape}: {fn.name}({fn.params[0]}) written to every param group "
                                f"{where} for {fmt(horizon)} steps: {fmt(start)}{rest} -> {fmt(end)}")
                        if alternative:
                            text += f" ({alternative})"
                        recipe.manual_lr.append(text)
                        continue
                text = f"manual: `{s.code(node)}` via {fn.name}() {where}"
            elif fn is not None:
                continue
            if text not in recipe.manual_lr:
                recipe.manual_lr.append(text)
    # `lr /= 4.0` on a plain variable inside the epoch loop (word language model)
    for a in p.assignments:
        leaf = a.target.rsplit(".", 1)[-1].lower()
        if a.augmented and a.loop is not None and (leaf in ("lr", "learning_rate") or leaf.endswith("_lr")):
            cond = " when the validation metric stops improving" if _under_else_or_if(a) else ""
            recipe.manual_lr.append(f"manual decay: `{s.code(a.node)}`{cond}")


def _initial_value(p: ProgramModel, f: FunctionInfo, name: str, depth: int = 0) -> float | None:
    """The first value bound to `name` (`lr = args.lr`, later `lr /= 4.0`), through parameters."""
    if depth > 4:
        return None
    scope: FunctionInfo | None = f
    while scope is not None:
        binds = scope.bindings(name)
        if binds:
            return num(p, scope, binds[0].value)
        if name in scope.params:
            for caller, arg in _callers_args(p, scope, cst.Name(name)):
                if isinstance(arg, cst.Name):
                    return _initial_value(p, caller, arg.value, depth + 1)
                return num(p, caller, arg)
            return None
        scope = scope.parent
    return None


_HF_SCHEDULES = {"linear": "get_linear_schedule_with_warmup", "cosine": "get_cosine_schedule_with_warmup",
                 "constant": "constant", "constant_with_warmup": "get_constant_schedule_with_warmup",
                 "polynomial": "get_polynomial_decay_schedule_with_warmup"}


def _kw(call: cst.Call) -> dict[str, cst.BaseExpression]:
    return {a.keyword.value: a.value for a in call.args if a.keyword is not None}


def _frameworks(p: ProgramModel, s: _Src, recipe: Recipe) -> None:
    """Recipes configured through a framework: transformers' TrainingArguments (the Trainer
    builds AdamW and a linear schedule from them) and Lightning's Trainer(max_epochs=...)."""
    for cs in p.calls:
        q = cs.qualname or ""
        leaf = tn.last(q) if q else ""
        if q.startswith("transformers") and leaf in ("TrainingArguments", "Seq2SeqTrainingArguments"):
            kw = _kw(cs.node)
            f = cs.function
            if not recipe.optimizers:
                lr = num(p, f, kw.get("learning_rate")) if "learning_rate" in kw else 5e-5
                wd = num(p, f, kw.get("weight_decay")) if "weight_decay" in kw else 0.0
                recipe.optimizers.append(OptimizerFacts(
                    name="AdamW", line=s.line(cs.node), target="Trainer (from TrainingArguments)",
                    lr=lr, lr_text=s.code(kw["learning_rate"]) if "learning_rate" in kw else None,
                    lr_is_default="learning_rate" not in kw, betas=[0.9, 0.999], weight_decay=wd,
                    no_decay_group=bool(wd)))
            if not recipe.schedules:
                kind = kw.get("lr_scheduler_type")
                kind_name = kind.evaluated_value if isinstance(kind, cst.SimpleString) else "linear"
                warm = kw.get("warmup_steps") or kw.get("warmup_ratio")
                lr0 = recipe.optimizers[0].lr
                end = lr0 if str(kind_name).startswith("constant") else 0.0
                start = 0.0 if warm is not None else lr0
                desc = (f"Trainer lr_scheduler_type={kind_name!r} per optimizer step: {fmt(start)} -> "
                        f"{fmt(lr0)} -> {fmt(end)}" if warm is not None else
                        f"Trainer lr_scheduler_type={kind_name!r} per optimizer step: {fmt(lr0)} -> {fmt(end)}")
                sf = ScheduleFacts(name=_HF_SCHEDULES.get(str(kind_name), str(kind_name)), line=s.line(cs.node),
                                   args={}, stepped="per optimizer step", steps=None, lr_start=start,
                                   lr_peak=lr0, lr_end=end, description=desc)
                if warm is not None:
                    key = "warmup_steps" if "warmup_steps" in kw else "warmup_ratio"
                    v = num(p, f, warm)
                    sf.warmup = (f"linear warmup over {fmt(v) if v is not None else s.code(warm)} steps"
                                 if key == "warmup_steps" else
                                 f"linear warmup over {fmt((v or 0) * 100)}% of the steps")
                    recipe.warmup = recipe.warmup or sf.warmup
                recipe.schedules.append(sf)
            if recipe.epochs is None and "num_train_epochs" in kw:
                recipe.epochs = num(p, f, kw["num_train_epochs"])
                recipe.epochs_text = s.code(kw["num_train_epochs"])
            if recipe.iterations is None and "max_steps" in kw:
                recipe.iterations = num(p, f, kw["max_steps"])
            bs = kw.get("per_device_train_batch_size")
            if recipe.batch_size is None and bs is not None:
                recipe.batch_size, recipe.batch_size_text = num(p, f, bs), s.code(bs)
            acc = kw.get("gradient_accumulation_steps")
            if acc is not None and recipe.accumulation_steps is None:
                recipe.accumulation_steps = num(p, f, acc)
                recipe.accumulation_text = f"gradient_accumulation_steps={s.code(acc)} (Trainer)"
            clip = num(p, f, kw["max_grad_norm"]) if "max_grad_norm" in kw else 1.0
            if clip and not recipe.grad_clip:
                recipe.grad_clip.append(f"Trainer max_grad_norm={fmt(clip)}")
            for flag in ("fp16", "bf16"):
                if _bool(kw.get(flag)):
                    recipe.amp.append(f"Trainer {flag}=True")
        elif leaf == "Trainer" and ("lightning" in q or "pytorch_lightning" in q):
            kw = _kw(cs.node)
            if recipe.epochs is None and "max_epochs" in kw:
                recipe.epochs = num(p, cs.function, kw["max_epochs"])
                recipe.epochs_text = s.code(kw["max_epochs"])
            if recipe.iterations is None and "max_steps" in kw:
                recipe.iterations = num(p, cs.function, kw["max_steps"])
            if "gradient_clip_val" in kw and not recipe.grad_clip:
                recipe.grad_clip.append(f"Lightning gradient_clip_val={s.code(kw['gradient_clip_val'])}")
            if "accumulate_grad_batches" in kw and recipe.accumulation_steps is None:
                recipe.accumulation_steps = num(p, cs.function, kw["accumulate_grad_batches"])
                recipe.accumulation_text = f"accumulate_grad_batches={s.code(kw['accumulate_grad_batches'])} (Lightning)"
            if "precision" in kw:
                recipe.amp.append(f"Lightning precision={s.code(kw['precision'])}")
        elif leaf in ("Accelerator", "Fabric") and (q.startswith("accelerate") or "lightning" in q):
            kw = _kw(cs.node)
            name = "Accelerate" if leaf == "Accelerator" else "Fabric"
            key = "mixed_precision" if leaf == "Accelerator" else "precision"
            if key in kw:
                recipe.amp.append(f"{name} {key}={s.code(kw[key])}")
            elif leaf == "Accelerator":  # `accelerate launch --mixed_precision` / its config file
                recipe.amp.append("unknown: Accelerator() without mixed_precision takes it from "
                                  "`accelerate launch` or the accelerate config file")
            acc = kw.get("gradient_accumulation_steps")
            if acc is not None and recipe.accumulation_steps is None:
                recipe.accumulation_steps = num(p, cs.function, acc)
                recipe.accumulation_text = f"gradient_accumulation_steps={s.code(acc)} (Accelerate)"
    # Lightning steps the schedulers itself: per epoch unless configure_optimizers says "step"
    for sf, c in zip(recipe.schedules, [c for c in p.constructions("scheduler")]):
        if sf.stepped is None and c.function.name == "configure_optimizers":
            interval = "epoch"
            stack = [c.function.node]
            while stack:
                n = stack.pop()
                if isinstance(n, cst.DictElement) and isinstance(n.key, cst.SimpleString) and \
                        n.key.evaluated_value == "interval" and isinstance(n.value, cst.SimpleString):
                    interval = n.value.evaluated_value
                stack.extend(iter_children(n))
            sf.stepped = "per optimizer step (Lightning)" if interval == "step" else "per epoch (Lightning)"
            sf.description = sf.description.replace("(never stepped)", sf.stepped).replace(
                "stepped ?", sf.stepped)


def _under_else_or_if(a) -> bool:
    loop = a.loop.node if a.loop is not None else None
    if loop is None:
        return False
    stack: list[tuple[cst.CSTNode, bool]] = [(loop.body, False)]
    while stack:
        n, cond = stack.pop()
        if n is a.node:
            return cond
        for ch in iter_children(n):
            stack.append((ch, cond or isinstance(n, (cst.If, cst.Else))))
    return False


def _shape_words(fn: FunctionInfo, p: ProgramModel) -> str:
    text = p.module.code_for_node(fn.node)
    for ev in fn.events:  # and the helpers it calls (`self._get_lr_scale()`)
        if ev.kind == "call" and ev.callee is not None and ev.callee is not fn:
            text += p.module.code_for_node(ev.callee.node)
    parts = []
    if "warmup" in text:
        parts.append("linear warmup")
    if "cos(" in text:
        parts.append("cosine decay")
    elif "** -0.5" in text or "** (-0.5)" in text or "rsqrt" in text:
        parts.append("inverse square-root decay")
    elif "**" in text or "exp(" in text:
        parts.append("exponential decay")
    return f" ({' + '.join(parts)})" if parts else ""


def _program_for(module: cst.Module, path: str, source: str) -> ProgramModel:
    """The script's model, linked with the project modules it imports (a file on disk)."""
    if path.endswith(".ipynb"):
        return build_program(module)
    from recipecheck.program.link import build_linked

    return build_linked(module, path, source)


def extract(source: str, path: str, module: cst.Module | None = None) -> Recipe:
    """The recipe of one script (no advice)."""
    recipe = Recipe(path=path)
    if module is None:
        from recipecheck.engine import too_deep_for_parser

        if too_deep_for_parser(source) is not None:  # libcst would overflow: RC900 says why
            recipe.parsed = False
            return recipe
        try:
            module = cst.parse_module(source)
        except Exception:  # RC900 explains why, in the advice
            recipe.parsed = False
            return recipe
    p = _program_for(module, path, source)
    recipe._program = p  # reused by advise(); not a dataclass field, so not in the JSON
    s = _Src(module, p, source)

    # epochs / iterations from the outermost loops around the batch loops
    for xl in p.batch_loops:
        top = xl
        outer = [a for a in xl.ancestors()]
        iter_loop = next((l for l in [xl, *outer] if _steps_optimizer_directly(p, l)), None)
        if iter_loop is not None and iter_loop is not xl and recipe.iterations is None:
            recipe.iterations = _loop_count(p, iter_loop)
            inner = _loop_count(p, xl)
            if inner and recipe.accumulation_steps is None:
                recipe.accumulation_steps = inner
                recipe.accumulation_text = (f"{fmt(inner)} micro-batches per optimizer step "
                                            f"(`{s.code(xl.loop.node.iter) if isinstance(xl.loop.node, cst.For) else 'while'}`)")
        elif iter_loop is xl and not outer and recipe.iterations is None:
            recipe.iterations = _loop_count(p, xl)
        epoch_loops = [l for l in outer if l is not iter_loop and not _steps_optimizer_directly(p, l)]
        if epoch_loops and recipe.epochs is None:
            top = epoch_loops[-1]
            recipe.epochs = _loop_count(p, top)
            node = top.loop.node
            recipe.epochs_text = s.code(node.iter) if isinstance(node, cst.For) else s.code(node.test)
        for e in xl.direct():
            if p.optimizer_step_target(e.event) is not None and e.conds and recipe.accumulation_steps is None:
                k = _modulo_k(p, e.event.function, e.event.conds)
                if k and k > 1:
                    recipe.accumulation_steps = k
                    recipe.accumulation_text = f"optimizer steps every {fmt(k)} batches"
                elif e.event.conds:
                    cond_text = s.code(e.event.conds[0])
                    if "%" in cond_text:
                        recipe.accumulation_text = f"optimizer steps when `{cond_text}`"

    for c in p.constructions("optimizer"):
        recipe.optimizers.append(_opt_facts(p, s, c))
        _optimizer_condition(p, s, c, recipe.optimizers[-1])
    if not recipe.optimizers:
        _project_optimizers(p, s, recipe)
    if not recipe.optimizers or all(o.condition for o in recipe.optimizers):
        for cs in p.calls:
            if cs.dotted and cs.dotted.endswith((".add_", ".sub_")) and cs.loop is not None and \
                    ".grad" in s.code(cs.node):
                recipe.manual_update = f"parameters updated by hand: `{s.code(cs.node)}`"
                lr = _initial_value(p, cs.function, "lr")
                if lr is not None:
                    recipe.manual_update += f" (lr starts at {fmt(lr)})"
                break
    lr0 = recipe.optimizers[0].lr if recipe.optimizers else None
    scheds = p.constructions("scheduler")
    children: dict[int, list[Construction]] = {}  # SequentialLR/ChainedScheduler -> its parts
    for c in scheds:
        if c.name in ("SequentialLR", "ChainedScheduler"):
            lst = c.arg("schedulers", 1) if c.name == "SequentialLR" else c.arg("schedulers", 0)
            if isinstance(lst, cst.Name):
                binds = c.function.bindings(lst.value)
                lst = binds[0].value if binds else lst
            if isinstance(lst, (cst.List, cst.Tuple)):
                nodes = {id(el.value) for el in lst.elements}
                names = {dotted_name(el.value) for el in lst.elements}
                children[id(c.node)] = [o for o in scheds if id(o.node) in nodes or
                                        (o.target is not None and o.target in names)]
    nested = {id(o.node) for parts in children.values() for o in parts}
    for c in scheds:
        if id(c.node) in nested:
            continue  # described as part of its SequentialLR
        owner = c.arg("optimizer", 0)
        lr_c = lr0
        if owner is not None:
            for o in p.evaluate(c.function, owner):
                match = next((f for f in recipe.optimizers if f.line == s.line(o.node)), None)
                if match is not None:
                    lr_c = match.lr
        sf = _schedule(p, s, c, lr_c, recipe.epochs, recipe.iterations)
        if children.get(id(c.node)):
            _compose(p, s, c, sf, children[id(c.node)], lr_c, recipe)
        recipe.schedules.append(sf)
        if sf.warmup and recipe.warmup is None:
            recipe.warmup = sf.warmup
    if not scheds:
        _project_schedulers(p, s, recipe)
    _manual_lr(p, s, recipe.iterations, recipe.epochs, recipe)

    recipe.batch_size, recipe.batch_size_text = _train_loader_batch(p, s)
    _frameworks(p, s, recipe)

    dropout: list[str] = []
    label_smoothing = None
    mix: list[str] = []
    augment: list[str] = []
    early: list[str] = []
    ema: list[str] = []
    norm_layers: dict[str, int] = {}
    autocast: list[str] = []
    no_grad = False
    eval_mode = False
    for cs in p.calls:
        q = cs.qualname or ""
        leaf = tn.last(q) if q else (cs.dotted or "").rsplit(".", 1)[-1]
        call = cs.node
        if tn.is_clip(q):
            arg = call_arg(call, "max_norm", 1) if "norm" in leaf else call_arg(call, "clip_value", 1)
            v = num(p, cs.function, arg)
            label = "max_norm" if "norm" in leaf else "clip_value"
            text = f"{leaf}({label}={fmt(v) if v is not None else s.code(arg)})"
            if text not in recipe.grad_clip:
                recipe.grad_clip.append(text)
        elif q.startswith("torch.nn.init."):
            rest = ", ".join(s.code(a.value) if a.keyword is None else f"{a.keyword.value}={s.code(a.value)}"
                             for a in call.args[1:])
            target = s.code(call.args[0].value) if call.args else ""
            text = f"nn.init.{leaf}({target}{', ' + rest if rest else ''})"
            if text not in recipe.initialization:
                recipe.initialization.append(text)
        elif q.startswith("torch.nn.") and leaf in _DROPOUT:
            arg = call_arg(call, "p", 0)
            v = num(p, cs.function, arg) if arg is not None else 0.5
            dropout.append(f"{leaf}({fmt(v) if v is not None else s.code(arg)})")
        elif q in ("torch.nn.functional.dropout", "torch.dropout"):
            arg = call_arg(call, "p", 1)
            v = num(p, cs.function, arg) if arg is not None else 0.5
            dropout.append(f"F.dropout(p={fmt(v) if v is not None else s.code(arg)})")
        elif q.startswith("torch.nn.") and leaf in _NORM_LAYERS:
            norm_layers[leaf] = norm_layers.get(leaf, 0) + 1
        elif leaf == "Normalize" and ("transforms" in q or "transforms" in (cs.dotted or "")):
            text = f"Normalize({', '.join(s.code(a.value) for a in call.args)})"
            if text not in recipe.input_normalization:
                recipe.input_normalization.append(text)
        elif q.startswith("sklearn.preprocessing.") and leaf in ("StandardScaler", "MinMaxScaler",
                                                                  "RobustScaler", "MaxAbsScaler",
                                                                  "QuantileTransformer", "PowerTransformer"):
            text = f"{leaf} (sklearn)"
            if text not in recipe.input_normalization:
                recipe.input_normalization.append(text)
        elif ("transforms" in q or "albumentations" in q) and leaf.startswith(_AUGMENT):
            if leaf not in augment:
                augment.append(leaf)
        elif q in ("torch.autocast", "torch.cuda.amp.autocast", "torch.amp.autocast",
                   "torch.cpu.amp.autocast"):
            dt = call_arg(call, "dtype", None)
            text = f"autocast({s.code(dt) if dt is not None else ''})".replace("()", "")
            if text not in autocast:
                autocast.append(text)
        elif tn.is_grad_scaler(q):
            if "GradScaler" not in recipe.amp:
                recipe.amp.append("GradScaler (loss scaling)")
        elif q in ("torch.no_grad", "torch.inference_mode"):
            no_grad = True
        elif "swa_utils" in q or leaf in ("AveragedModel", "ModelEma", "ModelEmaV2", "ModelEmaV3",
                                          "ExponentialMovingAverage", "EMA"):
            ema.append(leaf)
        elif "mixup" in leaf.lower() or "cutmix" in leaf.lower():
            from recipecheck.program.values import conditions_of

            conds = conditions_of(cs.function, cs.node) if cs.function.name == MODULE_KEY or \
                isinstance(cs.function.node, cst.FunctionDef) else []
            text = leaf + (f" (only when `{s.code(conds[-1])}`{_default_of(p, cs.function, conds[-1])})"
                           if conds else "")
            if text not in mix:
                mix.append(text)
        elif "earlystopping" in leaf.lower().replace("_", ""):
            early.append(leaf)
        if cs.dotted and cs.dotted.endswith(".eval") and not call.args:
            eval_mode = True
        for a in call.args:
            if a.keyword is None:
                continue
            kw = a.keyword.value
            if kw in ("label_smoothing", "label_smoothing_factor"):
                label_smoothing = num(p, cs.function, a.value)
            elif kw == "dropout" and not (q.startswith("torch.nn.") and leaf in _DROPOUT):
                v = num(p, cs.function, a.value)
                dropout.append(f"{leaf}(dropout={fmt(v) if v is not None else s.code(a.value)})")
    if any(w.startswith("torch.no_grad") or w.startswith("torch.inference_mode")
           for cs in p.calls for w in cs.withs):
        no_grad = True
    recipe.amp = autocast + recipe.amp
    for name, count in norm_layers.items():
        recipe.input_normalization.append(f"{count} {name} layer{'s' if count > 1 else ''} in the model")
    for a in p.assignments:
        leaf = a.target.rsplit(".", 1)[-1].lower()
        if "patience" in leaf or "early_stop" in leaf:
            early.append(a.target)
        if (leaf.startswith("ema") or leaf.endswith("_ema")) and not a.target.isupper():
            ema.append(a.target)
    applied = [s.code(cs.node) for cs in p.calls
               if cs.dotted and cs.dotted.endswith(".apply") and len(cs.node.args) == 1 and
               (dotted_name(cs.node.args[0].value) or "").rsplit(".", 1)[-1] in
               {f.name for f in p.functions.values()}]
    if recipe.initialization and applied:
        recipe.initialization.append("applied with " + ", ".join(dict.fromkeys(applied)))
    if not recipe.initialization:
        model_lines = _model_init(p, s)
        if any(cs.dotted and cs.dotted.endswith("from_pretrained") for cs in p.calls):
            recipe.initialization.append("pretrained weights (from_pretrained)")
        if model_lines:
            recipe.initialization += model_lines
        elif not recipe.initialization:
            recipe.initialization.append(_PYTORCH_DEFAULTS)
    for line in _weight_loads(p, s):
        if line not in recipe.initialization:
            recipe.initialization.append(line)
    wds = []
    for o in recipe.optimizers:
        if o.weight_decay:
            note = " (biases/norms excluded)" if o.no_decay_group else ""
            wds.append(f"{o.name} weight_decay={fmt(o.weight_decay)}{note}")
    recipe.regularization = {
        "weight_decay": wds,
        "dropout": list(dict.fromkeys(dropout)),
        "label_smoothing": label_smoothing,
        "mixup_cutmix": mix,
        "augmentation": augment,
        "early_stopping": list(dict.fromkeys(early)),
        "ema": list(dict.fromkeys(ema)),
    }

    # evaluation protocol
    held_out = []
    for c in p.constructions("loader"):
        if c.target and any(k in c.target.lower() for k in ("val", "test", "eval", "dev")):
            held_out.append(c.target)
    eval_fns = []
    for f in p.functions.values():
        lname = f.name.lower()
        if f.callers and any(k in lname for k in ("eval", "valid", "test", "estimate_loss")):
            eval_fns.append(f"{f.name}()")
    trainer_selection = None
    for cs in p.calls:
        q = cs.qualname or ""
        if q.startswith("transformers") and tn.last(q) in ("Trainer", "Seq2SeqTrainer", "SFTTrainer"):
            kw = _kw(cs.node)
            if "eval_dataset" in kw:
                held_out.append(f"eval_dataset={s.code(kw['eval_dataset'])} (Trainer)")
        if q.startswith("transformers") and tn.last(q).endswith("TrainingArguments"):
            kw = _kw(cs.node)
            for key in ("eval_strategy", "evaluation_strategy"):
                if key in kw:
                    eval_fns.append(f"Trainer {key}={s.code(kw[key])}")
            if "load_best_model_at_end" in kw and _bool(kw["load_best_model_at_end"]):
                trainer_selection = "Trainer load_best_model_at_end=True" + (
                    f" on {s.code(kw['metric_for_best_model'])}" if "metric_for_best_model" in kw else "")
    best = sorted({a.target for a in p.assignments if "best" in a.target.lower() and a.augmented is None})
    saves = any(cs.qualname == "torch.save" or (cs.dotted or "").endswith(("save_checkpoint",
                                                                           "save_pretrained"))
                for cs in p.calls)
    selection = trainer_selection
    if selection is not None:
        pass
    elif best:
        selection = f"keeps the best {', '.join(best)}" + (" and checkpoints it" if saves else "")
    elif saves:
        selection = "checkpoints saved (no best-model selection found)"
    recipe.evaluation = {
        "held_out_data": held_out,
        "eval_functions": eval_fns,
        "eval_mode": eval_mode,
        "no_grad": no_grad,
        "model_selection": selection,
    }
    _project_facts(p, s, recipe)
    return recipe


def _rel(p: ProgramModel, other: str | None) -> str:
    if not other:
        return "?"
    import os

    base = os.path.dirname(os.path.abspath(p.path)) if p.path else os.getcwd()
    try:
        rel = os.path.relpath(other, base)
    except ValueError:
        return other
    return rel if not rel.startswith("../../..") else other


def _src_of(s: _Src, f: FunctionInfo) -> _Src:
    """The source helper for the module `f` belongs to (lines there, not in the linted file)."""
    prog = f.program
    if prog is None or prog is s.p:
        return s
    cache = s.__dict__.setdefault("_others", {})
    if id(prog) not in cache:
        cache[id(prog)] = _Src(prog.module, s.p, prog.module.code)
        cache[id(prog)].origin = prog
    return cache[id(prog)]


def _optimizer_condition(p: ProgramModel, s: _Src, c: Construction, facts: OptimizerFacts) -> None:
    """`if args.use_optimizer: optimizer = AdamW(...)`: the optimizer exists only on that branch."""
    from recipecheck.program.values import conditions_of, value_of

    if not isinstance(c.function.node, (cst.Module, cst.FunctionDef)):
        return
    conds = conditions_of(c.function, c.node)
    if not conds:
        return
    cond = conds[-1]
    v = value_of(p, c.function, cond)
    default = ""
    if v.single() is False:
        default = " (off by default)"
    elif v.single() is True:
        default = " (on by default)"
    facts.condition = f"only when `{s.code(cond)}`{default}"


def _project_optimizers(p: ProgramModel, s: _Src, recipe: Recipe) -> None:
    """Optimizers built in another module (`model.configure_optimizers()`, a trainer class)
    and stepped by the training loop."""
    if p.link is None:
        return
    found: dict[int, Construction] = {}
    for c in _framework_returned(p):
        if c.role == "optimizer":
            found.setdefault(id(c.node), c)
    for f in p.reachable_functions:
        for ev in f.events:
            if ev.kind not in ("step", "zero_grad"):
                continue
            inner = p.delegate(ev) or ev
            objs = [o for o in p.objects(inner, inner.receiver) if o.role == "optimizer"]
            if not objs and inner.kind == "step" and inner.call is not None and inner.call.args and \
                    p.role_of(inner.function, inner.receiver) == "scaler":
                objs = [o for o in p.evaluate(inner.function, inner.call.args[0].value)
                        if o.role == "optimizer"]
            for o in objs:
                found.setdefault(id(o.node), o)
    from recipecheck.program.values import value_of

    for c in found.values():
        fs = _src_of(s, c.function)
        facts = _opt_facts(p, fs, c)
        if c.function.program is not None and c.function.program is not p:
            facts.module = _rel(p, c.function.program.path)
        # the call in this file whose result it is
        for a in p.assignments:
            if isinstance(a.value, cst.Call) and any(o.node is c.node for o in p.evaluate(a.function, a.value)):
                facts.built_by = f"`{s.code(a.value)}`"
                break
        if facts.built_by is None and c.function.name != MODULE_KEY:
            facts.built_by = f"`{c.function.key}()`"
        for hp_name in ("lr", "weight_decay", "betas"):
            expr = hp.opt_arg(c, hp_name)
            if expr is not None:
                v = value_of(p, c.function, expr)
                facts.provenance[hp_name] = {"code": fs.code(expr), "values": v.provenance()}
                if hp_name == "lr" and facts.lr is None and v.number() is not None:
                    facts.lr = v.number()
                if hp_name == "weight_decay" and v.number() is not None and not facts.group_weight_decays:
                    facts.weight_decay = v.number()
        recipe.optimizers.append(facts)


def _warmup_length(p: ProgramModel, helper: FunctionInfo) -> str:
    """` over args.warmup_epochs = 40`: the warmup names the helper reads, valued in this file."""
    from recipecheck.program.values import value_of

    seen = []
    stack = [helper.node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Attribute) and "warmup" in n.attr.value and dotted_name(n) not in seen:
            seen.append(dotted_name(n))
            v = value_of(p, p.module_function, n)
            if v.number() is not None:
                return f" over `{dotted_name(n)}` = {fmt(v.number())}"
        stack.extend(iter_children(n))
    return ""


def _modulo_steps(p: ProgramModel, s: _Src, recipe: Recipe) -> None:
    """Accumulation written as a reset/step under `(i + 1) % accum_iter == 0`, anywhere in the
    training loop (MAE's engine: the loss scaler steps on `update_grad`, the reset is modulo)."""
    from recipecheck.program.values import value_of

    for xl in p.batch_loops:
        for e in xl.direct():
            ev = e.event
            if ev.kind not in ("zero_grad", "step") or not ev.conds:
                continue
            for cond in ev.conds:
                if not isinstance(cond, cst.Comparison) or not isinstance(cond.left, cst.BinaryOperation) \
                        or not isinstance(cond.left.operator, cst.Modulo):
                    continue
                k_expr = cond.left.right
                v = value_of(p, ev.function, k_expr)
                desc = v.describe(fmt_value) or "unknown"
                recipe.accumulation_text = (f"optimizer steps when `{s.code(cond)}` "
                                            f"(`{s.code(k_expr)}`: {desc})")
                recipe.provenance["accumulation"] = v.provenance()
                if v.number() is not None:
                    recipe.accumulation_steps = v.number()
                return


def _framework_returned(p: ProgramModel) -> list[Construction]:
    """What `configure_optimizers()` of a Lightning module of another project module returns
    (optimizers and schedulers in a dict, a tuple or lists): the framework steps them."""
    out: list[Construction] = []
    if p.link is None:
        return out
    for cs in p.calls:
        t = p.link.lookup(p, cs.dotted) if cs.dotted else None
        if t is None or isinstance(t, FunctionInfo) or not any(
                b.endswith("LightningModule") for b in t.bases):
            continue
        m = p.class_method(t, "configure_optimizers")
        if m is None:
            continue
        stack = list(m.returns)
        while stack:
            r = stack.pop()
            if isinstance(r, cst.Dict):
                stack.extend(el.value for el in r.elements if isinstance(el, cst.DictElement))
            elif isinstance(r, (cst.Tuple, cst.List)):
                stack.extend(el.value for el in r.elements)
            else:
                out += [o for o in p.evaluate(m, r) if o.role in ("optimizer", "scheduler")]
    return out


def _project_schedulers(p: ProgramModel, s: _Src, recipe: Recipe) -> None:
    """Schedulers built in another module: returned to a framework, or stepped by a helper."""
    if p.link is None:
        return
    found: dict[int, tuple[Construction, str | None]] = {}
    for c in _framework_returned(p):
        if c.role == "scheduler":
            found.setdefault(id(c.node), (c, "stepped by the framework (per epoch unless configured)"))
    for f in p.reachable_functions:
        if f.program is p:
            continue
        for ev in f.events:
            if ev.kind == "step":
                for o in p.schedulers_of(ev):
                    found.setdefault(id(o.node), (o, None))
    lr0 = recipe.optimizers[0].lr if recipe.optimizers else None
    for c, note in found.values():
        fs = _src_of(s, c.function)
        sf = _schedule(p, fs, c, lr0, recipe.epochs, recipe.iterations)
        if note:
            sf.description = sf.description.replace("(never stepped)", note)
        mod = _rel(p, c.function.program.path) if c.function.program is not None else "?"
        sf.description += f" (built in {mod})"
        recipe.schedules.append(sf)
        if sf.warmup and recipe.warmup is None:
            recipe.warmup = sf.warmup


def _project_facts(p: ProgramModel, s: _Src, recipe: Recipe) -> None:
    from recipecheck.program.values import value_of

    if p.link is not None:
        recipe.modules = list(dict.fromkeys(_rel(p, q.path) for q in p.link.programs.values()))
    reach = p.reachable_functions
    own = set(map(id, p.functions.values()))
    has_backward = any(ev.kind == "backward" for f in reach for ev in f.events)
    framework = any((cs.qualname or "").startswith(("lightning", "pytorch_lightning", "transformers",
                                                    "accelerate"))
                    for cs in p.calls)
    if not has_backward and not framework:
        recipe.training_loop = False
    # AMP and the evaluation protocol inside project helpers (engine.evaluate(), a loss-scaler
    # class of util/misc.py)
    if p.link is not None:
        used = _project_functions_used(p)
        ids = set(map(id, used))
        amp: list[str] = []
        ev = recipe.evaluation
        for q in p.link.programs.values():
            for cs in q.calls:
                if id(cs.function) not in ids:
                    continue
                f = cs.function
                owner = f.cls.name if f.cls is not None else f.name
                where = f"in `{owner}` ({_rel(p, q.path)})"
                qn = cs.qualname or ""
                if tn.is_clip(qn):
                    from recipecheck.program.values import conditions_of

                    leaf = tn.last(qn)
                    arg = call_arg(cs.node, "max_norm", 1) if "norm" in leaf else call_arg(cs.node, "clip_value", 1)
                    v = value_of(p, f, arg) if arg is not None else None
                    shown = fmt_value(v.single()) if v is not None and v.single() is not None else \
                        (cst.Module([]).code_for_node(arg) if arg is not None else "?")
                    text = f"{leaf}({'max_norm' if 'norm' in leaf else 'clip_value'}={shown}) {where}"
                    conds = conditions_of(f, cs.node)
                    if conds:
                        text += f" only when `{s.code(conds[-1])}`{_default_of(p, f, conds[-1])}"
                    if not recipe.grad_clip and text not in recipe.grad_clip:
                        recipe.grad_clip.append(text)
                elif (tn.last(qn) if qn else (cs.dotted or "").rsplit(".", 1)[-1]) == "Normalize" and \
                        "transforms" in (qn or cs.dotted or ""):
                    fs = _src_of(s, f)
                    text = f"Normalize({', '.join(fs.code(a.value) for a in cs.node.args)}) {where}"
                    if text not in recipe.input_normalization:
                        recipe.input_normalization.append(text)
                elif qn.endswith(".create_transform") and qn.startswith("timm."):
                    # timm normalizes with the given (else ImageNet's) mean and std
                    text = f"timm create_transform (normalizes to mean/std) {where}"
                    if text not in recipe.input_normalization:
                        recipe.input_normalization.append(text)
                elif tn.is_grad_scaler(qn):
                    amp.append(f"GradScaler (loss scaling) {where}")
                elif qn in ("torch.autocast", "torch.cuda.amp.autocast", "torch.amp.autocast",
                            "torch.cpu.amp.autocast"):
                    amp.append(f"autocast {where}")
                elif qn in ("torch.no_grad", "torch.inference_mode") or any(
                        w.startswith(("torch.no_grad", "torch.inference_mode")) for w in cs.withs):
                    if not ev.get("no_grad"):
                        ev["no_grad"] = True
                        ev.setdefault("eval_functions", []).append(f"{f.name}() ({_rel(p, q.path)})")
                if cs.dotted and cs.dotted.endswith(".eval") and not cs.node.args and not ev.get("eval_mode"):
                    ev["eval_mode"] = True
        for a in dict.fromkeys(amp):
            if not any(a.split(" ")[0] in x for x in recipe.amp):
                recipe.amp.append(a)
    # a from_pretrained call that runs only under a condition
    for f in p.functions.values():
        for ev in f.events:
            if ev.kind == "call" and (ev.callee_text or "").endswith("from_pretrained") and ev.conds:
                from recipecheck.program.values import conditions_of

                conds = conditions_of(f, ev.node)
                cond_node = conds[-1] if conds else ev.conds[-1]
                defaults = []
                for n in _names_in(cond_node):
                    while isinstance(n, cst.Attribute) and isinstance(n.value, (cst.Name, cst.Attribute)) \
                            and not isinstance(value_of(p, f, n).single(), (str, bool)):
                        n = n.value  # `init_from.startswith(...)`: the value of `init_from`
                    v = value_of(p, f, n)
                    if isinstance(v.single(), (str, bool)):
                        defaults.append(f"{s.code(n)} = {fmt_value(v.single())}")
                cond = f"`{s.code(cond_node)}`" + (f" (by default {', '.join(defaults)})" if defaults else "")
                own = "the init below" if len(recipe.initialization) > 1 else "PyTorch's default init"
                recipe.initialization = [
                    line if "from_pretrained" not in line else
                    f"pretrained weights (from_pretrained) only when {cond}; other branches "
                    f"train from {own} or resume a checkpoint"
                    for line in recipe.initialization]
                break
    if recipe.accumulation_text is None:
        _modulo_steps(p, s, recipe)
    # accumulation: a micro-batch loop whose count the loop counter could not evaluate
    if recipe.accumulation_steps is None and recipe.accumulation_text is None:
        for xl in p.batch_loops:
            outer = list(xl.ancestors())
            if not any(_steps_optimizer_directly(p, l) for l in outer):
                continue
            node = xl.loop.node
            it = _unwrap_iter(node.iter) if isinstance(node, cst.For) else None
            if isinstance(it, cst.Call) and dotted_name(it.func) == "range" and len(it.args) == 1:
                arg = it.args[0].value
                v = value_of(p, xl.loop.function, arg)
                recipe.provenance["accumulation"] = v.provenance()
                shown = v.describe(fmt_value)
                if isinstance(arg, cst.Name):  # `gradient_accumulation_steps = 5 * 8`: show the code
                    binds = [a for a in (xl.loop.function.bindings(arg.value) or
                                         p.module_function.bindings(arg.value))]
                    if len(binds) == 1 and binds[0].value is not None and \
                            not isinstance(binds[0].value, (cst.Integer, cst.Float)):
                        shown = f"`{arg.value} = {s.code(binds[0].value)}`: " + shown
                recipe.accumulation_text = (f"`{s.code(node.iter)}` micro-batches per optimizer step: "
                                            f"{shown}")
                break
    # what stays unresolved
    if not recipe.optimizers and not recipe.manual_update:
        for f in reach:
            for ev in f.events:
                if ev.kind == "step" and p.role_of(ev.function, ev.receiver) != "scheduler":
                    where = "" if id(f) in own else f" in {_rel(p, f.program.path if f.program else None)}"
                    recipe.unresolved["optimizer"] = (
                        f"`{ev.receiver or '?'}.step()`{where} steps an optimizer built where the "
                        f"analysis could not follow{_binding_note(p, ev)}")
                    break
            if "optimizer" in recipe.unresolved:
                break
    for o in recipe.optimizers:
        if o.lr is None and o.lr_text:
            c_lr = o.provenance.get("lr")
            if c_lr and any("unknown" in d for d in c_lr["values"]):
                recipe.unresolved.setdefault("lr", next(d["unknown"] for d in c_lr["values"] if "unknown" in d))
    if recipe.epochs is None and recipe.epochs_text:
        recipe.unresolved.setdefault("length", f"epochs: `{recipe.epochs_text}` not resolved")


def _default_of(p: ProgramModel, f: FunctionInfo, cond) -> str:
    """`, False by default` for a condition whose value the code fixes (argparse defaults...)."""
    from recipecheck.program.values import value_of

    v = value_of(p, f, cond)
    if isinstance(v.single(), bool) or (v.known and v.single() is None and v.possibilities):
        return f", {bool(v.single())} by default"
    return ""


def _binding_note(p: ProgramModel, ev) -> str:
    """`: self.optimizer = model.configure_optimizers(config)` for an unresolved receiver."""
    f = ev.function
    recv = ev.receiver or ""
    cls = f.cls or (f.parent.cls if f.parent else None)
    binds = []
    if recv.startswith("self.") and cls is not None:
        binds = [a for m in cls.methods.values() for a in m.bindings(recv)
                 if not (isinstance(a.value, cst.Name) and a.value.value == "None")]
    elif recv:
        binds = f.bindings(recv)
    if not binds:
        if recv in f.params:
            return f" (`{recv}` is a parameter of `{f.name}()`: passed in by a caller not analysed)"
        return ""
    a = binds[-1]
    code = " ".join(cst.Module([]).code_for_node(a.value).split()) if a.value is not None else "?"
    return f" (`{recv} = {code}` in `{a.function.key}()`)"


_PYTORCH_DEFAULTS = "PyTorch defaults (Kaiming-uniform for Linear/Conv layers)"
_INIT_LEAVES = ("normal_", "uniform_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "constant_", "zeros_", "ones_")
_MODEL_WRAPPERS = ("torch.nn.parallel.", "torch.nn.DataParallel", "torch.compile",
                   "torch.jit.", "torch.nn.SyncBatchNorm.convert_sync_batchnorm")


def _model_init(p: ProgramModel, s: _Src) -> list[str]:
    """How the weights of the models the file builds are initialized, when the file itself
    calls no init function: the init calls inside the project model classes it builds (their
    bases and the project classes they build, in whichever module), else what builds the model
    when the linter cannot see into it. [] : every model is built from torch.nn layers and
    project classes that set nothing, i.e. PyTorch's defaults."""
    classes: list[ClassInfo] = []
    others: list[str] = []
    context: list[str] = []  # which model a name picks, shown above its init
    for f in p.reachable_functions:
        prog = f.program or p
        for cs in prog.calls:
            if cs.function is not f or not cs.dotted:
                continue
            cls = _project_class(p, prog, cs.dotted)
            if cls is not None and _is_model_class(p, cls, 0) and cls not in classes:
                classes.append(cls)
    built = bool(classes)  # a model is built in the analysed code (else it is passed in)
    for a in p.assignments:  # `model = <something the linter cannot see into>`
        leaf = a.target.rsplit(".", 1)[-1].lower()
        if a.augmented is not None or not isinstance(a.value, cst.Call) or \
                not (leaf.endswith("model") or leaf.startswith("net") or leaf.endswith("net")):
            continue
        call = a.value
        while isinstance(call.func, cst.Attribute) and call.func.attr.value in _MOVES \
                and isinstance(call.func.value, cst.Call):
            call = call.func.value
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in _MOVES:
            continue  # `self.model = self.model.to(device)`: moved, not built
        d = dotted_name(call.func)
        q = p.imports.resolve(call.func) or ""
        if d is not None and _project_class(p, p, d) is not None:
            continue
        if q.startswith(_MODEL_WRAPPERS):
            continue  # wraps a model built before
        if q in ("torch.load", "copy.deepcopy") or (d or "").endswith(("from_pretrained", "load_state_dict")):
            built = True  # loaded or copied: said by the pretrained line, or not an init
            continue
        if q.startswith("torch.nn."):
            built = True
            continue  # layers and containers of torch.nn: PyTorch's defaults
        if d is not None and (d in p.functions or _project_function(p, d)):
            continue  # a factory of the project: what it builds is among the calls above
        built = True
        callee = " ".join(s.code(call.func).split())
        shown = f"`{callee}({'...' if call.args else ''})`"
        picked = _picked_classes(p, a, call)
        if picked:  # `models.__dict__[args.model]()` whose default names a project model
            for cls in picked[1]:
                if cls not in classes:
                    classes.append(cls)
            if picked[0] not in context:
                context.append(picked[0])
            continue
        line = f"set outside the analysed code: the model comes from {shown}" if q and not q.startswith("local:") \
            else _dynamic_model(p, s, a, call) or \
            f"unknown: the model is built by {shown}, which the linter cannot follow"
        if line not in others:
            others.append(line)
    if not classes and not others and not built:
        return ["unknown: no model is built in the analysed code (it is passed in)"]
    found: list[str] = []
    seen: set[int] = set()
    todo = [(c, 0) for c in classes]
    while todo:
        cls, depth = todo.pop(0)
        if id(cls) in seen or depth > 3:
            continue
        seen.add(id(cls))
        for m in cls.methods.values():
            prog = m.program or p
            fs = _src_of(s, m)
            for cs in _calls_within(prog, m):
                if not cs.dotted:
                    continue
                leaf = cs.dotted.rsplit(".", 1)[-1]
                q = cs.qualname or ""
                if q.startswith("torch.nn.init.") or leaf in _INIT_LEAVES:
                    text = " ".join(fs.code(cs.node).split())
                    text = text if len(text) <= 70 else text[:67] + "..."
                    where = f"{cls.name}.{m.name}" + (f" ({_rel(p, prog.path)})" if prog is not p else "")
                    line = f"{text} in {where}"
                    if line not in found:
                        found.append(line)
                    continue
                sub = _project_class(p, prog, cs.dotted)
                if sub is not None and _is_model_class(p, sub, 0):
                    todo.append((sub, depth + 1))
                elif m.name == "__init__" and cs.qualname is None and "." not in cs.dotted and \
                        cs.dotted in m.params and cs.dotted not in ("self", "cls"):
                    # `self.encoder = base_encoder(num_classes=dim)`: a model class handed in
                    line = (f"unknown: {cls.name} builds part of itself with `{cs.dotted}(...)`, "
                            "passed in by the caller")
                    if line not in others:
                        others.append(line)
        for b in cls.bases:
            base = _project_class(p, p, b)
            if base is not None:
                todo.append((base, depth + 1))
    if len(found) > 4:
        found = found[:4] + [f"and {len(found) - 4} more init call{'s' if len(found) > 5 else ''}"]
    if context and not found and not others:
        return context + [_PYTORCH_DEFAULTS]
    return context + found + (others if not found else [])


def _picked_classes(p: ProgramModel, a, call: cst.Call) -> tuple[str, list[ClassInfo]] | None:
    """`models_mae.__dict__[args.model](...)` with a known default name: the project model
    classes that name builds (a class, or a factory function returning one)."""
    pick = _namespace_pick(call) if p.link is not None else None
    if pick is None:
        return None
    module, key = pick
    t = p.imports.project.get(module.split(".")[0])
    if t is None:
        return None
    from recipecheck.program.values import value_of

    name = value_of(p, a.function, key).single()
    if not isinstance(name, str) or not name.isidentifier():
        return None
    try:
        target = p.link.lookup(p, f"{module}.{name}")
    except RecursionError:
        return None
    classes: list[ClassInfo] = []
    if isinstance(target, ClassInfo):
        classes.append(target)
    elif isinstance(target, FunctionInfo):
        prog = target.program or p
        for cs in _calls_within(prog, target):
            if not cs.dotted:
                continue
            cls = _project_class(p, prog, cs.dotted)
            if cls is not None and _is_model_class(p, cls, 0) and cls not in classes:
                classes.append(cls)
    if not classes:
        return None
    code = " ".join(cst.Module([]).code_for_node(key).split())
    return (f"model: {name!r} from {_rel(p, t.path)} (the default of `{code}`), "
            f"a {', '.join(c.name for c in classes)}"), classes


_MOVES = ("to", "cuda", "cpu", "half", "float", "double", "train", "bfloat16")


def _namespace_pick(call: cst.Call) -> tuple[str, cst.BaseExpression] | None:
    """`models.__dict__[args.arch](...)`: (the module's dotted name, the key expression)."""
    func = call.func
    if not isinstance(func, cst.Subscript) or len(func.slice) != 1 or \
            not isinstance(func.slice[0].slice, cst.Index):
        return None
    base = dotted_name(func.value) or ""
    if not base.endswith(".__dict__"):
        return None
    return base[: -len(".__dict__")], func.slice[0].slice.value


def _dynamic_model(p: ProgramModel, s: _Src, a, call: cst.Call) -> str | None:
    """`models.__dict__[args.arch](...)`: a model picked by name from a module's namespace."""
    pick = _namespace_pick(call)
    if pick is None:
        return None
    module, key = pick
    from recipecheck.program.values import value_of

    v = value_of(p, a.function, key).single()
    default = f" (default {v!r})" if isinstance(v, str) else ""
    t = p.imports.project.get(module.split(".")[0])
    where = f"{_rel(p, t.path)}" if t is not None else (p.imports.resolve_dotted(module) or module)
    what = "one of the models of" if t is not None else "set outside the analysed code: one of the models of"
    return f"{what} {where}, chosen by `{s.code(key)}`{default}" + (
        "; its initialization is not followed" if t is not None else "")


def _weight_loads(p: ProgramModel, s: _Src) -> list[str]:
    """`model.load_state_dict(checkpoint)` in the file: the weights the model starts from (a
    pretrained or resumed checkpoint), with the condition it runs under."""
    from recipecheck.program.values import conditions_of

    out: list[str] = []
    for cs in p.calls:
        if not cs.dotted or not cs.dotted.endswith(".load_state_dict"):
            continue
        recv = cs.dotted[: -len(".load_state_dict")]
        leaf = recv.rsplit(".", 1)[-1].lower()
        if p.role_of(cs.function, recv) in ("optimizer", "scheduler", "scaler", "loader") or \
                not ("model" in leaf or "net" in leaf):
            continue
        args = " ".join(s.code(cs.node.args[0].value).split()) if cs.node.args else ""
        args = args if len(args) <= 40 else args[:37] + "..."
        text = f"weights loaded by `{recv}.load_state_dict({args})`"
        f = cs.function
        conds = conditions_of(f, cs.node) if f.name == MODULE_KEY or isinstance(f.node, cst.FunctionDef) else []
        if conds:
            text += f" only when `{s.code(conds[-1])}`{_default_of(p, f, conds[-1])}"
        if text not in out:
            out.append(text)
    return out[:3]


def _calls_within(prog: ProgramModel, f: FunctionInfo):
    """The calls of `prog` made in `f` or in the functions nested inside it."""
    for cs in prog.calls:
        owner = cs.function
        while owner is not None and owner is not f:
            owner = owner.parent
        if owner is not None:
            yield cs


def _project_function(p: ProgramModel, dotted: str) -> bool:
    if p.link is None:
        return False
    try:
        return isinstance(p.link.lookup(p, dotted), FunctionInfo)
    except RecursionError:
        return False


def _project_class(p: ProgramModel, prog: ProgramModel, dotted: str) -> ClassInfo | None:
    """The project class `dotted` names where it is written (`prog`), if any."""
    cls = prog.classes.get(dotted)
    if cls is not None:
        return cls
    link = prog.link or p.link
    if link is None:
        return None
    try:
        t = link.lookup(prog, dotted)
    except RecursionError:
        return None
    return t if isinstance(t, ClassInfo) else None


def _is_model_class(p: ProgramModel, cls: ClassInfo, depth: int) -> bool:
    """An nn.Module subclass: of Module itself, of a torch.nn layer (`nn.Transformer`), or of
    such a project class."""
    if cls.is_module or any(b.startswith("torch.nn.") for b in cls.bases):
        return True
    if depth > 4:
        return False
    return any(base is not None and _is_model_class(p, base, depth + 1)
               for base in (p.classes.get(b) for b in cls.bases))


def _project_functions_used(p: ProgramModel) -> list[FunctionInfo]:
    """Functions of other modules that the file reaches: called ones, and every method of a
    project class it instantiates (constructors run `__init__`, which calls are not events)."""
    out = [f for f in p.reachable_functions if f.program is not None and f.program is not p]
    seen = set(map(id, out))
    for cs in p.calls:
        t = p.link.lookup(p, cs.dotted) if cs.dotted and p.link is not None else None
        if t is not None and not isinstance(t, FunctionInfo):
            for m in t.methods.values():
                if id(m) not in seen:
                    seen.add(id(m))
                    out.append(m)
    return out


def fmt_value(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, float)):
        return fmt(float(v))
    if isinstance(v, tuple):
        return "(" + ", ".join(fmt_value(x) for x in v) + ")"
    return repr(v)
