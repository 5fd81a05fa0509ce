"""adapter_pfeiffer: one bottleneck adapter after the MLP of each layer (Pfeiffer et al. 2021).

    tunebench train --stack sft:adapter_pfeiffer --model tiny-llama --task smoke

One adapter per decoder layer, 2·d·m + d + m parameters with m = d // reduction_factor, ReLU;
the up-projection starts at zero, so the model is unchanged at step 0. Cannot be merged.
"""
from methods._bottleneck import Activation, AdapterSettings, adapter_method, bottleneck_memory
from methods.card import ParamCard


class PfeifferSettings(AdapterSettings):
    activation: Activation = "relu"


CARD = ParamCard(
    name="adapter_pfeiffer", family="additive", label="Adapters (Pfeiffer)",
    trains="one bottleneck adapter after the MLP in every layer",
    description="Pfeiffer adapters (1 per layer, m=d/16, ReLU); cannot be merged",
    settings=PfeifferSettings, memory=bottleneck_memory(1), mergeable=False, latency="adapter",
)
adapter_method(CARD, sites=("mlp",))
