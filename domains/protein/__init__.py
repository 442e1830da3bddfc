"""Protein: amino-acid tokenizer, readers, pretraining corpora, labelled tasks, mutation scoring."""
