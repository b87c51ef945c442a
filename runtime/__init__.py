"""Runtime monitor, runtime checks (RT codes), reference trainers and experiments.

Everything under this package may import torch; the static linter never imports it.
"""
if __name__ != "recipecheck.runtime":  # pragma: no cover - guard against the wrong import root
    raise ImportError(
        "the runtime folder must be imported as recipecheck.runtime (install the project; "
        "run tests with plain `pytest`, not `python -m pytest`)"
    )
from .monitor import Monitor, monitor  # noqa: E402,F401
