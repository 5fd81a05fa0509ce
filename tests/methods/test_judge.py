"""The constitution judge: its log-odds equal those read from the full logits, across wrappers."""
import pytest
import torch

from bench.models import prepare
from bench.train import load_model, load_tokenizer
from methods import parameterization
from methods._judge import ConstitutionJudge, load_constitution

PROMPTS = ["What is 2 + 3?", "Name a colour.", "Say hello politely."]
ANSWERS = ["5", "blue", "Hello, nice to meet you."]


@torch.no_grad()
def full_logit_scores(judge: ConstitutionJudge, prompts, responses) -> list[float]:
    """The reference computation: one text at a time, the whole logits tensor, its last position."""
    out = []
    for p, r in zip(prompts, responses):
        total = 0.0
        for pr in judge.principles:
            enc = judge.tok(judge.question(pr, p, r), return_tensors="pt", add_special_tokens=False)
            last = judge.model(**enc).logits[0, -1].log_softmax(-1)
            total += float(last[judge.yes] - last[judge.no])
        out.append(total)
    return out


@pytest.mark.parametrize("method", ["full", "lora", "prompt"])
def test_judge_scores_match_full_logits(method):
    path = prepare("tiny-llama")
    par = parameterization(method)
    model = par.apply(load_model(path, "causal", {}), par.make_config())
    judge = ConstitutionJudge(model, load_tokenizer(path), load_constitution())
    got = judge.score_many(PROMPTS, ANSWERS, batch_size=2)  # batched, left-padded, next-token logits only
    assert got == pytest.approx(full_logit_scores(judge, PROMPTS, ANSWERS), abs=1e-3)
