"""Rule reference for `rules`, `explain` and the generated docs: RC rules and RT checks.

Runtime checks live in `recipecheck.runtime`, which imports torch. Their metadata (code, name,
severity, static twin) and manuals (module docstrings of `runtime/checks/rt*.py`, and the
sanity suite's bullets in `runtime/sanity.py`) are read from the source with `ast`, without
executing it, so `recipecheck explain RT104` works where torch is not installed.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

RT_RE = re.compile(r"^RT\d{3}$")
DOCS_COMMAND = "python scripts/update_docs.py"


@dataclass(frozen=True)
class RuntimeCheckInfo:
    code: str
    name: str
    severity: str
    static_twin: str | None
    summary: str
    doc: str  # the manual body (markdown-ish text)
    sanity: bool  # part of the sanity suite (`recipecheck run --sanity`)
    settings: tuple[tuple[str, object], ...] = ()  # thresholds: class attributes, overridable
    fix: str = ""  # the remedy the run summary prints (runtime/report.py DEFAULT_FIXES)

    def fix_text(self) -> str:
        return f"How to fix: {self.fix}." if self.fix else ""

    def settings_text(self) -> str:
        if not self.settings:
            return ""
        items = ", ".join(f"{k} = {v!r}" for k, v in self.settings)
        return f"Thresholds (class attributes of the check, settable as options): {items}."

    def manual(self) -> str:
        twin = f"\nStatic twin: {self.static_twin} (`recipecheck explain {self.static_twin}`)." \
            if self.static_twin else ""
        how = "`recipecheck run --sanity`" if self.sanity else "`recipecheck run` and the monitor API"
        body = "\n\n".join(x for x in (self.summary[:1].upper() + self.summary[1:] + ".",
                                        self.doc, self.fix_text(), self.settings_text())
                             if x.strip())
        return (f"{self.code} ({self.name}) [{self.severity}], runtime check, found by {how}."
                f"{twin}\n\n{body}\n")


def runtime_root() -> Path | None:
    """The folder of `recipecheck.runtime`, found without importing it (nor torch)."""
    from importlib.util import find_spec

    try:
        spec = find_spec("recipecheck.runtime")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if Path(loc, "checks").is_dir():
            return Path(loc)
    return None


def _class_attrs(tree: ast.Module) -> list[dict]:
    out = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                    isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Constant):
                attrs[stmt.targets[0].id] = stmt.value.value
        if isinstance(attrs.get("code"), str) and RT_RE.match(attrs["code"]):
            out.append(attrs)
    return out


_NOT_SETTINGS = {"code", "name", "severity", "static_twin", "model_inputs", "series"}


def _split_doc(doc: str, code: str, name: str) -> tuple[str, str]:
    """(one-line summary, body) of a module docstring that starts `RT104 name: summary`."""
    doc = inspect.cleandoc(doc)
    first, _, rest = doc.partition("\n\n")
    first = " ".join(first.split())
    first = re.sub(rf"^{code}\s+{re.escape(name)}\s*:\s*", "", first)
    return first.replace("``", "`").rstrip("."), rest.strip()


def _sanity_bullets(doc: str) -> dict[str, tuple[str, str]]:
    """`* **RT102 name**: text` bullets of the sanity module's docstring -> (name, text)."""
    out = {}
    for m in re.finditer(r"^\* \*\*(RT\d{3}) ([a-z0-9-]+)\*\*: (.*?)(?=^\* \*\*|^\S|\Z)",
                         inspect.cleandoc(doc) + "\n", re.M | re.S):
        out[m.group(1)] = (m.group(2), " ".join(m.group(3).split()))
    return out


def _sanity_catalog(tree: ast.Module, name: str = "CATALOG") -> dict:
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else \
            (node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return {}
    return {}


def _fill(text: str) -> str:
    return textwrap.fill(text, 96, break_on_hyphens=False, break_long_words=False)


@lru_cache(maxsize=1)
def runtime_checks() -> tuple[RuntimeCheckInfo, ...]:
    """Every RT code: the monitor's check classes plus the sanity-suite checks, by code."""
    root = runtime_root()
    if root is None:
        return ()
    found: dict[str, RuntimeCheckInfo] = {}
    for path in sorted((root / "checks").glob("rt*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree, clean=False) or ""
        for attrs in _class_attrs(tree):
            code, name = attrs["code"], attrs.get("name", "")
            summary, body = _split_doc(doc, code, name)
            settings = tuple((k, v) for k, v in attrs.items() if k not in _NOT_SETTINGS
                             and not k.startswith("_") and isinstance(v, (int, float))
                             and not isinstance(v, bool))
            found[code] = RuntimeCheckInfo(code, name, attrs.get("severity", "warning"),
                                           attrs.get("static_twin"), summary, body, False, settings)
    fixes = _module_dict(root / "report.py", "DEFAULT_FIXES")
    sanity_path = root / "sanity.py"
    if sanity_path.is_file():
        tree = ast.parse(sanity_path.read_text(encoding="utf-8"))
        bullets = _sanity_bullets(ast.get_docstring(tree, clean=False) or "")
        for code, (name, severity, twin) in _sanity_catalog(tree).items():
            text = bullets.get(code, ("", ""))[1]
            if code in found:  # also a monitor check (RT101): add what the sanity run does
                info = found[code]
                found[code] = RuntimeCheckInfo(
                    info.code, info.name, info.severity, info.static_twin, info.summary,
                    (f"{info.doc}\n\n" + _fill(
                        f"In the sanity suite (`recipecheck run --sanity`): {text}")).strip(),
                    False, info.settings)
            else:
                found[code] = RuntimeCheckInfo(code, name, severity, twin,
                                               name.replace("-", " "), _fill(text[:1].upper() + text[1:]), True)
    return tuple(replace(found[c], fix=str(fixes.get(c, ""))) for c in sorted(found))


def _module_dict(path: Path, name: str) -> dict:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return {}
    return _sanity_catalog(tree, name)


def runtime_check(code: str) -> RuntimeCheckInfo | None:
    code = code.strip().upper()
    return next((c for c in runtime_checks() if c.code == code), None)


# --------------------------------------------------------------------------- markdown


def _md_escape_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def rule_markdown(rule) -> str:
    """One RC rule's page: metadata table, then its manual (the docstring, already markdown)."""
    doc = inspect.cleandoc(rule.__doc__ or "")
    doc = re.sub(r"^## ", "### ", doc, flags=re.M)
    twin = f"[{rule.STATIC_TWIN}]({rule.STATIC_TWIN}.md)" if rule.STATIC_TWIN else "none"
    return (f"# {rule.CODE} {rule.NAME}\n\n{rule.MESSAGE[:1].upper() + rule.MESSAGE[1:]}.\n\n"
            "| severity | on by default | fix | runtime twin |\n|---|---|---|---|\n"
            f"| {rule.SEVERITY.value} | {'yes' if rule.enabled_by_default() else 'no'} | "
            f"{rule.FIX or 'none'} | {twin} |\n\n{doc}\n")


def check_markdown(info: RuntimeCheckInfo) -> str:
    twin = f"[{info.static_twin}]({info.static_twin}.md)" if info.static_twin else "none"
    how = "`recipecheck run --sanity`" if info.sanity else "`recipecheck run`, the monitor API"
    return (f"# {info.code} {info.name}\n\n{info.summary[:1].upper() + info.summary[1:]}.\n\n"
            "| severity | found by | static twin |\n|---|---|---|\n"
            f"| {info.severity} | {how} | {twin} |\n\n{info.doc}\n\n{info.fix_text()}\n\n"
            f"{info.settings_text()}\n"
            ).replace("\n\n\n\n", "\n\n").replace("\n\n\n", "\n\n").rstrip("\n") + "\n"


def markdown_for(code: str) -> str | None:
    from recipecheck.rule import rule_by_code

    code = code.strip().upper()
    rule = rule_by_code(code) if code.startswith("RC") else None
    if rule is not None:
        return rule_markdown(rule)
    info = runtime_check(code) if code.startswith("RT") else None
    return check_markdown(info) if info is not None else None


def rule_table() -> str:
    """The README's rule table (RC rules)."""
    from recipecheck.rule import rule_index

    lines = ["| code | name | severity | default | fix | summary |", "|---|---|---|---|---|---|"]
    for r in rule_index():
        lines.append(f"| [{r.CODE}](docs/rules/{r.CODE}.md) | {r.NAME} | {r.SEVERITY.value} | "
                     f"{'on' if r.enabled_by_default() else 'off'} | {r.FIX or ''} | "
                     f"{_md_escape_cell(r.MESSAGE)} |")
    return "\n".join(lines)


def runtime_table(link_prefix: str = "docs/rules/") -> str:
    lines = ["| code | name | severity | static twin | summary |", "|---|---|---|---|---|"]
    for c in runtime_checks():
        lines.append(f"| [{c.code}]({link_prefix}{c.code}.md) | {c.name} | {c.severity} | "
                     f"{c.static_twin or ''} | {_md_escape_cell(c.summary)} |")
    return "\n".join(lines)


def index_markdown() -> str:
    from recipecheck.rule import rule_index

    rc = ["| code | name | severity | default | fix | summary |", "|---|---|---|---|---|---|"]
    for r in rule_index():
        rc.append(f"| [{r.CODE}]({r.CODE}.md) | {r.NAME} | {r.SEVERITY.value} | "
                  f"{'on' if r.enabled_by_default() else 'off'} | {r.FIX or ''} | "
                  f"{_md_escape_cell(r.MESSAGE)} |")
    return ("# recipecheck rule reference\n\n"
            f"Generated from the rule manuals and the runtime check classes by `{DOCS_COMMAND}`;"
            " do not edit by hand. The specification these implement is "
            "[../catalog.md](../catalog.md).\n\n"
            "## Static rules (`recipecheck lint`)\n\n" + "\n".join(rc) + "\n\n"
            "## Runtime checks (`recipecheck run`)\n\n" + runtime_table("") + "\n")


def generated_docs() -> dict[str, str]:
    """Relative path (from the repository root) -> content of every generated docs page."""
    from recipecheck.rule import all_rules

    out = {"docs/rules/index.md": index_markdown()}
    for r in all_rules():
        out[f"docs/rules/{r.CODE}.md"] = rule_markdown(r)
    for c in runtime_checks():
        out[f"docs/rules/{c.code}.md"] = check_markdown(c)
    return out


def update_readme(text: str) -> str:
    """The README with its generated tables replaced."""
    for marker, table in (("rules-table", rule_table()), ("runtime-table", runtime_table())):
        text = re.sub(rf"(<!-- {marker}-start -->\n).*?(<!-- {marker}-end -->)",
                      lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text, flags=re.S)
    return text
