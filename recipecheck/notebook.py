"""Jupyter notebooks: lint the code cells as one program, map findings back to cells, fix cells.

The code cells are concatenated in order into one Python source, so a model built in cell 2 and
trained in cell 5 is one program to the rules. Each code cell is preceded by a marker comment
line; IPython-only lines (line magics ``%matplotlib inline``, shell escapes ``!pip install``,
help ``obj?``) become ``pass`` placeholders at the same indentation so the source parses and
every line keeps its number, and cells whose cell magic makes the body non-Python (``%%bash``,
``%%writefile``) are blanked the same way. Python-bodied cell magics (``%%time``, ``%%capture``)
keep their body.

Findings are reported with the 1-based index of the cell among *all* cells of the notebook (as
Jupyter and VS Code number them) and the line within that cell: ``nb.ipynb:cell 4:12:5`` in text
output, ``"cell": 4, "line": 12`` in JSON.

The notebook is read and written with ``json`` only (no nbformat dependency): ``--fix``
rewrites the ``source`` of the cells it changed and nothing else, keeps outputs, metadata and
key order, and writes with the indentation the file had (nbformat's is 1).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from recipecheck.engine import SYNTAX_CODE, FileResult, _finding, fix_source, lint_source
from recipecheck.finding import Finding

MARKER = "# recipecheck:cell {}"
_MARKER_RE = re.compile(r"^# recipecheck:cell (\d+)$")
_PLACEHOLDER = "pass  # recipecheck:magic {}"
_PLACEHOLDER_RE = re.compile(r"^(?P<indent>[ \t]*)pass  # recipecheck:magic (?P<n>\d+)$")
# cell magics whose body is ordinary Python
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "memit", "mprun",
                       "python", "python3", "pypy", "snakeviz", "scalene", "tensorboard"}
_HELP_RE = re.compile(r"^[ \t]*(\?\??[\w.]+|[\w.]+\?\??)[ \t]*$")
_ASSIGN_MAGIC_RE = re.compile(r"^[ \t]*[\w.\[\], ]+=[ \t]*[!%]")


class NotebookError(Exception):
    """The file is not a notebook the linter can read; the message says why."""

    def __init__(self, message: str, line: int = 1, column: int = 1, cell: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.cell = cell


@dataclass
class _Cell:
    index: int  # 0-based position among all cells
    text: str  # the original source joined into one string
    as_list: bool  # source was a list of lines (nbformat's usual on-disk form)
    start: int = 0  # 1-based line of the cell's first line in the program source
    n_lines: int = 0
    magics: dict[int, str] = field(default_factory=dict)  # placeholder number -> original line


@dataclass
class Notebook:
    data: dict[str, Any]
    cells: list[_Cell]  # code cells only, in order
    source: str  # the concatenated program
    indent: int | None
    trailing_newline: bool
    line_map: list[tuple[int, int]] = field(default_factory=list)  # program line -> (cell, line)

    def locate(self, line: int) -> tuple[int, int]:
        """Program line -> (1-based cell index among all cells, 1-based line within the cell)."""
        if not self.line_map:
            return 1, 1
        line = min(max(line, 1), len(self.line_map))
        return self.line_map[line - 1]


def _is_python(data: dict) -> bool:
    meta = data.get("metadata") or {}
    if not isinstance(meta, dict):
        return True
    lang = (meta.get("language_info") or {}).get("name") if isinstance(meta.get("language_info"), dict) else None
    kernel = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
    lang = lang or kernel.get("language")
    return lang is None or str(lang).lower().startswith("python")


def _source_text(cell: dict, index: int) -> tuple[str, bool]:
    src = cell.get("source", "")
    if isinstance(src, str):
        return src, False
    if isinstance(src, list) and all(isinstance(s, str) for s in src):
        return "".join(src), True
    raise NotebookError(f"cell {index + 1}: `source` must be a string or a list of strings, "
                        f"not {type(src).__name__}", cell=index + 1)


def _detect_indent(text: str) -> int | None:
    lines = text.split("\n", 2)
    if len(lines) < 2:
        return None
    second = lines[1]
    n = len(second) - len(second.lstrip(" "))
    return n or None


def parse_notebook(text: str) -> Notebook:
    """Read a notebook's JSON and build the program source; raises NotebookError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(f"the notebook is not valid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except (ValueError, RecursionError) as exc:
        raise NotebookError(f"the notebook is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NotebookError("not a Jupyter notebook: the top level is not a JSON object")
    if "cells" not in data:
        if "worksheets" in data:
            raise NotebookError("nbformat 3 notebooks are not supported: convert it with "
                                "`jupyter nbconvert --to notebook --nbformat 4`")
        raise NotebookError('not a Jupyter notebook: there is no "cells" list')
    if not isinstance(data["cells"], list):
        raise NotebookError(f'not a Jupyter notebook: "cells" is a {type(data["cells"]).__name__}, '
                            "not a list")
    cells: list[_Cell] = []
    for i, raw in enumerate(data["cells"]):
        if not isinstance(raw, dict):
            raise NotebookError(f"cell {i + 1} is not a JSON object", cell=i + 1)
        if raw.get("cell_type") != "code":
            continue
        text_, as_list = _source_text(raw, i)
        cells.append(_Cell(index=i, text=text_, as_list=as_list))
    nb = Notebook(data=data, cells=cells, source="", indent=_detect_indent(text),
                  trailing_newline=text.endswith("\n"))
    _build_source(nb)
    return nb


def _mask(cell: _Cell, counter: list[int]) -> list[str]:
    """The cell's lines with IPython-only syntax replaced by numbered `pass` placeholders."""
    lines = cell.text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()

    def placeholder(i: int, keep_indent: bool = True, like: int | None = None) -> str:
        line = lines[i if like is None else like]
        indent = line[: len(line) - len(line.lstrip(" \t"))] if keep_indent else ""
        n = counter[0]
        counter[0] += 1
        cell.magics[n] = line
        return indent + _PLACEHOLDER.format(n)

    out = list(lines)
    first = next((i for i, l in enumerate(lines) if l.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        name = lines[first].lstrip()[2:].split(None, 1)[0] if lines[first].lstrip()[2:].strip() else ""
        if name in _PYTHON_CELL_MAGICS:
            out[first] = placeholder(first)
        else:  # the body is not Python (%%bash, %%writefile, %%html, ...)
            return [placeholder(i, False) if l.strip() else l for i, l in enumerate(lines)]
    # Only a line that starts a logical line can be IPython syntax (IPython's own transformer
    # decides the same way from its tokens): `% (a, b)` inside an open bracket is the
    # formatting operator, `!` inside a string is text.
    scan = _LineScanner()
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        if out[i] is lines[i] and scan.at_logical_start() and (
                stripped.startswith(("%", "!")) or _HELP_RE.match(lines[i])
                or _ASSIGN_MAGIC_RE.match(lines[i])):
            out[i] = placeholder(i)
            first = i
            while lines[i].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                out[i] = placeholder(i, like=first)  # continuation lines: the first one's indent
        else:
            scan.feed(lines[i])
        i += 1
    return out


class _LineScanner:
    """Tracks open brackets, open triple-quoted strings and backslash continuations line by
    line, like Python's tokenizer but never failing on the unbalanced input a cell may hold."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote: str | None = None  # the open triple quote
        self.continued = False

    def at_logical_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        self.continued = False
        while i < n:
            if self.quote is not None:
                j = line.find(self.quote, i)
                while j > 0 and _escaped(line, j):
                    j = line.find(self.quote, j + 1)
                if j < 0:
                    return
                i = j + 3
                self.quote = None
                continue
            c = line[i]
            if c == "#":
                return
            if c in "\"'":
                if line.startswith(c * 3, i):
                    self.quote = c * 3
                    i += 3
                    continue
                j = i + 1
                while j < n and (line[j] != c or _escaped(line, j)):
                    j += 1
                i = j + 1  # an unterminated one-line string ends with the line
                continue
            if c in "([{":
                self.depth += 1
            elif c in ")]}":
                self.depth = max(0, self.depth - 1)
            elif c == "\\" and i == n - 1:
                self.continued = True
            i += 1


def _escaped(line: str, j: int) -> bool:
    k = j - 1
    while k >= 0 and line[k] == "\\":
        k -= 1
    return (j - 1 - k) % 2 == 1


def _build_source(nb: Notebook) -> None:
    parts: list[str] = []
    line_map: list[tuple[int, int]] = []
    counter = [0]
    line = 1
    for c in nb.cells:
        masked = _mask(c, counter)
        parts.append(MARKER.format(c.index + 1))
        line_map.append((c.index + 1, 1))
        line += 1
        c.start = line
        c.n_lines = len(masked)
        for k, l in enumerate(masked, 1):
            parts.append(l)
            line_map.append((c.index + 1, k))
        line += len(masked)
    nb.source = "\n".join(parts) + ("\n" if parts else "")
    nb.line_map = line_map


# --------------------------------------------------------------------------- lint


def _to_cell(nb: Notebook, f: Finding) -> Finding:
    cell, line = nb.locate(f.line)
    end_cell, end_line = nb.locate(f.end_line)
    end_col = f.end_column
    if end_cell != cell:  # a range spilling into the next cell ends at the end of this one
        end_line, end_col = line, f.column
    fix = f.fix
    if fix is not None:
        fc, fl = nb.locate(fix.line)
        fec, fel = nb.locate(fix.end_line)
        if fc == fec == cell and fix.end_line <= len(nb.line_map):
            fix = dataclasses.replace(fix, line=fl, end_line=fel)
        else:  # a whole-program rewrite: only `--fix` can apply it to the cells
            fix = dataclasses.replace(fix, line=line, column=f.column, end_line=end_line,
                                      end_column=end_col, content="")
    return dataclasses.replace(f, line=line, end_line=end_line, end_column=end_col, fix=fix,
                               extra={**f.extra, "cell": cell})


def _error_result(path: str, exc: NotebookError, active: bool) -> FileResult:
    res = FileResult(path=path)
    if active:
        f = _finding(SYNTAX_CODE, path, exc.line, exc.column, exc.line, exc.column,
                     f"{exc.message}: the notebook was not linted (RC900)")
        if exc.cell is not None:
            f = dataclasses.replace(f, extra={"cell": exc.cell})
        res.findings.append(f)
    return res


def _decode(source: str | bytes) -> str:
    if isinstance(source, bytes):
        text = source.decode("utf-8")
    else:
        text = source
    return text[1:] if text.startswith("\ufeff") else text


def lint_notebook(source: str | bytes, path: str, rules, *, ignore=(), max_file_size: int = 5_000_000,
                  fix: str | None = None) -> FileResult:
    """Lint a notebook's code cells as one program. Never raises for bad input."""
    active = SYNTAX_CODE in {r.CODE for r in rules} and not any(
        s == "ALL" or SYNTAX_CODE.startswith(s) for s in ignore)
    size = len(source.encode("utf-8")) if isinstance(source, str) else len(source)
    if size > max_file_size:
        return FileResult(path=path, notice=f"file is larger than max-file-size ({size} > "
                                            f"{max_file_size} bytes)")
    try:
        nb = parse_notebook(_decode(source))
    except UnicodeDecodeError as exc:
        return _error_result(path, NotebookError(f"the notebook is not valid UTF-8: {exc.reason}"), active)
    except NotebookError as exc:
        return _error_result(path, exc, active)
    if not _is_python(nb.data):
        return FileResult(path=path, notice="not a Python notebook (kernel language)")
    size_limit = max(max_file_size, len(nb.source) + 1)
    source = nb.source
    broken: list[Finding] = []
    blanked: set[int] = set()
    # IPython runs each cell on its own: a cell that does not parse alone is reported and
    # blanked first (an unclosed bracket must not be blamed on the next cell)
    program_lines = source.split("\n")
    for c in nb.cells:
        cell_text = "\n".join(program_lines[c.start - 1:c.start - 1 + c.n_lines])
        try:
            compile(cell_text, path, "exec", flags=_ONLY_AST | _TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError as exc:
            blanked.add(c.index)
            source = _blank_cell(source, c)
            if active:
                line = c.start + max(exc.lineno or 1, 1) - 1
                col = max(exc.offset or 1, 1)
                broken.append(_finding(SYNTAX_CODE, path, line, col, line, col,
                                       f"syntax error in this cell, the cell was not linted: "
                                       f"{exc.msg} (RC900)"))
        except (ValueError, RecursionError, MemoryError):
            pass  # too deep or odd: the whole-program lint reports it
    while True:
        res = lint_source(source, path, rules, ignore=ignore, max_file_size=size_limit)
        if res.syntax_error is None or len(blanked) >= _MAX_BROKEN_CELLS:
            break
        # A cell that does not parse costs that cell only: blank it (its lines stay, empty,
        # so every other cell keeps its line numbers) and lint the rest again.
        line, col, reason = res.syntax_error
        cell = next((c for c in nb.cells if c.start <= line < c.start + max(c.n_lines, 1)), None)
        if cell is None or cell.index in blanked:
            break
        blanked.add(cell.index)
        source = _blank_cell(source, cell)
        if active:
            broken.append(_finding(SYNTAX_CODE, path, line, col, line, col,
                                   f"syntax error in this cell, the cell was not linted: {reason} (RC900)"))
    if broken:
        res.findings = [f for f in res.findings if f.code != SYNTAX_CODE or res.syntax_error] + broken
    res.findings = sorted((_to_cell(nb, f) for f in res.findings), key=lambda f: f.sort_key())
    return res


_MAX_BROKEN_CELLS = 20  # each one costs a parse of the whole program
_ONLY_AST = 0x400
_TOP_LEVEL_AWAIT = 0x2000  # notebooks may `await` at the top level


def _blank_cell(source: str, cell: _Cell) -> str:
    lines = source.split("\n")
    for k in range(cell.start - 1, min(cell.start - 1 + cell.n_lines, len(lines))):
        lines[k] = ""
    return "\n".join(lines)


# --------------------------------------------------------------------------- fix


def _split_program(nb: Notebook, program: str) -> dict[int, str] | None:
    """Fixed program source -> {cell index: new cell text}; None when the markers were disturbed."""
    cells: dict[int, list[str]] = {}
    current: list[str] | None = None
    order: list[int] = []
    for line in program.split("\n"):
        m = _MARKER_RE.match(line)
        if m:
            current = []
            idx = int(m.group(1)) - 1
            if idx in cells:
                return None
            cells[idx] = current
            order.append(idx)
            continue
        if current is None:
            if line.strip():
                return None  # text before the first cell
            continue
        current.append(line)
    if order != [c.index for c in nb.cells]:
        return None
    out: dict[int, str] = {}
    for c in nb.cells:
        lines = cells[c.index]
        if c is nb.cells[-1] and lines and lines[-1] == "":
            lines = lines[:-1]
        restored = []
        seen: set[int] = set()
        for line in lines:
            m = _PLACEHOLDER_RE.match(line)
            if m:
                n = int(m.group("n"))
                if n not in c.magics or n in seen:
                    return None
                seen.add(n)
                restored.append(c.magics[n])
            else:
                restored.append(line)
        if len(seen) != len(c.magics):
            return None  # a fix removed a magic line
        text = "\n".join(restored)
        if c.text.endswith("\n"):
            text += "\n"
        out[c.index] = text
    return out


def fix_notebook(source: str, path: str, rules, *, mode: str = "safe", **kw) -> tuple[str, FileResult]:
    """Apply fixes to the code cells; return the new notebook JSON text (unchanged when no fix
    applies or the result cannot be mapped back safely) and the findings that remain."""
    try:
        nb = parse_notebook(_decode(source))
    except (NotebookError, UnicodeDecodeError):
        return source, lint_notebook(source, path, rules, **kw)
    if not _is_python(nb.data):
        return source, lint_notebook(source, path, rules, **kw)
    fixed, _ = fix_source(nb.source, path, rules, mode=mode, **kw)
    if fixed == nb.source:
        return source, lint_notebook(source, path, rules, **kw)
    new_cells = _split_program(nb, fixed)
    if new_cells is None:
        return source, lint_notebook(source, path, rules, **kw)
    text = _decode(source)
    new_source = _splice_sources(text, {c.index: (new_cells[c.index], c.as_list) for c in nb.cells
                                        if new_cells[c.index] != c.text})
    if new_source is None:
        return source, lint_notebook(source, path, rules, **kw)
    try:  # never write a notebook whose program does not parse
        cst.parse_module(parse_notebook(new_source).source)
    except (NotebookError, cst.ParserSyntaxError, Exception):
        return source, lint_notebook(source, path, rules, **kw)
    return new_source, lint_notebook(new_source, path, rules, **kw)


_WS = " \t\r\n"


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _members(text: str, i: int, decoder: json.JSONDecoder):
    """(key, value start, value end) of the JSON object starting at text[i]; the values are
    skipped with the decoder (the caller already knows the text is valid JSON)."""
    i = _skip_ws(text, i)
    if text[i] != "{":
        raise ValueError("not an object")
    i = _skip_ws(text, i + 1)
    while text[i] != "}":
        key, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, i)
        i = _skip_ws(text, i + 1)  # the colon
        start = i
        _, i = decoder.raw_decode(text, i)
        yield key, start, i
        i = _skip_ws(text, i)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)


def _source_spans(text: str) -> dict[int, tuple[int, int]]:
    """{cell index: (start, end)} of each cell's `source` value in the notebook's JSON text."""
    decoder = json.JSONDecoder()
    spans: dict[int, tuple[int, int]] = {}
    for key, start, _ in _members(text, 0, decoder):
        if key != "cells":
            continue
        i = _skip_ws(text, start + 1)  # after "["
        index = 0
        while text[i] != "]":
            end = i
            for k, vs, ve in _members(text, i, decoder):
                if k == "source":
                    spans[index] = (vs, ve)
                end = ve
            i = _skip_ws(text, text.index("}", end) + 1)
            if text[i] == ",":
                i = _skip_ws(text, i + 1)
            index += 1
    return spans


def _splice_sources(text: str, changes: dict[int, tuple[str, bool]]) -> str | None:
    """The notebook text with only the changed cells' `source` values rewritten: everything
    else (indentation, tabs, CRLF, `\\u` escapes, number spellings like 1e400) stays byte for
    byte. The new values follow the old value's layout. None when the text cannot be mapped."""
    try:
        spans = _source_spans(text)
    except (ValueError, IndexError, json.JSONDecodeError):
        return None
    if any(i not in spans for i in changes):
        return None
    ascii_only = text.isascii() and "\\u" in text
    out = []
    pos = 0
    for index in sorted(changes):
        start, end = spans[index]
        new_text, as_list = changes[index]
        old = text[start:end]
        if as_list and old.startswith("["):
            parts = [json.dumps(line, ensure_ascii=ascii_only)
                     for line in new_text.splitlines(keepends=True)]
            inner = old[1:-1]
            if "\n" in inner:  # one element per line: reuse the old indentation and newline
                newline = "\r\n" if "\r\n" in inner else "\n"
                first = inner[:len(inner) - len(inner.lstrip(_WS))]
                indent = first.rsplit("\n", 1)[-1]
                closing = inner[len(inner.rstrip(_WS)):].rsplit("\n", 1)[-1]
                value = "[" + (newline + indent + ("," + newline + indent).join(parts) + newline
                               + closing if parts else "") + "]"
            else:
                value = "[" + ", ".join(parts) + "]"
        else:
            value = json.dumps(new_text, ensure_ascii=ascii_only)
        out.append(text[pos:start])
        out.append(value)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def cell_diff(old: str, new: str, path: str) -> str:
    """A unified diff per changed code cell (`a/nb.ipynb:cell 3`), not of the raw JSON."""
    try:
        a = parse_notebook(_decode(old))
        b = parse_notebook(_decode(new))
    except (NotebookError, UnicodeDecodeError):
        return ""
    new_by_index = {c.index: c for c in b.cells}
    out = []
    for c in a.cells:
        n = new_by_index.get(c.index)
        if n is None or n.text == c.text:
            continue
        old_lines = c.text.splitlines(keepends=True)
        new_lines = n.text.splitlines(keepends=True)
        for lines in (old_lines, new_lines):
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
        out.append("".join(difflib.unified_diff(old_lines, new_lines,
                                                fromfile=f"a/{path}:cell {c.index + 1}",
                                                tofile=f"b/{path}:cell {c.index + 1}")))
    return "".join(out)
