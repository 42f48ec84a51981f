"""hierarchy stage."""
