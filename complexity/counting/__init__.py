"""complexity/counting."""
