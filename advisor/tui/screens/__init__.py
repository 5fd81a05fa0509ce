"""The wizard's screens, one file each, in the order the user meets them.

    tunebench tui

hardware -> budget -> task -> recommendations -> launch -> progress -> results (compare, report).
"""
