"""The comparison table from a synthetic DB: known numbers land in the right cells, missing
figures stay missing with their reason, and hardware groups are never pooled."""
from report_records import GiB, TOTAL, frame, rec, sft, write_db

from bench.results import read_runs
from reports.render import COLUMNS, cells
from reports.table import groups, load_rows

COL = {name: i for i, name in enumerate(COLUMNS)}


def line_cells(group, label, task="wiki-topics"):
    matches = [ln for ln in group.lines if ln.label == label and ln.task == task]
    assert len(matches) == 1, [(ln.label, ln.task) for ln in group.lines]
    return dict(zip(COLUMNS, cells(matches[0], group.hardware)))


def test_rows_cover_every_seed_method():
    stages = {(r.objective, m) for r in load_rows() for m in (r.methods or ("*",))}
    for par in ("full", "lora", "qlora", "dora", "adapter_houlsby", "adapter_pfeiffer", "prefix", "prompt",
                "ptuning", "ia3", "bitfit", "lora8bit", "rslora", "pissa", "adalora", "loha", "lokr", "vera",
                "oft", "boft", "ln_tuning", "freeze"):
        assert ("sft", par) in stages
    for obj in ("multitask", "cpt", "rm", "ppo", "dpo", "ipo", "kto", "orpo", "simpo", "grpo", "rlaif", "distill"):
        assert (obj, "*") in stages


def test_known_numbers_in_the_right_cells(tmp_path):
    db = write_db(tmp_path / "db", [
        sft("full", trainable=TOTAL, mem_gib=4.9, metric_after=0.80 + 0.01 * s, forgetting=0.3, seed=s) for s in range(3)
    ] + [sft("lora", trainable=2_442_240, mem_gib=4.5, metric_after=0.78, forgetting=0.05)])
    (group,) = groups(read_runs(db))
    full = line_cells(group, "Full FT")
    assert full["trainable params (% of model)"] == "135M (100.0%)"
    assert full["peak memory"] == "4.90 GiB host RSS"
    # mean ± t(0.975, 2)·s/√3 = 4.303 · 1 / 1.732 = 2.484 (n = 3)
    assert full["tokens/s"] == "101 ± 2.48 (n=3)"
    assert full["wall time"] == "61.0 s ± 2.5 s (n=3)"
    assert full["quality before → after"] == "acc: 0.25 → 0.81 ± 0.02484 (n=3)"
    assert full["forgetting"] == "+0.3"
    assert full["runs / seeds"] == "3 of 3 ok · seeds 0, 1, 2"
    assert full["hardware"] == "cpu-test-2c"
    assert full["data needed"] == "prompt_completion"
    lora = line_cells(group, "LoRA")
    assert lora["trainable params (% of model)"] == "2.44M (1.82%)"
    assert lora["runs / seeds"] == "1 of 1 ok · seeds 0"
    assert lora["data needed"] == "prompt_completion"  # LoRA needs no more than SFT data


def test_two_seeds_show_min_max_with_n():
    (group,) = groups(frame([sft("lora", seed=0, mem_gib=4.0), sft("lora", seed=1, mem_gib=5.0)]))
    cells_ = line_cells(group, "LoRA")
    assert cells_["peak memory"] == "4.50 GiB (4.00 GiB–5.00 GiB, n=2) host RSS"
    assert cells_["tokens/s"] == "100 (100–101, n=2)"


def test_speed_leaves_out_runs_measured_beside_other_work():
    """A run whose meter saw other processes take >10% of the CPU keeps its memory and quality, not its speed."""
    import json

    from reports.render import group_facts

    busy = [sft("lora", seed=s, tokens_per_s=50.0, mem_gib=6.0, metric_after=0.7,
                extra=json.dumps({"background_cpu_share": 0.4})) for s in (2, 3)]
    quiet = [sft("lora", seed=0, extra=json.dumps({"background_cpu_share": 0.02})), sft("lora", seed=1)]
    (group,) = groups(frame(quiet + busy))
    cells_ = line_cells(group, "LoRA")
    assert cells_["tokens/s"] == "100 (100–101, n=2)"  # the two quiet runs only
    assert cells_["runs / seeds"] == "4 of 4 ok · seeds 0, 1, 2, 3"
    assert "n=4" in cells_["peak memory"] and "n=4" in cells_["quality before → after"]
    assert "leaves out 2 runs measured beside other work" in group_facts(group)
    (quiet_group,) = groups(frame(quiet))
    assert "leaves out" not in group_facts(quiet_group)


def test_smoke_and_hardware_class():
    gs = groups(frame([sft("lora"), sft("lora", model="tiny-llama"),
                       sft("lora", hardware="NVIDIA H100", peak_reserved_bytes=GiB)]))
    assert [(g.hardware, g.model, g.hardware_class, g.smoke) for g in gs] == [
        ("NVIDIA H100", "smollm2-135m", "GPU", False), ("cpu-test-2c", "smollm2-135m", "CPU", False),
        ("cpu-test-2c", "tiny-llama", "CPU", True)]


def test_gpu_reserved_memory_preferred_over_host_rss():
    (group,) = groups(frame([sft("lora", mem_gib=3.0, peak_reserved_bytes=12 * GiB)]))
    assert line_cells(group, "LoRA")["peak memory"] == "12.00 GiB GPU reserved"


def test_missing_measurements_shown_as_missing():
    (group,) = groups(frame([
        rec("sft:adapter_houlsby", status="oom", error="OutOfMemoryError: out of memory", peak_rss_bytes=99 * GiB),
        rec("sft:bitfit", status="error", error="UserError: model has no bias terms\nTraceback (most recent call last)"),
        rec("sft:prompt", trainable_params=11_520, trainable_share=11_520 / TOTAL),  # ok, most figures unrecorded
        sft("lora", mem_gib=4.0), sft("lora", seed=1, status="oom", mem_gib=50.0),
    ]))
    oom = line_cells(group, "Adapters (Houlsby)")
    assert oom["peak memory"] == "— (oom)" and oom["tokens/s"] == "— (oom)"
    assert oom["runs / seeds"] == "0 of 1 ok · seeds 0 · 1 oom · oom"
    err = line_cells(group, "BitFit")
    assert err["trainable params (% of model)"] == "— (error)"
    assert err["runs / seeds"].endswith("error: UserError: model has no bias terms")
    assert "Traceback" not in err["runs / seeds"]
    prompt = line_cells(group, "Prompt tuning")
    assert prompt["trainable params (% of model)"] == "11.5k (0.00856%)"
    assert prompt["peak memory"] == "— (not recorded)" and prompt["quality before → after"] == "— (not recorded)"
    dora = line_cells(group, "DoRA", task=None)
    assert dora["task"] == "—" and dora["peak memory"] == "— (not run)" and dora["runs / seeds"] == "0 of 0 ok"
    lora = line_cells(group, "LoRA")
    assert lora["peak memory"] == "4.00 GiB host RSS"  # the oom seed's 50 GiB is not a measurement
    assert lora["runs / seeds"] == "1 of 2 ok · seeds 0, 1 · 1 oom"


def test_hardware_groups_are_kept_apart():
    (gpu, cpu) = groups(frame([
        sft("lora", mem_gib=4.0, tokens_per_s=100.0),
        sft("lora", mem_gib=6.0, tokens_per_s=300.0, hardware="NVIDIA H100", peak_reserved_bytes=20 * GiB),
    ]))
    assert (gpu.hardware, cpu.hardware) == ("NVIDIA H100", "cpu-test-2c")
    assert line_cells(cpu, "LoRA")["tokens/s"] == "100"
    assert line_cells(gpu, "LoRA")["tokens/s"] == "300"
    assert line_cells(gpu, "LoRA")["peak memory"] == "20.00 GiB GPU reserved"
    assert line_cells(gpu, "LoRA")["runs / seeds"] == "1 of 1 ok · seeds 0"


def test_models_and_tasks_are_separate_lines_and_groups():
    groups_ = groups(frame([sft("lora", metric_after=0.7), sft("lora", task="gsm-symbolic", metric_after=0.2),
                            sft("lora", model="tiny-llama")]))
    assert [(g.hardware, g.model) for g in groups_] == [("cpu-test-2c", "smollm2-135m"), ("cpu-test-2c", "tiny-llama")]
    big = groups_[0]
    assert line_cells(big, "LoRA")["quality before → after"] == "acc: 0.25 → 0.7"
    assert line_cells(big, "LoRA", task="gsm-symbolic")["quality before → after"] == "acc: 0.25 → 0.2"


def test_later_stack_stages_count_only_where_the_row_allows():
    (group,) = groups(frame([
        sft("lora", stack="cpt:full,sft:lora", stage_index=1),  # started from a cpt result
        rec("rm:lora", task="math-prefs", stack="rm:lora,ppo:lora", wall_time_s=10.0),
        rec("ppo:lora", task="math-prefs", stack="rm:lora,ppo:lora", stage_index=1, wall_time_s=20.0),
    ]))
    assert line_cells(group, "LoRA", task=None)["runs / seeds"] == "0 of 0 ok"
    assert line_cells(group, "RM + PPO (RLHF): PPO (lora)", task="math-prefs")["wall time"] == "20.0 s"
    assert line_cells(group, "RM + PPO (RLHF): reward model (lora)", task="math-prefs")["wall time"] == "10.0 s"


def test_rows_come_from_the_cards(tmp_path):
    from methods import PARAMETERIZATIONS

    rows = load_rows()
    # Every registered parameterization has a row labelled by its card, without editing rows.yaml.
    named = {m for r in rows if r.objective == "sft" for m in r.methods or ()}
    assert set(PARAMETERIZATIONS) <= named
    for r in rows:
        if r.methods and len(r.methods) == 1:
            assert r.label == PARAMETERIZATIONS[r.methods[0]].card.label
    # A rows file naming only one method lists every other registered one in its ``others`` section.
    path = tmp_path / "rows.yaml"
    path.write_text("sections:\n  - title: Named\n    rows:\n      - {objective: sft, methods: [lora]}\n"
                    "  - title: Others\n    others: sft\n    order: [full]\n")
    got = load_rows(path)
    others = [r for r in got if r.section == "Others"]
    assert [r.methods[0] for r in others][0] == "full" and len(others) == len(PARAMETERIZATIONS) - 1
    assert {r.methods[0] for r in others} == set(PARAMETERIZATIONS) - {"lora"}
    assert got[0].label == "LoRA" and others[0].label == "Full FT"


def test_learning_rates_of_one_stage_are_separate_lines_never_pooled():
    import json

    hp = lambda lr: json.dumps({"hp": {"learning_rate": lr}})  # noqa: E731  what bench/train.py records
    records = ([sft("prefix", seed=s, metric_after=0.3, hyperparams=hp(0.01)) for s in range(3)]
               + [sft("prefix", seed=s, metric_after=0.7 + 0.01 * s, hyperparams=hp(0.003)) for s in range(3)]
               + [sft("lora", seed=s, hyperparams=hp(2e-4)) for s in range(2)])
    from reports.table import distinct

    (group,) = groups(frame(records))
    lines = distinct(group.lines)  # one line per stage, task and learning rate
    prefix = [ln for ln in lines if ln.method == "prefix"]
    assert sorted((ln.lr, ln.ok) for ln in prefix) == [(0.003, 3), (0.01, 3)]
    assert {ln.stage for ln in prefix} == {"sft:prefix @ lr 0.003", "sft:prefix @ lr 0.01"}
    tuned = next(ln for ln in prefix if ln.lr == 0.003)
    assert tuned.label.endswith("@ lr 0.003") and round(tuned.get("metric_after"), 3) == 0.71
    (lora,) = [ln for ln in lines if ln.method == "lora"]  # one learning rate: no split, no suffix
    assert lora.lr is None and lora.stage == "sft:lora" and lora.ok == 2
