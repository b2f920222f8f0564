#!/usr/bin/env python3
# Makes the tiny random-weight Gemma 3 (text) fixtures tests/data/fixtures/tiny-gemma3{,-bf16} with
# Hugging Face transformers: config.json, model.safetensors and reference.json (logits at every
# position, argmax, 24-token greedy continuations) in the layout of ../shared/fixtures/tiny-llama.
# Run with the reference venv (torch + transformers, CPU): never needed by the server or the tests.
import argparse
import json
import pathlib

import torch
import transformers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

PROMPT_LENGTHS = [1, 7, 33, 300]  # as tiny-llama: the 300-token prompt keeps argmax only
GREEDY_TOKENS = 24


def make_config():
    # Small, but every Gemma 3 feature is exercised: local (window 8, shorter than three of the
    # prompts) and global layers interleaved with their own rope bases, GQA, head_dim independent of
    # hidden / heads, a query_pre_attn_scalar different from head_dim, final logit soft-capping.
    return Gemma3TextConfig(
        vocab_size=512, hidden_size=128, intermediate_size=352, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=2, head_dim=48, sliding_window=8,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"] * 2,
        max_position_embeddings=1024, query_pre_attn_scalar=40, final_logit_softcapping=30.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=0,
        attn_implementation="eager")


def randomise(model, gen):
    # transformers initialises Gemma's (1 + w) norm weights to zero; random ones make the test see
    # whether the +1 is applied, and larger matrices make the layers matter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if "embed" in name else p.shape[1] ** -0.5))


def greedy(model, ids):
    ids = list(ids)
    out = []
    for _ in range(GREEDY_TOKENS):
        logits = model(torch.tensor([ids])).logits[0, -1]
        t = int(torch.argmax(logits))
        out.append(t)
        ids.append(t)
    return out


def reference(model, prompts, note):
    res = []
    with torch.no_grad():
        for ids in prompts:
            logits = model(torch.tensor([ids])).logits[0].float()
            p = {"input_ids": ids}
            if len(ids) < 300:
                p["logits_all_positions"] = logits.tolist()
            p["logits_last"] = logits[-1].tolist()
            p["argmax_all_positions"] = logits.argmax(-1).tolist()
            p["greedy_continuation"] = greedy(model, ids)
            res.append(p)
    return {"prompts": res, "note": note}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent.parent / "tests/data/fixtures"))
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(25)
    cfg = make_config()
    model = Gemma3ForCausalLM(cfg).eval()
    randomise(model, gen)
    prompts = [torch.randint(3, cfg.vocab_size, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]
    versions = f"transformers {transformers.__version__} (torch {torch.__version__})"

    out = pathlib.Path(args.out)
    f32 = out / "tiny-gemma3"
    model.save_pretrained(f32)
    (f32 / "reference.json").write_text(json.dumps(reference(
        model, prompts, f"Reference outputs computed by Hugging Face {versions} in float32 (eager attention) "
        f"from the weights in this folder; made by tools/make_tiny_gemma3.py.")))

    bf16 = out / "tiny-gemma3-bf16"
    model.to(torch.bfloat16).save_pretrained(bf16)
    # The reference runs the bf16 weights upcast to float32, as the other bf16 fixtures do.
    up = Gemma3ForCausalLM.from_pretrained(bf16, dtype=torch.float32, attn_implementation="eager").eval()
    (bf16 / "reference.json").write_text(json.dumps(reference(
        up, prompts, f"Reference outputs computed by Hugging Face {versions} in float32 (eager attention) "
        f"from the weights in this folder (bf16 weights upcast to float32); made by tools/make_tiny_gemma3.py.")))
    for d in (f32, bf16):
        print(d, sorted(p.name for p in d.iterdir()))


if __name__ == "__main__":
    main()
