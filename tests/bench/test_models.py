"""Model builders: tiny Llamas (with/without biases, chat template) and SmolLM2 from its GGUF."""
import pytest

from advisor.cli import main


@pytest.mark.parametrize("name, bias", [("tiny-llama", False), ("tiny-llama-bias", True)])
def test_tiny_models_build_with_chat_template(name, bias):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.models import has_bias_terms, prepare

    path = prepare(name)
    assert prepare(name) == path  # idempotent: the second call finds the folder
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert has_bias_terms(model) is bias
    assert model.config.num_hidden_layers == 2
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id


def test_unknown_model_exits_2(capsys):
    assert main(["model", "prepare", "tiny-lama"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean tiny-llama" in err


def test_half_written_model_folder_is_refused(tmp_path):
    from bench.models import model_path
    from common.errors import UserError

    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="no config.json"):
        model_path(str(tmp_path))


@pytest.mark.slow
def test_smollm2_prepares_and_answers():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.models import prepare

    path = prepare("smollm2-135m")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer
