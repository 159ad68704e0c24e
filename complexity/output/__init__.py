"""complexity/output."""
