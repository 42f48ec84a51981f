"""crowd stage."""
