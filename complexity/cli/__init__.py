"""complexity/cli."""
