"""Lint one source text, or many files in parallel with a content-hash cache.

One parse and one traversal (the program model) per file; every active rule then queries the
model. Positions are computed only for the nodes that were reported, so clean files never pay
for position metadata.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
import sys
import threading
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from recipecheck import __version__
from recipecheck.finding import Finding, Fix, Severity
from recipecheck.rule import Context, FixSpec, Report, Rule, all_rules, options_for
from recipecheck.suppression import find_noqa, has_skip_file


class _Lazy:
    """A module imported on first attribute use: a one-file lint that hits the cache never
    pays for libcst and the program model (~0.3 s)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


cst = _Lazy("libcst")
_cst_metadata = _Lazy("libcst.metadata")
_program_model = _Lazy("recipecheck.program.model")

SYNTAX_CODE = "RC900"
UNUSED_NOQA_CODE = "RC901"


@dataclass
class RuleSet:
    """The active rules for one configuration, with their options (picklable by code)."""

    codes: tuple[str, ...]
    options: dict[str, dict] = field(default_factory=dict)

    def instantiate(self) -> list[Rule]:
        by_code = {r.CODE: r for r in all_rules()}
        return [by_code[c](options_for(by_code[c], self.options.get(c))) for c in self.codes
                if c in by_code]

    def key(self) -> str:
        data = json.dumps([self.codes, self.options], sort_keys=True, default=str)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    notice: str | None = None  # the file was skipped: why
    errors: list[str] = field(default_factory=list)  # internal errors (a rule crashed)
    fixed_source: str | None = None
    syntax_error: tuple[int, int, str] | None = None  # (line, column, reason): not parsed


def _rule_meta(code: str):
    for r in all_rules():
        if r.CODE == code:
            return r
    raise KeyError(code)


def _finding(code: str, path: str, line: int, col: int, end_line: int, end_col: int, message: str,
             fix: Fix | None = None, severity: Severity | None = None) -> Finding:
    r = _rule_meta(code)
    # the code is shown beside every message: drop a redundant trailing "(RC201)", and the
    # code inside a trailing "(RC602, runtime twin RT103)"
    message = message.removesuffix(f" ({code})").rstrip().replace(f"({code}, ", "(")
    return Finding(code=code, name=r.NAME, severity=severity or r.SEVERITY, path=path, line=line, column=col,
                   end_line=end_line, end_column=end_col, message=message, fix=fix)


def _offset_to_pos(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    col = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, col


class _Positions:
    """Start/end positions of reported nodes.

    Finds the node's text in the source; when the text occurs several times, the node's rank
    among the model's nodes with the same text (calls and assignments are recorded in document
    order) picks the occurrence. libcst's PositionProvider, which costs more than a parse, is
    the fallback for anything else.
    """

    def __init__(self, module: cst.Module, source: str, program=None) -> None:
        self.module = module
        self.source = source
        self.program = program
        self._meta = None
        self._statements: dict[int, tuple] = {}  # top-level statement -> (its metadata, line shift)
        self._excluded: list[tuple[int, int]] | None = None
        # first line of each node's code, and each call node's dotted callee: a text repeated
        # in many places is matched against every peer, each generated once
        self._first: dict[int, str] = {}
        self._dotted: dict[int, str | None] | None = None

    def _excluded_ranges(self) -> list[tuple[int, int]]:
        """Offsets of string and comment tokens (text found there is not code)."""
        if self._excluded is None:
            self._excluded = []
            line_offsets = [0]
            for line in self.source.splitlines(keepends=True):
                line_offsets.append(line_offsets[-1] + len(line))
            try:
                for tok in tokenize.generate_tokens(io.StringIO(self.source).readline):
                    if tok.type in (tokenize.STRING, tokenize.COMMENT) or \
                            tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
                        a = line_offsets[tok.start[0] - 1] + tok.start[1]
                        b = line_offsets[tok.end[0] - 1] + tok.end[1]
                        self._excluded.append((a, b))
            except (tokenize.TokenError, SyntaxError, IndexError):
                pass
        return self._excluded

    def _in_code(self, offsets: list[int]) -> list[int]:
        ranges = self._excluded_ranges()
        return [o for o in offsets if not any(a <= o < b for a, b in ranges)]

    def _occurrences(self, text: str) -> list[int]:
        out = []
        src = self.source
        i = src.find(text)
        while i >= 0:
            before = src[i - 1] if i > 0 else "\n"
            end = i + len(text)
            after = src[end] if end < len(src) else "\n"
            if not (before.isalnum() or before in "_.") and not (after.isalnum() or after == "_"):
                out.append(i)
            i = src.find(text, i + 1)
        return out

    def _peers(self, node: cst.CSTNode, key: str) -> list[cst.CSTNode] | None:
        p = self.program
        if p is None:
            return None
        if isinstance(node, cst.Call):
            # cheap pre-filter on the callee's dotted name before generating any code
            if self._dotted is None:
                self._dotted = {}
                for c in p.calls:
                    self._dotted.setdefault(id(c.node), c.dotted)
            dotted = self._dotted.get(id(node))
            cands = [c.node for c in p.calls if c.dotted == dotted]
        elif isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            targets = {a.target for a in p.assignments if a.node is node}
            cands = [a.node for a in p.assignments if a.target in targets]
            cands = [c for i, c in enumerate(cands) if i == 0 or c is not cands[i - 1]]
        else:
            return None
        return [c for c in cands if type(c) is type(node) and self._first_line_of(c) == key]

    def _first_line_of(self, node: cst.CSTNode) -> str:
        got = self._first.get(id(node))
        if got is None:
            got = self._first[id(node)] = _first_line(self.module.code_for_node(node))
        return got

    def _span(self, offset: int, text: str) -> tuple[int, int, int, int]:
        line, col = _offset_to_pos(self.source, offset)
        if "\n" not in text:
            return line, col, line, col + len(text)
        # libcst renders continuation lines relative to the block: match the last line by content
        end_line = line + text.count("\n")
        last = text.rsplit("\n", 1)[1].strip()
        lines = self.source.splitlines()
        src_last = lines[end_line - 1] if end_line - 1 < len(lines) else ""
        idx = src_last.rfind(last) if last else -1
        end_col = idx + len(last) + 1 if idx >= 0 else len(src_last) + 1
        return line, col, end_line, end_col

    def of(self, node: cst.CSTNode) -> tuple[int, int, int, int]:
        text = self.module.code_for_node(node).strip()
        key = _first_line(text)
        if key:
            occ = self._occurrences(key)
            if len(occ) > 1 and isinstance(node, cst.Call):
                # `train_step(model, batch)` also reads as the signature `def train_step(model,
                # batch)`: that occurrence is no call (without this, the whole file's positions)
                occ = [o for o in occ if not _DEF_BEFORE.search(
                    self.source, self.source.rfind("\n", 0, o) + 1, o)] or occ
            if len(occ) == 1:
                return self._span(occ[0], text)
            if occ:
                peers = self._peers(node, key)
                if peers is not None and len(peers) != len(occ):
                    occ = self._in_code(occ)
                if peers is not None and len(peers) == len(occ):
                    for k, peer in enumerate(peers):
                        if peer is node:
                            return self._span(occ[k], text)
        got = self._in_statement(node) if self._meta is None else None
        if got is not None:
            return got
        if self._meta is None:
            self._meta = _cst_metadata.MetadataWrapper(self.module, unsafe_skip_copy=True).resolve(
                _cst_metadata.PositionProvider)
        rng = self._meta[node]
        return rng.start.line, rng.start.column + 1, rng.end.line, rng.end.column + 1

    def _in_statement(self, node: cst.CSTNode) -> tuple[int, int, int, int] | None:
        """The position from libcst's metadata for the top-level statement holding `node` only
        (the statement's line comes from the module summary): a fraction of the whole file's."""
        from recipecheck.program.nodes import walk
        from recipecheck.program.summary import summary_of

        s = summary_of(self.source)
        if s is None:
            return None
        index = 0  # CPython counts each statement of `a = 1; b = 2` on its own
        for stmt in self.module.body:
            if any(n is node for n in walk(stmt)):
                break
            index += len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1
        else:
            return None
        if index >= len(s["lines"]):
            return None
        cached = self._statements.get(id(stmt))
        if cached is None:
            mini = self.module.with_changes(body=[stmt], header=[], footer=[])
            meta = _cst_metadata.MetadataWrapper(mini, unsafe_skip_copy=True).resolve(
                _cst_metadata.PositionProvider)
            cached = self._statements[id(stmt)] = (meta, s["lines"][index] - meta[stmt].start.line)
        meta, shift = cached
        rng = meta[node]
        return rng.start.line + shift, rng.start.column + 1, rng.end.line + shift, rng.end.column + 1


_DEF_BEFORE = re.compile(r"\b(?:def|class)\s+\Z")


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].rstrip()


# --------------------------------------------------------------------------- deep input

# libcst's native parser and its code generation recurse once per nesting level, on the C stack
# of the calling thread. Every lint runs in one worker thread with a large stack (virtual memory:
# only the pages a deep file touches are committed) and a matching recursion limit, after
# CPython's own parser has accepted the file: what CPython rejects as too deep is never handed
# to libcst, and what it accepts (nesting depth below about 3000) fits in this stack.
_DEEP_STACK_BYTES = 512 * 1024 * 1024
_DEEP_RECURSION_LIMIT = 60_000
_CPYTHON_RECURSION_LIMIT = 1000  # the limit CPython's parser is checked with (its default)
_deep_local = threading.local()
_deep_pool: tuple[int, object] | None = None


def _deep_executor():
    global _deep_pool
    from concurrent.futures import ThreadPoolExecutor

    if _deep_pool is None or _deep_pool[0] != os.getpid():  # a forked worker has no threads
        old = threading.stack_size()
        try:
            threading.stack_size(_DEEP_STACK_BYTES)
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recipecheck-deep")
            pool.submit(lambda: None).result()  # start the thread while the size is set
        except (ValueError, RuntimeError):  # the platform refuses the size: run inline
            pool = None
        finally:
            threading.stack_size(old)
        _deep_pool = (os.getpid(), pool)
    return _deep_pool[1]


def _in_deep(fn, *args, **kw):
    _deep_local.active = True
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _DEEP_RECURSION_LIMIT))
    try:
        return fn(*args, **kw)
    finally:
        sys.setrecursionlimit(old)
        _deep_local.active = False


def run_deep(fn, *args, **kw):
    """Run `fn` in the large-stack lint thread (directly when already there)."""
    if getattr(_deep_local, "active", False):
        return fn(*args, **kw)
    pool = _deep_executor()
    if pool is None:
        return fn(*args, **kw)
    return pool.submit(_in_deep, fn, *args, **kw).result()


_TOO_DEEP_MESSAGES = ("too many nested parentheses", "too many levels of indentation",
                      "too many statically nested blocks", "too complex", "too many nested")


def too_deep_for_parser(text: str) -> tuple[int, int, str] | None:
    """(line, column, reason) when CPython's parser rejects `text` for its nesting depth.

    CPython's parser (C, with its default limits) is several times faster than libcst's and
    has explicit depth limits; libcst's has none and overflows the stack instead, so this
    check runs first. Other syntax errors return None: libcst reports those itself.
    """
    old = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(_CPYTHON_RECURSION_LIMIT)
    except RecursionError:  # called from deep inside a stack: check with the current limit
        old = None
    try:
        tree = compile(text, "<recipecheck>", "exec", flags=0x400, dont_inherit=True)  # PyCF_ONLY_AST
    except RecursionError:
        return 1, 1, "it is nested too deeply for Python's parser (maximum recursion depth exceeded)"
    except MemoryError:
        return 1, 1, "it is too large or nested too deeply for Python's parser (out of memory)"
    except SyntaxError as exc:
        msg = str(exc.msg or "")
        if any(m in msg for m in _TOO_DEEP_MESSAGES):
            return exc.lineno or 1, max(exc.offset or 1, 1), f"Python's parser rejects it: {msg}"
        return None
    except (ValueError, TypeError):
        return None
    finally:
        if old is not None:
            sys.setrecursionlimit(old)
    if len(text) < _MIN_DEEP_TEXT:
        return None
    nodes, depth = _ast_size(tree)
    if depth > MAX_PARSE_DEPTH:
        return 1, 1, (f"it is nested {depth} levels deep, more than the linter's parser handles "
                      f"({MAX_PARSE_DEPTH}; libcst's time and memory grow with the square of it)")
    if nodes > MAX_PARSE_NODES:
        return 1, 1, (f"it has more than {MAX_PARSE_NODES} syntax nodes, more than the linter's "
                      "parser handles in bounded memory")
    return None


# Beyond these, libcst's parse alone takes over a gigabyte (nested ternaries: memory grows with
# the square of the depth; about 3.5 KB per syntax node otherwise) or minutes (chains).
MAX_PARSE_DEPTH = 1200
MAX_PARSE_NODES = 200_000
_MIN_DEEP_TEXT = 2 * MAX_PARSE_DEPTH  # a shorter text cannot nest that deep


def _ast_size(tree) -> tuple[int, int]:
    """(number of nodes, depth) of a CPython AST, iteratively."""
    import ast

    children = ast.iter_child_nodes
    nodes = depth = 0
    limit = MAX_PARSE_NODES
    stack = [(tree, 1)]
    pop, extend = stack.pop, stack.extend
    If = ast.If
    while stack:
        node, d = pop()
        nodes += 1
        if nodes > limit:  # enough to say no: stop counting
            break
        if d > depth:
            depth = d
        if type(node) is If and len(node.orelse) == 1 and type(node.orelse[0]) is If:
            # an `elif` is a sibling branch to libcst (cheap at any length), not a level
            extend((c, d + 1) for c in children(node) if c is not node.orelse[0])
            stack.append((node.orelse[0], d))
            continue
        d += 1
        extend((c, d) for c in children(node))
    return nodes, depth


def decode_source(data: bytes) -> tuple[str | None, Finding | None, str | None]:
    """(text, RC900 finding, skip notice): exactly one of them is set."""
    if b"\x00" in data:
        return None, None, "binary file (contains NUL bytes)"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        return None, ("encoding", 1, 1, f"cannot determine the file's encoding: {exc}"), None
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        start = getattr(exc, "start", 0)
        line = data.count(b"\n", 0, start) + 1
        col = start - (data.rfind(b"\n", 0, start) + 1) + 1
        return None, ("encoding", line, col, f"file is not valid {encoding}: {exc.reason if hasattr(exc, 'reason') else exc}"), None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, None, None


def lint_source(source: str | bytes, path: str, rules: list[Rule], *, ignore: Iterable[str] = (),
                max_file_size: int = 5_000_000, fix: str | None = None,
                describe_fixes: bool = True) -> FileResult:
    """Lint one file's content. Never raises for bad input: that becomes RC900 or a notice.

    `fix` is None (report only), "safe" or "unsafe" (apply fixes up to that safety).
    `describe_fixes=False` skips computing each fix's text edit (it costs a code generation of
    the file); the finding still says whether a fix exists and how safe it is.
    """
    return run_deep(_lint_source, source, path, rules, ignore=ignore, max_file_size=max_file_size,
                    fix=fix, describe_fixes=describe_fixes)


def _lint_source(source, path, rules, *, ignore, max_file_size, fix, describe_fixes) -> FileResult:
    result = FileResult(path=path)
    size = len(source.encode("utf-8", "surrogatepass")) if isinstance(source, str) else len(source)
    if size > max_file_size:
        result.notice = f"file is larger than max-file-size ({size} > {max_file_size} bytes)"
        return result
    ignored = tuple(ignore)
    rules = [r for r in rules if not _matches(r.CODE, ignored)]
    active = {r.CODE for r in rules}
    if isinstance(source, str):  # already decoded (with the file's own encoding): never again
        text, bad, notice = source.removeprefix("\ufeff"), None, None
        if "\x00" in text:
            notice = "binary file (contains NUL bytes)"
    else:
        text, bad, notice = decode_source(source)
    if notice:
        result.notice = notice
        return result
    if bad is not None:
        if SYNTAX_CODE in active:
            _, line, col, msg = bad
            result.findings.append(_finding(SYNTAX_CODE, path, line, col, line, col, f"{msg} (RC900)"))
        return result
    assert text is not None
    if has_skip_file(text):
        return result
    from recipecheck.program.summary import too_deep  # the check, kept with the summary

    deep = too_deep(text)
    if deep is not None:
        if SYNTAX_CODE in active:
            line, col, why = deep
            result.findings.append(_finding(SYNTAX_CODE, path, line, col, line, col,
                                            f"the file was not linted: {why} (RC900)"))
        return result
    try:
        module = _known_parse(path, text) or cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        line, col = exc.raw_line, exc.raw_column + 1
        reason = str(exc.message).strip().splitlines()[0] if exc.message else "invalid syntax"
        try:  # CPython's parser gives the more precise position and message
            compile(text, path, "exec", dont_inherit=True, flags=0x400)  # PyCF_ONLY_AST
            # Python accepts it: a limit of libcst's parser (e.g. thousands of joined strings)
            reason = f"the linter's parser (libcst) cannot read it although Python accepts it: {reason}"
        except SyntaxError as py_exc:
            if py_exc.lineno:
                line, col = py_exc.lineno, max(py_exc.offset or 1, 1)
                reason = py_exc.msg
        except (ValueError, RecursionError, MemoryError):
            pass
        result.syntax_error = (line, col, reason)
        if SYNTAX_CODE in active:
            result.findings.append(_finding(
                SYNTAX_CODE, path, line, col, line, col,
                f"{'' if reason.startswith('the linter') else 'syntax error, '}the file was not linted: "
                f"{reason}"))
        return result
    except (RecursionError, MemoryError, ValueError, Exception) as exc:  # libcst internal limits
        if SYNTAX_CODE in active:
            result.findings.append(_finding(
                SYNTAX_CODE, path, 1, 1, 1, 1,
                f"the file could not be parsed ({type(exc).__name__}): not linted"))
        return result

    findings, fixed = _run_rules(module, text, path, rules, active, set(ignored), result, fix,
                                 describe_fixes)
    result.findings = findings
    result.fixed_source = fixed
    return result


def _run_rules(module, text, path, rules, active, ignore, result, fix_mode, describe_fixes=True):
    try:
        program = _project_program(module, text, path)
    except RecursionError:
        result.errors.append(f"{path}: the file is nested too deeply to analyse")
        return [], None
    except Exception as exc:  # an internal error must never lose the other files
        result.errors.append(f"{path}: internal error while building the program model: "
                             f"{type(exc).__name__}: {exc}")
        return [], None
    ctx = Context(path, text, module, program)
    for rule in rules:
        if rule.CODE in (SYNTAX_CODE, UNUSED_NOQA_CODE) or rule.CODE in ignore:
            continue
        ctx._rule = rule
        try:
            rule.check(ctx)
        except Exception as exc:
            result.errors.append(f"{path}: internal error in {rule.CODE}: {type(exc).__name__}: {exc}")
    positions = _Positions(module, text, program)
    findings: list[Finding] = []
    reports_by_finding: list[tuple[Finding, Report]] = []
    for rep in _own_reports(module, program, ctx.reports):
        try:
            line, col, end_line, end_col = positions.of(rep.node)
        except Exception as exc:
            result.errors.append(f"{path}: cannot locate a {rep.rule.CODE} finding: {exc}")
            continue
        fix = None
        if rep.fix is not None:
            fix = _describe_fix(module, positions, rep.fix) if describe_fixes else \
                Fix(rep.fix.safety, rep.fix.description, None, None, None, None, None)
        f = _finding(rep.rule.CODE, path, line, col, end_line, end_col, rep.message, fix,
                     rep.severity)
        findings.append(f)
        reports_by_finding.append((f, rep))

    _release_project(program)
    noqa = find_noqa(text)
    kept = []
    for f in findings:
        n = noqa.get(f.line)
        if n is not None and (n.codes is None or f.code in n.codes):
            n.used.add(f.code)
            continue
        kept.append(f)
    if UNUSED_NOQA_CODE in active:
        for n in noqa.values():
            if n.codes is None:
                continue
            unused = [c for c in n.codes if c.startswith("RC") and c in active and c not in n.used
                      and c not in (UNUSED_NOQA_CODE,)]
            unknown = [c for c in n.codes if c.startswith("RC") and _is_unknown(c)]
            for c in unused + unknown:
                if n.line in noqa and any(k.code == UNUSED_NOQA_CODE and k.line == n.line and c in k.message
                                          for k in kept):
                    continue
                why = "no such rule" if c in unknown else f"no {c} finding on this line"
                kept.append(_finding(UNUSED_NOQA_CODE, path, n.line, n.column, n.line, n.end_column,
                                     f"unused suppression `# noqa: {c}` ({why}): remove it so it "
                                     "cannot hide a future finding"))
    kept = [f for f in kept if not _matches(f.code, tuple(ignore))]
    kept.sort(key=Finding.sort_key)

    fixed_source = None
    if fix_mode is not None:
        fixed_source = _apply_one_fix(module, [(f, r) for f, r in reports_by_finding if f in kept],
                                      fix_mode)
    return kept, fixed_source


# --------------------------------------------------------------------------- project plumbing
# (the project link itself lives in recipecheck.program.link; these only connect it to linting)

PROJECT_ENV = "RECIPECHECK_NO_PROJECT"  # set to 1 to lint every file on its own


def _project_program(module, text: str, path: str):
    """The file's program model, linked with the project modules it imports."""
    if os.environ.get(PROJECT_ENV) == "1":
        return _program_model.build_program(module)
    from recipecheck.program.link import build_linked

    return build_linked(module, path, text)


def _known_parse(path: str, text: str):
    """The parse of this content made earlier in the process, when the file was read as another
    file's import (the project link keeps them by content hash)."""
    if os.environ.get(PROJECT_ENV) == "1" or "recipecheck.program.link" not in sys.modules:
        return None
    from recipecheck.program.link import known_parse

    return known_parse(path, text)


def _release_project(program) -> None:
    if getattr(program, "link", None) is not None:
        from recipecheck.program.link import release

        release(program)


def _own_reports(module, program, reports):
    """Reports on the linted file's own nodes: other modules only inform the analysis."""
    if not reports or getattr(program, "link", None) is None or not program.link.programs:
        return reports
    # cheap first: the nodes the model recorded for the file itself
    fast = {id(c.node) for c in program.calls}
    fast.update(id(a.node) for a in program.assignments)
    for f in program.functions.values():
        fast.update(id(e.node) for e in f.events)
        fast.update(id(lp.node) for lp in f.loops)
    if all(id(r.node) in fast for r in reports):
        return reports
    from recipecheck.program.nodes import iter_children

    own: set[int] = set()
    stack = [module]
    while stack:
        n = stack.pop()
        own.add(id(n))
        stack.extend(iter_children(n))
    return [r for r in reports if id(r.node) in own]


def _project_key(data: bytes, path: str) -> str:
    """The neighbours' contents, for the cache key (a cached result is stale when they change)."""
    if os.environ.get(PROJECT_ENV) == "1":
        return ""
    from recipecheck.program.project import dependency_digest

    try:
        text = data.decode("utf-8", "replace")
        if path.endswith(".ipynb"):  # the code cells import the local modules
            from recipecheck.notebook import parse_notebook

            text = parse_notebook(text).source
        return dependency_digest(path, text)
    except Exception:  # a broken file is linted (and reported) anyway; the key just skips it
        return ""


def _matches(code: str, selectors: tuple[str, ...]) -> bool:
    return any(s == "ALL" or code.startswith(s) for s in selectors)


_KNOWN: set[str] | None = None


def _is_unknown(code: str) -> bool:
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = {r.CODE for r in all_rules()}
    return code not in _KNOWN


def _describe_fix(module: cst.Module, positions: _Positions, spec: FixSpec) -> Fix | None:
    """The fix as one text edit: the changed lines of the file and their replacement."""
    try:
        if spec.transform is not None:
            new_module = spec.transform(module)
        else:
            new_module = module.deep_replace(spec.old, spec.new)
        old_lines = module.code.splitlines(keepends=True)
        new_lines = new_module.code.splitlines(keepends=True)
    except Exception:
        return None
    first = 0
    while first < min(len(old_lines), len(new_lines)) and old_lines[first] == new_lines[first]:
        first += 1
    tail = 0
    while tail < min(len(old_lines), len(new_lines)) - first and \
            old_lines[len(old_lines) - 1 - tail] == new_lines[len(new_lines) - 1 - tail]:
        tail += 1
    if first == len(old_lines) == len(new_lines):
        return None
    content = "".join(new_lines[first:len(new_lines) - tail])
    # whole lines: from the start of line first+1 to the start of the first unchanged line
    return Fix(spec.safety, spec.description, first + 1, 1, len(old_lines) - tail + 1, 1, content)


def _apply_one_fix(module: cst.Module, pairs, mode: str) -> str | None:
    allowed = {"safe"} if mode == "safe" else {"safe", "unsafe"}
    for finding, rep in pairs:
        spec = rep.fix
        if spec is None or spec.safety not in allowed:
            continue
        try:
            if spec.transform is not None:
                new_module = spec.transform(module)
            else:
                new_module = module.deep_replace(spec.old, spec.new)
            code = new_module.code
            cst.parse_module(code)  # a fix that does not re-parse is never written
        except Exception:
            continue
        if code != module.code:
            return code
    return None


def fix_source(source: str, path: str, rules: list[Rule], *, mode: str = "safe",
               max_rounds: int = 20, **kw) -> tuple[str, FileResult]:
    """Apply fixes one at a time, re-linting after each, until none applies."""
    current = source
    result = lint_source(current, path, rules, **kw)
    for _ in range(max_rounds):
        nxt = lint_source(current, path, rules, fix=mode, **kw)
        if nxt.fixed_source is None or nxt.fixed_source == current:
            result = lint_source(current, path, rules, **kw)
            break
        current = nxt.fixed_source
    return current, result


# --------------------------------------------------------------------------- files, cache, jobs


def cache_dir() -> Path:
    env = os.environ.get("RECIPECHECK_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("recipecheck"))


@dataclass
class Job:
    path: str  # as given/displayed
    ruleset: RuleSet
    ignore: tuple[str, ...]
    max_file_size: int
    describe_fixes: bool = True


def _cache_key(data: bytes, job: Job) -> str:
    h = hashlib.sha256()
    h.update(_project_key(data, job.path).encode())
    h.update(__version__.encode())
    h.update(job.ruleset.key().encode())
    h.update(",".join(job.ignore).encode())
    h.update(f"{job.max_file_size}:{job.describe_fixes}".encode())
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()


_RULE_CACHE: dict[str, list[Rule]] = {}


def _read_cache(cfile: Path, path: str) -> FileResult | None:
    """A cached result, or None when there is none or it cannot be trusted (any damage)."""
    try:
        if not cfile.is_file():
            return None
        cached = json.loads(cfile.read_text(encoding="utf-8"))
        notice = cached["notice"]
        raw = cached["findings"]
        if not (notice is None or isinstance(notice, str)) or not isinstance(raw, list):
            return None
        findings = [Finding.from_json({**d, "path": path}) for d in raw]
        for f in findings:
            if not (isinstance(f.code, str) and isinstance(f.message, str)
                    and all(type(v) is int for v in (f.line, f.column, f.end_line, f.end_column))):
                return None
        return FileResult(path=path, notice=notice, findings=findings)
    except Exception:  # noqa: BLE001 - corrupt, crafted or unreadable: lint the file again
        return None


def run_job(job: Job, use_cache: bool = True) -> FileResult:
    try:
        data = Path(job.path).read_bytes()
    except OSError as exc:
        return FileResult(path=job.path, notice=f"cannot read file: {exc.strerror or exc}")
    key = _cache_key(data, job) if use_cache else None
    cfile = cache_dir() / __version__ / key[:2] / f"{key}.json" if key else None
    if cfile is not None:
        hit = _read_cache(cfile, job.path)
        if hit is not None:
            return hit
    rk = job.ruleset.key()
    if rk not in _RULE_CACHE:
        _RULE_CACHE[rk] = job.ruleset.instantiate()
    if job.path.endswith(".ipynb"):  # code cells linted as one program, positions per cell
        from recipecheck.notebook import lint_notebook

        res = lint_notebook(data, job.path, _RULE_CACHE[rk], ignore=job.ignore,
                            max_file_size=job.max_file_size)
    else:
        res = lint_source(data, job.path, _RULE_CACHE[rk], ignore=job.ignore,
                          max_file_size=job.max_file_size, describe_fixes=job.describe_fixes)
    if cfile is not None and not res.errors:
        from recipecheck.writing import cache_write

        cache_write(cfile, json.dumps({"notice": res.notice,
                                       "findings": [f.to_json() for f in res.findings]}))
    return res


def _run_job_nocache(job: Job) -> FileResult:
    return run_job(job, use_cache=False)


def _run_job_cache(job: Job) -> FileResult:
    return run_job(job, use_cache=True)


def _run_chunk(fn, jobs: list[Job]) -> list[FileResult]:
    return [fn(j) for j in jobs]


def _crashed(job: Job, detail: str) -> FileResult:
    res = FileResult(path=job.path)
    if SYNTAX_CODE in job.ruleset.codes and not _matches(SYNTAX_CODE, job.ignore):
        res.findings.append(_finding(
            SYNTAX_CODE, job.path, 1, 1, 1, 1,
            f"the parser crashed on this file ({detail}): it was not linted (RC900)"))
    return res


def _isolated(fn, job: Job) -> FileResult:
    """Lint one file in its own process: if the process dies, only this file is lost."""
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("fork")
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_isolated_child, args=(fn, job, writer), daemon=True)
        proc.start()
    except (OSError, ValueError, RuntimeError):
        return _crashed(job, "it could not be linted in a separate process")
    writer.close()
    result = None
    try:
        result = reader.recv()
    except (EOFError, OSError):
        pass
    finally:
        reader.close()
        proc.join()
    if isinstance(result, FileResult):
        return result
    code = proc.exitcode
    detail = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    return _crashed(job, f"the lint process died: {detail}")


def _isolated_child(fn, job: Job, writer) -> None:
    try:
        writer.send(fn(job))
    finally:
        writer.close()


def run_jobs(jobs: list[Job], n_jobs: int = 1, use_cache: bool = True,
             groups: list[int] | None = None) -> list[FileResult]:
    """Lint `jobs`, in `n_jobs` worker processes when more than one.

    `groups` (lengths of consecutive runs of `jobs`, one per worker) pins each run to its own
    process, so that files reading the same project modules share their parses and models;
    without it, chunks go to whichever worker is free. A worker that dies (a parser crash)
    loses only its unfinished chunks: those files are linted again one process each.
    """
    fn = _run_job_cache if use_cache else _run_job_nocache
    if n_jobs <= 1 or len(jobs) < 4:
        return [fn(j) for j in jobs]
    n_jobs = min(n_jobs, len(jobs))
    if groups is None or sum(groups) != len(jobs):
        runs = [jobs]
        size = max(1, len(jobs) // (n_jobs * 4))
    else:
        runs, at = [], 0
        for n in groups:
            runs.append(jobs[at:at + n])
            at += n
        size = max(1, max(groups) // 4)
    chunks = [(k, r[i:i + size]) for k, r in enumerate(runs) for i in range(0, len(r), size)]
    results: list[list[FileResult] | None] = [None] * len(chunks)
    started = False
    # multiprocessing: imported only when parallel
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pools = [ProcessPoolExecutor(max_workers=n_jobs if len(runs) == 1 else 1) for _ in runs]
    try:
        futures: list = []
        for k, c in chunks:
            try:
                futures.append(pools[k].submit(_run_chunk, fn, c))
                started = True
            except BrokenProcessPool:
                futures.append(None)
        for i, fut in enumerate(futures):
            try:
                results[i] = fut.result() if fut is not None else None
            except BrokenProcessPool:
                pass  # a worker died (a parser crash): its chunks are redone one file each
    except BrokenProcessPool:
        pass
    except (OSError, RuntimeError):  # no process support (sandbox): one process
        if not started:
            for pool in pools:
                pool.shutdown(cancel_futures=True)
            return [fn(j) for j in jobs]
    finally:
        for pool in pools:
            pool.shutdown(wait=True)
    out: list[FileResult] = []
    for (_, chunk), got in zip(chunks, results):
        out += got if got is not None else [_isolated(fn, j) for j in chunk]
    return out


def severity_at_least(f: Finding, threshold: Severity) -> bool:
    return f.severity.rank >= threshold.rank
