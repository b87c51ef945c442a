import re

import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import ProgramModel
from recipecheck.program.nodes import walk
from recipecheck.rule import Context, Rule

# names that say "learning-rate decay" by themselves
_STRONG = re.compile(
    r"^(lr_?decay\w*|decay_?(epoch|epochs|step|steps|every|iter|iters|start|milestones?|rate|factor)|"
    r"lr_?(steps?|milestones?|gamma|step_?size|drop\w*|factor|schedule|decay_?\w*)|"
    r"milestones|lr_?decay_?(epoch|epochs|steps|rate|every))$")
# names that are LR decay only when the help text says so (`--gamma` is often a discount factor)
_WEAK = re.compile(r"(gamma|decay|milestone|step_?size|schedule|drop)")
_NOT_LR = re.compile(r"(weight_?decay|^wd$|ema|layer_?decay|momentum)")
_LR_HELP = re.compile(r"(\blr\b|learning[ _-]?rate)", re.I)
# consumers that only display a value
_DISPLAY = {"print", "str", "repr", "format", "len", "info", "debug", "warning", "log", "write",
            "add_text", "pprint", "echo", "set_description", "set_postfix"}


def _arg_strings(call: cst.Call) -> tuple[list[str], str]:
    flags = []
    help_text = ""
    for a in call.args:
        v = a.value
        if isinstance(v, cst.SimpleString) and isinstance(v.evaluated_value, str):
            if a.keyword is None:
                flags.append(v.evaluated_value)
            elif a.keyword.value == "dest":
                flags = ["--" + v.evaluated_value]
            elif a.keyword.value == "help":
                help_text = v.evaluated_value
        elif isinstance(v, cst.ConcatenatedString) and a.keyword is not None and a.keyword.value == "help":
            help_text = " ".join(s.evaluated_value for s in walk(v)
                                 if isinstance(s, cst.SimpleString) and isinstance(s.evaluated_value, str))
    return flags, help_text


def is_lr_decay_setting(key: str, help_text: str = "") -> bool:
    k = key.lower()
    if _NOT_LR.search(k):
        return False
    if _STRONG.match(k):
        return True
    return bool(_WEAK.search(k)) and bool(_LR_HELP.search(help_text))


def _in_display(node: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> bool:
    n = parents.get(id(node))
    while n is not None:
        if isinstance(n, cst.FormattedString):
            return True
        if isinstance(n, cst.Call):
            d = dotted_name(n.func)
            leaf = d.rsplit(".", 1)[-1] if d else (n.func.attr.value if isinstance(n.func, cst.Attribute) else None)
            return leaf in _DISPLAY
        if isinstance(n, cst.BaseSmallStatement) or isinstance(n, cst.BaseCompoundStatement):
            return False
        n = parents.get(id(n))
    return False


class DeclaredLrDecayUnused(Rule):
    """
    ## What it does
    Flags a learning-rate decay setting the script declares but never uses: an argparse
    option (`--lr_decay`, `--decay_epoch`, `--lr_steps`, `--milestones`, or `--gamma` /
    `--step_size` whose help text speaks of the learning rate) or a module-level constant
    (`LR_DECAY = 0.1`) that no statement of the file reads, other than printing it, in a
    script that builds an optimizer and parses its own arguments. Options read anywhere
    (a scheduler, a manual `param_group["lr"]` update, a helper of the same file) are fine,
    and so are files that hand the whole argument object to code in other modules
    (`create_scheduler(args, optimizer)`), since the reader may live there.

    ## Why is this bad?
    The option documents a schedule the run does not have: the learning rate stays at its
    initial value for the whole run, while the command line, the logs and the paper say
    it decays. A constant LR usually ends at a higher loss than the decayed one (the final
    low-LR phase is where step and cosine schedules gain most of their accuracy), and anyone
    tuning `--decay_epoch` changes nothing. Typically the scheduler was lost when the script
    was copied from a sibling that had one.
    Measured (`recipecheck validate RC207`, seeds 0-4): training loss after 20 epochs (SGD
    lr=0.3, momentum 0.9, batch 20, spiral): 0.181 [0.0831, 0.344] with decay declared, unused
    vs 0.113 [0.0997, 0.137] with StepLR(10, 0.1) applied (mean [min, max]); the claim held on 4
    of 5 seeds.

    ## Known problems
    A setting read through a config system the linter cannot see (`vars(args)` handed to a
    framework, Hydra/YAML configs) is not reported; the file is skipped when the argument
    object leaves it.

    ## Example
    ```python
    parser.add_argument("--decay_epoch", type=int, default=100,
                        help="epoch from which to start lr decay")
    opt = parser.parse_args()
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr)
    # ... no scheduler, no LR update
    ```

    ## Use instead
    ```python
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: 1.0 - max(0, e - opt.decay_epoch) / (opt.n_epochs - opt.decay_epoch))
    ```
    and `scheduler.step()` once per epoch; or remove the option.

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - PyTorch docs, "How to adjust learning rate" (`torch.optim.lr_scheduler`).
    - Related: RC205 no-lr-annealing (a constant LR that nobody declared otherwise).
    """

    CODE = "RC207"
    NAME = "declared-lr-decay-unused"
    SEVERITY = Severity.WARNING
    MESSAGE = "a declared learning-rate decay setting is never used"
    VALID = (
        "import argparse\nimport torch\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--gamma', type=float, default=0.7, help='Learning rate step gamma')\n"
        "args = parser.parse_args()\nopt = torch.optim.Adadelta(model.parameters(), lr=1.0)\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=args.gamma)\n",
        # a discount factor is not an LR decay
        "import argparse\nimport torch\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--gamma', type=float, default=0.99, help='discount factor (default: 0.99)')\n"
        "args = parser.parse_args()\nopt = torch.optim.Adam(policy.parameters(), lr=1e-2)\n",
        # manual decay in a helper of the same file
        "import argparse\nimport torch\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--lr_decay_epochs', type=str, default='120,160')\n"
        "parser.add_argument('--lr_decay_rate', type=float, default=0.1)\n"
        "opt = parser.parse_args()\noptimizer = torch.optim.SGD(model.parameters(), lr=0.05)\n"
        "def adjust_learning_rate(epoch, opt, optimizer):\n"
        "    steps = sum(epoch > int(e) for e in opt.lr_decay_epochs.split(','))\n"
        "    for g in optimizer.param_groups:\n"
        "        g['lr'] = 0.05 * opt.lr_decay_rate ** steps\n",
        # the whole argument object goes to a scheduler factory in another module
        "import argparse\nimport torch\nfrom timm.scheduler import create_scheduler\n"
        "parser = argparse.ArgumentParser()\nparser.add_argument('--decay-rate', type=float, default=0.1)\n"
        "args = parser.parse_args()\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "lr_scheduler, _ = create_scheduler(args, optimizer)\n",
    )
    INVALID = (
        "import argparse\nimport torch\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--lr', type=float, default=0.0002)\n"
        "parser.add_argument('--decay_epoch', type=int, default=100,  # expect: RC207\n"
        "                    help='epoch from which to start lr decay')\n"
        "opt = parser.parse_args()\nprint(opt)\n"
        "optimizer_G = torch.optim.Adam(generator.parameters(), lr=opt.lr, betas=(0.5, 0.999))\n",
        "import argparse\nimport torch\nLR_DECAY = 0.5  # expect: RC207\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--gamma', type=float, default=0.1, help='lr decay factor')  # expect: RC207\n"
        "args = parser.parse_args()\nprint(f'decay {args.gamma}')\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        if not p.constructions("optimizer"):
            return
        parsed = self._parsed_args(p)
        if parsed is None:
            return
        decls = self._declarations(p)
        if not decls:
            return
        parents = _parent_map(ctx.module)
        used = self._uses(p, ctx.module, parents, {n: d for n, d, _ in decls})
        if parsed and self._args_escape(p, parsed):
            decls = [d for d in decls if d[2] == "constant"]
        for key, node, kind in decls:
            if key in used:
                continue
            what = f"`--{key}`" if kind == "option" else f"`{key}`"
            ctx.report(node, (
                f"{what} declares a learning-rate decay, but nothing in this file reads it: no "
                "scheduler or LR update uses it, so the LR never decays as intended; build the "
                "schedule from it or remove it (RC207)"))

    @staticmethod
    def _parsed_args(p: ProgramModel) -> set[str] | None:
        """Names bound to `parser.parse_args()`; None when the file parses nothing (options
        defined here are then read elsewhere), an empty set for constants-only files."""
        names = set()
        has_parser = False
        for a in p.assignments:
            v = a.value
            if isinstance(v, cst.Call):
                d = dotted_name(v.func) or ""
                if d.endswith(("parse_args", "parse_known_args")):
                    names.add(a.target)
        for cs in p.calls:
            if cs.dotted and cs.dotted.endswith("add_argument"):
                has_parser = True
        if has_parser and not names:
            return None
        return names

    @staticmethod
    def _declarations(p: ProgramModel) -> list[tuple[str, cst.CSTNode, str]]:
        out = []
        for cs in p.calls:
            if not cs.dotted or not cs.dotted.endswith("add_argument"):
                continue
            flags, help_text = _arg_strings(cs.node)
            longs = [f for f in flags if f.startswith("--")]
            if not longs:
                continue
            key = longs[0].lstrip("-").replace("-", "_")
            if is_lr_decay_setting(key, help_text):
                out.append((key, cs.node, "option"))
        for a in p.module_function.assignments:
            if a.augmented is None and "." not in a.target and isinstance(a.node, cst.Assign) and \
                    isinstance(a.value, (cst.Integer, cst.Float, cst.List, cst.Tuple)) and \
                    _STRONG.match(a.target.lower()) and not _NOT_LR.search(a.target.lower()):
                out.append((a.target, a.node, "constant"))
        return out

    @staticmethod
    def _uses(p: ProgramModel, module: cst.Module, parents, decls: dict) -> set[str]:
        keys = set(decls)
        declared_nodes = {id(n) for n in decls.values()}
        used = set()
        for n in walk(module):
            if id(n) in declared_nodes:
                continue
            name = None
            if isinstance(n, cst.Attribute) and n.attr.value in keys:
                name = n.attr.value
            elif isinstance(n, cst.Name) and n.value in keys and not _is_store(n, parents):
                name = n.value
            elif isinstance(n, cst.SimpleString) and isinstance(n.evaluated_value, str):
                s = n.evaluated_value.lstrip("-").replace("-", "_")
                if s in keys and not _inside(n, declared_nodes, parents):
                    used.add(s)  # getattr(args, "lr_decay"), cfg["lr_decay"]
                continue
            if name is None or _in_display(n, parents) or _inside(n, declared_nodes, parents):
                continue
            used.add(name)
        return used

    @staticmethod
    def _args_escape(p: ProgramModel, parsed: set[str]) -> bool:
        """The argument object is handed whole to code outside this file (or unpacked)."""
        for cs in p.calls:
            for a in cs.node.args:
                d = dotted_name(a.value)
                inner = a.value
                if isinstance(inner, cst.Call) and dotted_name(inner.func) == "vars":
                    return True
                if d not in parsed:
                    continue
                if a.star:
                    return True
                callee = cs.dotted or ""
                leaf = callee.rsplit(".", 1)[-1]
                if leaf in _DISPLAY:
                    continue
                if callee in p.functions or callee in p.classes or \
                        (callee.startswith("self.") and leaf in {m for c in p.classes.values() for m in c.methods}):
                    continue
                return True
        return False


def _parent_map(module: cst.Module) -> dict[int, cst.CSTNode]:
    from recipecheck.program.nodes import iter_children

    out: dict[int, cst.CSTNode] = {}
    stack = [module]
    while stack:
        n = stack.pop()
        for c in iter_children(n):
            out[id(c)] = n
            stack.append(c)
    return out


def _is_store(n: cst.Name, parents) -> bool:
    parent = parents.get(id(n))
    if isinstance(parent, cst.AssignTarget) and parent.target is n:
        return True
    if isinstance(parent, (cst.AnnAssign, cst.AugAssign)) and parent.target is n:
        return isinstance(parent, cst.AnnAssign)
    return False


def _inside(n: cst.CSTNode, ids: set[int], parents) -> bool:
    p = parents.get(id(n))
    while p is not None:
        if id(p) in ids:
            return True
        p = parents.get(id(p))
    return False
