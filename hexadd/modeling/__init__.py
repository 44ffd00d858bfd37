"""Layer 2: the model that ships with its weights (model, positions, schemes); it imports nothing else of hexadd."""
