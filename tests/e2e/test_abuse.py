"""Abuse limits against the real binary: slowloris headers, huge headers and bodies, thousands of
idle connections beyond --max-connections, a WebSocket message flood, prompts just over session_len,
absurd max_tokens and n. After each, the server is healthy and a normal request succeeds. Also:
the default bind address is 127.0.0.1."""
import asyncio
import json
import os
import re
import socket
import time

import pytest
import requests

from conftest import wait_idle

SESSION_LEN = 64
TINY = os.path.join(os.environ.get("TROUPE_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                                       "shared", "fixtures")), "tiny-llama")
MAX_CONN = 200
HEADER_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory("--session-len", str(SESSION_LEN), "--header-timeout", str(HEADER_TIMEOUT_S),
                          "--max-connections", str(MAX_CONN))


def host_port(url):
    h, p = url.replace("http://", "").split(":")
    return h, int(p)


def assert_good_request(url):
    r = requests.post(url + "/v1/completions", json={"prompt": "Hello", "max_tokens": 4, "ignore_eos": True},
                      timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 4
    assert requests.get(url + "/health", timeout=10).status_code == 200


def read_until_closed(s, timeout):
    """Bytes until the peer closes (b'' or reset); raises socket.timeout if it stays open."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


def test_binds_loopback_by_default(srv):
    # conftest passes no --host: the default applies.
    assert re.search(r"listening on http://127\.0\.0\.1:%d\b" % srv.port, srv.log()), srv.log()[-2000:]
    local = listening_addresses(srv.port)
    assert local == [f"127.0.0.1:{srv.port}"], local


def listening_addresses(port):
    """host:port of every listening TCP socket on `port`, from /proc/net/tcp{,6} (what `ss -ltn`
    reads; no iproute2 needed)."""
    found = []
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            addr, st = f[1], f[3]
            host_hex, port_hex = addr.split(":")
            if st != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(host_hex)
            if v6:  # four little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.append(f"[{socket.inet_ntop(socket.AF_INET6, raw)}]:{port}")
            else:
                found.append(f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{port}")
    return found


def test_slowloris_is_cut_by_header_timeout(srv):
    s = socket.create_connection(host_port(srv.url), timeout=10)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    t0 = time.monotonic()
    closed = False
    try:
        for b in head:
            s.sendall(bytes([b]))
            time.sleep(0.05)
            if time.monotonic() - t0 > HEADER_TIMEOUT_S * 4:
                break
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        read_until_closed(s, HEADER_TIMEOUT_S * 3)  # raises if still open
    elapsed = time.monotonic() - t0
    s.close()
    assert elapsed < HEADER_TIMEOUT_S * 4, f"connection open for {elapsed:.1f} s"
    assert_good_request(srv.url)


def test_huge_headers_get_431_or_close(srv):
    s = socket.create_connection(host_port(srv.url), timeout=10)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(64)) + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = read_until_closed(s, 10)
    s.close()
    assert data == b"" or data.startswith(b"HTTP/1.1 431"), data[:200]
    assert_good_request(srv.url)


def test_huge_body_gets_413(srv):
    body = json.dumps({"prompt": "x" * (3 << 20), "max_tokens": 1})
    r = requests.post(srv.url + "/v1/completions", data=body, headers={"content-type": "application/json"},
                      timeout=60)
    assert r.status_code == 413, r.text[:300]
    assert r.json()["error"]["code"] == "body_too_large"
    assert_good_request(srv.url)


def test_thousands_of_idle_connections(srv):
    socks, refused = [], 0
    try:
        for _ in range(2000):
            try:
                socks.append(socket.create_connection(host_port(srv.url), timeout=10))
            except OSError:
                refused += 1
        # Beyond --max-connections the server answers 503 and closes; the rest are cut by the
        # header timeout. Every one of them ends.
        deadline = time.monotonic() + HEADER_TIMEOUT_S * 3 + 30
        answers = []
        for s in socks:
            data = read_until_closed(s, max(0.5, deadline - time.monotonic()))
            answers.append(data)
        got_503 = sum(1 for a in answers if a.startswith(b"HTTP/1.1 503"))
        assert got_503 + refused >= 2000 - MAX_CONN - 50, (got_503, refused)
    finally:
        for s in socks:
            s.close()
    assert_good_request(srv.url)


def test_websocket_flood_is_bounded(srv):
    from websockets.asyncio.client import connect

    async def flood():
        counts = {"token": 0, "done": 0, "error": 0}
        codes = set()
        async with connect(srv.url.replace("http://", "ws://") + "/v1/ws", max_size=None) as ws:
            for i in range(3000):
                await ws.send(json.dumps({"type": "generate", "id": f"f{i}", "prompt": "Hi", "max_tokens": 1}))
            for i in range(3000):
                await ws.send("{not json")
            try:
                while counts["done"] + counts["error"] < 6000:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    counts[f["type"]] = counts.get(f["type"], 0) + 1
                    if f["type"] == "error":
                        codes.add(f["error"].get("code"))
            except Exception:  # noqa: BLE001 - the server may close a flooding client: also bounded
                pass
        return counts, codes

    counts, codes = asyncio.run(flood())
    assert counts["done"] + counts["error"] > 0, counts
    assert counts["done"] <= 3000, counts
    assert requests.get(srv.url + "/health", timeout=10).status_code == 200
    idle = wait_idle(srv.url, timeout=60)
    assert idle["troupe:num_requests_running"] == 0 and idle["troupe:kv_blocks_used"] == 0, idle
    assert_good_request(srv.url)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def slow_disconnects(url):
    text = requests.get(url + "/metrics", timeout=10).text
    found = re.findall(r'^troupe:slow_client_disconnects_total\{[^}]*protocol="ws"[^}]*\} (\S+)$', text, re.M)
    assert found, "no troupe:slow_client_disconnects_total{protocol=\"ws\",...} in /metrics"
    return sum(float(v) for v in found)  # over the reasons (queue_full, write_timeout)


WRITE_TIMEOUT_S = 3.0


def test_websocket_client_that_never_reads_is_disconnected(server_factory):
    """A client that keeps submitting and never reads: its frames are not buffered without bound;
    it is disconnected (queued bytes over --max-queued-output-bytes, or a write stalled for
    --write-timeout), its generations are cancelled and their blocks returned."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    s = server_factory("--session-len", "256", "--max-queued-output-bytes", "256KiB",
                       "--write-timeout", str(WRITE_TIMEOUT_S))
    before_rss = rss_bytes(s.proc.pid)
    before = slow_disconnects(s.url)

    async def flood():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # stop reading early
        sock.connect(host_port(s.url))
        async with connect(s.url.replace("http://", "ws://") + "/v1/ws", sock=sock, max_queue=1, ping_interval=None,
                           open_timeout=10, close_timeout=2) as ws:
            t0 = time.monotonic()
            i = 0
            try:
                while time.monotonic() - t0 < 90:
                    await ws.send(json.dumps({"type": "generate", "id": f"g{i}", "prompt": "Once upon a time",
                                              "max_tokens": 200, "ignore_eos": True}))
                    i += 1
                    if i % 50 == 0:
                        await asyncio.sleep(0)  # let the transport notice a reset
            except ConnectionClosed:
                return time.monotonic() - t0, i
            raise AssertionError(f"still connected after {time.monotonic() - t0:.0f} s and {i} submits")

    elapsed, submits = asyncio.run(flood())
    grown = rss_bytes(s.proc.pid) - before_rss
    assert elapsed < 30, (elapsed, submits)
    assert grown < 200 * 2 ** 20, f"RSS grew by {grown / 2 ** 20:.0f} MiB while the client did not read"
    assert slow_disconnects(s.url) >= before + 1
    idle = wait_idle(s.url, timeout=60)
    assert idle["troupe:num_requests_running"] == 0 and idle["troupe:kv_blocks_used"] == 0, idle
    assert_good_request(s.url)


@pytest.mark.parametrize("body,status", [
    ({"prompt": [1] * (SESSION_LEN - 1), "max_tokens": 1}, 200),  # exactly session_len
    ({"prompt": [1] * SESSION_LEN, "max_tokens": 1}, 400),        # one over
    ({"prompt": [1] * (SESSION_LEN + 1), "max_tokens": 1}, 400),
    ({"prompt": "Hi", "max_tokens": 10 ** 12}, 400),
    ({"prompt": "Hi", "max_tokens": 2 ** 31}, 400),
    ({"prompt": "Hi", "max_tokens": SESSION_LEN * 1000}, 400),
    ({"prompt": "Hi", "max_tokens": 1, "n": 10 ** 9}, 400),
    ({"prompt": "Hi", "max_tokens": 1, "n": 1000}, 400),
])
def test_absurd_sizes(srv, body, status):
    r = requests.post(srv.url + "/v1/completions", json=body, timeout=120)
    assert r.status_code == status, r.text
    if status == 400:
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["message"], err
    assert_good_request(srv.url)


def test_browser_simple_requests_and_rebound_hosts_are_refused(srv):
    # A page on any site can POST text/plain to localhost without a CORS preflight.
    r = requests.post(srv.url + "/v1/completions", data='{"prompt": "Hello", "max_tokens": 1}',
                      headers={"content-type": "text/plain"}, timeout=30)
    assert r.status_code == 415, r.text[:300]
    assert r.json()["error"]["code"] == "unsupported_media_type"
    # DNS rebinding: the browser sends the attacker's name as Host.
    r = requests.get(srv.url + "/v1/models", headers={"Host": f"rebound.example:{srv.port}"}, timeout=30)
    assert r.status_code == 421, r.text[:300]
    r = requests.post(srv.url + "/v1/completions", json={"prompt": "Hello", "max_tokens": 1},
                      headers={"Origin": "https://evil.example"}, timeout=30)
    assert r.status_code == 403, r.text[:300]
    assert_good_request(srv.url)


def server_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def slow_metric(url, reason):
    text = requests.get(url + "/metrics", timeout=10).text
    m = re.search(r'^troupe:slow_client_disconnects_total\{[^}]*protocol="http",reason="%s"\} (\S+)$' % reason,
                  text, re.M)
    return float(m.group(1)) if m else 0.0


def test_sse_clients_that_never_read_are_dropped_and_their_generations_cancelled(server_factory):
    n_clients, cap, write_timeout = 4, 256 << 10, 2.0
    # The tiny fixture model (token-id prompts) streams fast enough to fill the kernel's socket
    # buffers and then the cap within seconds on a loaded machine; SmolLM2 would take minutes.
    slow = server_factory("--model", TINY, "--session-len", "1024", "--max-queued-output-bytes", "256KiB",
                          "--write-timeout", str(write_timeout))
    before = server_rss_bytes(slow.proc.pid)
    # Long generations with fat events (8 choices, logprobs): far more than the cap plus the
    # kernel's socket buffers, so a reader that never reads fills both.
    body = json.dumps({"prompt": [1, 2, 3], "max_tokens": 1000, "ignore_eos": True, "stream": True, "n": 8,
                       "logprobs": 5}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{slow.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    socks = []
    try:
        for _ in range(n_clients):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
            s.settimeout(10)
            s.connect(("127.0.0.1", slow.port))
            s.sendall(head + body)
            socks.append(s)
        # Every client is dropped within the write timeout once its buffers are full: wait for the
        # counter (bounded), sampling the server's RSS meanwhile.
        deadline = time.monotonic() + 60
        peak = before
        while time.monotonic() < deadline:
            peak = max(peak, server_rss_bytes(slow.proc.pid))
            dropped = slow_metric(slow.url, "queue_full") + slow_metric(slow.url, "write_timeout")
            if dropped >= n_clients:
                break
            time.sleep(0.2)
        assert dropped >= n_clients, f"only {dropped} of {n_clients} non-reading clients were disconnected"
        # Generous bound: the queued bytes are capped per connection; the rest is slack for the
        # allocator and the generations' own state.
        assert peak - before < n_clients * cap + (96 << 20), f"RSS grew by {(peak - before) >> 20} MiB"
        # The generations were cancelled: nothing runs and every block is back.
        idle = wait_idle(slow.url, timeout=30)
        assert idle.get("troupe:num_requests_running") == 0, idle
        assert idle.get("troupe:kv_blocks_used") == 0, idle
        # And the sockets are closed: draining what the kernel still holds ends in EOF.
        for s in socks:
            s.settimeout(10)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
    finally:
        for s in socks:
            s.close()
    r = requests.post(slow.url + "/v1/completions", json={"prompt": [1, 2, 3], "max_tokens": 4, "ignore_eos": True},
                      timeout=60)
    assert r.status_code == 200, r.text
