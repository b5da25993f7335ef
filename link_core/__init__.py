"""link_core."""
