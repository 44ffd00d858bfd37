"""Layer 3: the two configs as typed dataclasses, and reading them from YAML with --set overrides."""
