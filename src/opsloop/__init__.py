"""opsloop: AIOps and MLOps as one loop — observe, detect, act, learn."""

__version__ = "0.1.0"
