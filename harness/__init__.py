"""unlearning-harness: a local, Kaggle-style benchmark for machine unlearning."""

__version__ = "0.1.0"
