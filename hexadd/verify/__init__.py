"""Layer 6: what a model gets right: teacher-forced verdicts, certificates, the error search, grids, bands."""
