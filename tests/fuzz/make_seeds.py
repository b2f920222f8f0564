#!/usr/bin/env python3
"""Writes the seed corpora tests/fuzz/corpus/<target>/ from real inputs: tests/data files, example
request bodies and WebSocket frames (docs/websocket.md), a tiny GGUF laid out like
tests/runtime/gguf_test_writer.h writes one, and small safetensors files cut from the fixtures'
model.safetensors. Deterministic; rerun after changing it (python3 tests/fuzz/make_seeds.py)."""
import json
import os
import struct
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
data = os.path.join(root, "tests", "data")
fixtures = os.path.join(root, "..", "shared", "fixtures")
out_root = os.path.join(root, "tests", "fuzz", "corpus")


def write(target, name, payload):
    d = os.path.join(out_root, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(payload, str):
        payload = payload.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(payload)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


# --- HTTP routes: 1 route byte ('0' completions, '1' chat, '2' tokenize, '3' detokenize) + body.
completion = {"model": "m", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.7, "top_p": 0.9,
              "top_k": 40, "min_p": 0.05, "stop": ["\n", "END"], "seed": 7, "logprobs": 2, "n": 2,
              "stream": True, "stream_options": {"include_usage": True}, "logit_bias": {"65": 2.5},
              "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
              "ignore_eos": False, "min_tokens": 1, "stop_token_ids": [2]}
chat = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": [{"type": "text", "text": "Hi <|im_start|>!"}]},
                                   {"role": "assistant", "content": "Hello."},
                                   {"role": "user", "content": "caf\u00e9 \u4e2d\u6587"}],
        "max_tokens": 8, "logprobs": True, "top_logprobs": 2, "stream": False}
routes = {
    "completion": "0" + json.dumps(completion),
    "completion_ids": "0" + json.dumps({"prompt": [1, 2, 3, 49151], "max_tokens": 4}),
    "completion_batch": "0" + json.dumps({"prompt": ["a", "b"], "echo": True}),
    "chat": "1" + json.dumps(chat),
    "chat_minimal": "1" + json.dumps({"messages": [{"role": "user", "content": "Hi!"}]}),
    "tokenize_prompt": "2" + json.dumps({"prompt": "Hello, world!", "add_special_tokens": True}),
    "tokenize_messages": "2" + json.dumps({"messages": [{"role": "user", "content": "Hi"}]}),
    "tokenize_ids": "2" + json.dumps({"prompt": [5, 6, 7]}),
    "detokenize": "3" + json.dumps({"tokens": [19556, 28, 905, 17]}),
    "detokenize_bad": "3" + json.dumps({"tokens": [-1, 1e30, "x"]}),
}
# Shapes of hostile bodies (issue 19): nesting past the depth limit, badly shaped prompts, tool fields.
deep = "[" * 70 + "]" * 70
routes.update({
    "deep_extra_field": "0" + '{"prompt":"hi","x":' + deep + "}",
    "deep_objects": "0" + '{"prompt":"hi","x":' + '{"a":' * 70 + "1" + "}" * 70 + "}",
    "deep_kwargs": "1" + '{"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"k":' + deep + "}}",
    "nested_prompt": "0" + json.dumps({"prompt": [[[1]]]}),
    "tool_fields": "1" + json.dumps({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none",
                                     "response_format": {"type": "json_object"}, "tools": []}),
    "detokenize_deep": "3" + '{"tokens":[' + deep + "]}",
})
for name, body in routes.items():
    write("openai_routes", name, body)

# --- /tokenize and /detokenize: 1 route byte (even tokenize, odd detokenize) + body.
tokenize_seeds = {
    "prompt": "0" + json.dumps({"prompt": "Hello, world!", "add_special_tokens": False}),
    "prompt_list": "0" + json.dumps({"prompt": ["caf\u00e9"]}),
    "ids": "0" + json.dumps({"prompt": [[5, 6, 7]]}),
    "messages": "0" + json.dumps({"messages": [{"role": "user", "content": "Hi"}],
                                  "chat_template_kwargs": {"enable_thinking": False}}),
    "nested": "0" + json.dumps({"prompt": [[[1]]]}),
    "deep": "0" + '{"prompt":' + deep + "}",
    "detokenize": "1" + json.dumps({"tokens": [19556, 28, 905, 17]}),
    "detokenize_bad": "1" + json.dumps({"tokens": [-1, 1e30, "x" * 300, {"a": [1]}]}),
    "detokenize_deep": "1" + '{"tokens":[' + deep + "]}",
}
for name, body in tokenize_seeds.items():
    write("tokenize", name, body)

# --- WebSocket frames (docs/websocket.md).
frames = {
    "generate": {"type": "generate", "id": "a", "prompt": "Once upon a time", "max_tokens": 32, "temperature": 0.7},
    "generate_chat": {"type": "generate", "id": "b", "messages": [{"role": "user", "content": "Hi!"}],
                      "logprobs": True, "top_logprobs": 2},
    "generate_ids": {"type": "generate", "id": "c", "prompt": [1, 2, 3], "n": 3, "stop": "x"},
    "cancel": {"type": "cancel", "id": "a"},
}
for name, frame in frames.items():
    write("ws_message", name, json.dumps(frame))
write("ws_message", "deep_prompt", '{"type":"generate","id":"d","prompt":' + deep + "}")
write("ws_message", "nested_prompt", json.dumps({"type": "generate", "id": "e", "prompt": [[[1]]]}))

# --- Responses API bodies and WebSocket response.create events (net/responses_api.h).
responses = {
    "plain": {"model": "m", "input": "Hi!", "instructions": "Be brief.", "max_output_tokens": 16, "temperature": 0},
    "items": {"input": [{"role": "developer", "content": "rules"},
                        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
                        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                        {"type": "function_call_output", "call_id": "c", "output": "42"}]},
    "chain": {"input": "more", "previous_response_id": "resp_seed", "store": False, "truncation": "auto",
              "metadata": {"k": "v"}, "top_p": 0.5},
    "tools": {"input": "x", "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
              "tool_choice": {"type": "function", "name": "f"},
              "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}}},
    "ws_create": {"type": "response.create", "input": "Hi!", "stream": True},
}
for name, body in responses.items():
    write("responses_request", name, json.dumps(body))

# --- Tokenizer: 1 flags byte (1 add_special, 2 parse_special, 4 SentencePiece vocab, 8 skip_special) + text.
cases = json.loads(read(os.path.join(data, "smollm2_tokenizer_expected.json")))["cases"]
for i, case in enumerate(cases):
    write("tokenizer", "case_%03d" % i, bytes([(i % 4)]) + case["text"].encode("utf-8", "surrogatepass"))
write("tokenizer", "spm_text", b"\x05 ab a\xe2\x96\x81b <tool> \xff\xfe <s>")
write("tokenizer", "invalid_utf8", b"\x00\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xed\xa0\x80")

# --- Config files and HF config.json.
for name, cfg in {
    "serve": {"model": "/models/x.gguf", "device": "cpu", "num-threads": 2, "session_len": 2048,
              "max-batch-size": 8, "cache-max-entry-count": 0.8, "enable-prefix-caching": True,
              "port": 8080, "api-key": "k", "log-level": "debug"},
    "memory": {"kv-cache-memory": "2GiB", "device-memory": "20GiB", "cache-block-seq-len": 16, "tp": 1},
    "bad": {"max_batch_sise": 4, "tp": [1, 2]},
}.items():
    write("config_json", name, json.dumps(cfg))
# --- Command lines: one argument per line (bare boolean flags, --no-, =value, every value type).
for name, argv in {
    "serve": ["serve", "--model", "/m.gguf", "--max-batch-size", "8", "--kv-cache-memory", "2GiB",
              "--dtype", "bfloat16", "--enforce-eager", "--no-enable-prefix-caching", "--port=0"],
    "generate": ["generate", "--prompt-ids", "1,2,3", "--ignore-eos", "false", "--temperature", "0",
                 "--stop", "a", "--json", "--tp-collectives=yes"],
    "bad": ["serve", "--enforce-eager", "maybe", "--no-such-flag", "--max-batch-size", "12abc"],
}.items():
    write("command_line", name, "\n".join(argv))
write("hf_config", "llama3_8b", read(os.path.join(data, "llama3-8b", "config.json")))
for fx in sorted(os.listdir(fixtures)) if os.path.isdir(fixtures) else []:
    cfg = os.path.join(fixtures, fx, "config.json")
    if os.path.exists(cfg):
        write("hf_config", fx, read(cfg))

# --- Chat templates.
tpl_dir = os.path.join(data, "chat_templates")
for f in sorted(os.listdir(tpl_dir)):
    if f.endswith(".jinja"):
        write("chat_template", f[:-len(".jinja")], read(os.path.join(tpl_dir, f)))

# --- GGUF: a tiny llama with a byte-level vocabulary (the layout of gguf_test_writer.h).
def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_file(kvs, tensors, alignment=32):
    out = struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(kvs))
    for key, typ, payload in kvs:
        out += gguf_str(key) + struct.pack("<I", typ) + payload
    offset = 0
    blobs = []
    for name, dims, typ, blob in tensors:
        out += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<q", d) for d in dims)
        out += struct.pack("<IQ", typ, offset)
        blobs.append(blob)
        offset += len(blob)
        offset += (-offset) % alignment
    out += b"\0" * ((-len(out)) % alignment)
    for i, blob in enumerate(blobs):
        out += blob
        if i + 1 < len(blobs):
            out += b"\0" * ((-len(out)) % alignment)
    return out


def kv_u32(k, v): return (k, 4, struct.pack("<I", v))
def kv_f32(k, v): return (k, 6, struct.pack("<f", v))
def kv_bool(k, v): return (k, 7, struct.pack("<B", v))
def kv_string(k, v): return (k, 8, gguf_str(v))
def kv_strings(k, vs): return (k, 9, struct.pack("<IQ", 8, len(vs)) + b"".join(gguf_str(s) for s in vs))
def kv_i32s(k, vs): return (k, 9, struct.pack("<IQ", 5, len(vs)) + b"".join(struct.pack("<i", v) for v in vs))


def byte_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


b2u = byte_to_unicode()
tokens = [b2u[b] for b in range(256)] + ["he", "ll", "hello", "<|im_start|>", "<|im_end|>"]
types = [1] * 259 + [3, 3]
hidden, vocab = 8, len(tokens)
f32 = lambda n: struct.pack("<%df" % n, *[(i % 7) * 0.25 - 0.5 for i in range(n)])
kvs = [kv_string("general.architecture", "llama"), kv_string("general.name", "fuzz-tiny"),
       kv_u32("llama.context_length", 64), kv_u32("llama.embedding_length", hidden),
       kv_u32("llama.feed_forward_length", 16), kv_u32("llama.block_count", 1),
       kv_u32("llama.attention.head_count", 2), kv_u32("llama.attention.head_count_kv", 1),
       kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5), kv_f32("llama.rope.freq_base", 10000.0),
       kv_u32("general.alignment", 32),
       kv_string("tokenizer.ggml.model", "gpt2"), kv_string("tokenizer.ggml.pre", "smollm"),
       kv_strings("tokenizer.ggml.tokens", tokens), kv_i32s("tokenizer.ggml.token_type", types),
       kv_strings("tokenizer.ggml.merges", ["h e", "l l", "he ll"]),
       kv_u32("tokenizer.ggml.bos_token_id", 259), kv_u32("tokenizer.ggml.eos_token_id", 260),
       kv_bool("tokenizer.ggml.add_bos_token", 0),
       kv_string("tokenizer.chat_template", read(os.path.join(tpl_dir, "smollm2.jinja")))]
tensors = [("token_embd.weight", [hidden, vocab], 0, f32(hidden * vocab)),
           ("output_norm.weight", [hidden], 0, f32(hidden)),
           ("blk.0.attn_q.weight", [hidden, hidden], 1, struct.pack("<%de" % (hidden * hidden),
                                                                     *[0.125] * (hidden * hidden)))]
write("gguf", "tiny_llama", gguf_file(kvs, tensors))


# A complete one-layer llama with quantized matrices (hidden 32, ffn 256): the loader reads all of it
# (load_model_weights); variants cut its quantized data short or store ffn_down in a type troupe
# cannot read (IQ2_XXS), both of which must be refused by name.
def blocks(typ, n_blocks, seed):
    """n_blocks GGML blocks of `typ` (3 Q4_1, 12 Q4_K, 16 IQ2_XXS): finite fp16 scales, patterned quants."""
    head = {3: struct.pack("<ee", 0.01, -0.05), 12: struct.pack("<ee", 0.002, 0.001) + bytes(range(20, 32)),
            16: struct.pack("<e", 0.01)}[typ]
    body = {3: 16, 12: 128, 16: 64}[typ]
    return b"".join(head + bytes((seed * 31 + b * 7 + i * 13) % 256 for i in range(body)) for b in range(n_blocks))


qh, qffn = 32, 256
q_kvs = [kv for kv in kvs if not kv[0].startswith("llama.")] + [
    kv_u32("llama.context_length", 64), kv_u32("llama.embedding_length", qh),
    kv_u32("llama.feed_forward_length", qffn), kv_u32("llama.block_count", 1),
    kv_u32("llama.attention.head_count", 2), kv_u32("llama.attention.head_count_kv", 1),
    kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5), kv_f32("llama.rope.freq_base", 10000.0)]


def q_model(down_type=3):
    q41 = lambda name, cols, rows, seed: (name, [cols, rows], 3, blocks(3, rows * cols // 32, seed))
    down_blocks = blocks(down_type, qh * qffn // {3: 32, 16: 256}[down_type], 9)
    return [q41("token_embd.weight", qh, vocab, 1), ("blk.0.attn_norm.weight", [qh], 0, f32(qh)),
            q41("blk.0.attn_q.weight", qh, qh, 2), q41("blk.0.attn_k.weight", qh, 16, 3),
            q41("blk.0.attn_v.weight", qh, 16, 4), q41("blk.0.attn_output.weight", qh, qh, 5),
            ("blk.0.ffn_norm.weight", [qh], 0, f32(qh)), q41("blk.0.ffn_gate.weight", qh, qffn, 6),
            q41("blk.0.ffn_up.weight", qh, qffn, 7), ("output_norm.weight", [qh], 0, f32(qh)),
            ("blk.0.ffn_down.weight", [qffn, qh], down_type, down_blocks)]


full = gguf_file(q_kvs, q_model())
write("gguf", "tiny_llama_q4_1", full)
write("gguf", "tiny_llama_q4_1_truncated", full[:-20 * 3 - 5])  # the last blocks of ffn_down (last) cut
write("gguf", "tiny_llama_iq2_xxs", gguf_file(q_kvs, q_model(down_type=16)))
q4k = gguf_file(kvs[:1], [("blk.0.ffn_up.weight", [256, 2], 12, blocks(12, 2, 11))])
write("gguf", "q4_k_tensor", q4k)
write("gguf", "q4_k_tensor_truncated", q4k[:-100])
write("gguf", "metadata_only", gguf_file(kvs[:3], []))
write("gguf", "empty_v3", struct.pack("<IIQQ", 0x46554747, 3, 0, 0))

# --- safetensors: small files made of the first tensors of each fixture (header rewritten).
def safetensors_seed(path, max_tensors, max_bytes):
    raw = read(path, "rb")
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    picked = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0])
    new_header, blob = {}, b""
    for name, info in picked[:max_tensors]:
        a, b = info["data_offsets"]
        if len(blob) + (b - a) > max_bytes:
            break
        new_header[name] = dict(info, data_offsets=[len(blob), len(blob) + (b - a)])
        blob += raw[8 + n + a:8 + n + b]
    if meta is not None:
        new_header["__metadata__"] = meta
    h = json.dumps(new_header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + blob


for fx in sorted(os.listdir(fixtures)) if os.path.isdir(fixtures) else []:
    st = os.path.join(fixtures, fx, "model.safetensors")
    if os.path.exists(st):
        write("safetensors", fx, safetensors_seed(st, 4, 4096))
empty_header = b"{}      "
write("safetensors", "empty", struct.pack("<Q", len(empty_header)) + empty_header)
# --- json_schema: schemas covering each supported keyword, plus refused ones.
schemas = {
    "object": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
               "age": {"type": "integer", "minimum": 0, "maximum": 150}}, "required": ["name"],
               "additionalProperties": False},
    "nested_ref": {"$defs": {"a": {"type": "object", "properties": {"x": {"type": "number", "minimum": -1}},
                   "required": ["x"]}}, "type": "array", "items": {"anyOf": [{"$ref": "#/$defs/a"},
                   {"type": "null"}]}, "minItems": 1, "maxItems": 3},
    "recursive": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}},
    "formats": {"type": "object", "properties": {"d": {"format": "date"}, "t": {"format": "date-time"},
                "u": {"format": "uuid"}, "e": {"format": "email"}, "p": {"type": "string",
                "pattern": "^[a-z]+-\\d{2}$"}}, "additionalProperties": {"type": "boolean"}},
    "enum_const": {"oneOf": [{"enum": ["a", 1, None, {"k": [True]}]}, {"const": "é"}]},
    "refused": {"type": "object", "patternProperties": {"^x": {}}},
}
for name, sch in schemas.items():
    write("json_schema", name, json.dumps(sch))
write("json_schema", "refused_lenient", "!" + json.dumps(schemas["refused"]))

# --- grammar: first byte picks the front end (0: GBNF, 1: regex, 2: choice), the rest is the text.
write("grammar", "gbnf_json", b"\x00" + b"""root ::= object
object ::= "{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}"
value ::= object | "[" ws ( value ( "," ws value )* )? "]" | string | [0-9]+ ("." [0-9]+)? | "true" | "null"
string ::= "\\"" ( [^"\\\\] | "\\\\" ["\\\\nt] )* "\\""
ws ::= [ \\t\\n]{0,2}  # comment
""")
write("grammar", "gbnf_utf8", b"\x00" + "root ::= (\"é\" | [α-ω] | \\x41 | \"\\u00e9\")+ .?\n".encode())
write("grammar", "regex", b"\x01" + rb"^(?:[A-Z][a-z]{1,5}|\d{3}-\d{4})(\.[^\s]+)*x?$")
write("grammar", "choice", b"\x02" + json.dumps(["yes", "no", "maybe ✓"]).encode())
print("seeds written under", out_root, file=sys.stderr)
