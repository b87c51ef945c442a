"""Regenerate the README's rule table from the rules (tests/test_readme.py checks it)."""

import re
from pathlib import Path

from recipecheck.cli import markdown_rule_table

readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
text = re.sub(r"(<!-- rules-table-start -->\n).*?(<!-- rules-table-end -->)",
              lambda m: m.group(1) + markdown_rule_table() + "\n" + m.group(2), text, flags=re.S)
readme.write_text(text)
