"""Resolve names to qualified names from a module's import statements alone.

This replaces libcst's generic QualifiedNameProvider on the hot path: the program model only
needs to know what the few torch (and friends) names in a file refer to, and the import
statements say that.
"""

from __future__ import annotations

import libcst as cst

# Names that a star import from these modules brings in, for the classes rules care about.
_STAR_EXPORTS = {
    "torch.optim": {
        "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
        "LBFGS", "SparseAdam", "ASGD", "Rprop", "Adafactor", "Muon",
    },
    "torch.optim.lr_scheduler": {
        "StepLR", "MultiStepLR", "ExponentialLR", "ReduceLROnPlateau", "PolynomialLR",
        "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "CyclicLR", "LambdaLR",
        "MultiplicativeLR", "LinearLR", "ConstantLR", "SequentialLR", "ChainedScheduler",
    },
    "torch.nn": {"Module", "Linear", "Conv2d", "CrossEntropyLoss", "BCEWithLogitsLoss", "MSELoss"},
}


def dotted_name(node: cst.BaseExpression) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    # exact type tests: libcst's node classes are final, and isinstance on them takes the slow
    # ABC path (this runs hundreds of thousands of times per project)
    while type(node) is cst.Attribute:
        parts.append(node.attr.value)
        node = node.value
    if type(node) is cst.Name:
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def _module_name(node: cst.BaseExpression | None) -> str:
    if node is None:
        return ""
    return dotted_name(node) or ""


class ImportMap:
    """Maps local names bound by import statements to the dotted names they stand for."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []
        # local names bound to modules of the user's project (recipecheck.program.project):
        # they stay unresolved here, like the file's own names, and the project link follows them
        self.project: dict = {}

    def add(self, node: cst.Import | cst.ImportFrom) -> None:
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = _module_name(alias.name)
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    if alias.asname.name.value not in self.project:
                        self.aliases[alias.asname.name.value] = full
                else:
                    top = full.split(".", 1)[0]
                    if top not in self.project:
                        self.aliases.setdefault(top, top)
            return
        if node.relative:  # relative imports refer to the user's own package
            return
        module = _module_name(node.module)
        if isinstance(node.names, cst.ImportStar):
            self.star_modules.append(module)
            return
        for alias in node.names:
            name = _module_name(alias.name)
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            if local in self.project:
                continue
            self.aliases[local] = f"{module}.{name}" if module else name

    def resolve_dotted(self, dotted: str | None) -> str | None:
        """`optim.SGD` -> `torch.optim.SGD` when `optim` was imported from torch."""
        if not dotted:
            return None
        head, _, rest = dotted.partition(".")
        target = self.aliases.get(head)
        if target is None:
            for module in self.star_modules:
                if head in _STAR_EXPORTS.get(module, ()):
                    target = f"{module}.{head}"
                    break
        if target is None:
            return None
        return f"{target}.{rest}" if rest else target

    def resolve(self, node: cst.BaseExpression) -> str | None:
        return self.resolve_dotted(dotted_name(node))
