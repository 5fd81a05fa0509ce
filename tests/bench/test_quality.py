"""task_loss scores items in padded batches: the same figure as one item per forward, for every kind
of parameterization that changes how positions are built (soft prompts, prefixes, adapters)."""
import pytest
import torch

from bench import taskdata
from bench.quality import task_loss
from bench.train import load_model, load_tokenizer
from methods.registry import PARAMETERIZATIONS

METHODS = ["base", "lora", "prompt", "prefix", "ptuning", "adapter_houlsby", "ia3"]


@pytest.fixture(scope="module")
def records():
    taskdata.prepare("wiki-topics")
    return taskdata.load_records("wiki-topics", "test", "prompt_completion", 12)


@pytest.mark.parametrize("method", METHODS)
def test_batched_task_loss_equals_one_at_a_time(method, tiny_llama, records):
    torch.manual_seed(0)
    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama, "causal_lm", {})
    if method != "base":
        par = PARAMETERIZATIONS[method]
        model = par.apply(model, par.make_config({}))
        with torch.no_grad():  # move the trainables off their (often identity) init
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.02)
    one = task_loss(model, tok, records, "prompt_completion", 1024, batch_size=1)
    batched = task_loss(model, tok, records, "prompt_completion", 1024, batch_size=5)
    assert one is not None and batched == pytest.approx(one, rel=1e-5)


def test_no_scorable_items_is_none(tiny_llama, records):
    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama, "causal_lm", {})
    assert task_loss(model, tok, records, "prompt_completion", max_length=1) is None
