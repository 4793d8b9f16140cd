"""Experiments: one module each, runnable as ``corecast run NAME``."""
