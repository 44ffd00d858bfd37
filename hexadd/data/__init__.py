"""Layer 4: the problems: numbers, their generation and dataset, the tokenizer, encoding, splits, problem families."""
