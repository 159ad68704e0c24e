"""complexity/reproduce."""
