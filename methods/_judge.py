"""The constitution judge for RLAIF: an AI model scores responses against written principles.

TRL 1.16 has no judge classes, so this is compact: for each principle the judge model reads
the principle, the prompt and the response and is asked "Does the response follow the
principle? Answer Yes or No."; the score is the summed log-odds log p(Yes) - log p(No) of its
next token. Comparing two responses by that score gives an AI preference label.
"""
from __future__ import annotations

from pathlib import Path

from common.errors import UserError
from common.yamlfile import read_yaml

DEFAULT = Path(__file__).parent / "constitutions" / "default.yaml"


def load_constitution(path: str | Path | None = None) -> list[str]:
    path = Path(path) if path else DEFAULT
    data = read_yaml(path, "constitution")
    principles = data.get("principles") if isinstance(data, dict) else None
    if not principles or not all(isinstance(p, str) and p.strip() for p in principles):
        raise UserError(f"constitution {path} needs a non-empty 'principles' list of strings")
    return principles


class ConstitutionJudge:
    def __init__(self, model, tokenizer, principles: list[str]):
        self.model, self.tok, self.principles = model, tokenizer, principles
        self.yes = self._token_id(" Yes", "Yes")
        self.no = self._token_id(" No", "No")

    def _token_id(self, *variants: str) -> int:
        for v in variants:
            ids = self.tok.encode(v, add_special_tokens=False)
            if len(ids) == 1:
                return ids[0]
        return self.tok.encode(variants[-1], add_special_tokens=False)[0]  # first piece of the word

    def question(self, principle: str, prompt: str, response: str) -> str:
        msg = (f"Principle: {principle}\nQuestion: {prompt}\nResponse: {response}\n"
               "Does the response follow the principle? Answer Yes or No.")
        return self.tok.apply_chat_template([{"role": "user", "content": msg}], tokenize=False,
                                            add_generation_prompt=True)

    def score_many(self, prompts: list[str], responses: list[str], batch_size: int = 16) -> list[float]:
        import torch

        with torch.no_grad():
            return self._score_many(prompts, responses, batch_size)

    def _score_many(self, prompts: list[str], responses: list[str], batch_size: int) -> list[float]:
        self.model.eval()
        device = next(self.model.parameters()).device
        texts = [self.question(pr, p, r) for p, r in zip(prompts, responses) for pr in self.principles]
        side, self.tok.padding_side = self.tok.padding_side, "left"  # next-token logits sit at the end
        logodds: list[float] = []
        try:
            for i in range(0, len(texts), batch_size):
                enc = self.tok(texts[i:i + batch_size], return_tensors="pt", padding=True,
                               add_special_tokens=False).to(device)
                # only the next-token logits: the full [batch, seq, vocab] tensor is most of the cost
                last = self.model(**enc, logits_to_keep=1).logits[:, -1].float().log_softmax(-1)
                logodds += (last[:, self.yes] - last[:, self.no]).tolist()
        finally:
            self.tok.padding_side = side
        k = len(self.principles)
        return [sum(logodds[i * k:(i + 1) * k]) for i in range(len(prompts))]
