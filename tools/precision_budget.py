#!/usr/bin/env python3
"""The logit error an *ideal* 16-bit forward pass has on a Llama/Qwen2 fixture (numpy only).

The HF references in ../shared/fixtures are float32. This emulates the forward pass in float32
with values rounded to bf16 (or fp16) where a 16-bit engine stores them -- weights, then every
activation, then the residual stream -- and prints the relative logit error against
reference.json at every position of the prompts that carry all positions' logits. It is the
floor any bf16/fp16 implementation sits on, and the basis of the tolerances in
tests/kernels/cuda_model_test.cpp.

Usage: tools/precision_budget.py FIXTURE_DIR [--dtype bf16|f16]
"""
import argparse
import json
import struct

import numpy as np


def load_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        if t["dtype"] == "F32":
            x = np.frombuffer(buf, np.float32)
        elif t["dtype"] == "F16":
            x = np.frombuffer(buf, np.float16).astype(np.float32)
        elif t["dtype"] == "BF16":
            x = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{name}: dtype {t['dtype']} not handled")
        out[name] = x.reshape(t["shape"]).astype(np.float32)
    return out


def round_bf16(x):
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16  # round to nearest even
    return u.astype(np.uint32).view(np.float32)


def round_f16(x):
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


def forward(W, cfg, ids, rw, ract, rres):
    """Logits [T, vocab]; rw/ract/rres round weights / activations / the residual stream."""
    H, Hq, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or H // Hq
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_parameters", {}).get("rope_theta", cfg.get("rope_theta", 10000.0))
    w = lambda k: rw(W[k])
    opt = lambda k: rw(W[k]) if k in W else 0.0
    T = len(ids)
    inv = (1.0 / theta ** (np.arange(0, D, 2, dtype=np.float32) / D)).astype(np.float32)
    ang = np.arange(T, dtype=np.float32)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(t):
        a, b = t[..., :D // 2], t[..., D // 2:]
        return np.concatenate([a * cos[:, None] - b * sin[:, None], b * cos[:, None] + a * sin[:, None]], -1)

    def norm(v, g):
        return ract(v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * g)

    x = rres(w("model.embed_tokens.weight")[ids])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = norm(x, w(p + "input_layernorm.weight"))
        proj = lambda n: ract(h @ w(p + f"self_attn.{n}_proj.weight").T + opt(p + f"self_attn.{n}_proj.bias"))
        q = ract(rope(proj("q").reshape(T, Hq, D)))
        k = ract(rope(proj("k").reshape(T, Hkv, D)))
        v = proj("v").reshape(T, Hkv, D)
        g = Hq // Hkv
        o = np.zeros((T, Hq, D), np.float32)
        mask = np.triu(np.full((T, T), -np.inf, np.float32), 1)
        for hh in range(Hq):
            s = q[:, hh] @ k[:, hh // g].T / np.sqrt(D) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            o[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, hh // g]
        x = rres(x + ract(ract(o.reshape(T, Hq * D)) @ w(p + "self_attn.o_proj.weight").T))
        h = norm(x, w(p + "post_attention_layernorm.weight"))
        gate = ract(h @ w(p + "mlp.gate_proj.weight").T)
        up = ract(h @ w(p + "mlp.up_proj.weight").T)
        act = ract(ract(gate / (1 + np.exp(-gate))) * up)
        x = rres(x + ract(act @ w(p + "mlp.down_proj.weight").T))
    h = norm(x, w("model.norm.weight"))
    lm = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return h @ rw(lm).T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixture")
    ap.add_argument("--dtype", choices=["bf16", "f16"], default="bf16")
    a = ap.parse_args()
    cfg = json.load(open(a.fixture + "/config.json"))
    W = load_safetensors(a.fixture + "/model.safetensors")
    ref = json.load(open(a.fixture + "/reference.json"))
    r = round_bf16 if a.dtype == "bf16" else round_f16
    ident = lambda t: t
    cases = [("float32", ident, ident, ident), (f"{a.dtype} weights", r, ident, ident),
             (f"+ {a.dtype} activations", r, r, ident), (f"+ {a.dtype} residual (all 16-bit)", r, r, r)]
    for name, rw, ract, rres in cases:
        errs = []
        for pr in ref["prompts"]:
            if "logits_all_positions" not in pr:
                continue
            got = forward(W, cfg, np.array(pr["input_ids"]), rw, ract, rres)
            want = np.array(pr["logits_all_positions"], np.float32)
            errs += list(np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1))
        print(f"{name:34s} relative logit error: max {max(errs):.4f}, median {np.median(errs):.4f} "
              f"({len(errs)} positions)")


if __name__ == "__main__":
    main()
