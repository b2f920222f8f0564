#!/usr/bin/env python3
# Side-by-side CPU benchmark: llama.cpp (llama-bench, llama-batched-bench) and troupe's
# bench_cpu_forward on the same GGUF with the same thread count, in one run; prints each pair and
# the ratio troupe / llama.cpp. llama.cpp is built once from the llama-cpp-python source package
# (pip download --no-binary, its vendored llama.cpp, -DGGML_NATIVE=ON) and cached outside the
# checkout in $LLAMA_CPP_DIR (default ~/.cache/troupe/llama.cpp). The same rows follow for an F16
# conversion of the model (bench/gguf_to_f16.py with the ref venv's gguf package, written once next
# to the model as NAME.F16.gguf; --no-f16 skips it).
#
#   python3 bench/llama_cpp_compare.py [--model M.gguf] [--threads 2] [--troupe build/bench/bench_cpu_forward]
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tarfile

HOME = os.path.expanduser("~")
DEFAULT_MODEL = os.path.join(HOME, ".cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf")
LLAMA_DIR = os.environ.get("LLAMA_CPP_DIR", os.path.join(HOME, ".cache/troupe/llama.cpp"))
PIP = os.environ.get("TROUPE_PIP", os.path.join(HOME, ".cache/troupe/venv/bin/pip"))
REF_PYTHON = os.environ.get("TROUPE_REF_PYTHON", os.path.join(HOME, ".cache/troupe/ref-venv/bin/python"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build_llama_cpp():
    """Returns the folder holding llama-bench and llama-batched-bench, building them if needed."""
    bin_dir = os.path.join(LLAMA_DIR, "build", "bin")
    tools = [os.path.join(bin_dir, t) for t in ("llama-bench", "llama-batched-bench")]
    if all(os.access(t, os.X_OK) for t in tools):
        return bin_dir
    src_root = os.path.join(LLAMA_DIR, "src")
    os.makedirs(src_root, exist_ok=True)
    if not glob.glob(os.path.join(src_root, "llama_cpp_python-*.tar.gz")):
        log("downloading the llama-cpp-python source package ...")
        subprocess.run([PIP, "download", "--no-binary", ":all:", "--no-deps", "llama-cpp-python", "-d", src_root],
                       check=True)
    tarball = sorted(glob.glob(os.path.join(src_root, "llama_cpp_python-*.tar.gz")))[-1]
    unpacked = tarball[: -len(".tar.gz")]
    if not os.path.isdir(unpacked):
        with tarfile.open(tarball) as t:
            t.extractall(src_root)
    src = os.path.join(unpacked, "vendor", "llama.cpp")
    build = os.path.join(LLAMA_DIR, "build")
    log("building llama.cpp (llama-bench, llama-batched-bench) in " + build + "; this takes minutes ...")
    subprocess.run(["cmake", "-S", src, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
                    "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_TOOLS=ON"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["nice", "cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target", "llama-bench",
                    "llama-batched-bench"], check=True, stdout=subprocess.DEVNULL)
    return bin_dir


def run(cmd):
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def llama_bench(bin_dir, model, threads, reps):
    """{'pp128': tok/s, 'pp512': ..., 'tg64': ...} from llama-bench."""
    out = run([os.path.join(bin_dir, "llama-bench"), "-m", model, "-t", str(threads), "-p", "128,512", "-n", "64",
               "-r", str(reps), "-o", "json"])
    res = {}
    for row in json.loads(out):
        key = f"pp{row['n_prompt']}" if row["n_gen"] == 0 else f"tg{row['n_gen']}"
        res[key] = row["avg_ts"]
    return res


def llama_batched(bin_dir, model, threads, prompt, batches):
    """{batch: decode tok/s (S_TG)} from llama-batched-bench after a `prompt`-token prefill each."""
    ctx = max(batches) * (prompt + 32) + 64
    out = run([os.path.join(bin_dir, "llama-batched-bench"), "-m", model, "-t", str(threads), "-tb", str(threads),
               "-c", str(ctx), "-npp", str(prompt), "-ntg", "32", "-npl", ",".join(map(str, batches))])
    res = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and all(re.fullmatch(r"[0-9.]+", c) for c in cells[:8]):
            res[int(cells[2])] = float(cells[7])
    return res


def troupe_bench(binary, model, threads, prompt, batches, runs):
    """{batch: (prefill tok/s, decode tok/s)} from bench_cpu_forward."""
    out = run([binary, model, "--threads", str(threads), "--prompt", str(prompt), "--runs", str(runs), "--no-blas-check", "--batches",
               ",".join(map(str, batches))])
    res = {}
    for m in re.finditer(r"batch\s+(\d+): prefill\s+([0-9.]+) tok/s.*decode\s+([0-9.]+) tok/s", out):
        res[int(m.group(1))] = (float(m.group(2)), float(m.group(3)))
    return res


def f16_conversion(model):
    """The model converted to F16 (cached beside it), made on first use."""
    out = re.sub(r"(\.[A-Za-z0-9_]+)?\.gguf$", "", model) + ".F16.gguf"
    if not os.path.exists(out):
        log("converting " + model + " to F16 -> " + out)
        subprocess.run([REF_PYTHON, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf_to_f16.py"), model,
                        out], check=True)
    return out


def compare(bin_dir, troupe, model, t, runs):
    """The table's rows for one GGUF: (name, llama.cpp tok/s, troupe tok/s)."""
    # Interleaved so that load from other processes hits both sides alike.
    lb = llama_bench(bin_dir, model, t, runs)
    tb = troupe_bench(troupe, model, t, 128, [1, 8, 32], runs)
    lbb = llama_batched(bin_dir, model, t, 128, [1, 8, 32])
    tb512 = troupe_bench(troupe, model, t, 512, [1], runs)
    return [
        ("decode, batch 1 (llama-bench tg64)", lb.get("tg64"), tb.get(1, (None, None))[1]),
        ("decode, batch 1 (batched-bench, 128 ctx)", lbb.get(1), tb.get(1, (None, None))[1]),
        ("decode, batch 8 (batched-bench)", lbb.get(8), tb.get(8, (None, None))[1]),
        ("decode, batch 32 (batched-bench)", lbb.get(32), tb.get(32, (None, None))[1]),
        ("prefill 128 tokens (llama-bench pp128)", lb.get("pp128"), tb.get(1, (None, None))[0]),
        ("prefill 512 tokens (llama-bench pp512)", lb.get("pp512"), tb512.get(1, (None, None))[0]),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--troupe", default="build/bench/bench_cpu_forward")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-f16", action="store_true", help="skip the F16 conversion's rows")
    args = ap.parse_args()
    bin_dir = build_llama_cpp()
    t = args.threads
    models = [args.model] + ([] if args.no_f16 else [f16_conversion(args.model)])
    tables = [(m, compare(bin_dir, args.troupe, m, t, args.runs)) for m in models]
    print(f"{t} threads, tok/s")
    print("| | llama.cpp | troupe | ratio |")
    print("|---|---|---|---|")
    for model, rows in tables:
        tag = "F16" if model.endswith(".F16.gguf") else os.path.basename(model)
        for name, l, r in rows:
            ratio = f"{r / l:.2f}x" if l and r else "-"
            print(f"| {tag}: {name} | {l:.1f} | {r:.1f} | {ratio} |" if l and r else f"| {tag}: {name} | {l} | {r} | - |")


if __name__ == "__main__":
    main()
