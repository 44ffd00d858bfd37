"""Layer 1: what every other layer uses: errors, atomic files, the command-line frame, devices, seed streams."""
