"""Sub-commands of the ``opsloop`` CLI, one module per group. Only typer at import time."""
