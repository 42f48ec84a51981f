"""boxes stage."""
