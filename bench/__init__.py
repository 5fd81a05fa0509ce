"""tunebench bench package."""
