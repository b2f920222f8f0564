#!/usr/bin/env python3
"""A float64 reference forward pass of the default model (SmolLM2-135M-Instruct, Q4_1 GGUF): every
tensor dequantized with the `gguf` package (pip install gguf numpy tokenizers), the Llama decoder in
numpy float64, and the log-softmax of the logits at every prompt position taken at the next prompt
token, plus each position's argmax and top-2 margin. Writes tests/data/smollm2_float64_prompt_logprobs.json,
which tests/e2e/test_reference_logprobs.py compares with the prompt logprobs troupe returns for `echo`
(they must agree within 1e-4 nats with a float32 KV cache) and tests/runtime/cpu_reference_accuracy_test.cpp
with the CPU model's default (float16 KV) against the issue's goals.

Usage: tools/smollm2_float64_reference.py [--model GGUF] [--tokenizer DIR] [--out JSON]
(the ref venv has every package: /root/.cache/troupe/ref-venv/bin/python)
"""
import argparse
import json
import os

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.expanduser("~/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_TOKENIZER = os.path.join(HERE, "..", "tests", "data", "smollm2_tokenizer")
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "data", "smollm2_float64_prompt_logprobs.json")
PROMPTS = [
    "The capital of France is Paris.",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "Water boils at 100 degrees Celsius at sea level.",
    "Once upon a time, there was a little robot who wanted to learn how to paint.",
    "1, 2, 3, 4, 5, 6, 7, 8",
]


def field(reader, key, default=None):
    if key not in reader.fields:
        return default
    f = reader.fields[key]
    return f.parts[f.data[0]].tolist()[0]


def unpermute(w, n_head):
    # GGUF stores llama q/k rows permuted for interleaved rotary; undo it to use rotate-half rotary.
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Model:
    def __init__(self, path):
        r = GGUFReader(path)
        self.n_layer = field(r, "llama.block_count")
        self.n_head = field(r, "llama.attention.head_count")
        self.n_kv = field(r, "llama.attention.head_count_kv")
        self.eps = field(r, "llama.attention.layer_norm_rms_epsilon")
        self.theta = field(r, "llama.rope.freq_base", 10000.0)
        self.w = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type).astype(np.float64)
            if ".attn_q." in t.name:
                a = unpermute(a, self.n_head)
            elif ".attn_k." in t.name:
                a = unpermute(a, self.n_kv)
            self.w[t.name] = a
        self.hidden = self.w["token_embd.weight"].shape[1]
        self.hd = self.hidden // self.n_head

    def logits(self, ids):
        w, T, D = self.w, len(ids), self.hd
        inv = 1.0 / self.theta ** (np.arange(0, D, 2, dtype=np.float64) / D)
        ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
        cos, sin = np.cos(ang), np.sin(ang)

        def rope(t):
            a, b = t[..., :D // 2], t[..., D // 2:]
            return np.concatenate([a * cos[:, None] - b * sin[:, None], b * cos[:, None] + a * sin[:, None]], -1)

        def norm(v, g):
            return v / np.sqrt((v * v).mean(-1, keepdims=True) + self.eps) * g

        x = w["token_embd.weight"][ids]
        g = self.n_head // self.n_kv
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for i in range(self.n_layer):
            p = f"blk.{i}."
            h = norm(x, w[p + "attn_norm.weight"])
            q = rope((h @ w[p + "attn_q.weight"].T).reshape(T, self.n_head, D))
            k = rope((h @ w[p + "attn_k.weight"].T).reshape(T, self.n_kv, D))
            v = (h @ w[p + "attn_v.weight"].T).reshape(T, self.n_kv, D)
            o = np.zeros((T, self.n_head, D))
            for hh in range(self.n_head):
                s = q[:, hh] @ k[:, hh // g].T / np.sqrt(D) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                o[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, hh // g]
            x = x + o.reshape(T, -1) @ w[p + "attn_output.weight"].T
            h = norm(x, w[p + "ffn_norm.weight"])
            gate = h @ w[p + "ffn_gate.weight"].T
            up = h @ w[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
        h = norm(x, w["output_norm.weight"])
        return h @ w.get("output.weight", w["token_embd.weight"]).T


def prompt_logprobs(logits, ids):
    out = [None]
    for pos in range(1, len(ids)):
        row = logits[pos - 1]
        m = row.max()
        lse = m + np.log(np.exp(row - m).sum())
        out.append(float(row[ids[pos]] - lse))
    return out


def greedy(logits):
    """Per position p: the argmax of logits[p] (the greedy next token) and its margin over the
    runner-up in nats (log-softmax differences equal logit differences)."""
    top2 = np.sort(logits, axis=-1)[:, -2:]
    return [int(i) for i in logits.argmax(-1)], [float(m) for m in top2[:, 1] - top2[:, 0]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args()
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(a.tokenizer, "tokenizer.json"))
    model = Model(a.model)
    result = {"model": os.path.basename(a.model),
              "note": "float64 numpy forward pass over the GGUF weights dequantized by gguf; "
                      "logprobs[p] = log_softmax(logits[p - 1])[ids[p]], logprobs[0] = null "
                      "(tools/smollm2_float64_reference.py); argmax[p], margin[p]: the greedy "
                      "token after position p and its top-2 logit gap",
              "prompts": []}
    for text in PROMPTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        logits = model.logits(ids)
        lp = prompt_logprobs(logits, ids)
        argmax, margin = greedy(logits)
        result["prompts"].append({"text": text, "ids": ids, "logprobs": lp, "argmax": argmax, "margin": margin})
        print(f"{len(ids):3d} tokens, sum {sum(lp[1:]):.6f}: {text[:40]!r}")
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
