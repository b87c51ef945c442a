"""Hostile-input stress benchmark: time and peak memory of `lint` per generated shape.

    python benchmarks/stress.py [--only NAME,...] [--quick]

Each shape (deep nesting, long chains, mutually calling helpers, wide files) is generated at
one or more sizes and linted in a fresh child process with every rule on, as `recipecheck lint`
does. For each it prints the file size, libcst's parse-only time of the same text, the lint
time, the ratio of the two, the child's peak RSS and what the lint reported. Shapes that
CPython's parser rejects as too deep (libcst's native parser would overflow its stack on them)
must come back as one RC900 finding in bounded time and memory; they have no parse time.

Targets (issue 11): every shape at most 10x its parse time, none above 1 GB, deep shapes
RC900 in at most 3x CPython's own parse time of the text (when that takes over 50 ms). The script exits 1 when a target is missed. Timings on a loaded machine are noisy:
read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RATIO_TARGET = 10.0
MEMORY_TARGET_MB = 1024.0
DEEP_RATIO_TARGET = 3.0  # a file too deep for libcst: RC900 in a few times CPython's own parse


# --------------------------------------------------------------------------- shapes

def nested_parens(n: int) -> str:
    return "x = " + "(" * n + "1" + ")" * n + "\n"


def nested_calls(n: int) -> str:
    return "x = " + "f(" * n + "1" + ")" * n + "\n"


def nested_lists(n: int) -> str:
    return "x = " + "[" * n + "]" * n + "\n"


def long_sum(n: int) -> str:
    return "x = " + " + ".join(f"a{i % 10}" for i in range(n)) + "\n"


def attribute_chain(n: int) -> str:
    return "x = a" + ".b" * n + "\n"


def method_chain(n: int) -> str:
    return "x = a" + ".b()" * n + "\n"


def subscript_chain(n: int) -> str:
    return "x = a" + "[0]" * n + "\n"


def nested_ternaries(n: int) -> str:
    return "x = " + " if c else ".join(["a"] * n) + "\n"


def joined_strings(n: int) -> str:
    return "x = (" + " ".join(f'"s{i}"' for i in range(n)) + ")\n"


def elif_chain(n: int) -> str:
    out = ["def pick(x):", "    if x == 0:", "        return 0"]
    for i in range(1, n):
        out += [f"    elif x == {i}:", f"        return {i}"]
    return "\n".join(out) + "\n"


def deep_indent(n: int) -> str:
    return "".join("    " * i + "if a:\n" for i in range(n)) + "    " * n + "pass\n"


def mutual_helpers(n: int) -> str:
    """n training helpers that all call each other (every call path is a distinct chain)."""
    out = ["import torch", "opt = torch.optim.SGD(model.parameters(), lr=0.1)"]
    for i in range(n):
        out += [f"def h{i}(x):", "    for b in loader:", "        opt.zero_grad()"]
        out += [f"        h{j}(b)" for j in range(n) if j != i]
        out += ["        loss = model(b).sum()", "        loss.backward()", "        opt.step()"]
    out.append("h0(1)")
    return "\n".join(out) + "\n"


def many_functions(n: int) -> str:
    out = ["import torch", "import torch.nn as nn"]
    for i in range(n):
        out += [f"def step{i}(model, opt, x, y):", "    opt.zero_grad()",
                "    loss = nn.functional.cross_entropy(model(x), y)", "    loss.backward()",
                "    opt.step()", "    return loss.item()"]
    out += ["for epoch in range(10):", "    for x, y in loader:"]
    out += [f"        step{i}(model, opt, x, y)" for i in range(0, n, max(1, n // 50))]
    return "\n".join(out) + "\n"


def long_training_file(n: int) -> str:
    """n copies of an ordinary training script's body, each in its own function."""
    out = ["import torch", "import torch.nn as nn", "from torch.utils.data import DataLoader"]
    for i in range(n):
        out += [
            f"def run{i}(train_ds, val_ds):",
            "    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))",
            "    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)",
            "    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)",
            "    loader = DataLoader(train_ds, batch_size=64, shuffle=True)",
            "    for epoch in range(20):",
            "        model.train()",
            "        for x, y in loader:",
            "            opt.zero_grad()",
            "            loss = nn.functional.cross_entropy(model(x), y)",
            "            loss.backward()",
            "            opt.step()",
            "        sched.step()",
            "        model.eval()",
            "        with torch.no_grad():",
            "            acc = sum((model(x).argmax(1) == y).float().mean() for x, y in val_ds)",
        ]
    return "\n".join(out) + "\n"


def big_literal(n: int) -> str:
    return "table = [\n" + "".join(f"    ({i}, {i * 0.5}, 'k{i}'),\n" for i in range(n)) + "]\n"


def moved_model(n: int) -> str:
    """`model = model.cuda()` rebound n times (resolve_module <-> _resolve_moved)."""
    out = ["import torch.nn as nn", "from models import *", "model = get_model()"]
    out += ["model = model.cuda()", "model = model.to(device)"] * n
    out += ["criterion = nn.CrossEntropyLoss()", "for x, y in loader:",
            "    loss = criterion(model(x), y)", "    loss.backward()"]
    return "\n".join(out) + "\n"


# name -> (generator, sizes, deep): deep shapes must come back as one RC900 (CPython's parser
# rejects them, or they are beyond the depth/size libcst handles in bounded time and memory)
SHAPES: dict[str, tuple] = {
    "nested-parens": (nested_parens, (1500, 3000), True),
    "nested-calls": (nested_calls, (3000,), True),
    "nested-lists": (nested_lists, (1000,), True),
    "sum-too-long": (long_sum, (8000, 16000), True),
    "attribute-chain-too-long": (attribute_chain, (9000,), True),
    "ternaries-too-deep": (nested_ternaries, (2000, 3000, 6000, 20000), True),
    "indent-too-deep": (deep_indent, (120,), True),
    "literal-too-big": (big_literal, (80000,), True),
    "elif-chain": (elif_chain, (600, 2400), False),
    "sum": (long_sum, (500, 1000), False),
    "joined-strings": (joined_strings, (1000, 2000), False),
    "joined-strings-beyond-libcst": (joined_strings, (4000,), True),
    "ternaries": (nested_ternaries, (500, 1000), False),
    "attribute-chain": (attribute_chain, (500, 1000), False),
    "method-chain": (method_chain, (250, 500), False),
    "subscript-chain": (subscript_chain, (250, 500), False),
    "mutual-helpers": (mutual_helpers, (12, 14, 50), False),
    "many-functions": (many_functions, (1000, 4000), False),
    "long-training-file": (long_training_file, (200, 800), False),
    "big-literal": (big_literal, (10000, 30000), False),
    "moved-model": (moved_model, (100, 1000), False),
}


# --------------------------------------------------------------------------- measuring

def _child(name: str, n: int) -> None:
    import gc
    import resource

    import libcst as cst

    from recipecheck.engine import lint_source, run_deep, too_deep_for_parser
    from recipecheck.rule import all_rules

    gen, _, deep = SHAPES[name]
    text = gen(n)
    rules = [r() for r in all_rules()]
    if too_deep_for_parser(text) is None:
        parser = "libcst"

        def parse() -> float:
            t = time.perf_counter()
            try:
                cst.parse_module(text)
            except cst.ParserSyntaxError:  # a libcst limit Python does not have: RC900 too
                pass
            return time.perf_counter() - t
    else:  # libcst never sees it: compare with CPython's own parse of the same text
        parser = "cpython"

        def parse() -> float:
            t = time.perf_counter()
            try:
                compile(text, "x", "exec", flags=0x400, dont_inherit=True)
            except (SyntaxError, RecursionError, MemoryError):
                pass
            return time.perf_counter() - t

    parse_s = min(run_deep(parse) for _ in range(2))
    gc.collect()
    lint_s = None
    for _ in range(2):  # the faster of two runs, like the parse time (small files are noisy)
        t = time.perf_counter()
        res = lint_source(text, f"{name}.py", rules, describe_fixes=False)
        took = time.perf_counter() - t
        lint_s = took if lint_s is None else min(lint_s, took)
        gc.collect()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    codes = sorted(f.code for f in res.findings)
    print(json.dumps({"bytes": len(text.encode()), "parser": parser, "parse_s": parse_s, "lint_s": lint_s,
                      "peak_mb": peak_mb, "codes": codes, "errors": res.errors,
                      "notice": res.notice}))


def measure(name: str, n: int, timeout: float = 600) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", name, str(n)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"failed": f"child exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated shape names")
    ap.add_argument("--quick", action="store_true", help="only the first size of each shape")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return 0
    names = args.only.split(",") if args.only else list(SHAPES)
    print(f"{'shape':28} {'size':>6} {'KB':>7} {'parse s':>8} {'lint s':>8} {'ratio':>6} "
          f"{'peak MB':>8}  result   (parse: libcst's; for RC900 shapes, CPython's, marked *)")
    worst_ratio, worst_deep, worst_mb, missed = 0.0, 0.0, 0.0, []
    for name in names:
        gen, sizes, deep = SHAPES[name]
        for n in sizes[:1] if args.quick else sizes:
            r = measure(name, n)
            if "failed" in r:
                print(f"{name:28} {n:>6} {'':>7} {'':>8} {'':>8} {'':>6} {'':>8}  FAILED: {r['failed']}")
                missed.append(f"{name}[{n}]: {r['failed']}")
                continue
            ratio = r["lint_s"] / r["parse_s"] if r["parse_s"] else None
            if r["errors"]:
                result = f"internal error: {r['errors'][0][:60]}"
            elif r["notice"]:
                result = f"skipped: {r['notice'][:60]}"
            else:
                result = f"{len(r['codes'])} finding(s) {','.join(sorted(set(r['codes'])))}".rstrip()
            star = "*" if r["parser"] == "cpython" else " "
            print(f"{name:28} {n:>6} {r['bytes'] / 1024:>7.1f} {r['parse_s']:>7.3f}{star} "
                  f"{r['lint_s']:>8.3f} {ratio if ratio is not None else float('nan'):>6.1f} "
                  f"{r['peak_mb']:>8.0f}  {result}")
            worst_mb = max(worst_mb, r["peak_mb"])
            if ratio is not None and not deep:
                worst_ratio = max(worst_ratio, ratio)
            elif ratio is not None and r["lint_s"] > 0.05:
                worst_deep = max(worst_deep, ratio)
            if r["errors"]:
                missed.append(f"{name}[{n}]: internal error")
            if deep and r["codes"] != ["RC900"]:
                missed.append(f"{name}[{n}]: expected one RC900, got {r['codes']}")
            if deep and ratio is not None and ratio > DEEP_RATIO_TARGET and r["lint_s"] > 0.05:
                missed.append(f"{name}[{n}]: RC900 took {ratio:.1f}x CPython's parse time")
            if not deep and "RC900" in r["codes"]:
                missed.append(f"{name}[{n}]: valid code reported as RC900")
            if not deep and ratio is not None and ratio > RATIO_TARGET:
                missed.append(f"{name}[{n}]: {ratio:.1f}x parse time")
            if r["peak_mb"] > MEMORY_TARGET_MB:
                missed.append(f"{name}[{n}]: {r['peak_mb']:.0f} MB")
    print(f"\nworst ratio to libcst parse time: {worst_ratio:.1f}x (target <= {RATIO_TARGET:.0f}x); "
          f"worst RC900 shape: {worst_deep:.1f}x CPython's parse time; "
          f"worst peak memory: {worst_mb:.0f} MB (target <= {MEMORY_TARGET_MB:.0f} MB)")
    for m in missed:
        print(f"MISSED: {m}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    raise SystemExit(main())
