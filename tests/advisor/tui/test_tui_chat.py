"""Pilot tests of the Results actions on a real run: Chat (base vs tuned), export, reproduce command, refusals.

    .venv/bin/python -m pytest -q tests/advisor/tui/test_tui_chat.py

The run is a real 2-step tiny-llama sft:lora on the smoke task, trained once for the module.
"""
from __future__ import annotations

import asyncio
import shlex
import time

import pytest
from tui_records import NO_GPU, seed_db

from advisor.cli import main
from advisor.tui.app import make_app
from bench.chat import generate, starters
from bench.results import read_runs
from common.stack import load_stack_yaml

SIZE = (120, 40)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llama):
    tmp = tmp_path_factory.mktemp("tui-chat")
    assert main(["train", "--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--max-steps", "2",
                 "--hp", "eval_limit=0", "--out", str(tmp / "run"), "--db", str(tmp / "db"), "--run-id", "tui-chat",
                 "--quiet"]) == 0
    return tmp


def app_for(root):
    return make_app(root / "db", hardware=NO_GPU, runs_dir=root / "runs", reports_dir=root / "reports",
                    run_name=lambda: "tui-test")


async def wait_until(pilot, predicate, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what() if callable(what) else what}"
        await pilot.pause(0.1)


def status_of(screen) -> str:
    return str(screen.query_one("#status").render())


async def select_run(pilot, run_id: str) -> None:
    """Open Results (ctrl+r) and put the cursor on ``run_id``."""
    await pilot.press("ctrl+r")
    table = pilot.app.screen.query_one("#runs")
    table.move_cursor(row=table.get_row_index(run_id))


def test_results_chat_export_and_reproduce_a_real_run(trained, tmp_path):
    record = read_runs(trained / "db").row(0, named=True)
    expected_starters = starters("smoke", True, 3)

    async def main_():
        app = app_for(trained)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+r")
            results = app.screen
            assert results.current_run() == record["run_id"]

            await pilot.press("t")                                     # Chat
            chat = app.screen
            assert type(chat).__name__ == "ChatScreen"
            await wait_until(pilot, lambda: chat.session is not None, 60, "the run to load")
            await pilot.pause()
            assert chat.starters == expected_starters
            await pilot.click("#starter-0")
            await wait_until(pilot, lambda: len(chat.replies) == 2 and not chat.busy, 120, "both replies")
            await pilot.pause()
            shown = {w: chat.query_one(f"#reply-{w}").text for w in ("base", "tuned")}
            assert all(chat.query_one(f"#reply-{w}").pieces > 1 for w in shown)   # streamed, not set at the end
            await pilot.press("escape")

            await pilot.press("y")                                     # copy the reproduce command
            command = results.last_command
            assert app.clipboard == command and command in status_of(results)
            argv = shlex.split(command)
            assert argv[:2] == ["tunebench", "train"] and argv[-2:] == ["--db", str(trained / "db")]
            spec = load_stack_yaml(argv[2])
            assert (spec.label, spec.model, spec.task) == (record["stack"], record["model"], record["task"])

            await pilot.press("e")                                     # Export: HF folder, default path
            export = app.screen
            assert type(export).__name__ == "ExportScreen"
            await pilot.click("#export-hf")
            failed = lambda: export.query_one("#status").has_class("-error")  # noqa: E731
            await wait_until(pilot, lambda: export.result is not None or failed(), 120, "the export")
            await pilot.pause()
            assert export.result is not None, status_of(export)
            out = export.result.path
            assert out.parent == trained / "run" / "stage0-sft-lora" and out.name == "export-hf"
            assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
            assert f"{export.result.bytes / 2**20:.1f} MiB" in status_of(export)
            await pilot.pause(0.6)                                     # past the button's press effect
            await pilot.click("#export-hf")                            # again: the library refuses
            await wait_until(pilot, failed, 60, lambda: f"the refusal (status {status_of(export)!r})")
            assert "already exists" in status_of(export)
        return shown

    shown = asyncio.run(main_())
    for which in ("base", "tuned"):
        reply = generate(record, expected_starters[0], which, max_new_tokens=64)
        assert reply.text and shown[which] == reply.text, which


@pytest.mark.parametrize("run_id, key, screen, needle", [
    ("seed-3-0", "t", "ResultsScreen", "did not finish (cancelled)"),   # refused before the Chat screen opens
    ("seed-0-0", "t", "ChatScreen", "has no saved output"),             # ok, but no output_dir: the library's line
    ("seed-3-0", "e", "ResultsScreen", "no finished model to export"),
    ("seed-0-0", "y", "ResultsScreen", "names no output folder"),
])
def test_run_action_refusals_are_one_line(tmp_path, run_id, key, screen, needle):
    seed_db(tmp_path / "db")

    async def main_():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await select_run(pilot, run_id)
            await pilot.press(key)
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert type(app.screen).__name__ == screen
            text = status_of(app.screen)
            assert needle in text and "\n" not in text.strip() and "Traceback" not in text
            assert app.screen.query_one("#status").has_class("-error")

    asyncio.run(main_())


def test_run_report_builds_the_runs_comparison(tmp_path):
    seed_db(tmp_path / "db")

    async def main_():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await select_run(pilot, "seed-1-0")
            await pilot.press("o")
            assert type(app.screen).__name__ == "ReportScreen"
            assert app.screen.filters == {"hardware": "cpu-test-2c", "task": "smoke", "model": "tiny-llama"}
            await app.workers.wait_for_complete()
            await pilot.pause()
            md = tmp_path / "reports" / "cpu-test-2c-smoke-tiny-llama" / "comparison.md"
            assert md.is_file() and str(md) in str(app.screen.query_one("#report-paths").render())

    asyncio.run(main_())


def test_chat_screen_snapshot(trained, snap_compare):
    """The Chat screen once loaded: title, the smoke task's starters, empty panes (no timings, no replies yet)."""
    async def open_chat(pilot):
        await pilot.press("ctrl+r", "t")
        await wait_until(pilot, lambda: getattr(pilot.app.screen, "session", None) is not None, 60, "the run to load")
        await pilot.pause()

    assert snap_compare(app_for(trained), terminal_size=(100, 24), run_before=open_chat)
