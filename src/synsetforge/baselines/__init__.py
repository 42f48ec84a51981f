"""baselines stage."""
