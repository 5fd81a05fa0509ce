"""tunebench advisor package."""
