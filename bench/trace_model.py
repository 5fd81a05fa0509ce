"""The real Hugging Face model of a shape, built on the meta device, for ``bench/trace.py``.

    model = build(hf_config(shape), head="causal_lm", dtype=torch.bfloat16, quant="nf4")

``hf_config`` turns a ``common.shape.Shape`` (a catalog entry) into the config of the
architecture it describes: Llama (with attention/MLP biases where the shape has them), Qwen2
(q/k/v biases), Mixtral (experts), Gemma for head_dim-256 / 256k-vocab shapes is built as a Llama
with that head_dim (same tensors; Gemma's embedding scaling and soft-capping add no storage).
A local ``config.json`` is used as it is. Quantized bases (qlora: NF4, lora8bit: int8) get
transformers' own bitsandbytes layers on meta; their storage becomes real (fake) quantized
tensors in ``quantize_fake`` once the model is inside the fake mode. ``fp32_grouped_mm`` is the
one fake kernel the trace adds to torch's: MoE experts' grouped matmul on fp32 weights.
"""
from __future__ import annotations

from common.shape import Shape

# Shapes whose layout has no transformers architecture of its own here are built as the nearest
# one with the same tensors; the trace says which (``Trace.notes``).
PLAIN_MLP_NOTE = "plain (up/down) MLP shape built as GPT-NeoX (same linear tensors: up+down, biases)"


def hf_config(shape: Shape) -> tuple[dict, str | None]:
    """(config dict for transformers.AutoConfig.for_model, note or None)."""
    common = dict(hidden_size=shape.hidden, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                  num_key_value_heads=shape.kv_heads, intermediate_size=shape.intermediate,
                  vocab_size=shape.vocab, tie_word_embeddings=shape.tied, head_dim=shape.hd,
                  max_position_embeddings=131072)
    if shape.experts > 1:
        return dict(model_type="mixtral", num_local_experts=shape.experts,
                    num_experts_per_tok=shape.experts_per_token, **common), None
    if shape.mlp == "plain":
        return dict(model_type="gpt_neox", hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                    num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
                    vocab_size=shape.vocab, tie_word_embeddings=shape.tied,
                    max_position_embeddings=131072), PLAIN_MLP_NOTE
    if shape.bias == "qkv":
        return dict(model_type="qwen2", **common), None
    return dict(model_type="llama", attention_bias=shape.bias in ("attn", "linear", "all"),
                mlp_bias=shape.bias in ("linear", "all"), **common), None


def build(config: dict, head: str, dtype, quant: str = "dense"):
    """The model on meta: ``head`` causal_lm or seq_cls (num_labels=1); ``quant`` dense|nf4|int8."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    cfg = dict(config)
    kind = cfg.pop("model_type")
    hf = AutoConfig.for_model(kind, **cfg)
    hf._attn_implementation = "sdpa"
    if head == "seq_cls":
        hf.num_labels = 1
        hf.pad_token_id = 0
    with torch.device("meta"):
        cls = AutoModelForSequenceClassification if head == "seq_cls" else AutoModelForCausalLM
        model = cls.from_config(hf, dtype=dtype)
    if quant != "dense":
        model = _bnb_layers(model, quant, dtype)
    return model


def _bnb_layers(model, quant: str, dtype):
    """transformers' own bnb layer swap (what from_pretrained does with a BitsAndBytesConfig)."""
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear

    from methods._quant import SKIP, bnb_kwargs

    q = bnb_kwargs(4 if quant == "nf4" else 8)["quantization_config"]
    q.bnb_4bit_compute_dtype = dtype
    model = replace_with_bnb_linear(model, modules_to_not_convert=SKIP, quantization_config=q)
    model.is_loaded_in_4bit = quant == "nf4"
    model.is_loaded_in_8bit = quant == "int8"
    return model


def quantize_fake(model) -> list:
    """Inside FakeTensorMode: give every bnb layer the quantized storage bitsandbytes makes
    (NF4: packed uint8 [n/2, 1] + fp32 absmax per 64-block, via bnb's own quantize_4bit; int8:
    int8 weight + fp32 row scales). Returns the extra state tensors (absmax, scales) to count."""
    import bitsandbytes as bnb
    import torch

    extra = []
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            w = torch.empty(m.out_features, m.in_features, dtype=torch.float32)
            qw, st = bnb.functional.quantize_4bit(w, blocksize=64, quant_type="nf4")
            # Params4bit cannot wrap a FakeTensor (_make_subclass); a Parameter carrying the same
            # attributes takes Linear4bit.forward through bnb.matmul_4bit exactly the same way.
            p = torch.nn.Parameter(qw, requires_grad=False)
            p.quant_state, p.bnb_quantized, p.quant_type, p.blocksize = st, True, "nf4", 64
            m.weight = p
            extra.append(st.absmax)
        elif isinstance(m, bnb.nn.Linear8bitLt):
            cb = torch.empty(m.out_features, m.in_features, dtype=torch.int8)
            scb = torch.empty(m.out_features, dtype=torch.float32)
            p = torch.nn.Parameter(cb, requires_grad=False)
            p.CB, p.SCB = cb, scb
            m.weight = p
            m.state.CB, m.state.SCB = cb, scb
            extra.append(scb)
    return extra


class real_masks:
    """Mask decisions a real run makes from tensor values, made the same way on fake tensors.

    transformers reads the position ids (are sequences packed?) and the padding mask (any
    padding?) to decide whether SDPA can run its causal kernel without a materialized mask; on a
    FakeTensor (``is_tracing``) it cannot read them and keeps a (batch, 1, seq, seq) mask, which
    also stops SDPA's native GQA (k/v get repeated to every head). The trace feeds unpacked
    sequences; unpadded ones (``padded`` False), for which a real run skips the mask, or padded
    ones (a mask with zeros, which a real run keeps): say which to transformers.
    """

    def __init__(self, padded: bool = False):
        self.padded = padded

    def __enter__(self):
        import transformers.masking_utils as mu

        self._saved = (mu.is_tracing, mu.find_packed_sequence_indices)
        padded = self.padded
        mu.is_tracing = lambda tensor=None: padded  # "cannot read the mask" = keep it
        mu.find_packed_sequence_indices = lambda position_ids: None
        return self

    def __exit__(self, *exc):
        import transformers.masking_utils as mu

        mu.is_tracing, mu.find_packed_sequence_indices = self._saved
        return None


def lycoris_without_coin_flip(model) -> list[str]:
    """LoHa/LoKr forwards draw ``torch.rand(1) > module_dropout`` in training to skip an adapter;
    a fake tensor has no value to branch on. With module and rank dropout 0 the draw always
    passes, which is the same as the layer's non-training branch: take that branch (the flag
    only gates the coin flip and rank dropout in peft's LyCORIS layers)."""
    try:
        from peft.tuners.lycoris_utils import LycorisLayer
    except ImportError:
        return []
    n = 0
    for m in model.modules():
        if isinstance(m, LycorisLayer):
            if any(m.module_dropout.values()) or any(getattr(m, "rank_dropout", {}).values()):
                raise RuntimeError("LoHa/LoKr with module/rank dropout draws random numbers the trace cannot branch on")
            m.training = False
            n += 1
    return [f"LoHa/LoKr: the training-time module-dropout draw (dropout 0, always passes) skipped in {n} layers"] if n else []


class meta_init:
    """Adapter inits that read tensor values, made shape-only for the meta device (the values do
    not change what is stored):

    - PiSSA initialises lora_A/B and the residual base from an SVD of the base weight; the trace
      keeps peft's default init for the same tensors.
    - BOFT fills its permutation buffers (``boft_P``, (factors+1, in, in) fp32 per layer) element by
      element from index tensors; the trace allocates the same buffers without filling them.
    """

    def __init__(self, notes: list[str], method: str):
        self.notes, self.method = notes, method

    def __enter__(self):
        import torch
        from peft.tuners.boft.layer import BOFTLayer
        from peft.tuners.lora.layer import LoraLayer

        self._saved = (LoraLayer.pissa_init, BOFTLayer.perm2mat)
        LoraLayer.pissa_init = lambda layer, adapter_name, init_lora_weights: None
        BOFTLayer.perm2mat = lambda layer, indices: torch.zeros((len(indices), len(indices)))
        if self.method == "pissa":
            self.notes.append("pissa: SVD init skipped (values only; same tensors as the default init)")
        if self.method == "boft":
            self.notes.append("boft: permutation buffers allocated unfilled (values only)")
        return self

    def __exit__(self, *exc):
        from peft.tuners.boft.layer import BOFTLayer
        from peft.tuners.lora.layer import LoraLayer

        LoraLayer.pissa_init, BOFTLayer.perm2mat = self._saved
        return None


class boft_block_diag:
    """BOFT's block-diagonal rotation as one strided copy instead of one op per block.

    Without peft's CUDA extension (``fbd_cuda``; not built here) BOFT builds each layer's rotation
    with ``torch.block_diag(*torch.unbind(R))``, R (1, blocks, b, b): thousands of blocks per layer
    on a large model, so the trace dispatches tens of thousands of fake ops per layer and step and a
    70B BOFT step does not trace in minutes. peft's other path, ``FastBlockDiag`` (the extension's
    autograd function, same (1, blocks*b, blocks*b) output), is switched on here with torch ops in
    place of the extension: a zeros output whose block diagonal, seen as a strided view, receives R
    in one copy; the backward reads the gradient's blocks through the same view. Same output shape,
    dtype and storage as either peft path. The butterfly factor is already fixed at init (peft
    forces 1 without the extension), so the layers are built as the extension-less run builds them.
    """

    def __init__(self, model, notes: list[str]):
        self.model, self.notes, self.layers = model, notes, []

    def __enter__(self):
        import torch
        from peft.tuners.boft import layer as boft

        class BlockDiag(torch.autograd.Function):
            @staticmethod
            def forward(ctx, blocks):
                n, d, b, _ = blocks.shape
                ctx.dims = (n, d, b)
                out = blocks.new_zeros((n, d * b, d * b))
                out.view(n, d, b, d, b).diagonal(dim1=1, dim2=3).copy_(blocks.permute(0, 2, 3, 1))
                return out

            @staticmethod
            def backward(ctx, grad):
                n, d, b = ctx.dims
                return grad.reshape(n, d, b, d, b).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2).contiguous()

        self._stock = boft.FastBlockDiag
        boft.FastBlockDiag = BlockDiag
        self.layers = [m for m in self.model.modules() if getattr(m, "fbd_cuda_available", True) is False]
        for m in self.layers:
            m.fbd_cuda_available = True
        if self.layers:
            self.notes.append("boft: block_diag of its rotation blocks traced as one strided copy (peft's FastBlockDiag "
                              "path with torch ops; same output, the per-block ops are too many to trace)")
        return self

    def __exit__(self, *exc):
        from peft.tuners.boft import layer as boft

        boft.FastBlockDiag = self._stock
        for m in self.layers:
            m.fbd_cuda_available = False
        return None


class fp32_grouped_mm:
    """The fake kernel of ``aten._grouped_mm`` for fp32 inputs (MoE experts with fp32 master weights).

    transformers runs Mixtral-style experts through ``torch.nn.functional.grouped_mm`` by default
    (``experts_implementation="grouped_mm"``, what a GPU run uses), casting the activations to the
    weights' dtype because grouped_mm is not autocast-aware: with fp32 master weights it is an fp32
    grouped matmul. torch's real kernels take fp32 (CPU here; CUDA through its non-bf16 fallback),
    but its meta kernel still checks for bf16 only, so the trace fails where a run does not. This
    mode answers fp32/fp16 calls with the meta kernel's own output builder (same shape, dtype and
    strides); bf16 calls, and every other op, go to the stock fake kernels. Autograd is untouched:
    the backward's grouped matmuls come through here too, only for inputs that need a gradient.
    """

    def __init__(self, notes: list[str]):
        self.notes, self.used = notes, False

    def __enter__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        outer = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func is torch.ops.aten._grouped_mm.default and args[0].dtype != torch.bfloat16:
                    from torch._meta_registrations import _create_grouped_mm_output_tensor

                    a, b, offs = args[0], args[1], (args[2] if len(args) > 2 else kwargs.get("offs"))
                    torch._check(a.dtype == b.dtype, lambda: f"grouped_mm: {a.dtype} @ {b.dtype}")
                    outer.used = True
                    return _create_grouped_mm_output_tensor(a, b, offs, kwargs.get("out_dtype"))
                return func(*args, **kwargs)

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        if self.used:
            self.notes.append("MoE experts: transformers' grouped_mm (the GPU default) on fp32 weights; "
                              "aten._grouped_mm's meta kernel accepts bf16 only, so fp32 calls get its own output "
                              "builder (same shapes, dtype) as a fake kernel")
        return None
