"""Builders turn an installed source (a package, the stdlib, code) into task records."""
