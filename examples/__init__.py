"""Example opsloop projects (importable from the repository root as ``examples.*``)."""
