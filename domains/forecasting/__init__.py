"""Forecasting: long/wide pandas frames, named datasets, the long-horizon protocol, metrics, plots, forecasters."""
