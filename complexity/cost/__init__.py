"""complexity/cost."""
