"""The rule base class, the per-file context rules report through, and rule discovery."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from recipecheck.finding import Severity

if TYPE_CHECKING:  # libcst and the program model cost ~0.2 s to import: not on a cache hit
    import libcst as cst

    from recipecheck.program.model import ProgramModel

MANUAL_HEADINGS = (
    "What it does", "Why is this bad?", "Known problems", "Example", "Use instead",
    "Options", "Fix safety", "References",
)
CODE_RE = re.compile(r"^RC\d{3}$")


class _FieldSpec:
    """What `Field(...)` declares: given to pydantic only when options are validated."""

    __slots__ = ("default", "kwargs")

    def __init__(self, default: Any, kwargs: dict[str, Any]) -> None:
        self.default = default
        self.kwargs = kwargs


def Field(default: Any = ..., **kwargs: Any) -> Any:  # noqa: N802 (pydantic's name)
    """`pydantic.Field` for a rule's options, declared without importing pydantic (~0.07 s, a
    third of a one-file lint's start-up): pydantic validates only options a config sets."""
    return _FieldSpec(default, kwargs)


def _default_of(d: Any) -> Any:
    if isinstance(d, _FieldSpec):
        return d.default
    if type(d).__name__ == "FieldInfo":  # a rule that still uses pydantic's own Field
        return d.get_default(call_default_factory=True)
    return d


class _OptionsMeta(type):
    @property
    def model_fields(cls) -> dict[str, Any]:
        """The pydantic fields (their aliases name the options in a config file)."""
        return cls._validator().model_fields


class RuleOptions(metaclass=_OptionsMeta):
    """Base for a rule's options: typed fields with defaults (`x: float = Field(1.0, alias="x",
    gt=0)`). Built from the defaults alone without pydantic; options a config sets are
    validated by a pydantic model made from the same declarations (unknown keys are an error).
    Frozen, like the pydantic model it stands for."""

    _fields: ClassVar[dict[str, tuple[Any, Any]]] = {}
    _model: ClassVar[Any] = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        fields = dict(getattr(cls, "_fields", {}))
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            if name.startswith("_"):
                continue
            fields[name] = (ann, cls.__dict__.get(name, ...))
        cls._fields = fields
        cls._model = None

    def __init__(self, **raw: Any) -> None:
        if raw:
            m = type(self)._validator()(**raw)
            values = {k: getattr(m, k) for k in self._fields}
        else:
            values = {}
            for k, (_, d) in self._fields.items():
                v = _default_of(d)
                if v is ...:  # a required option: pydantic says so
                    values = {k: getattr(type(self)._validator()(), k) for k in self._fields}
                    break
                values[k] = v
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, k) == getattr(other, k) for k in self._fields)

    def __hash__(self) -> int:
        return hash((type(self), tuple(getattr(self, k) for k in self._fields)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self._fields)})"

    @classmethod
    def _validator(cls) -> Any:
        if cls.__dict__.get("_model") is None:
            from pydantic import ConfigDict, create_model
            from pydantic import Field as _PField

            spec = {}
            for k, (ann, d) in cls._fields.items():
                if isinstance(d, _FieldSpec):
                    d = _PField(d.default, **d.kwargs)
                spec[k] = (ann, d)
            cls._model = create_model(
                cls.__name__, __config__=ConfigDict(extra="forbid", populate_by_name=True, frozen=True),
                __module__=cls.__module__, **spec)
        return cls._model


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
    Options: ClassVar[type | None] = None
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
        twin = f"\nRuntime twin: {cls.STATIC_TWIN} (`recipecheck explain {cls.STATIC_TWIN}`)." \
            if cls.STATIC_TWIN else ""
        return f"{cls.CODE} ({cls.NAME}) [{cls.SEVERITY.value}]{twin}\n\n{doc}\n"


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


@dataclass(frozen=True)
class RuleMeta:
    """What selection, `rules` and the outputs need of a rule, without importing it."""

    CODE: str
    NAME: str
    SEVERITY: Severity
    DEFAULT: bool
    FIX: str | None
    MESSAGE: str
    STATIC_TWIN: str | None

    def enabled_by_default(self) -> bool:
        return self.DEFAULT

    @classmethod
    def of(cls, r: type[Rule]) -> "RuleMeta":
        return cls(r.CODE, r.NAME, r.SEVERITY, r.enabled_by_default(), r.FIX, r.MESSAGE,
                   r.STATIC_TWIN)


def _rules_fingerprint() -> str | None:
    """Digest of the rule package's files (names, sizes, mtimes): changes when a rule does."""
    import hashlib
    import os
    from importlib.util import find_spec

    from recipecheck import __version__

    try:
        spec = find_spec("recipecheck.rules")
        roots = list(spec.submodule_search_locations or []) if spec else []
    except (ImportError, ValueError):
        return None
    if not roots:
        return None
    h = hashlib.sha256(__version__.encode())
    try:  # the base class decides defaults too
        st = os.stat(__file__)
        h.update(f"{st.st_size}:{st.st_mtime_ns}\0".encode())
    except OSError:
        return None
    for root in sorted(roots):
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    try:
                        st = os.stat(os.path.join(d, name))
                    except OSError:
                        return None
                    h.update(f"{os.path.relpath(os.path.join(d, name), root)}:{st.st_size}:"
                             f"{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:20]


@lru_cache(maxsize=1)
def rule_index() -> tuple[RuleMeta, ...]:
    """Every rule's metadata, sorted by code.

    Importing every rule module pulls in libcst and the program model (most of the start-up
    time of a one-file lint that hits the result cache), so the metadata is kept in the user
    cache directory, keyed by the rule files' fingerprint; discovery still walks the package
    whenever a rule file changes.
    """
    import json
    import os

    fp = _rules_fingerprint()
    cfile = None
    if fp is not None:
        try:
            from recipecheck.engine import cache_dir

            cfile = cache_dir() / "rule-index" / f"{fp}.json"
            raw = json.loads(cfile.read_text(encoding="utf-8"))
            return tuple(RuleMeta(d["code"], d["name"], Severity(d["severity"]), bool(d["default"]),
                                  d["fix"], d["message"], d["static_twin"]) for d in raw)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    metas = tuple(RuleMeta.of(r) for r in all_rules())
    if cfile is not None:
        try:
            cfile.parent.mkdir(parents=True, exist_ok=True)
            tmp = cfile.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps([{"code": m.CODE, "name": m.NAME, "severity": m.SEVERITY.value,
                                        "default": m.DEFAULT, "fix": m.FIX, "message": m.MESSAGE,
                                        "static_twin": m.STATIC_TWIN} for m in metas]),
                           encoding="utf-8")
            os.replace(tmp, cfile)
        except OSError:
            pass
    return metas


def known_codes() -> frozenset[str]:
    return frozenset(m.CODE for m in rule_index())


def select_rules(select: list[str] | None, ignore: list[str], extend_select: list[str]) -> list[RuleMeta]:
    """Resolve codes, prefixes (RC2) and ALL into the active rule set."""

    def matches(code: str, selectors: list[str]) -> bool:
        return any(s == "ALL" or code.startswith(s) for s in selectors)

    rules = rule_index()
    if select is None:
        active = [r for r in rules if r.enabled_by_default()]
    else:
        active = [r for r in rules if matches(r.CODE, select)]
    active += [r for r in rules if r not in active and matches(r.CODE, extend_select)]
    return [r for r in sorted(active, key=lambda r: r.CODE) if not matches(r.CODE, ignore)]


def validate_selector(s: str) -> str:
    """A code, a prefix of at least one rule's code, or ALL; anything else is a usage error.

    An unknown code would otherwise switch every rule off (`--select RC999`) or silently do
    nothing (`--ignore RC999`).
    """
    raw = s
    s = s.strip().upper()
    if not s:
        raise ValueError("empty rule code (expected a code like RC201, a prefix like RC2, or ALL)")
    if s == "ALL":
        return s
    if re.fullmatch(r"RT\d{0,3}", s):
        raise ValueError(f"{raw!r} is a runtime check code (found by `recipecheck run`); "
                         "lint selects RC codes")
    if not re.fullmatch(r"RC\d{0,3}", s):
        raise ValueError(f"{raw!r} is not a rule code, a code prefix like RC2, or ALL")
    codes = known_codes()
    if not any(c.startswith(s) for c in codes):
        near = [c for c in sorted(codes) if len(s) == 5 and c[:4] == s[:4]]
        hint = f" (did you mean {near[0]}?)" if len(near) == 1 else ""
        raise ValueError(f"{raw!r}: no rule has this code{hint}; see `recipecheck rules`")
    return s
def options_for(rule: type[Rule], raw: dict[str, Any] | None) -> RuleOptions | None:
    if rule.Options is None:
        if raw:
            raise ValueError(f"{rule.CODE} has no options")
        return None
    return rule.Options(**(raw or {}))
