"""Cluster mode end to end (docs/cluster.md): real worker and router processes on 127.0.0.1 with
distinct ports, the tiny-llama fixture (token-id prompts: it has no tokenizer). Links are mutual
TLS with credentials made for the run (cluster_nodes.py); one test runs plaintext with
--cluster-insecure on loopback. Membership itself is tested in test_cluster_tls.py.

What is asserted: requests spread over the workers; a worker killed with SIGKILL mid-stream fails
exactly its own streams with a clear in-band error while the others finish; the router stays
healthy and sends the dead worker nothing; the worker restarted on the same port gets traffic
again; every live worker ends with 0 leased KV blocks and 0 running requests; a worker serving
another model is refused with a clear message; full workers give 429 and no worker 503; and the
same with workers inside network namespaces when run as root.
"""
import json
import os
import re
import subprocess
import time

import pytest
import requests

from cluster_nodes import (BINARY, HERE, OTHER, PROMPT, SMALL, TINY, Stream, assert_worker_idle, certs,  # noqa: F401
                           cluster_metrics, complete, nodes, router_args, tls, wait_until, wait_up, worker_args)

pytestmark = pytest.mark.skipif(not os.path.isdir(TINY), reason=f"fixture {TINY} is missing")


# --- the main scenario: spread, SIGKILL mid-stream, rejoin, no leaks ------------------------------

@pytest.fixture(scope="module")
def cluster(nodes):
    slow = ["--fault-inject", "slow_ms=25"]  # ~25 ms per step, so streams are still running when killed
    w1 = nodes(worker_args(0, *slow))
    w2 = nodes(worker_args(0, *slow))
    addrs = [f"127.0.0.1:{w1.cluster_port}", f"127.0.0.1:{w2.cluster_port}"]
    router = nodes(router_args(addrs))
    wait_up(router, addrs)
    return {"workers": [w1, w2], "addrs": addrs, "router": router, "slow": slow}


def test_requests_spread_across_workers(cluster):
    router, addrs = cluster["router"], cluster["addrs"]
    before = cluster_metrics(router.url)
    for _ in range(6):
        r = complete(router.url)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 4
    after = cluster_metrics(router.url)
    routed = [after[("troupe:cluster_worker_requests_routed_total", a)] -
              before.get(("troupe:cluster_worker_requests_routed_total", a), 0) for a in addrs]
    assert sum(routed) == 6 and min(routed) >= 2, f"idle workers take turns: {routed}"
    for w in cluster["workers"]:  # each worker really computed them
        text = requests.get(w.url + "/metrics", timeout=10).text
        gen = float(re.search(r"^troupe:generation_tokens_total\{[^}]*\} (\S+)$", text, re.M).group(1))
        assert gen >= 12, f"worker {w.url} generated {gen} tokens"
    assert requests.get(router.url + "/health", timeout=10).status_code == 200
    for n in cluster["workers"] + [router]:  # the default: mutual TLS with the cluster certificate
        assert "cluster links: mutual TLS (certificate /CN=node" in n.log(), n.log()[-2000:]


def test_a_shared_prompt_prefix_sticks_to_one_worker(cluster):
    """Prefix-aware routing: a prompt of 3 full blocks (16 tokens each) sent again goes to the worker
    that has it cached (it is idle, so within the slack), and that worker's prefix cache hits."""
    router, addrs = cluster["router"], cluster["addrs"]
    long_prompt = [(7 * i) % 500 + 3 for i in range(50)]
    key = "troupe:cluster_worker_requests_routed_total"
    before = cluster_metrics(router.url)
    for _ in range(4):
        r = complete(router.url, prompt=long_prompt)
        assert r.status_code == 200, r.text
    after = cluster_metrics(router.url)
    routed = sorted(after[(key, a)] - before[(key, a)] for a in addrs)
    assert routed == [0, 4], f"the same prefix went to one worker: {routed}"
    hits = 0.0
    for w in cluster["workers"]:
        text = requests.get(w.url + "/metrics", timeout=10).text
        hits += float(re.search(r"^troupe:prefix_cache_hits_total\{[^}]*\} (\S+)$", text, re.M).group(1))
    assert hits >= 3 * 48, f"the repeats hit the worker's prefix cache: {hits} tokens"


def test_websocket_and_cancel_through_the_router(cluster):
    """The WebSocket API runs unchanged over the router; a cancel reaches the remote scheduler."""
    import asyncio
    from websockets.asyncio.client import connect

    async def run():
        url = cluster["router"].url.replace("http://", "ws://") + "/v1/ws"
        async with connect(url, open_timeout=10, close_timeout=5) as ws:
            await ws.send(json.dumps({"type": "generate", "id": "long", "prompt": PROMPT, "max_tokens": 400,
                                      "ignore_eos": True}))
            await ws.send(json.dumps({"type": "generate", "id": "short", "prompt": PROMPT, "max_tokens": 6,
                                      "ignore_eos": True}))
            done, n_long, cancelled = {}, 0, False
            deadline = time.monotonic() + 60
            while len(done) < 2:
                assert time.monotonic() < deadline, f"missing done frames: {done}"
                f = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if f["type"] == "token" and f["id"] == "long":
                    n_long += 1
                    if n_long >= 3 and not cancelled:
                        await ws.send(json.dumps({"type": "cancel", "id": "long"}))
                        cancelled = True
                elif f["type"] == "done":
                    done[f["id"]] = f
                elif f["type"] != "token":
                    raise AssertionError(f"unexpected frame: {f}")
            return done

    done = asyncio.run(run())
    assert done["short"]["finish_reason"] == "length"
    assert done["short"]["usage"]["completion_tokens"] == 6
    assert done["long"]["finish_reason"] == "abort"
    assert 3 <= done["long"]["usage"]["completion_tokens"] < 400
    for w in cluster["workers"]:
        assert_worker_idle(w)


def test_sigkill_mid_stream_fails_only_that_workers_requests(cluster):
    router, addrs = cluster["router"], cluster["addrs"]
    victim, survivor = cluster["workers"]
    wait_until(lambda: all(cluster_metrics(router.url)[("troupe:cluster_worker_requests_running", a)] == 0
                           for a in addrs), 15, "both workers idle")
    streams = [Stream(router.url, max_tokens=120) for _ in range(6)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(30), "a stream did not start"
    m = cluster_metrics(router.url)
    on_victim = int(m[("troupe:cluster_worker_requests_in_flight", addrs[0])])
    assert on_victim == 3 and m[("troupe:cluster_worker_requests_in_flight", addrs[1])] == 3, m
    lost_before = m[("troupe:cluster_worker_requests_lost_total", addrs[0])]
    killed_at = time.monotonic()
    victim.kill()
    for s in streams:
        s.join(60)
        assert not s.is_alive(), "a stream never ended"
    failed = [s for s in streams if s.error]
    done = [s for s in streams if not s.error]
    assert len(failed) == 3, [(s.finish, s.error) for s in streams]
    for s in failed:
        assert s.status == 200 and s.chunks < 120, "the failure came mid-stream, in-band"
        assert s.error["code"] == "unavailable", s.error
        assert addrs[0] in s.error["message"] and "went away" in s.error["message"], s.error
    for s in done:
        assert s.finish == "length" and s.chunks == 120, (s.finish, s.chunks)
    # The failures were immediate (the dropped connection fires the monitors), not a timeout.
    assert all(s.ended - killed_at < 5 for s in failed), [s.ended - killed_at for s in failed]
    m = cluster_metrics(router.url)
    assert m[("troupe:cluster_worker_up", addrs[0])] == 0
    assert m[("troupe:cluster_worker_state", addrs[0])][0] in ("down", "connecting")
    assert m[("troupe:cluster_worker_requests_lost_total", addrs[0])] - lost_before == 3
    assert requests.get(router.url + "/health", timeout=10).status_code == 200, "one worker is still up"
    routed_victim = m[("troupe:cluster_worker_requests_routed_total", addrs[0])]
    for _ in range(4):  # all traffic goes to the survivor now
        r = complete(router.url)
        assert r.status_code == 200, r.text
    m = cluster_metrics(router.url)
    assert m[("troupe:cluster_worker_requests_routed_total", addrs[0])] == routed_victim
    assert_worker_idle(survivor)


def test_restarted_worker_receives_traffic_again(cluster, nodes):
    router, addrs = cluster["router"], cluster["addrs"]
    old = cluster["workers"][0]
    assert old.proc.poll() is not None, "runs after the SIGKILL test"
    port = int(addrs[0].rsplit(":", 1)[1])
    new = nodes(worker_args(port, *cluster["slow"]))
    cluster["workers"][0] = new
    wait_up(router, addrs, rejoined=[addrs[0]])
    before = cluster_metrics(router.url)[("troupe:cluster_worker_requests_routed_total", addrs[0])]
    for _ in range(4):
        r = complete(router.url)
        assert r.status_code == 200, r.text
    after = cluster_metrics(router.url)[("troupe:cluster_worker_requests_routed_total", addrs[0])]
    assert after - before >= 2, "the rejoined (idle) worker takes its share"
    for w in cluster["workers"]:
        assert_worker_idle(w)


def test_router_killed_mid_stream_leaks_nothing_and_a_new_router_finds_the_workers(cluster, nodes):
    addrs = cluster["addrs"]
    streams = [Stream(cluster["router"].url, max_tokens=200) for _ in range(4)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(30)
    cluster["router"].kill()  # its sinks vanish: the workers' schedulers cancel their requests
    for s in streams:
        s.join(60)
        assert s.error, "the client saw the router die"
    for w in cluster["workers"]:
        assert_worker_idle(w)
    router = nodes(router_args(addrs))
    cluster["router"] = router
    wait_up(router, addrs)
    r = complete(router.url)
    assert r.status_code == 200, r.text
    for w in cluster["workers"]:
        assert_worker_idle(w)


# --- limits, absence and refusal -----------------------------------------------------------------

def test_full_workers_answer_429_and_no_worker_503(nodes):
    """Also the plaintext path: every node on loopback with --cluster-insecure."""
    limits = ["--max-concurrent-requests", "1", "--max-queued-requests", "0", "--fault-inject", "slow_ms=25"]
    ws = [nodes(worker_args(0, *limits, security="insecure")) for _ in range(2)]
    assert all("cluster links: INSECURE" in w.log() for w in ws)
    addrs = [f"127.0.0.1:{w.cluster_port}" for w in ws]
    router = nodes(router_args(addrs, security="insecure"))
    wait_up(router, addrs)
    streams = [Stream(router.url, max_tokens=200) for _ in range(2)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(30)
    assert all(s.error is None for s in streams), [s.error for s in streams]
    r = complete(router.url)
    assert r.status_code == 429, r.text
    assert "admission limit" in r.json()["error"]["message"]
    assert r.headers.get("Retry-After")
    for w in ws:
        w.kill()
    for s in streams:
        s.join(60)
        assert s.error and s.error["code"] == "unavailable", s.error
    wait_until(lambda: requests.get(router.url + "/health", timeout=10).status_code == 503, 15,
               "/health 503 with no worker up")
    h = requests.get(router.url + "/health", timeout=10).json()
    assert "no worker is up" in h["reason"], h
    r = complete(router.url)
    assert r.status_code == 503, r.text
    assert "no worker is up" in r.json()["error"]["message"], r.text


def test_worker_with_another_model_is_refused(nodes):
    other = nodes(worker_args(0, model=OTHER))
    addr = f"127.0.0.1:{other.cluster_port}"
    router = nodes(router_args([addr]))
    st = wait_until(lambda: cluster_metrics(router.url).get(("troupe:cluster_worker_state", addr), ("", ""))[0]
                    == "refused" and cluster_metrics(router.url)[("troupe:cluster_worker_state", addr)], 30,
                    "the worker refused")
    assert "model mismatch" in st[1] and "--model" in st[1], st
    assert re.search(r"refusing worker .*model mismatch", router.log()), router.log()[-2000:]
    assert requests.get(router.url + "/health", timeout=10).status_code == 503
    r = complete(router.url)
    assert r.status_code == 503 and "refused" in r.json()["error"]["message"], r.text


def test_workers_join_a_router_and_join_its_restart(nodes):
    """--join-port / --join: the router knows no worker address; the worker announces itself, and
    announces itself again to a router restarted on the same join port."""
    join_re = re.compile(r"router accepts joining workers on [^\s:]+:(\d+)")
    rargs = ["--role", "router", "--model", TINY, "--join-port", "0", "--cluster-poll-interval", "0.1"] + SMALL + tls("node")
    router = nodes(rargs)
    join_port = int(router.wait_log(join_re).group(1))
    h = requests.get(router.url + "/health", timeout=10)
    assert h.status_code == 503 and "none has joined yet" in h.json()["reason"], h.text
    w = nodes(worker_args(0, "--join", f"127.0.0.1:{join_port}", "--cluster-reconnect-interval", "0.3"))
    addr = f"127.0.0.1:{w.cluster_port}"
    wait_up(router, [addr])
    assert complete(router.url).status_code == 200
    router.kill()
    rargs[rargs.index("--join-port") + 1] = str(join_port)
    router = nodes(rargs)
    wait_up(router, [addr])
    r = complete(router.url)
    assert r.status_code == 200, r.text
    assert_worker_idle(w)


def test_router_without_workers_is_a_clear_usage_error():
    p = subprocess.run([BINARY, "serve", "--role", "router", "--model", TINY], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert "--workers" in p.stderr + p.stdout


# --- workers in network namespaces (root only) ----------------------------------------------------

def _netns_usable():
    if os.geteuid() != 0:
        return "not root: network namespaces need root"
    name = f"troupe-probe-{os.getpid()}"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if p.returncode != 0:
        return f"`ip netns add` failed: {p.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


class Netns:
    """A namespace joined to the host by a veth pair: host 10.231.<i>.1, namespace 10.231.<i>.2."""

    def __init__(self, i):
        self.name = f"troupe-w{i}-{os.getpid()}"
        self.host_if, self.ns_if = f"trh{i}-{os.getpid() % 10000}", f"trn{i}-{os.getpid() % 10000}"
        self.host_ip, self.ns_ip = f"10.231.{i}.1", f"10.231.{i}.2"
        cmds = [["ip", "netns", "add", self.name],
                ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
                ["ip", "link", "set", self.ns_if, "netns", self.name],
                ["ip", "addr", "add", self.host_ip + "/24", "dev", self.host_if],
                ["ip", "link", "set", self.host_if, "up"],
                ["ip", "netns", "exec", self.name, "ip", "addr", "add", self.ns_ip + "/24", "dev", self.ns_if],
                ["ip", "netns", "exec", self.name, "ip", "link", "set", self.ns_if, "up"],
                ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"]]
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True, timeout=10)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def close(self):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)


def test_workers_in_network_namespaces(nodes):
    why = _netns_usable()
    if why:
        pytest.skip(f"network-namespace test skipped: {why}")
    spaces = []
    try:
        for i in (1, 2):
            spaces.append(Netns(i))
        ws = [nodes(worker_args(0, "--fault-inject", "slow_ms=25", host=ns.ns_ip), prefix=ns.prefix())
              for ns in spaces]
        addrs = [f"{ns.ns_ip}:{w.cluster_port}" for ns, w in zip(spaces, ws)]
        router = nodes(router_args(addrs))
        wait_up(router, addrs)
        streams = [Stream(router.url, max_tokens=120) for _ in range(4)]
        for s in streams:
            s.start()
        for s in streams:
            assert s.started.wait(30)
        ws[0].kill()  # the process inside the namespace; the namespace's link stays
        for s in streams:
            s.join(60)
        failed = [s for s in streams if s.error]
        assert len(failed) == 2, [(s.finish, s.error) for s in streams]
        assert all(addrs[0] in s.error["message"] for s in failed), [s.error for s in failed]
        assert all(s.finish == "length" for s in streams if not s.error)
        r = complete(router.url)
        assert r.status_code == 200, r.text
        restarted = nodes(worker_args(ws[0].cluster_port, "--fault-inject", "slow_ms=25", host=spaces[0].ns_ip),
                          prefix=spaces[0].prefix())
        wait_up(router, addrs, rejoined=[addrs[0]])
        for _ in range(4):
            assert complete(router.url).status_code == 200
        m = cluster_metrics(router.url)
        assert m[("troupe:cluster_worker_connects_total", addrs[0])] == 2
        for w in (restarted, ws[1]):
            assert_worker_idle(w)
        for w in (restarted, ws[1]):
            w.stop()
    finally:
        for ns in spaces:
            ns.close()


def test_router_benchmark_runs_and_reports(tmp_path):
    """bench/router_bench.py (a short run): both paths answer, and it reports the router's added
    latency per token and its CPU cost per token."""
    import sys
    out = tmp_path / "bench.json"
    bench = os.path.join(HERE, "..", "..", "bench", "router_bench.py")
    p = subprocess.run([sys.executable, bench, "--binary", BINARY, "--model", TINY, "--seconds", "1",
                        "--latency-requests", "3", "--concurrency", "4", "--tokens", "16", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "router adds" in p.stdout and "us per token" in p.stdout, p.stdout
    res = json.loads(out.read_text())
    for name in ("direct", "router"):
        assert res[name]["throughput"]["errors"] == 0
        assert res[name]["throughput"]["tokens_per_s"] > 0
        assert res[name]["latency"]["itl_ms_mean"] > 0
    assert res["router_cpu_us_per_token"] > 0
