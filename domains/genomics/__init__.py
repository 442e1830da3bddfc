"""Genomics: DNA tokenizer, named genomes, genome-window data, k-mer baselines."""
