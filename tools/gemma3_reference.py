#!/usr/bin/env python3
# A float64 reference forward pass of Gemma 3 (text) over a GGUF file's dequantized weights (numpy +
# the `gguf` package), written independently of troupe: per-token log-probs of each prompt and a
# greedy continuation with its log-probs and top-2 margins, -> tests/data/gemma3_270m_reference.json.
# Prompt token ids come from transformers' tokenizer built from the GGUF's own vocabulary. Run with
# the reference venv (numpy, gguf, transformers); never needed by the server or the tests.
import argparse
import json
import os

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

DEFAULT_MODEL = os.path.expanduser("~/.cache/troupe/models/gemma-3-270m-q4_k_m.gguf")
PROMPTS = [
    "The Eiffel Tower is located in the city of",
    "The capital of Japan is",
    "def fibonacci(n):",
    "Once upon a time, there was a little",
    "Water boils at a temperature of",
    # Longer than the 512-token window of the local layers: they must forget its start.
    ", ".join(str(i) for i in range(1, 241)) + ",",
]
GREEDY_TOKENS = 16


def field(r, key, default=None):
    if key not in r.fields:
        return default
    f = r.fields[key]
    v = f.parts[f.data[0]]
    return v.tolist()[0] if len(v) == 1 else v.tolist()


class Gemma3:
    def __init__(self, path):
        r = GGUFReader(path)
        a = "gemma3."
        self.n_layer = field(r, a + "block_count")
        self.n_head = field(r, a + "attention.head_count")
        self.n_kv = field(r, a + "attention.head_count_kv")
        self.hd = field(r, a + "attention.key_length")
        self.hidden = field(r, a + "embedding_length")
        self.eps = field(r, a + "attention.layer_norm_rms_epsilon")
        self.window = field(r, a + "attention.sliding_window")
        self.base_global = field(r, a + "rope.freq_base")
        self.base_local = field(r, a + "rope.freq_base_swa", 10000.0)
        # llama.cpp's Gemma 3: every sixth layer global; norms stored as 1 + w by the converter.
        self.local = [(i + 1) % 6 != 0 for i in range(self.n_layer)]
        self.w = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64) for t in r.tensors}

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos, base):
        half = self.hd // 2
        inv = 1.0 / base ** (np.arange(0, half, dtype=np.float64) * 2 / self.hd)
        ang = pos[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def hidden_states(self, ids, cache):
        # Runs tokens `ids` after the len(cache[0][0]) already cached ones; cache[l] = [K, V] of
        # layer l (after q/k norms and rotary), extended in place.
        w, n = self.w, len(ids)
        start = len(cache[0][0]) if cache[0][0] is not None else 0
        x = w["token_embd.weight"][ids] * np.sqrt(self.hidden)
        pos = np.arange(start, start + n, dtype=np.float64)
        i, j = np.arange(start, start + n)[:, None], np.arange(start + n)[None, :]
        for l in range(self.n_layer):
            p = f"blk.{l}."
            h = self.rms(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(n, self.n_head, self.hd)
            k = (h @ w[p + "attn_k.weight"].T).reshape(n, self.n_kv, self.hd)
            v = (h @ w[p + "attn_v.weight"].T).reshape(n, self.n_kv, self.hd)
            q = self.rms(q, w[p + "attn_q_norm.weight"])
            k = self.rms(k, w[p + "attn_k_norm.weight"])
            base = self.base_local if self.local[l] else self.base_global
            q, k = self.rope(q, pos, base), self.rope(k, pos, base)
            if start:
                k = np.concatenate([cache[l][0], k])
                v = np.concatenate([cache[l][1], v])
            cache[l] = [k, v]
            allowed = j <= i
            if self.local[l]:
                allowed &= j > i - self.window
            group = self.n_head // self.n_kv
            out = np.empty((n, self.n_head, self.hd))
            for hh in range(self.n_head):
                s = q[:, hh, :] @ k[:, hh // group, :].T / np.sqrt(self.hd)
                s = np.where(allowed, s, -np.inf)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                out[:, hh, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, hh // group, :]
            o = out.reshape(n, -1) @ w[p + "attn_output.weight"].T
            x = x + self.rms(o, w[p + "post_attention_norm.weight"])
            h = self.rms(x, w[p + "ffn_norm.weight"])
            g, u = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
            a = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3))) * u
            x = x + self.rms(a @ w[p + "ffn_down.weight"].T, w[p + "post_ffw_norm.weight"])
        return self.rms(x, self.w["output_norm.weight"])

    def log_softmax_rows(self, hs):
        out = []
        for r in range(0, len(hs), 32):
            z = hs[r:r + 32] @ self.w["token_embd.weight"].T
            z = z - z.max(axis=1, keepdims=True)
            out.append(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))
        return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests/data/gemma3_270m_reference.json"))
    args = ap.parse_args()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.dirname(args.model), gguf_file=os.path.basename(args.model))
    m = Gemma3(args.model)
    result = {"model": os.path.basename(args.model),
              "note": "float64 forward pass over the dequantized GGUF weights by tools/gemma3_reference.py; "
                      "prompt ids from transformers' tokenizer built from the GGUF vocabulary",
              "prompts": []}
    for text in PROMPTS:
        ids = tok(text).input_ids
        cache = [[None, None] for _ in range(m.n_layer)]
        lp = m.log_softmax_rows(m.hidden_states(ids, cache))
        prompt_lp = [float(lp[t - 1, ids[t]]) for t in range(1, len(ids))]
        seq, greedy, greedy_lp, margins = list(ids), [], [], []
        last = lp[-1]
        for step in range(GREEDY_TOKENS):
            top2 = np.argsort(last)[-2:]
            t = int(top2[1])
            greedy.append(t)
            greedy_lp.append(float(last[t]))
            margins.append(float(last[top2[1]] - last[top2[0]]))
            seq.append(t)
            if step + 1 < GREEDY_TOKENS:
                last = m.log_softmax_rows(m.hidden_states([t], cache))[0]
        result["prompts"].append({"text": text, "prompt_ids": ids, "prompt_logprobs": prompt_lp,
                                  "greedy_ids": greedy, "greedy_logprobs": greedy_lp, "greedy_margins": margins,
                                  "greedy_text": tok.decode(greedy)})
        print(repr(text[:40]), len(ids), "->", repr(tok.decode(greedy)), "min margin", min(margins), flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
