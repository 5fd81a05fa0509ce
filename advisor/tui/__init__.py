"""The Textual wizard: hardware, budget, task -> ranked stacks -> launch -> live progress -> results.

    tunebench tui [--db DIR]

``advisor.tui.app.make_app(db_dir, advise_fn=advisor.ranking.advise, hardware=None)`` builds the
app; the pure helpers (``hardware``, ``plan``, ``process``) know no screen and are tested alone.
"""
