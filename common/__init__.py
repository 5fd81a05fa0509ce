"""The bottom room: small, torch-free contracts every other package may import.

Dependency direction (tests/test_import_direction.py): this room imports none of the others.
"""
