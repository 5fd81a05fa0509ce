"""tunebench reports package."""
