"""Domains: genomics, protein, forecasting (heads, tokenizers, data, tasks, metrics)."""
