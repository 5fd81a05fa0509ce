"""Pilot tests: the whole wizard by keys, real launches, cancel, inline errors, re-ranking.

    .venv/bin/python -m pytest -q tests/advisor/tui/test_tui_wizard.py

The launch tests start a real ``tunebench train`` child: the recommendation itself (smollm2-135m,
sft:lora, on a 50-row JSONL the test writes) and the try-out option (tiny-llama, smoke task).
"""
from __future__ import annotations

import asyncio
import time

import io
import json

import polars as pl
import yaml
from rich.console import Console
from textual.widgets import DataTable, Input, Select, Sparkline, TextArea
from tui_records import NO_GPU, group_members, seed_db, type_into

from advisor.tui.app import make_app
from advisor.tui.process import alive
from advisor.tui.widgets.field import Field
from bench.results import read_runs

SIZE = (80, 24)


def app_for(tmp_path, name="tui-test"):
    return make_app(tmp_path / "db", hardware=NO_GPU, runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports",
                    run_name=lambda: name)


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def to_recommendations(pilot) -> None:
    await pilot.press("ctrl+n")            # Hardware: CPU as detected
    await pilot.press("ctrl+n")            # Budget: 24 h
    await pilot.press("ctrl+n")            # Task
    await settle(pilot)


async def tryout(pilot, steps: str) -> None:
    """On the Launch screen: Run = a try-out on a standard task (tiny-llama, smoke), ``steps`` steps."""
    pilot.app.screen.query_one("#mode", Select).value = "tryout"
    await pilot.pause()
    await type_into(pilot, "#steps-input", steps)


def pairs_file(tmp_path, n: int = 50):
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for k in range(n):
            pair = {"prompt": f"What is {k} plus {k + 1}?", "completion": f"{k} plus {k + 1} is {2 * k + 1}."}
            f.write(json.dumps(pair) + "\n")
    return path


async def wait_until(pilot, predicate, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        await pilot.pause(0.25)


def test_wizard_launches_tiny_tryout_and_shows_it_in_results(tmp_path):
    async def main():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert type(app.screen).__name__ == "HardwareScreen"
            await to_recommendations(pilot)
            assert type(app.screen).__name__ == "RecommendationsScreen"
            recs = app.screen.recs
            assert recs and all(r["fits"] for r in recs)
            assert "Peak" in recs[0]["why"] and recs[0]["cost_usd"] == 0.0   # CPU: no dollar cost
            await pilot.press("enter")      # launch the highlighted (top) stack
            assert type(app.screen).__name__ == "LaunchScreen"
            stack = recs[0]["stack"]
            await tryout(pilot, "3")
            spec = yaml.safe_load(app.screen.query_one("#yaml", TextArea).text)
            assert (spec["model"], spec["task"], spec["hp"]["max_steps"]) == ("tiny-llama", "smoke", 3)
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
            rid = screen.exited.run_ids[-1]
            await pilot.press("t")          # the finished run's last stage, in the Chat screen
            chat = app.screen
            assert type(chat).__name__ == "ChatScreen" and chat.record["run_id"] == rid
            await wait_until(pilot, lambda: chat.session is not None, 60, "the chat to load")
            await pilot.pause()
            assert chat.starters and chat.query("#starter-0")
            await pilot.press("escape")
            await pilot.press("r")
            assert type(app.screen).__name__ == "ResultsScreen"
            table = app.screen.query_one(DataTable)
            row = [str(c) for c in table.get_row(rid)]   # the new run is highlighted (rich Text cells)
            assert row[1:5] == [rid, stack, "tiny-llama", "ok"]
        df = read_runs(tmp_path / "db")
        assert df.filter(pl.col("run_id") == rid)["status"].to_list() == ["ok"]

    asyncio.run(main())


def test_wizard_launches_the_recommendation_on_the_users_data(smollm2, tmp_path):
    """Issue 17's done-when: a 50-row JSONL of pairs in the Task step, sft:lora on smollm2-135m launched
    as recommended (its micro-batch / checkpointing), and Results shows estimate next to measured."""
    from advisor.tui.fmt import gib, seconds

    data = pairs_file(tmp_path)

    async def main():
        app = app_for(tmp_path, "tui-data")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+n", "ctrl+n")          # Hardware: CPU; Budget: 24 h
            await type_into(pilot, "#model-input", "smollm2-135m")
            app.screen.query_one("#datapath-input", Input).value = str(data)   # pasted
            await wait_until(pilot, lambda: app.inputs.data_info is not None or app.screen.data_error, 60,
                             "the data to be read")
            info = app.inputs.data_info
            assert info is not None, app.screen.data_error
            assert (info.rows, info.format, info.length_unit) == (50, "prompt_completion", "tokens")
            shown = str(app.screen.query_one("#data-detected").render())
            assert "50 rows" in shown and f"p99 {info.length_p99} tokens" in shown
            assert app.screen.query_one("#pairs", Field).text == str(info.train_rows)
            await pilot.press("ctrl+n")
            await settle(pilot)
            screen = app.screen
            assert type(screen).__name__ == "RecommendationsScreen"
            assert app.inputs.profile(None).seq_len == info.suggested_max_length() == 64
            stacks = [r["stack"] for r in screen.recs]
            rec = screen.recs[stacks.index("sft:lora")]
            screen.query_one(DataTable).move_cursor(row=stacks.index("sft:lora"))
            await pilot.pause()
            await pilot.press("enter")
            launch = app.screen
            assert type(launch).__name__ == "LaunchScreen" and launch.query_one("#mode", Select).value == "rec"
            spec = yaml.safe_load(launch.query_one("#yaml", TextArea).text)
            knobs = {"batch_size": rec["stages"][0]["micro_batch"], "grad_ckpt": rec["stages"][0]["grad_ckpt"]}
            assert spec["model"] == "smollm2-135m" and spec["data"] == {"path": str(data)} and "task" not in spec
            assert spec["stages"] == [{"objective": "sft", "method": "lora", "hp": knobs}]
            # the full-data default: 2 epochs over the training rows at the recommended micro-batch
            assert spec["hp"] == {"max_steps": -(-2 * info.train_rows // knobs["batch_size"]), "max_length": 64}
            assert "precision sft:lora fp32" in launch.query_one("#yaml", TextArea).text
            await type_into(pilot, "#steps-input", "2")
            await type_into(pilot, "#maxlen-input", "48")
            assert "sft:lora peak" in str(launch.query_one("#estimate").render())
            area = launch.query_one("#yaml", TextArea)   # an edit in the YAML runs as edited: fewer eval rows
            area.text = area.text.replace("  max_length: 48\n", "  max_length: 48\n  eval_limit: 4\n")
            await pilot.pause()
            await pilot.press("ctrl+n")
            progress = app.screen
            assert type(progress).__name__ == "ProgressScreen"
            assert "Estimate on CPU: sft:lora peak" in str(progress.query_one("#run-estimate").render())
            await wait_until(pilot, lambda: progress.exited is not None, 240, "the smollm2 run to finish")
            assert progress.exited.returncode == 0, progress.source.log_path.read_text()[-2000:]
            estimate = json.loads((tmp_path / "runs" / "tui-data" / "estimate.json").read_text())
            assert [(s["stage"], s["steps"], s["seq_len"], s["micro_batch"]) for s in estimate["stages"]] == [
                ("sft:lora", 2, 48, knobs["batch_size"])]
            await pilot.press("r")
            results = app.screen
            assert type(results).__name__ == "ResultsScreen"
            row = results.frame.filter(pl.col("run_id") == "tui-data-0").row(0, named=True)
            assert row["status"] == "ok" and row["task"].startswith("data:pairs.jsonl@") and row["steps"] == 2
            assert row["est_peak_gib"] == estimate["stages"][0]["peak_gib"]
            assert row["est_train_s"] == estimate["stages"][0]["hours"] * 3600
            assert row["peak_gib"] == row["peak_rss_bytes"] / 2**30
            assert row["train_s"] == row["step_time_s"] * 2
            table = results.query_one(DataTable)
            heads = [str(c.label) for c in table.columns.values()]
            cells = dict(zip(heads, (str(c) for c in table.get_row("tui-data-0"))))
            assert cells["est GiB"] == gib(row["est_peak_gib"], unit=False)
            assert cells["peak GiB"] == gib(row["peak_gib"], unit=False)
            assert (cells["est train"], cells["train"]) == (seconds(row["est_train_s"]), seconds(row["train_s"]))
            assert json.loads(row["hyperparams"])["hp"]["eval_limit"] == 4
            # issue 20: the launched smollm2 run can be chatted with, next to its base
            from advisor.tui.screens.chat import MAX_NEW_TOKENS
            from bench.chat import generate

            await pilot.press("t")
            chat = app.screen
            assert type(chat).__name__ == "ChatScreen" and chat.record["run_id"] == "tui-data-0"
            await wait_until(pilot, lambda: chat.session is not None, 120, "the smollm2 run to load")
            await pilot.pause()
            prompt = "Give one tip for writing clear emails."
            box = chat.query_one("#prompt", Input)
            box.value = prompt
            box.focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(chat.replies) == 2 and not chat.busy, 240, "both replies")
            for which in ("base", "tuned"):
                want = generate(chat.record, prompt, which, max_new_tokens=MAX_NEW_TOKENS).text
                assert chat.replies[which].text == want, which

    asyncio.run(main())


def test_cancel_mid_run_records_cancelled_and_leaves_no_process(tmp_path):
    async def main():
        app = app_for(tmp_path, "tui-cancel")
        async with app.run_test(size=SIZE) as pilot:
            await to_recommendations(pilot)
            await pilot.press("enter")
            await tryout(pilot, "5000")
            await pilot.press("ctrl+n")
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


def test_task_step_refuses_data_that_does_not_validate(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", oops}\n')

    async def main():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+n", "ctrl+n")
            screen = app.screen
            screen.query_one("#datapath-input", Input).value = str(bad)
            await wait_until(pilot, lambda: screen.data_error is not None, 30, "the bad file to be read")
            assert screen.data_error.startswith(f"data {bad} line 2 column 17: not valid JSON")
            assert screen.data_error in str(screen.query_one("#data-detected").render())
            await pilot.press("ctrl+n")
            assert app.screen is screen
            assert "Fix before going on: data: data " in str(screen.query_one("#status").render())
            screen.query_one("#datapath-input", Input).value = str(tmp_path / "missing.jsonl")
            await pilot.pause()
            assert "does not exist" in screen.query_one("#datapath", Field).error
            screen.query_one("#datapath-input", Input).value = ""   # no file: typed sizes drive the estimate
            await pilot.pause()
            await pilot.press("ctrl+n")
            await settle(pilot)
            assert type(app.screen).__name__ == "RecommendationsScreen" and app.inputs.data_info is None

    asyncio.run(main())


def test_launch_names_a_missing_catalog_model_and_never_replaces_it(tmp_path):
    async def main():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            app.screen.query_one("#gpu", Select).value = "rtx-4090"
            await pilot.pause()
            await pilot.press("ctrl+n", "ctrl+n")
            await type_into(pilot, "#model-input", "llama-3.1-8b")
            await pilot.press("ctrl+n")
            await settle(pilot)
            assert {r["model"] for r in app.screen.recs} == {"llama-3.1-8b"}
            await pilot.press("enter")
            launch = app.screen
            assert type(launch).__name__ == "LaunchScreen"
            model = launch.query_one("#model", Field)
            assert model.text == "llama-3.1-8b" and model.error.startswith("llama-3.1-8b is not on this machine")
            await pilot.press("ctrl+n")                      # blocked: nothing starts
            assert app.screen is launch and app.active is None
            assert "llama-3.1-8b is not on this machine" in str(launch.query_one("#status").render())
            assert yaml.safe_load(launch.query_one("#yaml", TextArea).text)["model"] == "llama-3.1-8b"
            await tryout(pilot, "3")                         # the try-out is the other choice, on a local model
            assert model.valid and model.text == "tiny-llama"
            spec = yaml.safe_load(launch.query_one("#yaml", TextArea).text)
            assert (spec["model"], spec["task"]) == ("tiny-llama", "smoke")

    asyncio.run(main())


def test_changing_inputs_reranks_in_place(tmp_path):
    async def main():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await to_recommendations(pilot)
            screen = app.screen
            cpu = [(r["stack"], r["model"]) for r in screen.recs]
            assert cpu and all(r["hours"] <= 24 for r in screen.recs)
            await type_into(pilot, "#bar-hours", "1")          # CPU runs need ~16 h: cut to what 1 h buys
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.screen is screen and screen.recs
            assert all(r["hours"] <= 1 and r["budget_cut"] for r in screen.recs)
            shown = Console(width=200, file=io.StringIO())
            shown.print(screen.query_one("#details").content)
            assert "Gives up: one pass over" in shown.file.getvalue()
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
            await pilot.press("s", "s")                         # after created_at (the last): run, then stack
            assert screen.sort_col == "stack"
            await pilot.press("S")
            assert [table.get_row_at(i)[2] for i in range(3)] == ["dpo:lora", "sft:dora", "sft:lora"]
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
