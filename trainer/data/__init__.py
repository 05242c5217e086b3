"""Corpora, emotion labels, splits, the pair-aware sampler, log-Mel features and the collator."""
