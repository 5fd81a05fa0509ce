"""Record formats: the keys and types of the records every objective trains on, as pydantic models.

    python -c "from common.records import FORMATS; print(FORMATS['preference'](prompt='q', chosen='a', rejected='b'))"

A task offers some of these formats (bench/tasks/*.yaml ``formats``); an objective's card names
the one it consumes (methods/card.py ``ObjectiveCard.data``). Records travel as plain dicts
(JSONL on disk, TRL datasets in the trainers); these models are the contract they are built and
checked against: exactly these keys, strings non-blank, ``label`` a real bool.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError


def _nonblank(v: str) -> str:
    if not v.strip():
        raise ValueError("must be a non-empty string")
    return v


NonBlank = Annotated[StrictStr, AfterValidator(_nonblank)]


class Record(BaseModel):
    """Base of every format: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def row(self) -> dict:
        return self.model_dump()


class Text(Record):
    """A raw document (continued pretraining)."""

    text: NonBlank


class PromptCompletion(Record):
    """A prompt and the reference response (sft, distill)."""

    prompt: NonBlank
    completion: NonBlank


class Preference(Record):
    """A prompt with a preferred and a dispreferred response (dpo, ipo, orpo, simpo, rm, ppo prompts)."""

    prompt: NonBlank
    chosen: NonBlank
    rejected: NonBlank


class UnpairedPreference(Record):
    """One response with a thumbs-up (True) or thumbs-down (False) label (kto)."""

    prompt: NonBlank
    completion: NonBlank
    label: StrictBool


class PromptWithChecker(Record):
    """A prompt whose answer the task's checker verifies (grpo)."""

    prompt: NonBlank
    answer: NonBlank


class Mixture(Record):
    """A prompt/response tagged with the sub-task it belongs to (multitask)."""

    task: NonBlank
    prompt: NonBlank
    completion: NonBlank


FORMATS: dict[str, type[Record]] = {
    "text": Text,
    "prompt_completion": PromptCompletion,
    "preference": Preference,
    "unpaired_preference": UnpairedPreference,
    "prompt_with_checker": PromptWithChecker,
    "mixture": Mixture,
}


def validate(records: list[dict], fmt: str, where: str = "") -> None:
    """Raise ValueError (one line) unless every record is exactly a ``fmt`` record."""
    model = FORMATS[fmt]
    for i, r in enumerate(records):
        if not isinstance(r, dict) or set(r) != set(model.model_fields):
            keys = sorted(r) if isinstance(r, dict) else type(r).__name__
            raise ValueError(f"{where} record {i}: keys {keys} != {sorted(model.model_fields)} for {fmt}")
        try:
            model(**r)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            raise ValueError(f"{where} record {i}: {field}: {err['msg']}") from None
