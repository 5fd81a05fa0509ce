"""The user's own data (bench/userdata.py): bad files refused in one line, formats detected, a stable split, runs.

    .venv/bin/python -m pytest tests/bench/test_userdata.py -q

The bad-file table runs ``tunebench train --data FILE`` (and ``tunebench data inspect FILE``) in
process: each case must exit 2 with exactly one stderr line naming the file, the row (or line)
and the column at fault, before any model loads and without writing --out or --db.
"""
import json
import os
from pathlib import Path

import pytest

from advisor.cli import main

PC = {"prompt": "What is 2 + 2?", "completion": "4"}
PREF = {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"}


def jsonl(*rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def chat(*roles) -> dict:
    return {"messages": [{"role": r, "content": f"a {r} turn"} for r in roles]}


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def write_saved(path: Path, splits: dict[str, list[dict]]) -> None:
    from datasets import Dataset, DatasetDict, disable_progress_bars

    disable_progress_bars()
    DatasetDict({k: Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(path))


def write_huge(path: Path) -> None:
    """A 50 MB JSON Lines file with no line break: one 'record' of 50 MB."""
    with open(path, "w") as f:
        f.write('{"text": "')
        chunk = "x" * (1 << 20)
        for _ in range(50):
            f.write(chunk)
        f.write('"}')


# (id, file name, content: str | bytes | callable(path), stack, extra flags, words the one line must hold)
BAD = [
    ("empty-file", "empty.jsonl", "", "sft:lora", [], ["empty.jsonl", "empty"]),
    ("blank-lines-only", "blank.jsonl", "\n  \n\n", "sft:lora", [], ["blank.jsonl", "empty"]),
    ("wrong-columns", "wrong.jsonl", jsonl({"question": "q", "reply": "a"}), "sft:lora", [],
     ["wrong.jsonl", "line 1", "['question', 'reply']", "match no format", "prompt, completion"]),
    ("mixed-formats", "mixed.jsonl", jsonl(PC, PC, PREF), "sft:lora", [],
     ["mixed.jsonl", "line 3", "['chosen', 'prompt', 'rejected']", "mixed formats"]),
    ("not-utf8", "latin1.jsonl", jsonl(PC).encode() + '{"prompt": "caf\u00e9", "completion": "x"}\n'.encode("latin-1"),
     "sft:lora", [], ["latin1.jsonl", "line 2", "not UTF-8", "column 16"]),
    ("50mb-single-line", "huge.jsonl", write_huge, "cpt:lora", [], ["huge.jsonl", "line 1", "longer than 16 MiB"]),
    ("duplicated-train-eval", "dup", lambda p: write_saved(p, {"train": [PC, {"prompt": "b", "completion": "c"}],
                                                             "test": [{"prompt": "z", "completion": "y"}, PC]}),
     "sft:lora", [], ["dup", "test row 2", "repeats train row 1"]),
    ("json-not-a-list", "obj.json", json.dumps(PC), "sft:lora", [], ["obj.json", "dict", "not a list of objects"]),
    ("json-row-not-object", "list.json", json.dumps([PC, "oops"]), "sft:lora", [], ["list.json", "row 2", "str"]),
    ("csv-ragged-row", "ragged.csv", "prompt,completion\nq1,a1\nq2,a2,extra\n", "sft:lora", [],
     ["ragged.csv", "row 2 (line 3)", "3 fields", "2 columns"]),
    ("parquet-corrupt", "bad.parquet", b"PAR1 this is not a parquet file", "sft:lora", [],
     ["bad.parquet", "not a readable parquet"]),
    ("folder-not-saved-dataset", "folder", lambda p: (p.mkdir(), (p / "a.jsonl").write_text(jsonl(PC))),
     "sft:lora", [], ["folder", "not a datasets save_to_disk folder", "a.jsonl"]),
    ("label-not-boolean", "kto.jsonl", jsonl({**PC, "label": True}, {**PC, "label": "yes"}), "kto:lora", [],
     ["kto.jsonl", "line 2", "column 'label'", "true or false", "'yes'"]),
    ("csv-label-not-boolean", "kto.csv", "prompt,completion,label\nq,a,true\nq,b,maybe\n", "kto:lora", [],
     ["kto.csv", "row 2 (line 3)", "column 'label'", "'maybe'"]),
    ("messages-bad-role", "chat.jsonl", jsonl(chat("user", "assistant"), chat("user", "bot")), "sft:lora", [],
     ["chat.jsonl", "line 2", "column 'messages'", "role 'bot'"]),
    ("messages-multi-turn", "turns.jsonl", jsonl(chat("user", "assistant", "user", "assistant")), "sft:lora", [],
     ["turns.jsonl", "line 1", "column 'messages'", "multi-turn"]),
    ("messages-system-dropped", "sys.jsonl", jsonl(chat("system", "user", "assistant")), "sft:lora", [],
     ["sys.jsonl", "line 1", "column 'messages'", "system"]),
    ("blank-prompt", "blank_prompt.jsonl", jsonl(PC, {"prompt": "  ", "completion": "x"}), "sft:lora", [],
     ["blank_prompt.jsonl", "line 2", "column 'prompt'", "non-empty string"]),
    ("renamed-column-number", "alias.jsonl", jsonl({"instruction": "q", "output": 7}), "sft:lora", [],
     ["alias.jsonl", "line 1", "column 'output'", "non-empty string", "7"]),
    ("parquet-null", "null.parquet", lambda p: write_parquet(p, [PC, {"prompt": None, "completion": "x"}]),
     "sft:lora", [], ["null.parquet", "row 2", "column 'prompt'", "null"]),
    ("invalid-json-line", "broken.jsonl", jsonl(PC) + '{"prompt": "q", "completion": \n', "sft:lora", [],
     ["broken.jsonl", "line 2 column 31", "not valid JSON"]),
    ("binary-nul", "nul.jsonl", jsonl(PC).encode() + b"\x00\x01\x02\n", "sft:lora", [],
     ["nul.jsonl", "line 2", "NUL"]),
    ("ambiguous-columns", "both.jsonl", jsonl({**PC, "chosen": "a", "rejected": "b"}), "sft:lora", [],
     ["both.jsonl", "line 1", "more than one format", "--format"]),
    ("alpaca-input-not-dropped", "alpaca.json", json.dumps([{"instruction": "Add", "input": "2 and 2", "output": "4"}]),
     "sft:lora", [], ["alpaca.json", "row 1", "['input']", "would drop"]),
    ("stated-format-missing-column", "pc.jsonl", jsonl(PC), "dpo:lora", ["--format", "preference"],
     ["pc.jsonl", "line 1", "missing chosen, rejected"]),
    ("format-does-not-fit-objective", "pref.jsonl", jsonl(PREF), "sft:lora", [],
     ["pref.jsonl", "sft:lora", "prompt_completion", "holds preference"]),
    ("answer-not-a-number", "grpo.jsonl", jsonl({"prompt": "2+2?", "answer": "4"}, {"prompt": "q", "answer": "four"}),
     "grpo:lora", [], ["grpo.jsonl", "line 2", "column 'answer'", "not a number"]),
    ("unknown-file-type", "data.txt", jsonl(PC), "sft:lora", [], ["data.txt", "unknown file type"]),
    ("fifo", "pipe.jsonl", lambda p: os.mkfifo(p), "sft:lora", [], ["pipe.jsonl", "FIFO"]),
    ("missing-file", "nope.jsonl", None, "sft:lora", [], ["nope.jsonl", "does not exist"]),
    ("unknown-format-flag", "pc.jsonl", jsonl(PC), "sft:lora", ["--format", "chat"], ["--format", "chat", "messages"]),
    ("eval-fraction-out-of-range", "pc.jsonl", jsonl(PC), "sft:lora", ["--eval-fraction", "1.5"], ["--eval-fraction"]),
]
# the errors that depend on the stage or on train's own flags, not on the file alone
TRAIN_ONLY = {"format-does-not-fit-objective", "answer-not-a-number", "eval-fraction-out-of-range"}


def make(tmp: Path, name: str, content) -> Path:
    path = tmp / name
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    return path


def drop_big(path: Path) -> None:
    """pytest keeps the last runs' folders: do not leave 50 MB files behind."""
    if path.is_file() and path.stat().st_size > 1 << 20:
        path.unlink()


def one_line(rc: int, err: str, words: list[str]) -> str:
    assert "Traceback" not in err, err
    assert rc == 2, f"exit {rc}: {err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.parametrize("name, content, stack, extra, words", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_data_train_exits_2_with_one_line(name, content, stack, extra, words, tmp_path, capsys, tiny_llama):
    path = make(tmp_path, name, content)
    rc = main(["train", "--stack", stack, "--model", "tiny-llama", "--data", str(path), *extra,
               "--out", str(tmp_path / "out"), "--db", str(tmp_path / "db"), "--quiet"])
    one_line(rc, capsys.readouterr().err, words)
    assert not (tmp_path / "out").exists() and not (tmp_path / "db").exists()
    drop_big(path)


FILE_ONLY = [c for c in BAD if c[0] not in TRAIN_ONLY]


@pytest.mark.parametrize("name, content, stack, extra, words", [c[1:] for c in FILE_ONLY], ids=[c[0] for c in FILE_ONLY])
def test_bad_data_inspect_exits_2_with_one_line(name, content, stack, extra, words, tmp_path, capsys):
    path = make(tmp_path, name, content)
    one_line(main(["data", "inspect", str(path), *extra]), capsys.readouterr().err, words)
    drop_big(path)


def test_bad_table_is_big_enough():
    assert len(BAD) >= 12 and len({c[0] for c in BAD}) == len(BAD)


# ---- detection ---------------------------------------------------------------------------------

GOOD = [
    # (id, file, content, --format, input format, record format, rows, ignored, renamed)
    ("prompt-completion", "a.jsonl", jsonl(PC, {"prompt": "b", "completion": "c"}), None,
     "prompt_completion", "prompt_completion", 2, [], {}),
    ("messages", "m.jsonl", jsonl(chat("user", "assistant")), None, "messages", "prompt_completion", 1, [], {}),
    ("alpaca-spellings", "al.json", json.dumps([{"id": 1, "instruction": "q", "output": "a"}]), None,
     "prompt_completion", "prompt_completion", 1, ["id"], {"instruction": "prompt", "output": "completion"}),
    ("preference-csv", "p.csv", "prompt,chosen,rejected\nq,a,b\nq2,\"a, quoted\",b\n", None,
     "preference", "preference", 2, [], {}),
    ("feedback-csv-labels", "k.tsv", "prompt\tcompletion\tlabel\nq\ta\ttrue\nq\tb\tFALSE\n", None,
     "unpaired_preference", "unpaired_preference", 2, [], {}),
    ("text-parquet", "t.parquet", lambda p: write_parquet(p, [{"text": "doc one", "source": "x"}]), None,
     "text", "text", 1, ["source"], {}),
    ("mixture", "mx.jsonl", jsonl({"task": "a", **PC}), None, "mixture", "mixture", 1, [], {}),
    ("checker", "ck.jsonl", jsonl({"prompt": "2+2?", "answer": "4"}), None,
     "prompt_with_checker", "prompt_with_checker", 1, [], {}),
    ("stated-format-ignores-extra", "x.jsonl", jsonl({**PC, "chosen": "a", "rejected": "b"}), "prompt_completion",
     "prompt_completion", "prompt_completion", 1, ["chosen", "rejected"], {}),
    ("saved-dataset", "ds",
     lambda p: write_saved(p, {"train": [PC], "validation": [{"prompt": "z", "completion": "y"}]}),
     None, "prompt_completion", "prompt_completion", 2, [], {}),
]


@pytest.mark.parametrize("name, content, fmt, input_format, record_format, rows, ignored, renamed",
                         [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_format_detected(name, content, fmt, input_format, record_format, rows, ignored, renamed, tmp_path):
    from bench.userdata import inspect_data

    info = inspect_data(make(tmp_path, name, content), fmt)
    assert (info.input_format, info.format, info.rows) == (input_format, record_format, rows)
    assert (info.ignored_columns, info.renamed) == (ignored, renamed)


def test_saved_dataset_split_is_used_as_held_out(tmp_path):
    from bench.userdata import load_user_data

    write_saved(tmp_path / "ds", {"train": [PC], "test": [{"prompt": "z", "completion": "y"}]})
    ud = load_user_data(tmp_path / "ds")
    assert ud.splits_given and ud.train == [PC] and ud.eval == [{"prompt": "z", "completion": "y"}]


def test_csv_labels_become_booleans(tmp_path):
    from bench.userdata import load_user_data

    (tmp_path / "k.csv").write_text("prompt,completion,label\nq,a,true\nq,b,0\n")
    ud = load_user_data(tmp_path / "k.csv", eval_fraction=0)
    assert [r["label"] for r in ud.train] == [True, False]


# ---- the held-out split -------------------------------------------------------------------------


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(start, start + n)]


def test_split_is_by_hash_and_stable_when_rows_are_added(tmp_path):
    from bench.userdata import held_out, load_user_data

    f = tmp_path / "d.jsonl"
    f.write_text(jsonl(*rows(200)))
    first = load_user_data(f, seed=3, eval_fraction=0.2)
    assert first.eval == [r for r in rows(200) if held_out(r, 3, 0.2)]
    assert first.train == [r for r in rows(200) if not held_out(r, 3, 0.2)]
    f.write_text(jsonl(*rows(100, 200), *reversed(rows(200))))  # new rows first, old ones reordered
    again = load_user_data(f, seed=3, eval_fraction=0.2)
    old = {json.dumps(r) for r in rows(200)}
    assert {json.dumps(r) for r in again.eval} & old == {json.dumps(r) for r in first.eval}
    other = load_user_data(f, seed=4, eval_fraction=0.2)
    assert other.eval != again.eval  # the seed picks a different held-out set


def test_rows_sharing_a_prompt_stay_on_one_side(tmp_path):
    from bench.userdata import load_user_data

    f = tmp_path / "d.jsonl"
    f.write_text(jsonl(*({"prompt": f"p{i // 2}", "completion": f"c{i}"} for i in range(200))))
    ud = load_user_data(f, eval_fraction=0.3)
    assert not {r["prompt"] for r in ud.train} & {r["prompt"] for r in ud.eval}
    assert ud.eval and ud.train


def test_every_row_held_out_is_refused(tmp_path):
    from bench.userdata import load_user_data
    from common.errors import UserError

    f = tmp_path / "one.jsonl"
    f.write_text(jsonl(PC))
    with pytest.raises(UserError, match="held-out split"):
        load_user_data(f, eval_fraction=0.999999)


# ---- lengths for the estimate -------------------------------------------------------------------


@pytest.mark.parametrize("values, p50, p90, p99", [
    ([5], 5, 5, 5),
    (list(range(1, 101)), 50, 90, 99),
    ([1, 2, 3, 4], 2, 4, 4),
])
def test_percentile_is_nearest_rank(values, p50, p90, p99):
    from bench.userdata import percentile

    assert [percentile(values, q) for q in (50, 90, 99)] == [p50, p90, p99]


def test_lengths_without_tokenizer_are_chars_over_4(tmp_path):
    from bench.userdata import inspect_data

    f = tmp_path / "t.jsonl"
    f.write_text(jsonl(*({"text": "x" * n} for n in (4, 8, 40, 400))))
    info = inspect_data(f, eval_fraction=0)
    assert (info.length_unit, info.length_p50, info.length_p99, info.length_max) == ("chars/4", 2, 100, 100)
    assert info.train_tokens == 1 + 2 + 10 + 100
    assert info.suggested_max_length() == 128


def test_lengths_with_a_tokenizer_count_tokens(tmp_path, tiny_llama):
    from transformers import AutoTokenizer

    from bench.userdata import inspect_data

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    f = tmp_path / "p.jsonl"
    f.write_text(jsonl({"prompt": "def f(x):", "chosen": "return x", "rejected": "return None  # no"}))
    info = inspect_data(f, tokenizer=tok, eval_fraction=0)
    want = len(tok("def f(x):\nreturn None  # no", add_special_tokens=False)["input_ids"])
    assert (info.length_unit, info.length_max) == ("tokens", want)
    assert info.objectives == ["dpo", "ipo", "kto", "orpo", "ppo", "rlaif", "rm", "simpo"]


def test_inspect_command_json(tmp_path, capsys):
    f = tmp_path / "a.jsonl"
    f.write_text(jsonl(*rows(30)))
    assert main(["data", "inspect", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["format"], out["rows"], out["train_rows"] + out["eval_rows"]) == ("prompt_completion", 30, 30)
    assert out["objectives"] == ["distill", "sft"]


# ---- stacks ------------------------------------------------------------------------------------


def test_yaml_stage_data_is_relative_to_the_yaml(tmp_path):
    from common.stack import load_stack_yaml

    (tmp_path / "s.yaml").write_text("model: tiny-llama\nstages:\n"
                                     "  - {objective: sft, method: lora, data: d/pc.jsonl}\n"
                                     "  - {objective: dpo, method: lora, task: smoke}\n")
    spec = load_stack_yaml(tmp_path / "s.yaml")
    assert spec.stages[0].data.path == str(tmp_path / "d" / "pc.jsonl")
    assert spec.stages[0].data.eval_fraction == 0.1 and spec.task is None


@pytest.mark.parametrize("yaml_text, words", [
    ("model: m\nstages: [{objective: sft, method: lora}]\n", "has no task or data"),
    ("model: m\ntask: smoke\ndata: x.jsonl\nstages: [{objective: sft, method: lora}]\n", "both task and data"),
    ("model: m\nstages: [{objective: sft, method: lora, data: {path: x.jsonl, eval_fraction: 1}}]\n", "eval_fraction"),
])
def test_bad_stack_data_keys(yaml_text, words, tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(yaml_text)
    one_line(main(["train", str(tmp_path / "s.yaml")]), capsys.readouterr().err, [words])


def test_sft_then_dpo_on_own_data_records_each_stage(tmp_path, tiny_llama):
    """A real run: sft:lora on 50 prompt/completion rows, then dpo:lora on preference pairs, a few steps each."""
    from bench.results import read_runs

    (tmp_path / "pc.jsonl").write_text(jsonl(*({"prompt": f"What is {i} plus {i}?", "completion": f"{2 * i}"}
                                               for i in range(50))))
    (tmp_path / "pref.jsonl").write_text(jsonl(*({"prompt": f"What is {i} plus 1?", "chosen": f"{i + 1}",
                                                  "rejected": f"{i + 2}"} for i in range(20))))
    (tmp_path / "s.yaml").write_text("model: tiny-llama\nhp: {max_steps: 2, batch_size: 2, eval_limit: 4}\nstages:\n"
                                     "  - {objective: sft, method: lora, data: pc.jsonl}\n"
                                     "  - {objective: dpo, method: lora, data: pref.jsonl}\n")
    code = main(["train", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run"), "--db", str(tmp_path / "db"),
                 "--quiet"])
    assert code == 0
    df = read_runs(tmp_path / "db").sort("stage_index")
    assert df["stage"].to_list() == ["sft:lora", "dpo:lora"] and set(df["status"]) == {"ok"}
    assert [t.split("@")[0] for t in df["task"]] == ["data:pc.jsonl", "data:pref.jsonl"]
    assert df["steps"].to_list() == [2, 2]
    assert df["eval_loss"][0] is not None  # the held-out rows were scored


def test_cli_data_flag_trains_sft(tmp_path, tiny_llama):
    from bench.results import read_runs
    from bench.userdata import load_user_data

    f = tmp_path / "mine.jsonl"
    f.write_text(jsonl(*rows(50)))
    code = main(["train", "--stack", "sft:lora", "--model", "tiny-llama", "--data", str(f), "--max-steps", "2",
                 "--out", str(tmp_path / "run"), "--db", str(tmp_path / "db"), "--quiet"])
    assert code == 0
    rec = read_runs(tmp_path / "db").row(0, named=True)
    assert rec["status"] == "ok" and rec["task"] == load_user_data(f).label
    saved = json.loads((tmp_path / "run" / "stack.json").read_text())
    assert saved["data"] == {"path": str(f), "format": None, "eval_fraction": 0.1} and saved["task"] is None
