"""Lint throughput, measured in one run against libcst's parse-only time on the same files.

    python benchmarks/lint_throughput.py [--files 600] [--jobs N]
    python benchmarks/lint_throughput.py --project [--files 200] [--jobs N]

Builds a corpus of generated variants of the fixture scripts (each file concatenates two
fixtures with renamed definitions), then prints files/s, lines/s, the ratio
(lint time) / (libcst parse-only time), the warm-cache re-run as a fraction of the cold run,
and peak memory. Targets: ratio <= 1.5 at the default --jobs (all cores), <= 2.5 with
--jobs 1, warm re-run <= 10% of cold.

`--project` builds one project instead (pyproject.toml at the root, a package of library
modules that import each other, and training scripts importing a few of them; every import is
used by a call), so every lint also reads and links its imported neighbours. It prints the same
ratios for the whole project (wall time, and CPU time, which other load on a shared machine
disturbs less),
the same lint through the console script in a new interpreter (imports and exit included),
and the wall time of `recipecheck lint one.py` in a fresh interpreter with the cache warm (what
a pre-commit run on one unchanged file costs), and the same right after a line was appended to
that file (a pre-commit run on one edited file: its used neighbours are read, nothing else is
linted). Target: <= 0.5 s for both.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import libcst as cst

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "fixtures" / "scripts").glob("*/*.py"))
DEF_RE = re.compile(r"^(\s*)(def|class) (\w+)", re.M)


def _variant(src: str, tag: str) -> str:
    names = {m.group(3) for m in DEF_RE.finditer(src)}
    for n in sorted(names, key=len, reverse=True):
        if not n.startswith("__"):
            src = re.sub(rf"\b{n}\b", f"{n}_{tag}", src)
    return src


def build_corpus(dest: Path, n_files: int, seed: int = 0) -> tuple[int, int]:
    rng = random.Random(seed)
    sources = [p.read_text() for p in FIXTURES]
    lines = 0
    for i in range(n_files):
        a, b = rng.sample(sources, 2)
        text = _variant(a, f"a{i}") + "\n\n" + _variant(b, f"b{i}")
        (dest / f"train_{i:04d}.py").write_text(text)
        lines += text.count("\n") + 1
    return n_files, lines


def build_project(dest: Path, n_files: int, seed: int = 0) -> tuple[int, int]:
    """A package `proj/` of library modules importing one or two earlier ones, and training
    scripts (a tenth of the files) importing three library modules each. Every imported module
    is used (a helper calls a helper of each import), so the link reads and builds them."""
    rng = random.Random(seed)
    sources = [p.read_text() for p in FIXTURES]
    (dest / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "0"\n')
    pkg = dest / "proj"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    n_scripts = max(1, n_files // 10)
    n_lib = n_files - n_scripts
    lines = 0
    for i in range(n_lib):
        deps = sorted(rng.sample(range(i), min(i, rng.randint(1, 2)))) if i else []
        head = "".join(f"from proj import lib_{j:04d}\n" for j in deps)
        # every import is used, as in real code: the link has to read and build each neighbour
        calls = "".join(f"    x = lib_{j:04d}.helper_l{j}(x)\n" for j in deps)
        text = head + _variant(rng.choice(sources), f"l{i}") + \
            f"\n\ndef helper_l{i}(x):\n{calls}    return x\n"
        (pkg / f"lib_{i:04d}.py").write_text(text)
        lines += text.count("\n") + 1
    for i in range(n_scripts):
        deps = rng.sample(range(n_lib), min(n_lib, 3))
        head = "".join(f"import proj.lib_{j:04d} as m{k}\n" for k, j in enumerate(deps))
        calls = "".join(f"    x = m{k}.helper_l{j}(x)\n" for k, j in enumerate(deps))
        text = head + _variant(rng.choice(sources), f"s{i}") + \
            f"\n\ndef use_libs_s{i}(x):\n{calls}    return x\n"
        (dest / f"train_{i:04d}.py").write_text(text)
        lines += text.count("\n") + 1
    return n_files, lines


def changed_file(path: Path, cwd: Path, runs: int = 5) -> tuple[float, float]:
    """Median wall and CPU time of `recipecheck lint path` in a new interpreter right after the
    file was edited (a line appended), with the cache warm for every other file: what a
    pre-commit run on one changed file costs."""
    import statistics
    import subprocess

    cmd = [sys.executable, "-m", "recipecheck", "lint", str(path)]
    original = path.read_text()
    times, cpu = [], []
    try:
        for k in range(runs):
            path.write_text(original + f"\n_edited_{k} = {k}\n")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, cwd=cwd, capture_output=True, env=_child_env())
            times.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    finally:
        path.write_text(original)
    return statistics.median(times), statistics.median(cpu)


def _child_env() -> dict[str, str]:
    """The environment of the timed `recipecheck` processes: bytecode caching on, as in any
    install (a PYTHONDONTWRITEBYTECODE=1 shell would recompile every module of the linter on
    each run and time that instead)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_single(path: Path, cwd: Path, runs: int = 5) -> tuple[float, float]:
    """Median wall and CPU time of `recipecheck lint path` in a new interpreter, cache warm."""
    import statistics
    import subprocess

    cmd = [sys.executable, "-m", "recipecheck", "lint", str(path)]
    subprocess.run(cmd, cwd=cwd, capture_output=True, env=_child_env())  # fill the caches
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, capture_output=True, env=_child_env())
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times), statistics.median(cpu)


def cli_project(root: Path, jobs: int) -> tuple[float, float]:
    """Wall and CPU time of `recipecheck lint --no-cache --select ALL -j N root` in a new
    interpreter: the whole-project lint as a user runs it (imports and process exit included)."""
    import subprocess

    cmd = [sys.executable, "-m", "recipecheck", "lint", "--no-cache", "--select", "ALL",
           "-j", str(jobs), str(root)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=root, capture_output=True, env=_child_env())
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _cpu() -> float:
    """CPU seconds of this process and its finished workers (less sensitive than wall time to
    other load on the machine; for --jobs 1 they are the same when it is idle)."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def parse_only(files: list[Path]) -> float:
    t = time.perf_counter()
    for f in files:
        cst.parse_module(f.read_bytes())
    return time.perf_counter() - t


def lint(paths: list[str], jobs: int, use_cache: bool) -> float:
    from recipecheck.lint import LintOptions, run_lint
    from recipecheck.program.link import reset_caches

    reset_caches()  # no run may inherit parses and neighbour models from the one before
    # nor the previous run's garbage: a lint leaves it for the process exit (the console script
    # never collects it), and forked workers would inherit and traverse it
    import gc

    gc.collect()

    opts = LintOptions(paths=paths, select=["ALL"], jobs=jobs, use_cache=use_cache)
    t = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        run_lint(opts, fmt="text")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--project", action="store_true", help="one multi-module project")
    args = ap.parse_args()
    if args.project:
        return main_project(args)

    work = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    cache = work / "cache"
    os.environ["RECIPECHECK_CACHE_DIR"] = str(cache)
    corpus = work / "corpus"
    corpus.mkdir()
    try:
        n_files, n_lines = build_corpus(corpus, args.files)
        files = sorted(corpus.glob("*.py"))
        paths = [str(corpus)]
        print(f"corpus: {n_files} files, {n_lines} lines (variants of {len(FIXTURES)} fixtures)")

        lint(paths[:1], 1, False)  # import and warm everything once, outside the timings
        t_parse = parse_only(files)
        t_lint_1 = lint(paths, 1, use_cache=False)
        t_lint_n = lint(paths, args.jobs, use_cache=False)
        shutil.rmtree(cache, ignore_errors=True)
        t_cold = lint(paths, args.jobs, use_cache=True)
        t_warm = lint(paths, args.jobs, use_cache=True)

        peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"libcst parse only (1 process): {t_parse:7.2f} s")
        print(f"lint --jobs 1                : {t_lint_1:7.2f} s  {n_files / t_lint_1:7.1f} files/s "
              f"{n_lines / t_lint_1:9.0f} lines/s  ratio {t_lint_1 / t_parse:5.2f} (target <= 2.5)")
        print(f"lint --jobs {args.jobs:<2}               : {t_lint_n:7.2f} s  {n_files / t_lint_n:7.1f} files/s "
              f"{n_lines / t_lint_n:9.0f} lines/s  ratio {t_lint_n / t_parse:5.2f} (target <= 1.5)")
        print(f"cache: cold {t_cold:.2f} s, warm {t_warm:.2f} s: warm/cold {t_warm / t_cold:6.1%} "
              f"(target <= 10%)")
        print(f"peak memory: main process {peak_self:.0f} MiB, largest worker {peak_children:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main_project(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="rc-bench-proj-"))
    cache = work / "cache"
    os.environ["RECIPECHECK_CACHE_DIR"] = str(cache)
    root = work / "project"
    root.mkdir()
    try:
        n_files, n_lines = build_project(root, args.files)
        files = sorted(root.rglob("*.py"))
        print(f"project: {n_files} modules, {n_lines} lines (package of library modules + scripts)")
        lint([str(files[0])], 1, False)  # import and warm everything once, outside the timings
        c0 = _cpu()
        t_parse = parse_only(files)
        c1 = _cpu()
        t_lint_1 = lint([str(root)], 1, use_cache=False)
        c2 = _cpu()
        t_lint_n = lint([str(root)], args.jobs, use_cache=False)
        c2n = _cpu()
        os.environ["RECIPECHECK_NO_PROJECT"] = "1"
        c3 = _cpu()
        t_alone = lint([str(root)], 1, use_cache=False)
        c4 = _cpu()
        del os.environ["RECIPECHECK_NO_PROJECT"]
        cpu_parse, cpu_1, cpu_alone = c1 - c0, c2 - c1, c4 - c3
        shutil.rmtree(cache, ignore_errors=True)
        t_cold = lint([str(root)], args.jobs, use_cache=True)
        t_warm = lint([str(root)], args.jobs, use_cache=True)
        one = root / "proj" / f"lib_{(n_files - n_files // 10) - 1:04d}.py"
        t_cli, cpu_cli = cli_project(root, 1)
        t_one, cpu_one = warm_single(one, root)
        t_changed, cpu_changed = changed_file(one, root)
        print(f"libcst parse only (1 process): {t_parse:7.2f} s")
        print(f"lint --jobs 1 (project)      : {t_lint_1:7.2f} s  ratio {t_lint_1 / t_parse:5.2f} "
              f"(target <= 2.5); CPU time ratio {cpu_1 / cpu_parse:5.2f} (on a shared machine)")
        print(f"lint --jobs {args.jobs:<2} (project)     : {t_lint_n:7.2f} s  ratio {t_lint_n / t_parse:5.2f} "
              f"(target <= 1.5); CPU time of all processes / {args.jobs} "
              f"{(c2n - c2) / args.jobs / cpu_parse:5.2f} (the ratio if the machine were idle and "
              f"the split even)")
        print(f"lint --jobs 1, files alone   : {t_alone:7.2f} s  ratio {t_alone / t_parse:5.2f} "
              f"(no project link, for comparison); CPU time ratio {cpu_alone / cpu_parse:5.2f}")
        print(f"cache: cold {t_cold:.2f} s, warm {t_warm:.2f} s: warm/cold {t_warm / t_cold:6.1%}")
        print(f"`recipecheck lint --no-cache -j 1` on the project (new interpreter): {t_cli:.2f} s "
              f"wall, {cpu_cli:.2f} s CPU, CPU ratio to parse-only {cpu_cli / cpu_parse:5.2f}")
        print(f"warm `recipecheck lint {one.relative_to(root)}` (new interpreter, median of 5): "
              f"{t_one:.2f} s wall, {cpu_one:.2f} s CPU (target <= 0.5 s wall)")
        print(f"changed-file `recipecheck lint {one.relative_to(root)}` after appending a line, cache warm "
              f"for the rest (new interpreter, median of 5): {t_changed:.2f} s wall, "
              f"{cpu_changed:.2f} s CPU (target <= 0.5 s wall)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
