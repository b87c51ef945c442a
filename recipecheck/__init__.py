"""recipecheck: a training-recipe linter and runtime monitor for PyTorch."""

__version__ = "0.1.0"

__all__ = ["__version__"]
