"""tunebench chat: the tuned stage and its base on one prompt, streamed, from a run's record."""
import io

import pytest
import torch

from advisor.cli import main
from bench.chat import generate, open_chat
from bench.results import read_runs

STARTERS = ["What is 23 + 0?", "What is 28 + 7?", "What is 27 + 9?"]  # smoke's first held-out prompts


@pytest.fixture(scope="module")
def db(tmp_path_factory, tiny_llama):
    tmp = tmp_path_factory.mktemp("chat")
    assert main(["train", "--stack", "cpt:full,sft:lora", "--model", "tiny-llama", "--task", "smoke",
                 "--max-steps", "3", "--hp", "eval_limit=0", "--out", str(tmp / "run"), "--db", str(tmp / "db"),
                 "--run-id", "chat", "--quiet"]) == 0
    return tmp / "db"


def reference(folder, tok, prompt, n):
    """Greedy tokens of a plain model folder, decoded the way chat decodes them."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_second_stage_chats_from_the_first_stages_merge(db, tmp_path):
    """Base = what the stage started from (stage 0's merge); tuned = that plus the saved LoRA, streamed."""
    session = open_chat("chat-1", db)
    assert session.a.base_dir.name == "merged" and session.a.base_dir.parent.name == "stage0-cpt-full"
    assert session.starters() == STARTERS
    pieces = []
    tuned = session.generate(STARTERS[1], "tuned", on_token=pieces.append, max_new_tokens=12)
    base = session.generate(STARTERS[1], "base", max_new_tokens=12)
    assert "".join(pieces).strip() == tuned.text and len(pieces) > 1
    assert tuned.new_tokens == 12
    # the tuned reply is the merged model's, the base reply the starting folder's
    assert main(["export", "--run", "chat-1", "--db", str(db), "--to", "hf", "--out", str(tmp_path / "m")]) == 0
    assert tuned.text == reference(tmp_path / "m", session.tok, STARTERS[1], 12)
    assert base.text == reference(session.a.base_dir, session.tok, STARTERS[1], 12)


def test_library_generate_takes_a_record_row(db):
    """What the TUI calls from a worker thread: a read_runs row, a prompt, which model, a callback."""
    row = read_runs(db).filter(run_id="chat-0").row(0, named=True)
    seen = []
    reply = generate(row, "What is 2 + 3?", which="base", on_token=seen.append, max_new_tokens=4)
    assert reply.which == "base" and reply.new_tokens == 4 and "".join(seen).strip() == reply.text


@pytest.mark.parametrize("argv, stdin, lines", [
    (["--prompt", "What is 2 + 3?"], "", ["--- base ---", "--- tuned ---"]),
    ([], "2\n", ["  2. What is 28 + 7?", "you> What is 28 + 7?", "--- base ---", "--- tuned ---"]),
    (["--tuned-only"], "", ["you> What is 23 + 0?", "--- tuned ---"]),  # nothing on stdin: the first starter
])
def test_cli_streams_base_then_tuned(db, capsys, monkeypatch, argv, stdin, lines):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(["chat", "--run", "chat-1", "--db", str(db), "--max-new-tokens", "4", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    got = [ln for ln in out if ln in lines]
    assert got == lines, out
    assert ("--- base ---" in out) == ("--tuned-only" not in argv)


@pytest.mark.parametrize("argv, needle", [
    (["--run", "nosuch"], "unknown run id 'nosuch'"),
    (["--run", "chat-1", "--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
    (["--run", "chat-1", "--prompt", "  "], "the prompt is empty"),
])
def test_bad_input_exits_2_with_one_line(db, capsys, argv, needle):
    assert main(["chat", "--db", str(db), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
