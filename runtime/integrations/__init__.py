"""Framework integrations of the runtime monitor (optional extras).

* :mod:`recipecheck.runtime.integrations.lightning`: ``RecipecheckCallback`` for PyTorch
  Lightning (extra ``lightning``).
* :mod:`recipecheck.runtime.integrations.huggingface`: ``RecipecheckCallback``, a
  ``transformers.TrainerCallback`` (extra ``huggingface``).

Nothing is imported here: each submodule imports its framework when it is itself imported and
raises an ImportError naming the extra when the framework is missing.
"""
