"""Gradient accumulation and the branch structure of one training iteration.

Several rules ask the same questions about a batch loop: under which tests does each event run
(relative to the loop, through helper calls, early `continue` included), are two events in
exclusive branches, and is the loop accumulating gradients over several micro-batches before
each optimizer step? The answers live here so that the rules (RC107, RC108, RC109) agree.

Two accumulation shapes are recognised:

- *gated*: every optimizer step of the batch loop runs under a modulo test
  (`if (i + 1) % accum == 0:`, or after `if (i + 1) % accum != 0: continue`) or a test on a
  micro-batch counter the loop counts up and resets to zero, while a `backward()` runs on
  every iteration;
- *inner*: an inner loop over `range(k)` or over named micro-batches (`for mb in
  batch.split(n)`, `for chunk in microbatches`) calls `backward()` and the optimizer steps
  once after it, in the enclosing loop.

`accelerator.accumulate(model)` blocks are not accumulation in this sense: Accelerate's
wrapped optimizer skips `zero_grad()` and `step()` until the gradients are synchronised.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from recipecheck.program.gates import Guard, guards_of
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import ProgramModel, XEvent, XLoop
from recipecheck.program.nodes import walk

_CACHE_ATTR = "_recipecheck_accumulation"


def loop_guards(xl: XLoop, xev: XEvent) -> list[Guard]:
    """The tests that hold when `xev` runs, relative to one iteration of `xl` (outermost
    first), followed through the helper calls between the loop and the event."""
    ev = xev.event
    rel = xev.chain[len(xl.chain):]
    out: list[Guard] = []
    site = rel[0].node if rel else ev.node
    out += guards_of(xl.loop.node.body, site) or []
    for call in rel[1:]:
        out += guards_of(call.function.node, call.node) or []
    if rel:
        out += guards_of(ev.function.node, ev.node) or []
    return out


def exclusive(a: list[Guard], b: list[Guard]) -> bool:
    """Whether two guard lists cannot both hold: one test taken both ways."""
    for ga in a:
        for gb in b:
            if ga.test is gb.test and ga.positive != gb.positive:
                return True
    return False


def _has_modulo(node: cst.CSTNode) -> bool:
    return any(isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Modulo)
               for n in walk(node))


def counter_gate(test: cst.CSTNode, fn) -> bool:
    """A test on a micro-batch counter that the loop counts up and resets to zero
    (`n += 1` ... `if n >= accum_steps: optimizer.step(); n = 0`)."""
    if not isinstance(test, cst.Comparison) or not isinstance(test.left, cst.Name) or fn is None:
        return False
    name = test.left.value
    counted = any(a.target == name and a.augmented == "AddAssign" and a.loop is not None
                  for a in fn.assignments)
    reset = any(a.target == name and a.augmented is None and a.loop is not None and
                isinstance(a.value, cst.Integer) and a.value.value == "0" for a in fn.assignments)
    return counted and reset


def is_accumulation_gate(guard: Guard, xev: XEvent) -> bool:
    """A test like `(i + 1) % accum == 0`, directly or through a flag bound to one
    (`do_step = (it + 1) % k == 0` ... `if do_step:`), or a counter reset at each step."""
    test = guard.test
    if _has_modulo(test):
        return True
    fns = {xev.event.function, *(c.function for c in xev.chain)}
    if any(counter_gate(test, fn) for fn in fns):
        return True
    names = [n.value for n in walk(test) if isinstance(n, cst.Name)]
    for fn in fns:
        for a in fn.assignments:
            if a.target in names and a.augmented is None and isinstance(a.value, cst.CSTNode) and \
                    _has_modulo(a.value):
                return True
    return False


@dataclass(eq=False)
class Accumulation:
    """One batch loop that accumulates gradients before each optimizer step."""

    loop: XLoop  # the loop whose iterations are the micro-batches
    shape: str  # "gated" | "inner"
    steps: list[XEvent]  # the optimizer steps that apply the accumulated gradient
    step_loop: XLoop  # the loop the steps belong to (the same loop, or the enclosing one)
    opt_keys: set[str]


_MICRO = ("micro", "chunk", "shard", "split", "part")


def _micro_batches(it: cst.BaseExpression) -> bool:
    """An inner loop over the pieces of one batch (`for mb in microbatches:`,
    `for chunk in batch.split(n):`), named so."""
    for n in walk(it):
        text = n.value if isinstance(n, cst.Name) else n.attr.value if isinstance(n, cst.Attribute) else ""
        if any(k in text.lower() for k in _MICRO):
            return True
    return False


def _in_accelerate(xev: XEvent) -> bool:
    return any("accumulate" in w for w in xev.event.withs)


def accumulations(p: ProgramModel) -> list[Accumulation]:
    cached = getattr(p, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    out: list[Accumulation] = []
    for xl in p.batch_loops:
        direct = list(xl.direct())
        steps = [e for e in direct if p.optimizer_step_target(e.event)]
        backwards = [e for e in direct if e.event.kind == "backward"]
        if any(_in_accelerate(e) for e in backwards + steps):
            continue
        if steps:
            gated = all(any(is_accumulation_gate(g, e) for g in loop_guards(xl, e)) for e in steps)
            # a backward that also runs when the step does not: some gate of the step is not a
            # guard of the backward (a WGAN generator's backward sits in the same
            # `if i % n_critic == 0:` as its step, so it is not accumulation)
            step_gates = [{(id(g.test), g.positive) for g in loop_guards(xl, e) if is_accumulation_gate(g, e)}
                          for e in steps]
            ungated_backward = False
            for b in backwards:
                mine = {(id(g.test), g.positive) for g in loop_guards(xl, b)}
                if any(sg - mine for sg in step_gates):
                    ungated_backward = True
                    break
            if gated and ungated_backward:
                out.append(Accumulation(xl, "gated", steps, xl,
                                        {p.optimizer_step_target(e.event) for e in steps}))
            continue
        parent = xl.parent
        node = xl.loop.node
        if parent is None or not isinstance(node, cst.For):
            continue
        if not (isinstance(node.iter, cst.Call) and dotted_name(node.iter.func) == "range") and \
                not _micro_batches(node.iter):
            continue
        after = False
        later: list[XEvent] = []
        for e, path in parent.walk():
            if path and path[0] is xl:
                after = True
            elif after and not path and p.optimizer_step_target(e.event):
                later.append(e)
        if later:
            out.append(Accumulation(xl, "inner", later, parent,
                                    {p.optimizer_step_target(e.event) for e in later}))
    setattr(p, _CACHE_ATTR, out)
    return out
