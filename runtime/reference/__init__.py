"""Reference implementations, verified against written formulas and against torch.

Optimizers (pure update functions + ``torch.optim.Optimizer`` classes), learning-rate schedules
(pure functions of the step + an ``LRScheduler`` adapter) and regularizers.
"""

from recipecheck.runtime.reference.optimizers import *  # noqa: F401,F403
from recipecheck.runtime.reference.schedules import *  # noqa: F401,F403
from recipecheck.runtime.reference.regularizers import *  # noqa: F401,F403
