#!/usr/bin/env python3
# Independent reference for the whole default model, computed by llama.cpp through the PyPI package
# llama-cpp-python (CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python): for a few prompts,
# llama.cpp's prompt token ids (special tokens parsed), the top-5 logits at the last prompt position
# and a 24-token greedy continuation, with each step's top-5 -> tests/data/smollm2_llamacpp_greedy.json.
import argparse
import json
import os

import numpy as np

DEFAULT_MODEL = os.path.expanduser("~/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf")
NUM_NEW = 24
PROMPTS = [
    {"name": "capital", "text": "The capital of France is"},
    {"name": "story", "text": "Once upon a time, in a small village,"},
    {"name": "code", "text": "def fibonacci(n):\n"},
    {"name": "chat", "text": "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"},
    {"name": "chat_with_system",
     "text": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
             "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n"},
]


def top5(logits):
    ids = np.argsort(-logits, kind="stable")[:5]
    return {"ids": [int(i) for i in ids], "logits": [float(logits[i]) for i in ids]}


def run(llm, text):
    import llama_cpp
    # add_bos=True means "add the vocabulary's special tokens": SmolLM2 declares add_bos_token false.
    prompt = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
    llm.reset()
    llm.eval(prompt)
    last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    result = {"prompt_ids": [int(t) for t in prompt], "last_prompt_top5": top5(last)}
    greedy, steps = [], []
    logits = last
    for _ in range(NUM_NEW):
        # Plain argmax (temperature 0, top_k 1, no repeat penalty); ties go to the lowest id.
        tok = int(np.argmax(logits))
        greedy.append(tok)
        steps.append(top5(logits))
        llm.eval([tok])
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    eos_index = next((k for k, tok in enumerate(greedy) if llama_cpp.llama_vocab_is_eog(vocab, tok)), -1)
    shown = greedy if eos_index < 0 else greedy[:eos_index]
    result.update({
        "greedy_ids": greedy,
        "first_eog_index": eos_index,
        "greedy_text": llm.detokenize(shown).decode("utf-8", errors="replace"),
        "step_top5": steps,
    })
    return result


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "smollm2_llamacpp_greedy.json"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import llama_cpp
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=512, n_batch=512, n_threads=args.threads,
                          n_threads_batch=args.threads, n_gpu_layers=0, seed=0, logits_all=True, verbose=False)
    out = {
        "model": os.path.basename(args.model),
        "generator": f"llama-cpp-python {llama_cpp.__version__} (llama.cpp CPU backend)",
        "note": "greedy = argmax of llama.cpp's logits, always 24 tokens (also past an end-of-generation token; "
                "first_eog_index marks the first one, -1 if none). llama.cpp's CPU matmuls quantize activations "
                "to Q8 for quantized weights, so its logits differ from a float32 forward pass over dequantized "
                "weights by small amounts: compare logits with a tolerance and check greedy tokens where the "
                "top-2 margin in step_top5 is clear.",
        "num_new_tokens": NUM_NEW,
        "prompts": [],
    }
    for p in PROMPTS:
        r = run(llm, p["text"])
        out["prompts"].append({"name": p["name"], "text": p["text"], **r})
        print(f"{p['name']}: {len(r['prompt_ids'])} prompt tokens -> {r['greedy_text']!r}")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
