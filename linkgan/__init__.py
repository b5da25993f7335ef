"""linkgan."""
