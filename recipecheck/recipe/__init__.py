"""`recipecheck recipe train.py`: the training recipe as the program model sees it, plus advice.

The summary is read from the same program model the rules use (one parse, no import of the
script): the optimizer and its hyperparameters, the LR schedule with where it is stepped (per
batch, per optimizer step, per epoch, from the expanded loop view) and the LR curve's endpoints
computed from the literals with the schedulers' closed forms, warmup, batch size, epochs or
iterations, gradient clipping, accumulation, mixed precision, initialization, input
normalization, regularizers and the evaluation protocol. Numbers behind names are resolved by
`recipecheck.program.values` and `recipecheck.program.hparams` (literals, simple variables,
argparse defaults, config fields, other project modules); anything unresolved says so.

The advice is every finding of every rule (info rules included) ranked by severity, followed by
recipe-level observations that no single rule states.

The package follows the pipeline: `facts` (the records), `evaluate` (numbers and the tiny LR
interpreter), `curves` (schedules), `extract` (the recipe of a script and its project), `advice`
and `render`. Every name stays importable from `recipecheck.recipe`.
"""

from __future__ import annotations

from recipecheck.recipe.facts import (  # noqa: F401
    OptimizerFacts,
    ScheduleFacts,
    Advice,
    Recipe,
    _rounded,
)
from recipecheck.recipe.evaluate import (  # noqa: F401
    fmt,
    _Src,
    _bool,
    _callers_args,
    num,
    _numbers,
    _unwrap_iter,
    _range_count,
    _while_bound,
    _loop_count,
    _steps_optimizer_directly,
    _training_loop,
    _where,
    _modulo_k,
    _MATH,
    _CONST,
    _Unknown,
    _eval_expr,
    _run_body,
    _sample,
    lr_function,
)
from recipecheck.recipe.curves import (  # noqa: F401
    _DEFAULTS,
    _POS,
    _sched_args,
    _shown,
    _lr_at,
    _compose,
    _schedule_as,
    _lambda_schedule,
    _horizon_of,
    _where_stepped,
    _schedule,
)
from recipecheck.recipe.extract import (  # noqa: F401
    _NORM_LAYERS,
    _AUGMENT,
    _DROPOUT,
    _opt_facts,
    _lr_provenance,
    _names_in,
    _groups_from_call,
    _train_loader_batch,
    _manual_lr,
    _initial_value,
    _HF_SCHEDULES,
    _kw,
    _frameworks,
    _under_else_or_if,
    _shape_words,
    _program_for,
    extract,
    _rel,
    _src_of,
    _optimizer_condition,
    _project_optimizers,
    _warmup_length,
    _modulo_steps,
    _framework_returned,
    _project_schedulers,
    _project_facts,
    _binding_note,
    _project_functions_used,
    fmt_value,
)
from recipecheck.recipe.advice import (  # noqa: F401
    _SEV_RANK,
    _observations,
    advise,
    build_recipe,
)
from recipecheck.recipe.render import (  # noqa: F401
    _opt_line,
    _at,
    rows,
    _STYLE,
    render_text,
    _render_summary,
    _render_advice,
)

__all__ = [
    'OptimizerFacts',
    'ScheduleFacts',
    'Advice',
    'Recipe',
    'fmt',
    'num',
    'lr_function',
    'extract',
    'fmt_value',
    'advise',
    'build_recipe',
    'rows',
    'render_text',
]
