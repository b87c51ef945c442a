"""The rule base class, the per-file context rules report through, and rule discovery."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, ClassVar

import libcst as cst
from pydantic import BaseModel, ConfigDict

from recipecheck.finding import Severity
from recipecheck.program.model import ProgramModel

MANUAL_HEADINGS = (
    "What it does", "Why is this bad?", "Known problems", "Example", "Use instead",
    "Options", "Fix safety", "References",
)
CODE_RE = re.compile(r"^RC\d{3}$")


class RuleOptions(BaseModel):
    """Base for a rule's options: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


@dataclass(frozen=True)
class FixSpec:
    """A rewrite of one node; the engine turns it into a text edit and checks it re-parses.

    `transform` rewrites the whole module when a single node replacement is not enough
    (moving a statement, adding an import).
    """

    safety: str  # "safe" | "unsafe"
    description: str
    old: cst.CSTNode | None = None
    new: cst.CSTNode | None = None
    transform: Callable[[cst.Module], cst.Module] | None = None


@dataclass
class Report:
    rule: "Rule"
    node: cst.CSTNode
    message: str
    fix: FixSpec | None = None
    severity: Severity | None = None  # below the rule's SEVERITY where the premise is not shown


class Context:
    """What a rule sees of one file."""

    def __init__(self, path: str, source: str, module: cst.Module, program: ProgramModel) -> None:
        self.path = path
        self.source = source
        self.module = module
        self.program = program
        self.reports: list[Report] = []
        self._rule: Rule | None = None

    def report(self, node: cst.CSTNode, message: str | None = None, fix: FixSpec | None = None,
               severity: Severity | None = None) -> None:
        """Report a finding; `severity` lowers it below the rule's SEVERITY (never raises it)."""
        assert self._rule is not None
        msg = message or self._rule.MESSAGE
        if severity is not None and severity.rank >= self._rule.SEVERITY.rank:
            severity = None
        if not any(r.node is node and r.rule.CODE == self._rule.CODE for r in self.reports):
            self.reports.append(Report(rule=self._rule, node=node, message=msg, fix=fix,
                                       severity=severity))

    def code(self, node: cst.CSTNode) -> str:
        """Source text of a node (one line, collapsed)."""
        return " ".join(self.module.code_for_node(node).split())


class Rule:
    """One static rule. Subclasses live one per file under recipecheck.rules.rcNxx.

    The class docstring is the rule's manual, with the headings in MANUAL_HEADINGS.
    VALID / INVALID are example snippets; every line of an INVALID snippet that must produce
    a finding carries a trailing `# expect: RCxxx` comment.
    """

    CODE: ClassVar[str]
    NAME: ClassVar[str]
    SEVERITY: ClassVar[Severity]
    MESSAGE: ClassVar[str]  # a one-line summary, used when a report gives no specific message
    DEFAULT_ENABLED: ClassVar[bool | None] = None  # None: on unless SEVERITY is info
    FIX: ClassVar[str | None] = None  # "safe" | "unsafe" | None
    Options: ClassVar[type[RuleOptions] | None] = None
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[str, ...]] = ()
    STATIC_TWIN: ClassVar[str | None] = None  # the RT code that sees the same pitfall at runtime

    def __init__(self, options: RuleOptions | None = None) -> None:
        if options is None and self.Options is not None:
            options = self.Options()
        self.options = options

    @classmethod
    def enabled_by_default(cls) -> bool:
        if cls.DEFAULT_ENABLED is not None:
            return cls.DEFAULT_ENABLED
        return cls.SEVERITY is not Severity.INFO

    def check(self, ctx: Context) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def manual(cls) -> str:
        import inspect

        doc = inspect.cleandoc(cls.__doc__ or "")
        return f"{cls.CODE} ({cls.NAME}) [{cls.SEVERITY.value}]\n\n{doc}\n"


@lru_cache(maxsize=1)
def all_rules() -> tuple[type[Rule], ...]:
    """Every rule class found by walking recipecheck.rules, sorted by code."""
    import recipecheck.rules as pkg

    found: dict[str, type[Rule]] = {}
    for info in pkgutil.walk_packages(pkg.__path__, prefix="recipecheck.rules."):
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and \
                    obj.__module__ == mod.__name__ and getattr(obj, "CODE", None):
                if obj.CODE in found and found[obj.CODE] is not obj:
                    raise RuntimeError(f"duplicate rule code {obj.CODE}: {found[obj.CODE]} and {obj}")
                found[obj.CODE] = obj
    return tuple(found[c] for c in sorted(found))


def rule_by_code(code: str) -> type[Rule] | None:
    for r in all_rules():
        if r.CODE == code.upper():
            return r
    return None


def select_rules(select: list[str] | None, ignore: list[str], extend_select: list[str]) -> list[type[Rule]]:
    """Resolve codes, prefixes (RC2) and ALL into the active rule set."""

    def matches(code: str, selectors: list[str]) -> bool:
        return any(s == "ALL" or code.startswith(s) for s in selectors)

    rules = all_rules()
    if select is None:
        active = [r for r in rules if r.enabled_by_default()]
    else:
        active = [r for r in rules if matches(r.CODE, select)]
    active += [r for r in rules if r not in active and matches(r.CODE, extend_select)]
    return [r for r in sorted(active, key=lambda r: r.CODE) if not matches(r.CODE, ignore)]


def validate_selector(s: str) -> str:
    s = s.strip().upper()
    if s == "ALL" or re.fullmatch(r"RC\d{0,3}", s):
        return s
    raise ValueError(f"{s!r} is not a rule code, a code prefix like RC2, or ALL")


def options_for(rule: type[Rule], raw: dict[str, Any] | None) -> RuleOptions | None:
    if rule.Options is None:
        if raw:
            raise ValueError(f"{rule.CODE} has no options")
        return None
    return rule.Options(**(raw or {}))
