"""Static rules, one file per rule, grouped by code block (rc1xx, rc2xx, ...).

Rules are discovered by walking this package; there is no hand-kept registry.
"""
if __name__ != "recipecheck.rules":  # pragma: no cover - guard against the wrong import root
    raise ImportError(
        "the rules folder must be imported as recipecheck.rules (install the project; "
        "run tests with plain `pytest`, not `python -m pytest`)"
    )
