"""The bottom room: small, torch-free contracts every other package may import.

Dependency direction (tests/test_import_direction.py): common <- methods <- bench <- reports <- advisor.
"""
