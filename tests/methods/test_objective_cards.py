"""Every objective's card, checked row by row against one table and against the real objective.

    .venv/bin/python -m pytest -q tests/methods/test_objective_cards.py

A new objective without a row here fails ``test_table_names_every_objective``. Each row says
what the card must declare: the record format it trains on, what it needs and provides, how
many sequences per example train together, and its head. The checks read the smoke task's
records in that format and validate each against its common/records.py model, build the
card's settings, and load every card without importing torch.
"""
import subprocess
import sys

import pytest

from bench.stack import SUPPLIES, validate
from common.errors import UserError
from common.records import FORMATS
from common.stack import parse_stack
from methods import OBJECTIVES, objective
from methods.card import NEEDS, RECORD_FORMATS

# name: (record format, needs, provides, sequences, head)
TABLE = {
    "cpt": ("text", (), (), 1, "causal_lm"),
    "sft": ("prompt_completion", (), (), 1, "causal_lm"),
    "multitask": ("mixture", (), (), 1, "causal_lm"),
    "distill": ("prompt_completion", ("teacher",), (), 1, "causal_lm"),
    "rm": ("preference", (), ("reward_model",), 2, "seq_cls"),
    "ppo": ("preference", ("reference", "reward_model", "value_model"), (), 1, "causal_lm"),
    "dpo": ("preference", ("reference",), (), 2, "causal_lm"),
    "ipo": ("preference", ("reference",), (), 2, "causal_lm"),
    "kto": ("unpaired_preference", ("reference",), (), 1, "causal_lm"),
    "orpo": ("preference", (), (), 2, "causal_lm"),
    "simpo": ("preference", (), (), 2, "causal_lm"),
    "grpo": ("prompt_with_checker", ("checker",), (), 1, "causal_lm"),
    "rlaif": ("preference", ("judge", "reference"), (), 2, "causal_lm"),
}
GENERATES = {"ppo", "grpo"}  # sample completions inside the training steps


def test_table_names_every_objective():
    assert sorted(TABLE) == sorted(OBJECTIVES)


def test_record_formats_are_the_pydantic_models():
    assert tuple(FORMATS) == RECORD_FORMATS


@pytest.mark.parametrize("name", sorted(TABLE))
def test_card_matches_its_row(name):
    fmt, needs, provides, sequences, head = TABLE[name]
    card = objective(name).card
    assert (card.data, card.needs, card.provides, card.memory.sequences, card.head) == \
        (fmt, needs, provides, sequences, head)
    assert card.memory.generates == (name in GENERATES)
    assert card.label and card.description
    assert set(card.needs) <= set(NEEDS)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_card_data_loads_and_validates(name):
    from bench.taskdata import load_records

    card = objective(name).card
    records = load_records("smoke", "train", card.data, 2)
    assert len(records) == 2
    for r in records:
        FORMATS[card.data](**r)
    settings = card.settings()
    assert card.make_config(settings.model_dump()) == settings


@pytest.mark.parametrize("name", sorted(TABLE))
def test_settings_reject_unknown_keys(name):
    with pytest.raises(UserError, match=f"objective '{name}'"):
        objective(name).make_config({"no_such_setting": 1})


def test_bench_can_supply_every_outside_need():
    """Each need is either built by the trainer (reference, value_model) or supplied by bench."""
    built = {"reference", "value_model"}
    outside = {n for row in TABLE.values() for n in row[1]} - built
    assert outside <= set(SUPPLIES)


def test_required_need_without_a_provider_is_refused():
    with pytest.raises(UserError, match="ppo needs a reward model.*rm:lora,ppo:lora.*--hp reward_model=DIR"):
        validate(parse_stack("ppo:lora", "tiny-llama", "smoke"))
    validate(parse_stack("rm:lora,ppo:lora", "tiny-llama", "smoke"))
    validate(parse_stack("ppo:lora", "tiny-llama", "smoke", hp={"reward_model": "DIR"}))


def test_objective_modules_import_no_torch():
    mods = ", ".join(f"methods.{n}" for n in sorted(TABLE))
    code = (f"import {mods}, methods.context, methods._trl, methods._preference, methods._reward, methods._judge; "
            "import sys; assert not {'torch', 'transformers', 'trl', 'peft'} & set(sys.modules), "
            "sorted({'torch', 'transformers', 'trl', 'peft'} & set(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


# How each trainer turns hidden states into the loss (ObjectiveMemory.lm_head, read by the estimator).
LM_HEADS = {"cpt": "next_token", "sft": "next_token", "multitask": "next_token", "distill": "next_token",
            "dpo": "fused", "ipo": "fused", "rlaif": "fused", "kto": "fused", "grpo": "fused",
            "orpo": "full", "simpo": "full", "rm": "full", "ppo": "upcast"}


def test_lm_head_trait_matches_what_the_tracer_runs():
    """The fused-head objectives are the ones bench/trace.py patches TRL's fused head onto (their TRL
    trainers call add_fused_lm_head); the next-token ones are its causal steps."""
    from bench.trace import CAUSAL, FUSED_OBJECTIVES

    assert {n: OBJECTIVES[n].card.memory.lm_head for n in TABLE} == LM_HEADS
    assert {n for n, h in LM_HEADS.items() if h == "fused"} == set(FUSED_OBJECTIVES)
    assert {n for n, h in LM_HEADS.items() if h == "next_token"} == set(CAUSAL)
