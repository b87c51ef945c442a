from recipecheck.finding import Severity
from recipecheck.rule import Context, Rule


class SyntaxErrorInFile(Rule):
    """
    ## What it does
    Reports a file that could not be parsed (a syntax error, an undecodable byte, a file
    libcst cannot handle), with the position of the problem. The file is not linted; the other
    files still are.

    ## Why is this bad?
    A training script that does not parse cannot run, and recipecheck cannot check anything in
    it: without this finding the file would silently pass.

    Not measured (`recipecheck validate RC900`): a linter self-diagnostic (the file does not
    parse): it makes no claim about training.

    ## Known problems
    Python 2 syntax is reported as an error.

    ## Example
    ```python
    for epoch in range(10)
        train()
    ```

    ## Use instead
    ```python
    for epoch in range(10):
        train()
    ```

    ## Options
    None.

    ## Fix safety
    No fix.

    ## References
    - Python language reference, lexical analysis and grammar.
    """

    CODE = "RC900"
    NAME = "syntax-error"
    SEVERITY = Severity.ERROR
    MESSAGE = "the file could not be parsed"
    VALID = ("x = 1\n",)
    INVALID = ("for epoch in range(10)  # expect: RC900\n    pass\n",)

    def check(self, ctx: Context) -> None:
        # Reported by the engine, which sees parse failures before any rule runs.
        return None
