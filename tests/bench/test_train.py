"""Stacks end to end, result records per stage, and bad input through the CLI."""

import pytest

from advisor.cli import main


def test_three_stage_stack_end_to_end(tmp_path, tiny_llama):
    code = main(["train", "--stack", "cpt:full,sft:lora,dpo:lora", "--model", "tiny-llama", "--task", "smoke",
                 "--max-steps", "3", "--out", str(tmp_path / "run"), "--db", str(tmp_path / "db"), "--quiet"])
    assert code == 0
    from bench.results import read_runs

    df = read_runs(tmp_path / "db")
    assert sorted(df["stage"].to_list()) == sorted(["cpt:full", "sft:lora", "dpo:lora"])
    assert set(df["status"]) == {"ok"}
    # each stage leaves a loadable artifact; non-final stages a merged HF folder
    assert (tmp_path / "run" / "stage0-cpt-full" / "merged" / "config.json").exists()
    assert (tmp_path / "run" / "stage2-dpo-lora" / "adapter" / "adapter_config.json").exists()
    from peft import AutoPeftModelForCausalLM

    AutoPeftModelForCausalLM.from_pretrained(tmp_path / "run" / "stage2-dpo-lora" / "adapter")


@pytest.mark.parametrize("argv, needle", [
    (["--stack", "sft:nosuch", "--model", "tiny-llama", "--task", "smoke"], "unknown parameterization 'nosuch'"),
    (["--stack", "sftt:lora", "--model", "tiny-llama", "--task", "smoke"], "did you mean sft"),
    (["--stack", "sft:bitfit", "--model", "tiny-llama", "--task", "smoke"], "tiny-llama-bias"),
    (["--stack", "sft:lora,,dpo:lora", "--model", "tiny-llama", "--task", "smoke"], "malformed stack"),
    (["--stack", "sft:prefix,dpo:lora", "--model", "tiny-llama", "--task", "smoke"], "cannot be merged"),
    (["--stack", "ppo:lora", "--model", "tiny-llama", "--task", "smoke"], "reward model"),
    (["--stack", "orpo:prompt", "--model", "tiny-llama", "--task", "smoke"], "orpo cannot train with prompt"),
    (["--stack", "simpo:prompt", "--model", "tiny-llama", "--task", "smoke"], "position by position"),
    (["--stack", "sft:lora", "--model", "tiny-llama", "--task", "nosuch"], "unknown task"),
    (["--stack", "sft:lora", "--model", "no-such-model", "--task", "smoke"], "unknown model"),
    (["--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--hp", "learning_rate=-1"], "learning_rate"),
    (["--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--hp", "nosuch=1"], "nosuch"),
    (["--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--cfg", "beta=0.1"], "no stage"),
    (["--stack", "sft:lora", "--model", "tiny-llama"], "missing --task"),
    (["--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--hp", "eval_split=dev"], "eval_split"),
    # smoke has 64 train records: holding out 64 would leave nothing to train on
    (["--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--hp", "eval_split=validation",
      "--hp", "eval_limit=64"], "cannot hold out"),
])
def test_bad_input_exits_2_with_one_line(argv, needle, tmp_path, capsys, tiny_llama):
    db = tmp_path / "db"
    code = main(["train", *argv, "--out", str(tmp_path / "o"), "--db", str(db), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not db.exists() or not any(db.iterdir())


def test_broken_stack_yaml_exits_2(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("model: tiny-llama\nstages: [unclosed\n")
    assert main(["train", str(f)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_out_not_overwritten_without_force(tmp_path, capsys, tiny_llama):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code = main(["train", "--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--out", str(out)])
    assert code == 2 and "--force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "precious"


def test_progress_times_a_step_from_its_begin_to_its_end_less_paused_time():
    """A step's time is on_step_begin -> on_step_end (batch fetching and logging outside), less the
    meter's paused seconds; it stays right when the loss is logged only every few steps."""
    from types import SimpleNamespace

    import bench.progress as progress

    clock = {"t": 0.0}
    p = progress.Progress(quiet=True)
    p.start_stage("sft:lora", 0, 3, 4)
    paused = {"s": 0.0}
    p.paused = lambda: paused["s"]
    cb = p.callback()
    state = SimpleNamespace(global_step=0, num_input_tokens_seen=0)
    real = progress.time.perf_counter
    progress.time.perf_counter = lambda: clock["t"]
    try:
        cb.on_train_begin(None, state, None)
        for step, (work, pause, gap) in enumerate([(0.5, 0.0, 1.0), (0.3, 0.1, 2.0), (0.2, 0.0, 0.0)], start=1):
            clock["t"] += gap  # fetching the batch, logging: outside the window
            cb.on_step_begin(None, state, None)
            clock["t"] += work + pause
            paused["s"] += pause
            state.global_step, state.num_input_tokens_seen = step, state.num_input_tokens_seen + 10
            cb.on_step_end(None, state, None)  # no on_log: the loss is logged every few steps
        cb.on_train_end(None, state, None)
    finally:
        progress.time.perf_counter = real
    assert [round(s, 6) for s, _ in p.steps] == [0.5, 0.3, 0.2]
    assert [t for _, t in p.steps] == [10, 10, 10]


@pytest.mark.parametrize("hp, n_train, n_eval", [
    ({"eval_limit": 8}, 64, 8),                                   # test split: all train records, 8 test ones
    ({"eval_limit": 8, "eval_split": "validation"}, 56, 8),       # the last 8 train records held out
    ({"eval_limit": 8, "eval_split": "validation", "train_limit": 20}, 20, 8),
    ({"eval_limit": 0, "eval_split": "validation"}, 64, 0),       # nothing scored, nothing held out
])
def test_split_records_scores_the_test_split_or_held_out_train_records(hp, n_train, n_eval):
    from bench.taskdata import load_records
    from bench.train import split_records
    from common.stack import HyperParams

    hp = HyperParams(**hp)
    train, held = split_records("smoke", "text", hp)
    assert (len(train), len(held)) == (n_train, n_eval)
    texts = lambda recs: {r["text"] for r in recs}  # noqa: E731
    assert not texts(train) & texts(held)  # never scored on what it trained on
    if hp.eval_split == "validation":
        source = load_records("smoke", "train", "text")
        assert held == source[len(source) - n_eval:]
    else:
        assert held == load_records("smoke", "test", "text", n_eval)
