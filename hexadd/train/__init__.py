"""Layer 7: training: preparing a run, the loop, the batch mixture, evaluations and the gate, checkpoints, tracking."""
