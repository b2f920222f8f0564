#!/usr/bin/env python3
# Reference data for troupe's GGUF reader, computed with the `gguf` Python package (pip install gguf):
#   tensors: first floats, sums and sample rows of several tensors of a real GGUF file, in Hugging
#            Face order (q/k rows un-permuted with numpy), -> tests/data/smollm2_gguf_tensors.json
#   blocks:  random blocks of every quant type gguf.quants can dequantize -> tests/data/gguf_dequant_blocks.json
import argparse
import json
import os

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.quants import dequantize

DEFAULT_MODEL = os.path.expanduser("~/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf")
TENSORS = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
    ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"),
    ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight"),
    ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight"),
    ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
    ("blk.29.attn_q.weight", "model.layers.29.self_attn.q_proj.weight"),
    ("blk.29.ffn_up.weight", "model.layers.29.mlp.up_proj.weight"),
]
SAMPLE_ROWS = [0, 1, 2, 31, 32, 33, 63, 64, 100, 191]


def field(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]].tolist()[0]


def unpermute(w, n_head):
    # Inverse of convert_hf_to_gguf.py's LlamaModel.permute (rows [n_head, 2, hd/2] -> swap).
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tensors(model, out):
    r = GGUFReader(model)
    n_head = field(r, "llama.attention.head_count")
    n_head_kv = field(r, "llama.attention.head_count_kv")
    by_name = {t.name: t for t in r.tensors}
    result = {"model": os.path.basename(model), "tensors": []}
    for gname, hname in TENSORS:
        t = by_name[gname]
        w = dequantize(t.data, t.tensor_type).astype(np.float32)  # numpy shape = HF [out, in]
        if ".attn_q." in gname:
            w = unpermute(w, n_head)
        elif ".attn_k." in gname:
            w = unpermute(w, n_head_kv)
        flat = w.reshape(-1)
        rows = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(-1, 1)
        result["tensors"].append({
            "gguf_name": gname,
            "name": hname,
            "dtype": t.tensor_type.name,
            "shape": list(w.shape),
            "first": [float(x) for x in flat[:64]],
            "sum": float(flat.astype(np.float64).sum()),
            "abs_sum": float(np.abs(flat.astype(np.float64)).sum()),
            "rows": {str(i): [float(x) for x in rows[i, :8]] for i in SAMPLE_ROWS if i < rows.shape[0]},
        })
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out}")


# Byte ranges holding fp16 scales in each block (kept finite so the comparison is meaningful).
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def blocks(out):
    from gguf import GGML_QUANT_SIZES
    rng = np.random.default_rng(1234)
    result = {"types": []}
    for qt in [T.F16, T.BF16] + list(HALF_FIELDS):
        block_size, type_size = GGML_QUANT_SIZES[qt]
        n_blocks = 2 if block_size > 1 else 64
        raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
        if qt == T.F16:
            raw = rng.normal(0, 2, size=n_blocks).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
        elif qt == T.BF16:
            f = rng.normal(0, 2, size=n_blocks).astype(np.float32)
            raw = (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(n_blocks, 2)
        for off in HALF_FIELDS.get(qt, []):
            h = rng.uniform(-0.05, 0.05, size=n_blocks).astype(np.float16)
            raw[:, off:off + 2] = h.view(np.uint8).reshape(n_blocks, 2)
        data = raw.reshape(-1)
        y = dequantize(data, qt).astype(np.float32).reshape(-1)
        result["types"].append({"type": qt.name, "id": int(qt.value), "hex": data.tobytes().hex(),
                                "values": [float(v) for v in y]})
    with open(out, "w") as f:
        json.dump(result, f)
    print(f"wrote {out}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "tests", "data")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--tensors-out", default=os.path.join(data, "smollm2_gguf_tensors.json"))
    ap.add_argument("--blocks-out", default=os.path.join(data, "gguf_dequant_blocks.json"))
    args = ap.parse_args()
    blocks(args.blocks_out)
    tensors(args.model, args.tensors_out)


if __name__ == "__main__":
    main()
