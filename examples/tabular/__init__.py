"""Tabular classifier example: load, validate, split, tune, evaluate, register."""
