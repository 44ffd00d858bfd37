"""Layer 5: a trained model at work: loading it, decoding with it, what it attends to."""
