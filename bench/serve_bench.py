#!/usr/bin/env python3
"""Serving benchmark for any OpenAI-compatible server (troupe, vLLM, llama.cpp's server).

The metrics are those of vLLM's `vllm bench serve`: request throughput, output and total token
throughput, mean/median/p99 (and any --metric-percentiles) of TTFT, TPOT, ITL and E2E latency, and
goodput under SLOs (--goodput ttft:MS tpot:MS e2el:MS).

    python bench/serve_bench.py --base-url http://127.0.0.1:8000 --num-prompts 64 \
        --max-concurrency 8 --random-input-len 128 --random-output-len 64
    python bench/serve_bench.py --dataset sharegpt --request-rate 2 --seed 1 --json out.json

Requests are streaming completions (POST /v1/completions, stream, ignore_eos, max_tokens = the
asked output length) so output lengths are exact on servers that honour ignore_eos. Prompts are
token-id lists by default (exact input lengths; troupe, vLLM and llama.cpp accept them) or text
made of repeated words (--prompt-format text) for servers that only take strings.

Two independent cross-checks of the same run:
  * --cross-check-metrics (default on when /metrics answers): the server's own Prometheus counters
    (PREFIX:generation_tokens_total, prompt_tokens_total, e2e/TTFT histogram sums; PREFIX is
    troupe or vllm, found automatically) are read before and after, and their deltas are compared
    with what the client measured.
  * --openai-subset K: K of the requests are sent through the official `openai` client instead
    (its own HTTP stack and SSE parser); their token counts and latencies are reported next to
    the others'.

Only the standard library and `requests` are needed (threads, one keep-alive session per thread).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import requests

# -- datasets ------------------------------------------------------------------------------------


@dataclass
class BenchRequest:
    prompt: object          # list[int] (token ids) or str
    prompt_len: int         # tokens asked for (exact for ids; approximate for text)
    output_len: int


def _random_lengths(rng, n, input_len, output_len, range_ratio):
    """vLLM's random dataset: lengths uniform in [len*(1-r), len*(1+r)] (at least 1)."""
    out = []
    for _ in range(n):
        lo_i, hi_i = max(1, int(input_len * (1 - range_ratio))), max(1, int(input_len * (1 + range_ratio)))
        lo_o, hi_o = max(1, int(output_len * (1 - range_ratio))), max(1, int(output_len * (1 + range_ratio)))
        out.append((rng.randint(lo_i, hi_i), rng.randint(lo_o, hi_o)))
    return out


# A ShareGPT-like length distribution without downloading ShareGPT: lognormal fits of the prompt and
# completion lengths of ShareGPT_V3 conversations (median ~ 120 / ~ 190 tokens, long right tails),
# clipped as vLLM's loader does (4 <= prompt, 4 <= output, prompt + output <= max_model_len).
SHAREGPT_PROMPT_LOGNORMAL = (4.8, 1.2)   # (mu, sigma) of ln(tokens)
SHAREGPT_OUTPUT_LOGNORMAL = (5.25, 0.95)


def _sharegpt_lengths(rng, n, max_prompt, max_output, max_total):
    out = []
    while len(out) < n:
        p = int(rng.lognormvariate(*SHAREGPT_PROMPT_LOGNORMAL))
        o = int(rng.lognormvariate(*SHAREGPT_OUTPUT_LOGNORMAL))
        p, o = min(max(p, 4), max_prompt), min(max(o, 4), max_output)
        if p + o > max_total:
            continue  # vLLM drops pairs that do not fit; drawing again keeps n and the seed's order
        out.append((p, o))
    return out


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
         "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]


def make_requests(args) -> list[BenchRequest]:
    rng = random.Random(args.seed)
    if args.dataset == "random":
        lengths = _random_lengths(rng, args.num_prompts, args.random_input_len, args.random_output_len,
                                  args.random_range_ratio)
    else:
        lengths = _sharegpt_lengths(rng, args.num_prompts, args.sharegpt_max_input_len,
                                    args.sharegpt_max_output_len, args.max_model_len)
    reqs = []
    for i, (p, o) in enumerate(lengths):
        if args.prompt_format == "ids":
            # a distinct first token per request so prefix caching cannot turn prompts into hits
            prompt = [args.token_id_low + (i % (args.token_id_high - args.token_id_low))] + \
                     [rng.randrange(args.token_id_low, args.token_id_high) for _ in range(p - 1)]
        else:
            # one word ~ one token for common tokenizers (a space + a short English word)
            prompt = f"{i} " + " ".join(rng.choice(WORDS) for _ in range(max(p - 1, 1)))
        reqs.append(BenchRequest(prompt, p, o))
    return reqs


# -- one request ---------------------------------------------------------------------------------


@dataclass
class RequestResult:
    ok: bool = False
    error: str = ""
    client: str = "requests"
    prompt_len: int = 0          # from usage when the server sends it, else the asked length
    output_len: int = 0          # from usage when the server sends it, else the number of chunks
    asked_output_len: int = 0
    ttft: float = 0.0            # seconds from sending to the first token
    latency: float = 0.0         # seconds from sending to the last byte
    itl: list = field(default_factory=list)   # gaps between token-carrying chunks
    start: float = 0.0


_local = threading.local()


def _session():
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
    return s


def _body(args, req: BenchRequest):
    body = {"model": args.model, "prompt": req.prompt, "max_tokens": req.output_len, "stream": True,
            "stream_options": {"include_usage": True}, "temperature": args.temperature}
    if not args.no_ignore_eos:
        body["ignore_eos"] = True
    return body


def send_with_requests(args, req: BenchRequest) -> RequestResult:
    res = RequestResult(asked_output_len=req.output_len, prompt_len=req.prompt_len)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    res.start = st = time.perf_counter()
    last = None
    chunks = 0
    usage = None
    try:
        with _session().post(args.base_url + args.endpoint, json=_body(args, req), stream=True,
                             headers=headers, timeout=args.request_timeout) as r:
            if r.status_code != 200:
                res.error = f"HTTP {r.status_code}: {r.text[:200]}"
                return res
            for line in r.iter_lines():
                if not line or not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                msg = json.loads(data)
                if msg.get("usage"):
                    usage = msg["usage"]
                if "error" in msg:
                    res.error = str(msg["error"])[:200]
                    return res
                if not msg.get("choices"):
                    continue
                now = time.perf_counter()
                if last is None:
                    res.ttft = now - st
                else:
                    res.itl.append(now - last)
                last = now
                chunks += 1
        res.latency = time.perf_counter() - st
    except (requests.RequestException, ValueError) as e:
        res.error = f"{type(e).__name__}: {e}"[:200]
        return res
    res.output_len = usage.get("completion_tokens", chunks) if usage else chunks
    if usage and "prompt_tokens" in usage:
        res.prompt_len = usage["prompt_tokens"]
    res.ok = chunks > 0
    if not res.ok:
        res.error = "no tokens streamed"
    return res


def send_with_openai(args, req: BenchRequest) -> RequestResult:
    """The same request through the official openai client (an independent HTTP stack and SSE parser)."""
    import openai  # imported here: only --openai-subset needs it

    client = getattr(_local, "openai", None)
    if client is None:
        client = _local.openai = openai.OpenAI(base_url=args.base_url + "/v1", api_key=args.api_key or "none",
                                               timeout=args.request_timeout, max_retries=0)
    res = RequestResult(client="openai", asked_output_len=req.output_len, prompt_len=req.prompt_len)
    extra = {} if args.no_ignore_eos else {"ignore_eos": True}
    res.start = st = time.perf_counter()
    last = None
    chunks = 0
    usage = None
    try:
        stream = client.completions.create(model=args.model, prompt=req.prompt, max_tokens=req.output_len,
                                           temperature=args.temperature, stream=True,
                                           stream_options={"include_usage": True}, extra_body=extra)
        for ev in stream:
            if ev.usage:
                usage = ev.usage
            if not ev.choices:
                continue
            now = time.perf_counter()
            if last is None:
                res.ttft = now - st
            else:
                res.itl.append(now - last)
            last = now
            chunks += 1
        res.latency = time.perf_counter() - st
    except Exception as e:  # noqa: BLE001 - any client error is a failed request
        res.error = f"{type(e).__name__}: {e}"[:200]
        return res
    res.output_len = usage.completion_tokens if usage else chunks
    if usage:
        res.prompt_len = usage.prompt_tokens
    res.ok = chunks > 0
    return res


# -- server metrics (the second, independent measurement) ---------------------------------------

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape_metrics(base_url, timeout=10):
    """{name: value}, summing samples of the same name without an `le` label; None if unavailable."""
    try:
        r = requests.get(base_url + "/metrics", timeout=timeout)
        if r.status_code != 200:
            return None
    except requests.RequestException:
        return None
    out = {}
    for line in r.text.splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m or (m.group(2) and "le=" in m.group(2)):
            continue
        try:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
        except ValueError:
            pass
    return out


def metrics_prefix(sample):
    for p in ("troupe", "vllm", "llamacpp"):
        if sample and any(k.startswith(p + ":") for k in sample):
            return p
    return None


def metrics_delta(before, after):
    if before is None or after is None:
        return None
    p = metrics_prefix(after)
    if p is None:
        return None

    def d(name):
        k = f"{p}:{name}"
        return after.get(k, 0.0) - before.get(k, 0.0) if k in after else None

    return {"prefix": p,
            "generation_tokens": d("generation_tokens_total"),
            "prompt_tokens": d("prompt_tokens_total"),
            "prefix_cache_hits": d("prefix_cache_hits_total"),
            "preemptions": d("num_preemptions_total"),
            "e2e_latency_sum_s": d("e2e_request_latency_seconds_sum"),
            "e2e_latency_count": d("e2e_request_latency_seconds_count"),
            "ttft_sum_s": d("time_to_first_token_seconds_sum"),
            "ttft_count": d("time_to_first_token_seconds_count")}


# -- the run -------------------------------------------------------------------------------------


def run_benchmark(args, reqs):
    n = len(reqs)
    rng = random.Random(args.seed + 1)
    # the openai-client subset: seeded, spread over the run (not always the same slot of a wave)
    openai_ids = set(random.Random(args.seed + 2).sample(range(n), min(args.openai_subset, n)))
    workers = args.max_concurrency or min(n, args.max_threads)
    results = [None] * n

    def task(i):
        fn = send_with_openai if i in openai_ids else send_with_requests
        results[i] = fn(args, reqs[i])

    before = scrape_metrics(args.base_url) if args.cross_check_metrics else None
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = []
        next_at = t0
        for i in range(n):
            if args.request_rate != math.inf:
                # Poisson arrivals: exponential gaps with mean 1/rate, from a seeded generator
                next_at += rng.expovariate(args.request_rate)
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            futures.append(pool.submit(task, i))
        for f in futures:
            f.result()
    duration = time.perf_counter() - t0
    after = None
    if args.cross_check_metrics:
        # the server observes a request's end after its last byte: let the counters settle briefly
        time.sleep(0.3)
        after = scrape_metrics(args.base_url)
    return results, duration, metrics_delta(before, after)


def _pct(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0   # linear interpolation, as numpy.percentile
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _stats(values_s, percentiles):
    ms = [v * 1000.0 for v in values_s]
    out = {"mean": statistics.fmean(ms) if ms else 0.0, "median": _pct(ms, 50),
           "std": statistics.pstdev(ms) if len(ms) > 1 else 0.0}
    for p in percentiles:
        out[f"p{p:g}"] = _pct(ms, p)
    return out


def parse_goodput(items):
    slos = {}
    for it in items or []:
        k, _, v = it.partition(":")
        if k not in ("ttft", "tpot", "e2el") or not v:
            raise SystemExit(f"--goodput takes ttft:MS tpot:MS e2el:MS, got {it!r}")
        slos[k] = float(v)
    return slos


def summarize(args, reqs, results, duration, delta):
    ok = [r for r in results if r.ok]
    tpots = [(r.latency - r.ttft) / (r.output_len - 1) for r in ok if r.output_len > 1]
    itls = [g for r in ok for g in r.itl]
    total_in = sum(r.prompt_len for r in ok)
    total_out = sum(r.output_len for r in ok)
    pcts = [float(x) for x in args.metric_percentiles.split(",")] if args.metric_percentiles else [99.0]
    slos = parse_goodput(args.goodput)
    good = 0
    for r in ok:
        tpot = (r.latency - r.ttft) / (r.output_len - 1) if r.output_len > 1 else 0.0
        if ("ttft" in slos and r.ttft * 1000 > slos["ttft"]) or ("tpot" in slos and tpot * 1000 > slos["tpot"]) \
                or ("e2el" in slos and r.latency * 1000 > slos["e2el"]):
            continue
        good += 1
    s = {
        "base_url": args.base_url, "model": args.model, "dataset": args.dataset,
        "prompt_format": args.prompt_format, "seed": args.seed,
        "request_rate": "inf" if args.request_rate == math.inf else args.request_rate,
        "max_concurrency": args.max_concurrency, "num_prompts": len(reqs),
        "completed": len(ok), "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if not r.ok})[:5],
        "exact_output_lengths": sum(1 for r in ok if r.output_len == r.asked_output_len),
        "duration_s": duration,
        "total_input_tokens": total_in, "total_output_tokens": total_out,
        "request_throughput": len(ok) / duration if duration else 0.0,
        "output_throughput": total_out / duration if duration else 0.0,
        "total_token_throughput": (total_in + total_out) / duration if duration else 0.0,
        "ttft_ms": _stats([r.ttft for r in ok], pcts),
        "tpot_ms": _stats(tpots, pcts),
        "itl_ms": _stats(itls, pcts),
        "e2el_ms": _stats([r.latency for r in ok], pcts),
    }
    if slos:
        s["goodput_slos_ms"] = slos
        s["goodput_requests"] = good
        s["request_goodput"] = good / duration if duration else 0.0
    if delta:
        cc = {"server": delta}
        cc["client_output_tokens"] = total_out
        cc["client_input_tokens"] = total_in
        cc["client_e2e_latency_sum_s"] = sum(r.latency for r in ok)
        cc["client_ttft_sum_s"] = sum(r.ttft for r in ok)
        if delta["generation_tokens"] is not None:
            cc["generation_tokens_match"] = int(round(delta["generation_tokens"])) == total_out
        if delta["prompt_tokens"] is not None:
            # troupe counts every admitted prompt token (prefix-cache hits included)
            cc["prompt_tokens_match"] = int(round(delta["prompt_tokens"])) == total_in
        if delta["e2e_latency_sum_s"]:
            cc["e2e_server_over_client"] = delta["e2e_latency_sum_s"] / cc["client_e2e_latency_sum_s"]
        if delta["ttft_sum_s"] and cc["client_ttft_sum_s"]:
            cc["ttft_server_over_client"] = delta["ttft_sum_s"] / cc["client_ttft_sum_s"]
        s["cross_check"] = cc
    if args.openai_subset:
        sub = [r for r in ok if r.client == "openai"]
        rest = [r for r in ok if r.client == "requests"]
        s["openai_subset"] = {
            "requests": len(sub),
            "exact_output_lengths": sum(1 for r in sub if r.output_len == r.asked_output_len),
            "mean_ttft_ms": statistics.fmean([r.ttft * 1000 for r in sub]) if sub else None,
            "mean_e2el_ms": statistics.fmean([r.latency * 1000 for r in sub]) if sub else None,
            "others_mean_ttft_ms": statistics.fmean([r.ttft * 1000 for r in rest]) if rest else None,
            "others_mean_e2el_ms": statistics.fmean([r.latency * 1000 for r in rest]) if rest else None,
        }
        if sub and rest:
            # agreement within noise: every openai-timed request lies inside the others' range,
            # widened by 20% and by 15 ms (the openai client's own per-request overhead, which
            # dominates when a GPU answers in tens of milliseconds)
            lo_t, hi_t = min(r.ttft for r in rest), max(r.ttft for r in rest)
            lo_e, hi_e = min(r.latency for r in rest), max(r.latency for r in rest)
            slack = 0.015
            s["openai_subset"]["within_others_range"] = all(
                0.8 * lo_t - slack <= r.ttft <= 1.2 * hi_t + slack and
                0.8 * lo_e - slack <= r.latency <= 1.2 * hi_e + slack for r in sub)
    return s


def print_table(s, out=sys.stdout):
    w = 50

    def line(label, value, fmt="{:.2f}"):
        v = fmt.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        out.write(f"{label:<{w - 12}}{v:>12}\n")

    out.write("{s:{c}^{n}}\n".format(s=" Serving Benchmark Result ", n=w, c="="))
    line("Successful requests:", s["completed"], "{}")
    line("Failed requests:", s["failed"], "{}")
    line("Maximum request concurrency:", s["max_concurrency"] or "none", "{}")
    line("Request rate (req/s):", s["request_rate"], "{}")
    line("Benchmark duration (s):", s["duration_s"])
    line("Total input tokens:", s["total_input_tokens"], "{}")
    line("Total generated tokens:", s["total_output_tokens"], "{}")
    line("Request throughput (req/s):", s["request_throughput"])
    if "request_goodput" in s:
        line("Request goodput (req/s):", s["request_goodput"])
    line("Output token throughput (tok/s):", s["output_throughput"])
    line("Total token throughput (tok/s):", s["total_token_throughput"])
    for key, title, name in (("ttft_ms", "Time to First Token", "TTFT"),
                             ("tpot_ms", "Time per Output Token (excl. 1st token)", "TPOT"),
                             ("itl_ms", "Inter-token Latency", "ITL"),
                             ("e2el_ms", "End-to-end Latency", "E2EL")):
        out.write("{s:{c}^{n}}\n".format(s=" " + title + " ", n=w, c="-"))
        st = s[key]
        line(f"Mean {name} (ms):", st["mean"])
        line(f"Median {name} (ms):", st["median"])
        for k, v in st.items():
            if k.startswith("p"):
                line(f"P{k[1:]} {name} (ms):", v)
    if "cross_check" in s:
        cc = s["cross_check"]
        sv = cc["server"]
        out.write("{s:{c}^{n}}\n".format(s=f" Cross-check: server /metrics ({sv['prefix']}:) ", n=w, c="-"))
        line("Server generation tokens (delta):", sv["generation_tokens"] or 0, "{:.0f}")
        line("Client output tokens:", cc["client_output_tokens"], "{}")
        if sv["prompt_tokens"] is not None:
            line("Server prompt tokens (delta):", sv["prompt_tokens"], "{:.0f}")
            line("Client input tokens:", cc["client_input_tokens"], "{}")
        if sv["prefix_cache_hits"] is not None:
            line("Server prefix-cache hit tokens:", sv["prefix_cache_hits"], "{:.0f}")
        if sv["e2e_latency_count"] is not None:
            line("Server E2E count (delta):", sv["e2e_latency_count"], "{:.0f}")
        if "e2e_server_over_client" in cc:
            line("E2E latency sum server/client:", cc["e2e_server_over_client"], "{:.3f}")
        if "ttft_server_over_client" in cc:
            line("TTFT sum server/client:", cc["ttft_server_over_client"], "{:.3f}")
    if "openai_subset" in s:
        o = s["openai_subset"]
        out.write("{s:{c}^{n}}\n".format(s=" Cross-check: openai client subset ", n=w, c="-"))
        line("Requests via openai client:", o["requests"], "{}")
        line("  with exact output length:", o["exact_output_lengths"], "{}")
        if o["mean_ttft_ms"] is not None:
            line("  mean TTFT (ms):", o["mean_ttft_ms"])
            line("  mean E2EL (ms):", o["mean_e2el_ms"])
        if o["others_mean_ttft_ms"] is not None:
            line("Others: mean TTFT (ms):", o["others_mean_ttft_ms"])
            line("Others: mean E2EL (ms):", o["others_mean_e2el_ms"])
        if "within_others_range" in o:
            line("Inside the others' range (+-20%, +-15 ms):", "yes" if o["within_others_range"] else "NO", "{}")
    out.write("=" * w + "\n")


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--endpoint", default="/v1/completions")
    ap.add_argument("--model", default=None, help="model name; default: the first of GET /v1/models")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--dataset", choices=["random", "sharegpt"], default="random",
                    help="sharegpt: a seeded lognormal length distribution fitted to ShareGPT (no download)")
    ap.add_argument("--num-prompts", type=int, default=100)
    ap.add_argument("--random-input-len", type=int, default=1024)
    ap.add_argument("--random-output-len", type=int, default=128)
    ap.add_argument("--random-range-ratio", type=float, default=0.0)
    ap.add_argument("--sharegpt-max-input-len", type=int, default=1024)
    ap.add_argument("--sharegpt-max-output-len", type=int, default=1024)
    ap.add_argument("--max-model-len", type=int, default=2048, help="sharegpt: prompt + output at most this")
    ap.add_argument("--prompt-format", choices=["ids", "text"], default="ids",
                    help="ids: token-id lists (exact lengths); text: repeated words (~1 token each)")
    ap.add_argument("--token-id-low", type=int, default=1000)
    ap.add_argument("--token-id-high", type=int, default=20000)
    ap.add_argument("--request-rate", type=float, default=math.inf,
                    help="Poisson arrivals at this mean rate (req/s); inf sends everything at once")
    ap.add_argument("--max-concurrency", type=int, default=None, help="at most this many requests in flight")
    ap.add_argument("--max-threads", type=int, default=256, help="threads when --max-concurrency is not given")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--no-ignore-eos", action="store_true", help="do not send ignore_eos")
    ap.add_argument("--request-timeout", type=float, default=600.0)
    ap.add_argument("--goodput", nargs="+", metavar="KEY:MS", help="SLOs, e.g. ttft:500 tpot:50 e2el:5000")
    ap.add_argument("--metric-percentiles", default="99", help="comma-separated, e.g. 50,90,99")
    ap.add_argument("--cross-check-metrics", action=argparse.BooleanOptionalAction, default=True,
                    help="compare with the server's /metrics counters (when it has them)")
    ap.add_argument("--openai-subset", type=int, default=0,
                    help="send this many of the requests through the openai client as a second client")
    ap.add_argument("--warmup", type=int, default=1, help="requests sent (and not counted) before the run")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    ap.add_argument("--save-requests", action="store_true", help="include per-request results in --json")
    ap.add_argument("--quiet", action="store_true", help="no table")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.base_url = args.base_url.rstrip("/")
    if args.max_concurrency is not None and args.max_concurrency < 1:
        raise SystemExit("--max-concurrency must be >= 1")
    if args.request_rate <= 0:
        raise SystemExit("--request-rate must be > 0")
    parse_goodput(args.goodput)
    if args.model is None:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        r = requests.get(args.base_url + "/v1/models", headers=headers, timeout=30)
        r.raise_for_status()
        args.model = r.json()["data"][0]["id"]
    reqs = make_requests(args)
    # the warm-up prompt is the first one reversed: no prefix-cache hit for the measured requests
    warm = reqs[0].prompt[::-1] if isinstance(reqs[0].prompt, list) else "warm up " + reqs[0].prompt
    for i in range(args.warmup):
        w = send_with_requests(args, BenchRequest(warm, reqs[0].prompt_len, min(4, reqs[0].output_len)))
        if not w.ok:
            raise SystemExit(f"warm-up request failed: {w.error}")
    results, duration, delta = run_benchmark(args, reqs)
    s = summarize(args, reqs, results, duration, delta)
    if not args.quiet:
        print_table(s)
    if args.json:
        if args.save_requests:
            s["requests"] = [{k: v for k, v in asdict(r).items() if k != "start"} for r in results]
        with open(args.json, "w") as f:
            json.dump(s, f, indent=2)
    return s


if __name__ == "__main__":
    out = main()
    sys.exit(0 if out["failed"] == 0 else 1)
