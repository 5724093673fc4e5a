"""Read-only users of the registry (SPEC §8): ls, watch, render."""
