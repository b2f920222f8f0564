#!/usr/bin/env python3
"""Reference token ids for the SmolLM2 vocabulary, computed by Hugging Face `tokenizers`.

Writes tests/data/smollm2_tokenizer/{tokenizer.json,tokenizer_config.json} (the HF form of the
vocabulary in the GGUF) and tests/data/smollm2_tokenizer_expected.json (corpus -> ids, decodes).

Why not `AutoTokenizer.from_pretrained(dir, gguf_file=...)`: transformers' GGUF reader imports torch,
and its converter has no split rule for pre-tokenizer "smollm", so it would fall back to the plain
GPT-2 regex and merge digit runs. The SmolLM2 tokenizer.json on the Hub (and llama.cpp's "smollm"
pre-tokenizer) splits every digit first: Sequence[Digits(individual_digits=True), ByteLevel(regex)].
We build exactly that from the GGUF vocabulary and merges. The script also runs transformers'
converter where it imports, and prints the corpus entries it disagrees on: the vocabulary has no
multi-digit tokens, so only non-ASCII numerics such as "½" or "③" differ.

Usage: python3 tools/tokenizer_reference.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
Needs: pip install gguf tokenizers (transformers optional).
"""
import json
import os
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
DEFAULT_GGUF = os.path.expanduser("~/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf")

CORPUS = [
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n\n",
    "Hello world",
    " Hello world",
    "Hello  world   with    spaces",
    "trailing spaces   ",
    "tabs\tand\t\ttabs\n\tindented",
    "line one\nline two\r\nline three\n\n",
    "1234567890",
    "Pi is 3.14159265358979 and e is 2.71828; 1,000,000 dollars in 2024.",
    "Call 555-0100 x12 or +1 (800) 123-4567",
    "Hello, world! How's it going? I'm fine; you're great, they've left, we'll see, he'd go.",
    "DON'T SHOUT, IT'S LOUD",
    "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((())) [[]] {{}} <<>> ~~~ ```",
    "café naïve résumé façade Ångström über Straße",
    "Ελληνικά κείμενο και русский текст",
    "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ",
    "한국어 텍스트",
    "emoji 😀😃😄 and flags 🇫🇷🇯🇵",
    "family 👨‍👩‍👧‍👦 and thumbs 👍🏽 and heart ❤️",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
    "#include <stdio.h>\nint main() {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (int i = 0; i < n; ++i) { x[i] *= 2; }",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "text<|endoftext|>more text",
    "<|im_start|><|im_end|><|endoftext|>",
    "<|im_start",
    "<repo_name>troupe<file_sep>main.cpp",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX.",
    "https://example.com/path?query=1&x=y#frag",
    "user@example.com",
    "a\u00a0b\u2003c\u3000d",
    "zero\u200bwidth\u200djoiner",
    "mixed 123abc456 def789",
    "    leading spaces",
    "Ünïcödé ŝţŕïñĝ",
    "ℕ ⅷ ½ ² ③",
    "\u0000\u0001\u007f",
]


def read_gguf(path):
    r = GGUFReader(path)

    def strings(name):
        f = r.fields[name]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def ints(name):
        f = r.fields[name]
        return [int(f.parts[i][0]) for i in f.data]

    def scalar(name):
        f = r.fields[name]
        return f.parts[f.data[0]][0] if name in r.fields else None

    def text(name):
        f = r.fields[name]
        return bytes(f.parts[f.data[0]]).decode("utf-8")

    return {
        "tokens": strings("tokenizer.ggml.tokens"),
        "types": ints("tokenizer.ggml.token_type"),
        "merges": strings("tokenizer.ggml.merges"),
        "pre": text("tokenizer.ggml.pre"),
        "bos": int(scalar("tokenizer.ggml.bos_token_id")),
        "eos": int(scalar("tokenizer.ggml.eos_token_id")),
        "chat_template": text("tokenizer.chat_template"),
    }


def build(g):
    assert g["pre"] == "smollm", g["pre"]
    vocab = {t: i for i, t in enumerate(g["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in g["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False)
                for t, ty in zip(g["tokens"], g["types"]) if ty == 3]
    tok.add_special_tokens(specials)
    return tok


def transformers_tokenizer(g):
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer
    except Exception as e:  # noqa: BLE001 - optional cross-check
        print("transformers converter unavailable:", e)
        return None
    d = {"tokenizer_type": "gpt2", "pre_tokenizer_type": g["pre"], "tokens": g["tokens"],
         "token_type": g["types"], "merges": g["merges"]}
    tok, _ = convert_gguf_tokenizer("llama", d)
    return tok


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    g = read_gguf(path)
    tok = build(g)

    out_dir = os.path.join(DATA, "smollm2_tokenizer")
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"), pretty=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": False, "add_eos_token": False,
                   "bos_token": g["tokens"][g["bos"]], "eos_token": g["tokens"][g["eos"]],
                   "unk_token": g["tokens"][0], "pad_token": g["tokens"][g["eos"]],
                   "chat_template": g["chat_template"],
                   "added_tokens_decoder": {str(i): {"content": t, "special": True}
                                            for i, (t, ty) in enumerate(zip(g["tokens"], g["types"]))
                                            if ty == 3}},
                  f, indent=1, ensure_ascii=False)

    cases = []
    for text in CORPUS:
        tok.encode_special_tokens = False
        ids_special = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_plain = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        cases.append({
            "text": text,
            "ids_parse_special": ids_special,
            "ids_no_parse_special": ids_plain,
            "decode": tok.decode(ids_special, skip_special_tokens=False),
            "decode_skip_special": tok.decode(ids_special, skip_special_tokens=True),
        })
        assert tok.decode(ids_plain, skip_special_tokens=False) == text, text

    with open(os.path.join(DATA, "smollm2_tokenizer_expected.json"), "w") as f:
        json.dump({"source": "HF tokenizers " + __import__("tokenizers").__version__,
                   "bos_id": g["bos"], "eos_id": g["eos"], "cases": cases},
                  f, indent=1, ensure_ascii=False)

    ref = transformers_tokenizer(g)
    if ref is not None:
        differ = [c["text"] for c in cases
                  if ref.encode(c["text"], add_special_tokens=False).ids != c["ids_parse_special"]]
        print(f"transformers GGUF converter differs on {len(differ)} of {len(cases)} texts:")
        for t in differ:
            print("   ", repr(t))
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
