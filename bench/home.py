"""Where tunebench keeps what it builds: models, data, results. Never inside git.

``TUNEBENCH_HOME`` (default ``~/.cache/tunebench``) holds ``models/``, ``data/`` and ``db/``.
"""
import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("TUNEBENCH_HOME", Path.home() / ".cache" / "tunebench")).expanduser()


def models_dir() -> Path:
    return home() / "models"


def data_dir() -> Path:
    return home() / "data"


def default_db() -> Path:
    return home() / "db"
