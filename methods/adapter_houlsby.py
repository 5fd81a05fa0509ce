"""adapter_houlsby: bottleneck adapters after the attention block and after the MLP (Houlsby et al. 2019).

    tunebench train --stack sft:adapter_houlsby --model tiny-llama --task smoke

Two adapters per decoder layer, each 2·d·m + d + m parameters with m = d // reduction_factor;
the up-projection starts at zero, so the model is unchanged at step 0. Adapters are nonlinear
and cannot be merged. (The paper also tunes the layer norms; here only the adapters train —
add ``ln_tuning`` in a stack stage for that.)
"""
from methods._bottleneck import Activation, AdapterSettings, adapter_method, bottleneck_memory
from methods.card import ParamCard


class HoulsbySettings(AdapterSettings):
    activation: Activation = "silu"


CARD = ParamCard(
    name="adapter_houlsby", family="additive", label="Adapters (Houlsby)",
    trains="bottleneck adapters after attention and after the MLP in every layer",
    description="Houlsby adapters (2 per layer, m=d/16, SiLU); cannot be merged",
    settings=HoulsbySettings, memory=bottleneck_memory(2), mergeable=False, latency="adapter",
)
adapter_method(CARD, sites=("self_attn", "mlp"))
