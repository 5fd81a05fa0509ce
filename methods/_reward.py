"""Scoring with a scalar reward model (sequence-classification head), used by rm and ppo."""
from __future__ import annotations


def chat_text(tokenizer, prompt: str, reply: str) -> str:
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
    return tokenizer.apply_chat_template(msgs, tokenize=False)


def scores(model, tokenizer, prompts: list[str], replies: list[str], batch_size: int = 8) -> list[float]:
    """Reward of each (prompt, reply); the model reads the chat-formatted exchange."""
    import torch

    was_training = model.training
    model.eval()
    out: list[float] = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            texts = [chat_text(tokenizer, p, r) for p, r in zip(prompts[i:i + batch_size], replies[i:i + batch_size])]
            enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=512).to(device)
            logits = model(**enc).logits
            out.extend(logits[:, 0].float().tolist())
    model.train(was_training)
    return out


def pairwise_accuracy(model, tokenizer, pairs: list[dict]) -> float:
    """Share of {prompt, chosen, rejected} pairs where chosen scores higher."""
    if not pairs:
        return float("nan")
    prompts = [p["prompt"] for p in pairs]
    good = scores(model, tokenizer, prompts, [p["chosen"] for p in pairs])
    bad = scores(model, tokenizer, prompts, [p["rejected"] for p in pairs])
    return sum(g > b for g, b in zip(good, bad)) / len(pairs)
