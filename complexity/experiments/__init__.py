"""complexity/experiments."""
