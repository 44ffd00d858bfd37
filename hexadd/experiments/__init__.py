"""Layer 8: experiments made of the layers below: length generalization, ablations and their report."""
