"""The PPO loop behind methods/ppo.py (imported only when a ppo stage trains: it needs torch).

Classic RLHF (Ziegler et al. 2019 / InstructGPT): each step samples completions for a batch of
prompts, scores them with the reward model, adds a per-token KL penalty to the reference (the
stage's starting model), computes advantages with GAE from a value head on the policy's last
hidden state, and runs a few epochs of clipped policy and value updates.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from methods._reward import scores
from methods._trl import as_chat
from methods.context import StageContext, StageResult


def is_prompt_learning(model) -> bool:
    cfg = getattr(model, "peft_config", None)
    return bool(cfg) and any(getattr(c, "is_prompt_learning", False) for c in cfg.values())


class Reference:
    """The frozen starting policy: the PEFT base with adapters disabled, or a frozen copy."""

    def __init__(self, model):
        self.model = model if hasattr(model, "disable_adapter") else copy.deepcopy(model).eval()
        if self.model is not model:
            self.model.requires_grad_(False)

    def logits(self, fwd):
        if hasattr(self.model, "disable_adapter"):
            with self.model.disable_adapter():
                return fwd(self.model)[0]
        return fwd(self.model)[0]


def forward(model, value_head, ids, mask, prompt_learning: bool):
    """Logits and values for every position of ``ids`` (soft-prompt positions sliced off)."""
    kw = {} if prompt_learning else {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, **kw)
    t = ids.shape[1]
    logits = out.logits[:, -t:].float()
    values = value_head(out.hidden_states[-1][:, -t:].float()).squeeze(-1) if value_head is not None else None
    return logits, values


def token_logprobs(logits, ids):
    return torch.gather(F.log_softmax(logits[:, :-1], -1), 2, ids[:, 1:, None]).squeeze(-1)


def gae(rewards, values, mask, gamma, lam):
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        nxt = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * nxt * mask[:, t + 1 if t + 1 < mask.shape[1] else t] - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last * mask[:, t]
    return adv, adv + values


def whiten(x, mask):
    mean = (x * mask).sum() / mask.sum()
    var = ((x - mean) ** 2 * mask).sum() / mask.sum()
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


@torch.no_grad()
def rollout(ctx: StageContext, policy, prompts: list[str], cfg):
    """Sample a completion per prompt: (sequences, attention mask, prompt length, completion texts)."""
    tok = ctx.tokenizer
    side, tok.padding_side = tok.padding_side, "left"
    try:
        texts = [tok.apply_chat_template(as_chat(p), tokenize=False, add_generation_prompt=True) for p in prompts]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    seq = policy.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=True, temperature=cfg.temperature,
                          top_k=0, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    plen = enc["input_ids"].shape[1]
    gen = seq[:, plen:]
    # Completion mask: tokens up to and including the first EOS.
    is_eos = gen == tok.eos_token_id
    after = (is_eos.cumsum(-1) - is_eos.long()) > 0
    gen_mask = (~after).long()
    mask = torch.cat([enc["attention_mask"], gen_mask], 1)
    completions = tok.batch_decode(gen * gen_mask + tok.pad_token_id * (1 - gen_mask), skip_special_tokens=True)
    return seq, mask, plen, completions


def score_rollout(ctx: StageContext, policy, ref: Reference, value_head, prompts: list[str], rm, prompt_learning: bool):
    """One rollout scored: everything the PPO epochs of this step read, as a dict of tensors."""
    cfg = ctx.config
    policy.eval()
    seq, mask, plen, completions = rollout(ctx, policy, prompts, cfg)
    score = torch.tensor(scores(rm, ctx.tokenizer, prompts, completions))
    with torch.no_grad():
        logits, values = forward(policy, value_head, seq, mask, prompt_learning)
        old_lp = token_logprobs(logits, seq)[:, plen - 1:]
        ref_logits = ref.logits(lambda m: forward(m, None, seq, mask, prompt_learning))
        ref_lp = token_logprobs(ref_logits, seq)[:, plen - 1:]
        values = values[:, plen - 1:-1]
        cmask = mask[:, plen:].float()
        kl = (old_lp - ref_lp) * cmask
        rewards = -cfg.kl_coef * kl
        last = (cmask.sum(1).long() - 1).clamp(min=0)
        rewards[torch.arange(len(last)), last] += score
        adv, returns = gae(rewards, values, cmask, cfg.gamma, cfg.lam)
        adv = whiten(adv, cmask)
    return dict(seq=seq, mask=mask, plen=plen, score=score, old_lp=old_lp, values=values, cmask=cmask, kl=kl,
                adv=adv, returns=returns)


def ppo_epochs(ctx: StageContext, policy, value_head, opt, params, r: dict, prompt_learning: bool) -> list[float]:
    """Clipped policy and value updates over the rollout, ``ppo_epochs`` times in mini-batches."""
    cfg, plen = ctx.config, r["plen"]
    policy.train()
    losses = []
    for _ in range(cfg.ppo_epochs):
        for idx in torch.randperm(len(r["seq"])).split(cfg.mini_batch):
            lg, v = forward(policy, value_head, r["seq"][idx], r["mask"][idx], prompt_learning)
            lp = token_logprobs(lg, r["seq"][idx])[:, plen - 1:]
            v = v[:, plen - 1:-1]
            m, adv, old_v, ret = r["cmask"][idx], r["adv"][idx], r["values"][idx], r["returns"][idx]
            ratio = torch.exp(lp - r["old_lp"][idx])
            pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range))
            v_clip = old_v + (v - old_v).clamp(-cfg.clip_range_value, cfg.clip_range_value)
            vf = 0.5 * torch.max((v - ret) ** 2, (v_clip - ret) ** 2)
            loss = ((pg + cfg.vf_coef * vf) * m).sum() / m.sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
    return losses


def train_ppo(ctx: StageContext, rm) -> StageResult:
    """The PPO loop: per step one rollout (``rollout_batch`` prompts, cycling), then the epochs."""
    cfg, hp, policy = ctx.config, ctx.hp, ctx.model
    torch.manual_seed(hp.seed)
    prompt_learning = is_prompt_learning(policy)
    ref = Reference(policy)
    value_head = torch.nn.Linear(policy.config.hidden_size, 1)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    params = [p for p in policy.parameters() if p.requires_grad] + list(value_head.parameters())
    opt = torch.optim.AdamW(params, lr=hp.learning_rate)
    prompts_all = [r["prompt"] for r in ctx.train]
    history, tokens_seen = [], 0
    for step in range(hp.max_steps):
        t0 = time.perf_counter()
        start = (step * cfg.rollout_batch) % len(prompts_all)
        prompts = [prompts_all[(start + i) % len(prompts_all)] for i in range(cfg.rollout_batch)]
        r = score_rollout(ctx, policy, ref, value_head, prompts, rm, prompt_learning)
        losses = ppo_epochs(ctx, policy, value_head, opt, params, r, prompt_learning)
        n_tokens = int(r["mask"].sum())
        tokens_seen += n_tokens
        rec = {"step": step + 1, "loss": sum(losses) / len(losses), "reward": r["score"].mean().item(),
               "kl": r["kl"].sum(1).mean().item(), "step_time_s": time.perf_counter() - t0, "tokens": n_tokens}
        history.append(rec)
        ctx.emit({"event": "step", "step": step + 1, "max_steps": hp.max_steps, "loss": rec["loss"],
                  "tokens": n_tokens, "step_time_s": rec["step_time_s"], "reward": rec["reward"], "kl": rec["kl"]})
    return StageResult(
        train_loss=sum(h["loss"] for h in history) / max(1, len(history)),
        final_loss=history[-1]["loss"] if history else None,
        steps=len(history), tokens_seen=tokens_seen, log_history=history,
        extra={"reward_first": history[0]["reward"] if history else None,
               "reward_last": history[-1]["reward"] if history else None,
               "kl_last": history[-1]["kl"] if history else None,
               "reward_curve": [h["reward"] for h in history], "kl_curve": [h["kl"] for h in history]},
    )
