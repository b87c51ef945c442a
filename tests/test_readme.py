"""The README stays true: its rule table is generated from the rules, its commands are real."""

import re
from pathlib import Path

from recipecheck.cli import markdown_rule_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_rule_table_is_current():
    m = re.search(r"<!-- rules-table-start -->\n(.*?)<!-- rules-table-end -->", README, re.S)
    assert m, "README lacks the rules table markers"
    assert m.group(1).strip() == markdown_rule_table().strip(), \
        "README rule table is stale: run python scripts/update_readme.py"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r"```bash\n\s*(python3 -m venv [^\n]*&& pytest)\n", README)
    assert m, "README lacks the test command"
    assert m.group(1) in ci
