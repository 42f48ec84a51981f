"""releases stage."""
