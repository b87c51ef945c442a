"""Reference implementations, verified against written formulas and against torch.

Optimizers (pure update functions + ``torch.optim.Optimizer`` classes), learning-rate schedules
(pure functions of the step + an ``LRScheduler`` adapter) and regularizers.
"""

from recipecheck.runtime.reference.optimizers import (  # noqa: F401
    SGD, SGDVelocity, Adagrad, RMSprop, Adam, AdamL2, AdamW, sgd_update, sgd_velocity_update,
    adagrad_update, rmsprop_update, adam_update,
)
from recipecheck.runtime.reference.schedules import (  # noqa: F401
    constant, step_decay, multistep_decay, exponential_decay, inverse_time_decay, cosine_decay,
    linear_decay, inverse_sqrt_decay, linear_warmup, with_warmup, cyclic, one_cycle,
    cosine_warm_restarts, sgdr_cycle_ends, FunctionScheduler, NewBobPlateau,
)
from recipecheck.runtime.reference.regularizers import (  # noqa: F401
    l2_penalty, l2_penalty_grad, l1_penalty, l1_penalty_grad, elastic_net_penalty,
    elastic_net_penalty_grad, max_norm_, inverted_dropout, scaled_dropout, dropconnect_linear,
    batch_norm, smooth_labels, label_smoothing_cross_entropy, sample_gamma, sample_beta, Mixed,
    mixup, cutmix, cutout, stochastic_depth, random_horizontal_flip, random_crop, clip_grad_norm_,
    clip_grad_value_, EarlyStopping, EMA, PolyakAverage, SnapshotEnsemble,
)

# Data made in code and the tiny deterministic trainer (validation experiments).
from recipecheck.runtime.reference.data import (  # noqa: F401,E402
    DataUnavailable, Split, make_generator, spiral, blobs, class_sorted, class_sorted_blobs,
    adding_problem, noise_features, digits, train_val_split,
)
from recipecheck.runtime.reference.trainer import (  # noqa: F401,E402
    TrainConfig, History, StepInfo, mlp, small_cnn, RNNRegressor, init_weights, make_optimizer,
    train, evaluate, hidden_activations, parameter_vector,
)
