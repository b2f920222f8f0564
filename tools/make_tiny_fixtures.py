#!/usr/bin/env python3
# Makes tiny random-weight Hugging Face models (and GGUF conversions of some) with their reference
# outputs from transformers: logits at every position and 24-token greedy continuations, in the
# reference.json layout of ../shared/fixtures. Output: tests/data/fixtures/<name>/.
#
# Run with the reference venv (torch + transformers + gguf; never needed by the server or tests):
#   /root/.cache/troupe/ref-venv/bin/python tools/make_tiny_fixtures.py [family ...]
#
# Extending: write `def <family>_fixtures()` returning a list of `fixture` (a name, a transformers
# config, a dtype, optionally a GGUF writer) and add it to FAMILIES. Everything else (seeded random
# weights with non-trivial norms, bf16 rounding, prompts, references, the note) is shared.
import argparse
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "fixtures")
NUM_GREEDY = 24
DIGITS = 6  # logits are rounded to 6 decimals: ~1e-6 relative, far inside the tests' 1e-4


@dataclass
class fixture:
    name: str                        # folder under tests/data/fixtures
    config: transformers.PretrainedConfig
    dtype: torch.dtype = torch.float32
    prompt_lengths: tuple = (1, 7, 33, 200)  # all-position logits for the prompts shorter than 100
    seed: int = 0
    gguf: Optional[Callable] = None  # gguf(model, config, path): writes a GGUF of the same weights
    note: str = ""
    embed_std: float = 1.0  # tied embeddings need a small one, or each token predicts itself


def randomize(model: torch.nn.Module, seed: int, embed_std: float = 1.0) -> None:
    """Seeded weights that make every part of the forward pass matter: matrices ~ N(0, 1/in),
    embeddings ~ N(0, embed_std²), norm weights 1 + N(0, 0.2²) (HF initialises them to exactly 1, which
    would hide a norm applied in the wrong place), biases ~ N(0, 0.1²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(embed_std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))


def prompts_for(vocab: int, lengths, seed: int):
    rng = np.random.default_rng(seed + 1000)
    return [[int(t) for t in rng.integers(3, vocab, size=n)] for n in lengths]


def reference(model, ids):
    """Logits at every position of `ids` and the greedy continuation (one token per step, with the
    KV cache, as a server decodes)."""
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
        logits = out.logits[0].float()
        past = out.past_key_values
        nxt = int(logits[-1].argmax())
        greedy = []
        for _ in range(NUM_GREEDY):
            greedy.append(nxt)
            step = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = step.past_key_values
            nxt = int(step.logits[0, -1].float().argmax())
    return logits, greedy


def rounded(v):
    return [round(float(x), DIGITS) for x in v]


def build(fx: fixture) -> None:
    torch.manual_seed(fx.seed)
    folder = os.path.join(OUT, fx.name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    model = AutoModelForCausalLM.from_config(fx.config, dtype=torch.float32)
    randomize(model, fx.seed, fx.embed_std)
    model.to(fx.dtype).save_pretrained(folder)
    # The reference runs in float32 from the stored weights (bf16 ones upcast), as the
    # shared fixtures' references do; rotary frequencies stay float32.
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompts = []
    for ids in prompts_for(fx.config.vocab_size, fx.prompt_lengths, fx.seed):
        logits, greedy = reference(model, ids)
        p = {"input_ids": ids}
        if len(ids) < 100:
            p["logits_all_positions"] = [rounded(row) for row in logits]
        p["logits_last"] = rounded(logits[-1])
        p["argmax_all_positions"] = [int(i) for i in logits.argmax(-1)]
        p["greedy_continuation"] = greedy
        prompts.append(p)
    note = (f"Reference outputs computed by Hugging Face transformers {transformers.__version__} "
            f"(torch {torch.__version__}) in float32 from the weights in this folder"
            + (" (bf16 weights upcast to float32; rotary frequencies in float32)" if fx.dtype == torch.bfloat16 else "")
            + ". Made by tools/make_tiny_fixtures.py with seed " + str(fx.seed) + "." + (" " + fx.note if fx.note else ""))
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump({"prompts": prompts, "note": note}, f, separators=(",", ":"))
    if fx.gguf:
        fx.gguf(model, fx.config, os.path.join(folder, "model.gguf"))
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    print(f"{fx.name}: {size / 1024:.0f} KiB", file=sys.stderr)


# ---------------------------------------------------------------- GGUF conversion (gguf package)

def gguf_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's q/k row permutation for the llama architecture (GGML's rope pairs
    adjacent elements; HF's rotates halves)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def bf16_bits(v: np.ndarray) -> np.ndarray:
    """float32 values that are exactly bf16 (the reference model's upcast weights) as bf16 bits."""
    return (np.ascontiguousarray(v, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def write_gguf(model, cfg, path: str, arch: str, permute_qk: bool, extra: Optional[Callable] = None,
               bf16: bool = False) -> None:
    """Writes the model as llama.cpp's converter would: 2-D tensors F32 (BF16 when `bf16`: the
    stored weights are bf16, so the file is exact), norms F32."""
    import gguf
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(path, arch)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w.add_name(os.path.basename(os.path.dirname(path)))
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_vocab_size(cfg.vocab_size)
    if extra:
        extra(w, cfg, sd)
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
             "self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for k, v in sd.items():
        if k == "model.embed_tokens.weight":
            g = "token_embd.weight"
        elif k == "model.norm.weight":
            g = "output_norm.weight"
        elif k == "lm_head.weight":
            if cfg.tie_word_embeddings:
                continue
            g = "output.weight"
        else:
            parts = k.split(".")  # model.layers.N.<part...>.weight
            g = f"blk.{parts[2]}.{names['.'.join(parts[3:-1])]}.{parts[-1]}"
            if permute_qk and ".attn_q." in g:
                v = gguf_permute(v, cfg.num_attention_heads)
            elif permute_qk and ".attn_k." in g:
                v = gguf_permute(v, cfg.num_key_value_heads)
        if bf16 and v.ndim == 2:
            w.add_tensor(g, bf16_bits(v), raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(g, np.ascontiguousarray(v.astype(np.float32)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------- families

def qwen3_config(**kw):
    base = dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=32,  # 4 x 32 = 128 != hidden 64
                max_position_embeddings=1024, rms_norm_eps=1e-6, tie_word_embeddings=True,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                bos_token_id=1, eos_token_id=2)
    base.update(kw)
    return transformers.Qwen3Config(**base)


def qwen3_fixtures():
    gg = lambda m, c, p: write_gguf(m, c, p, "qwen3", permute_qk=False, bf16=True)
    note = "q_norm/k_norm per head before rotary; head_dim 32 with hidden 64 (a head_dim the CUDA attention runs)."
    return [fixture("tiny-qwen3", qwen3_config(), seed=3, note=note, embed_std=0.05),
            fixture("tiny-qwen3-bf16", qwen3_config(), torch.bfloat16, seed=3, gguf=gg, embed_std=0.05,
                    note=note + " model.gguf: the same weights as GGUF arch qwen3 (BF16 matrices, F32 norms).")]


def phi3_config(original: int, window, **kw):
    head_dim = 16
    half = head_dim // 2
    base = dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                original_max_position_embeddings=original, rms_norm_eps=1e-5, tie_word_embeddings=False,
                sliding_window=window, pad_token_id=None, bos_token_id=1, eos_token_id=2,
                rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                 # distinct per-dimension factors, so a swapped list shows
                                 "short_factor": [1.0 + 0.05 * i for i in range(half)],
                                 "long_factor": [1.0 + 0.9 * i for i in range(half)],
                                 "original_max_position_embeddings": original})
    base.update(kw)
    return transformers.Phi3Config(**base)


def phi3_fixtures():
    long_note = ("LongRoPE: original_max_position_embeddings 16 < max_position_embeddings 256, and every "
                 "prompt is longer than 16, so transformers uses the long factors and attention factor "
                 "sqrt(1 + ln 16 / ln 16) throughout (what vLLM and troupe use whenever the context exceeds "
                 "the original). Sliding window 48.")
    gg = lambda m, c, p: write_gguf(m, c, p, "phi3", permute_qk=False, extra=phi3_gguf_extra, bf16=True)
    lengths = (17, 24, 40, 200)
    return [fixture("tiny-phi3", phi3_config(16, 48), prompt_lengths=lengths, seed=5, note=long_note),
            fixture("tiny-phi3-bf16", phi3_config(16, 48), torch.bfloat16, prompt_lengths=lengths, seed=5, gguf=gg,
                    note=long_note + " model.gguf: the same weights as GGUF arch phi3 (fused attn_qkv and ffn_up, "
                                     "rope_factors_long/short, BF16 matrices)."),
            fixture("tiny-phi3-short", phi3_config(256, None), prompt_lengths=(1, 7, 33, 200), seed=6,
                    note="LongRoPE short factors: original_max_position_embeddings equals the context (256).")]


def phi3_gguf_extra(w, cfg, sd):
    rp = cfg.rope_parameters
    w.add_rope_scaling_orig_ctx_len(rp["original_max_position_embeddings"])
    factor = cfg.max_position_embeddings / rp["original_max_position_embeddings"]
    w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(factor) / math.log(rp["original_max_position_embeddings"])))
    if cfg.sliding_window:
        w.add_sliding_window(cfg.sliding_window)
    w.add_tensor("rope_factors_long.weight", np.array(rp["long_factor"], dtype=np.float32))
    w.add_tensor("rope_factors_short.weight", np.array(rp["short_factor"], dtype=np.float32))


LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}


def llama3_gguf_extra(w, cfg, sd):
    """convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors): Llama 3 scaling as a per-dimension
    divisor of the rotary frequency, stored as rope_freqs.weight; no scaling keys are written."""
    rp = cfg.rope_parameters
    head_dim = cfg.head_dim
    freqs = 1.0 / (rp["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    low_wavelen = rp["original_max_position_embeddings"] / rp["low_freq_factor"]
    high_wavelen = rp["original_max_position_embeddings"] / rp["high_freq_factor"]
    factors = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(rp["factor"])
        else:
            smooth = (rp["original_max_position_embeddings"] / wavelen - rp["low_freq_factor"]) / (
                rp["high_freq_factor"] - rp["low_freq_factor"])
            factors.append(1.0 / ((1 - smooth) / rp["factor"] + smooth))
    w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))


def llama3_fixtures():
    cfg = transformers.LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                   max_position_embeddings=1024, rms_norm_eps=1e-5, tie_word_embeddings=False,
                                   rope_parameters=dict(LLAMA3_ROPE), bos_token_id=1, eos_token_id=2)
    gg = lambda m, c, p: write_gguf(m, c, p, "llama", permute_qk=True, extra=llama3_gguf_extra, bf16=True)
    return [fixture("tiny-llama3-bf16", cfg, torch.bfloat16, seed=7, gguf=gg,
                    note="Llama 3 rope scaling (factor 8, original context 64, so all three bands of "
                         "frequencies occur). model.gguf: the same weights as llama.cpp's converter writes "
                         "them (q/k rows permuted, rope_freqs.weight, no scaling keys; BF16 matrices).")]


FAMILIES = {"qwen3": qwen3_fixtures, "phi3": phi3_fixtures, "llama3": llama3_fixtures}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("families", nargs="*", help="families to make (default: all): " + ", ".join(FAMILIES))
    args = ap.parse_args()
    for fam in args.families or list(FAMILIES):
        if fam not in FAMILIES:
            print(f"unknown family '{fam}' (known: {', '.join(FAMILIES)})", file=sys.stderr)
            return 2
        for fx in FAMILIES[fam]():
            build(fx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
