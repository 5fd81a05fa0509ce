"""vera: vector-based random matrix adaptation (Kopiczko et al. 2024).

    tunebench train --stack sft:vera --model tiny-llama --task smoke

One pair of frozen random projections A (r×in), B (out×r) is shared by every layer; each
projection trains only two scaling vectors, λ_d (r) and λ_b (out): ΔW = Λ_b·B·Λ_d·A.
λ_b starts at zero, so the model is unchanged at step 0. The saved adapter includes the shared
projections so it reloads without re-deriving them from the PRNG key.
"""
from pydantic import Field

from methods._peft import TargetSettings, peft_method


class VeraSettings(TargetSettings):
    r: int = Field(256, ge=1)
    d_initial: float = Field(0.1, gt=0)
    seed: int = Field(0, description="PRNG key of the shared random projections")


def build(cfg: VeraSettings):
    from peft import VeraConfig

    return VeraConfig(r=cfg.r, d_initial=cfg.d_initial, projection_prng_key=cfg.seed, save_projection=True,
                      target_modules=list(cfg.target_modules))


peft_method(
    name="vera", family="reparameterized", trains="two scaling vectors per projection over shared frozen random A, B",
    config=VeraSettings, build=build, zero_init=True,
    description="VeRA (r=256): per-layer scaling vectors over shared random projections; merges into the base",
)
