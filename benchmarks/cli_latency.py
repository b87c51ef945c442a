"""Command-line latency, what a pre-commit hook pays on every commit.

Prints, as medians over several runs of fresh processes:
- interpreter start (`python -c pass`), the baseline;
- `recipecheck --version`;
- a warm single-file lint (the result cache already holds the file), and a cold one
  (`--no-cache`), each also as seconds over interpreter start.
Targets (issue 12): `--version` <= 0.15 s, warm one-file lint <= 0.3 s over interpreter start.

    python benchmarks/cli_latency.py [--runs 7] [FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "fixtures" / "scripts" / "clean" / "amp_gradscaler_onecycle.py"


def _time(cmd: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT_FILE))
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    # the console script, as pre-commit runs it (falls back to -m in an uninstalled checkout)
    exe = Path(sys.executable).parent / "recipecheck"
    rc = [str(exe)] if exe.exists() else [sys.executable, "-m", "recipecheck"]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "RECIPECHECK_CACHE_DIR": cache}
        # as installed (pip compiles to .pyc): with PYTHONDONTWRITEBYTECODE every import would be
        # recompiled from source on every run, which no user's hook pays
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([*rc, "--help"], env=env, stdout=subprocess.DEVNULL)  # write the .pyc files
        base = _time([sys.executable, "-c", "pass"], env, args.runs)
        version = _time([*rc, "--version"], env, args.runs)
        subprocess.run([*rc, "lint", args.file], env=env, stdout=subprocess.DEVNULL)  # fill the cache
        warm = _time([*rc, "lint", args.file], env, args.runs)
        cold = _time([*rc, "lint", "--no-cache", args.file], env, max(3, args.runs // 2))
    print(f"file: {args.file}  (median of {args.runs} runs; bytecode cached as after pip install; "
          "a loaded machine inflates every figure)")
    print(f"interpreter start (python -c pass): {base:.3f} s")
    print(f"recipecheck --version:              {version:.3f} s   (target <= 0.15 s)")
    print(f"lint, warm cache:                   {warm:.3f} s   = {warm - base:.3f} s over interpreter "
          "start (target <= 0.3 s)")
    print(f"lint, --no-cache:                   {cold:.3f} s   = {cold - base:.3f} s over interpreter start")


if __name__ == "__main__":
    main()
