"""User-facing errors: anything a user can fix by changing input raises UserError.

The CLI prints ``error: <message>`` on one line and exits 2; no traceback.
"""
import difflib


class UserError(Exception):
    """Bad input (unknown name, wrong combination, broken file). Exit code 2."""


def unknown(kind: str, value: str, known) -> UserError:
    """Build the 'unknown X' error with the closest accepted names."""
    known = sorted(known)
    close = difflib.get_close_matches(str(value), known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UserError(f"unknown {kind} '{value}'{hint} (accepted: {', '.join(known)})")
