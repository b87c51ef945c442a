from recipecheck.finding import Severity
from recipecheck.rule import Context, Rule


class UnusedSuppression(Rule):
    """
    ## What it does
    Flags a `# noqa: RCxxx` comment that suppresses nothing: no finding with that code is
    reported on that line (or the code is not a recipecheck rule). Codes of other tools
    (`# noqa: E501`) and bare `# noqa` are left alone.

    ## Why is this bad?
    A stale suppression hides the next real finding on that line: after the code is edited, a
    genuine scheduler or zero_grad bug there would go unreported.

    Not measured (`recipecheck validate RC901`): about suppression comments (a noqa that
    suppresses nothing): it makes no claim about training.

    ## Known problems
    Only rules that are enabled in the run are checked; a suppression for a rule switched off
    by configuration is not reported.

    ## Example
    ```python
    optimizer.step()  # noqa: RC201
    ```

    ## Use instead
    ```python
    optimizer.step()
    ```

    ## Options
    None.

    ## Fix safety
    No fix.

    ## References
    - ruff's RUF100 (unused-noqa), the same idea for ruff codes.
    """

    CODE = "RC901"
    NAME = "unused-suppression"
    SEVERITY = Severity.INFO
    MESSAGE = "this suppression comment suppresses nothing"
    VALID = ("x = 1  # noqa: E501\n", "y = 2  # noqa\n")
    INVALID = ("x = 1  # noqa: RC201  # expect: RC901\n",)

    def check(self, ctx: Context) -> None:
        # Reported by the engine after every other rule has run.
        return None
