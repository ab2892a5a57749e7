"""optrepro."""
