"""Pilot tests: the whole wizard by keys, a real tiny-llama launch, cancel, inline errors, re-ranking.

    .venv/bin/python -m pytest -q tests/advisor/tui/test_tui_wizard.py

The launch and cancel tests start a real ``tunebench train`` child (tiny-llama, smoke task).
"""
from __future__ import annotations

import asyncio
import time

import polars as pl
from textual.widgets import DataTable, Select, Sparkline
from tui_records import NO_GPU, group_members, seed_db, type_into

from advisor.tui.app import make_app
from advisor.tui.process import alive
from advisor.tui.widgets.field import Field
from bench.results import read_runs

SIZE = (80, 24)


def app_for(tmp_path, name="tui-test"):
    return make_app(tmp_path / "db", hardware=NO_GPU, runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports",
                    run_name=lambda: name)


async def to_recommendations(pilot, steps: str) -> None:
    await pilot.press("ctrl+n")            # Hardware: CPU as detected
    await pilot.press("ctrl+n")            # Budget: 24 h
    await type_into(pilot, "#tryout-steps-input", steps)
    await pilot.press("ctrl+n")            # Task
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def wait_until(pilot, predicate, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        await pilot.pause(0.25)


def test_wizard_launches_tiny_run_and_shows_it_in_results(tmp_path):
    async def main():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert type(app.screen).__name__ == "HardwareScreen"
            await to_recommendations(pilot, "3")
            assert type(app.screen).__name__ == "RecommendationsScreen"
            recs = app.screen.recs
            assert recs and all(r["fits"] for r in recs)
            assert "Peak" in recs[0]["why"] and recs[0]["cost_usd"] == 0.0   # CPU: no dollar cost
            await pilot.press("enter")      # launch the highlighted (top) stack
            assert type(app.screen).__name__ == "LaunchScreen"
            stack = recs[0]["stack"]
            await pilot.press("ctrl+n")     # confirm: starts tunebench train
            screen = app.screen
            assert type(screen).__name__ == "ProgressScreen"
            proc = screen.source
            assert proc.plan.argv()[1:3] == ["-m", "bench.entry"]
            await wait_until(pilot, lambda: screen.exited is not None, 150, "the tiny run to finish")
            assert screen.exited.returncode == 0, proc.log_path.read_text()[-2000:]
            stats = screen.query_one("#stats").state
            assert stats["step"] == 3 and stats["loss"] is not None and stats["tokens_per_s"]
            assert screen.query_one(Sparkline).data, "loss events reached the sparkline"
            assert not alive(proc.pid)
            await pilot.press("r")
            assert type(app.screen).__name__ == "ResultsScreen"
            table = app.screen.query_one(DataTable)
            rid = screen.exited.run_ids[-1]
            row = [str(c) for c in table.get_row(rid)]   # the new run is highlighted (rich Text cells)
            assert row[1] == rid and row[3] == stack and row[7] == "ok" and row[4] == "tiny-llama"
        df = read_runs(tmp_path / "db")
        assert df.filter(pl.col("run_id") == rid)["status"].to_list() == ["ok"]

    asyncio.run(main())


def test_cancel_mid_run_records_cancelled_and_leaves_no_process(tmp_path):
    async def main():
        app = app_for(tmp_path, "tui-cancel")
        async with app.run_test(size=SIZE) as pilot:
            await to_recommendations(pilot, "5000")
            await pilot.press("enter", "ctrl+n")
            screen = app.screen
            proc = screen.source
            await wait_until(pilot, lambda: screen.query_one("#stats").state["step"] >= 1, 120, "the first step event")
            await pilot.press("c")
            await wait_until(pilot, lambda: screen.exited is not None, 60, "the cancelled child to exit")
            assert screen.exited.cancelled
            assert not alive(proc.pid) and group_members(proc.pid) == []
            assert screen.exited.run_ids == ["tui-cancel-0"]
        df = read_runs(tmp_path / "db")
        assert df["status"].to_list() == ["cancelled"]
        assert df["stack"].to_list() == [proc.plan.stack]

    asyncio.run(main())


def test_bad_inputs_are_shown_inline_and_block_next(tmp_path):
    async def main():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+n")
            await type_into(pilot, "#hours-input", "-5")
            hours = app.screen.query_one("#hours", Field)
            assert hours.has_class("-invalid") and "hours must be >= 0, got -5" in str(hours.query_one(".field-error").render())
            await pilot.press("ctrl+n")
            assert type(app.screen).__name__ == "BudgetScreen"
            assert "hours must be >= 0" in str(app.screen.query_one("#status").render())
            await type_into(pilot, "#hours-input", "12")
            await pilot.press("ctrl+n")
            assert type(app.screen).__name__ == "TaskScreen"
            await type_into(pilot, "#model-input", "/no/such/model")
            model = app.screen.query_one("#model", Field)
            assert model.has_class("-invalid") and "not found" in model.error
            await pilot.press("ctrl+n")
            assert type(app.screen).__name__ == "TaskScreen"
            await type_into(pilot, "#model-input", "llama-3.1-8b")
            assert model.valid
            await pilot.press("ctrl+n")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert type(app.screen).__name__ == "RecommendationsScreen"
            assert {r["model"] for r in app.screen.recs} <= {"llama-3.1-8b"}
            assert app.inputs.budget_hours == 12

    asyncio.run(main())


def test_changing_inputs_reranks_in_place(tmp_path):
    async def main():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await to_recommendations(pilot, "3")
            screen = app.screen
            cpu = [(r["stack"], r["model"]) for r in screen.recs]
            assert cpu and {m for _, m in cpu} == {"smollm2-135m"}
            await type_into(pilot, "#bar-hours", "1")          # CPU runs need ~16 h: nothing fits
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.screen is screen and screen.recs == []
            assert "No stack fits" in str(screen.query_one("#details").render())
            await type_into(pilot, "#bar-hours", "-1")         # invalid: shown, no re-rank
            assert screen.query_one("#inputs-bar").has_class("-invalid")
            await pilot.press("ctrl+n")
            assert app.screen is screen
            await type_into(pilot, "#bar-hours", "24")
            screen.query_one("#bar-gpu", Select).value = "rtx-4090"
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.screen is screen and app.inputs.gpu_key == "rtx-4090" and app.inputs.memory_gib == 24
            gpu = [(r["stack"], r["model"]) for r in screen.recs]
            assert gpu and gpu != cpu and screen.last_rank_s < 5

    asyncio.run(main())


def test_results_filter_sort_compare_report(tmp_path):
    async def main():
        seed_db(tmp_path / "db")
        app = app_for(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("ctrl+r")
            screen = app.screen
            table = screen.query_one(DataTable)
            assert table.row_count == 4
            assert [table.get_row_at(i)[1] for i in range(4)] == ["seed-3-0", "seed-2-0", "seed-1-0", "seed-0-0"]
            await pilot.press("slash", *"status=ok", "enter")
            assert table.row_count == 3
            await pilot.press("s")                              # next column after created_at: stack
            assert screen.sort_col == "stack"
            await pilot.press("S")
            assert [table.get_row_at(i)[3] for i in range(3)] == ["dpo:lora", "sft:dora", "sft:lora"]
            await pilot.press("space", "down", "space", "c")
            assert type(app.screen).__name__ == "CompareScreen"
            cmp = app.screen.query_one(DataTable)
            rows = {cmp.get_row_at(i)[0]: cmp.get_row_at(i)[1:] for i in range(cmp.row_count)}
            assert rows["run_id"] == ["seed-2-0", "seed-1-0"] and rows["stack"] == ["dpo:lora", "sft:dora"]
            await pilot.press("escape")
            await pilot.press("slash", *"task=smoke", "enter", "r")
            assert type(app.screen).__name__ == "ReportScreen"
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert (tmp_path / "reports" / "smoke" / "comparison.md").is_file()
            assert (tmp_path / "reports" / "smoke" / "comparison.html").is_file()

    asyncio.run(main())
