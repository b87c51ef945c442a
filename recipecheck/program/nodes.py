"""Fast child iteration over libcst trees.

libcst's `node.children` runs a visitor per node and is far too slow for the lint budget;
these helpers read each node type's dataclass fields once and skip the ones that only hold
whitespace, comments and punctuation.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import libcst as cst

_SKIP_FIELDS = frozenset({
    "lpar", "rpar", "leading_lines", "lines_after_decorators", "header", "footer", "comma",
    "semicolon", "colon", "equal", "dot", "asynchronous", "newline", "star",
    "trailing_whitespace", "first_line", "default_indicator", "empty_lines", "lbracket",
    "rbracket", "lbrace", "rbrace", "encoding", "default_newline", "default_indent",
    "has_trailing_newline", "indent", "whitespace", "comparator_whitespace", "last_line",
})
_FIELDS: dict[type, tuple[str, ...]] = {}


def child_fields(t: type) -> tuple[str, ...]:
    names = _FIELDS.get(t)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(t)
                      if f.name not in _SKIP_FIELDS and not f.name.startswith("whitespace"))
        _FIELDS[t] = names
    return names


# CSTNode is an ABC: `isinstance(x, cst.CSTNode)` takes the slow ABC path on every call, and
# tree walks make millions of them. The answer per concrete type never changes.
_IS_NODE: dict[type, bool] = {}


def is_node_type(t: type) -> bool:
    got = _IS_NODE.get(t)
    if got is None:
        got = _IS_NODE[t] = issubclass(t, cst.CSTNode)
    return got


def iter_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The syntactic children of `node` in source order (no whitespace or punctuation)."""
    is_node = _IS_NODE.get
    for name in child_fields(type(node)):
        v = getattr(node, name)
        tv = type(v)
        k = is_node(tv)
        if k is None:
            k = is_node_type(tv)
        if k:
            yield v
        elif tv is tuple or tv is list:
            for x in v:
                kx = is_node(type(x))
                if kx is None:
                    kx = is_node_type(type(x))
                if kx:
                    yield x


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node under `node`, itself included (pre-order, no whitespace or punctuation)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        children = list(iter_children(n))
        children.reverse()
        stack.extend(children)


def statements(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """`node` and the statements under it: compound statements (and their `else`/`except`
    parts) and the small statements of each line (`x += y`, `f()`), through nested blocks but
    never into expressions, nor into the functions and classes defined there."""
    stack = [node]
    while stack:
        n = stack.pop()
        t = type(n)
        if t is cst.FunctionDef or t is cst.ClassDef:
            continue
        if t is cst.SimpleStatementLine or t is cst.SimpleStatementSuite:
            yield from n.body
            continue
        yield n
        for name in ("body", "handlers", "orelse", "finalbody", "cases"):
            child = getattr(n, name, None)
            if child is None:
                continue
            if type(child) is list or type(child) is tuple:
                stack.extend(child)
            elif type(child) is cst.IndentedBlock:
                stack.extend(child.body)
            else:
                stack.append(child)


def call_arg(call: cst.Call, keyword: str | None, position: int | None = None) -> cst.BaseExpression | None:
    """The argument passed as `keyword=` or at 0-based `position`; None when absent or when a
    `*args` before it makes the position unknowable."""
    pos = 0
    for a in call.args:
        if a.keyword is not None:
            if keyword is not None and a.keyword.value == keyword:
                return a.value
        elif a.star:
            return None
        else:
            if position is not None and pos == position:
                return a.value
            pos += 1
    return None


def bind_arguments(call: cst.Call, params: list[str], skip_self: bool) -> list[tuple[str, cst.BaseExpression]]:
    """Pair a call's arguments with the callee's parameter names (stops at `*args`)."""
    names = list(params)
    if skip_self and names and names[0] in ("self", "cls"):
        names = names[1:]
    out = []
    pos = 0
    for a in call.args:
        if a.star:
            break
        if a.keyword is not None:
            out.append((a.keyword.value, a.value))
        elif pos < len(names):
            out.append((names[pos], a.value))
            pos += 1
    return out


def literal_number(node: cst.CSTNode | None, *, bools: bool = False) -> float | None:
    """The value of an int/float literal (with an optional unary minus), else None; with
    `bools`, True/False count as 1.0/0.0."""
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        v = literal_number(node.expression, bools=bools)
        return None if v is None else -v
    if isinstance(node, (cst.Integer, cst.Float)):
        try:
            return float(node.evaluated_value)
        except (ValueError, TypeError):
            return None
    if bools and isinstance(node, cst.Name) and node.value in ("True", "False"):
        return 1.0 if node.value == "True" else 0.0
    return None
