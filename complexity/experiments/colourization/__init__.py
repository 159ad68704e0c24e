"""complexity/experiments/colourization."""
