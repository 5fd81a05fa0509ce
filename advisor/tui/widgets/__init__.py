"""Widgets of the wizard, one file each; they talk to their screen through ``advisor.tui.messages``."""
