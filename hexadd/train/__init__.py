"""Layer 7: training: setup, the loop, the batch mixture, evaluations and the gate, checkpoints, tracking."""
