"""The short soak CI runs: tools/soak.py --requests 200 --concurrency 16 against a server it starts
(20% of the clients drop mid-stream, some cancel over the WebSocket). It checks that afterwards no
KV block is leased, nothing runs or waits, every other request was answered correctly and RSS stayed
within 5% of its post-warm-up value. The long version is the same script with more requests."""
import os
import subprocess
import sys
import time

from conftest import BINARY

SOAK = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "soak.py")


def test_short_soak():
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, SOAK, "--binary", BINARY, "--requests", "200", "--concurrency", "16"],
                       capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert "SOAK SUMMARY" in out and '"failed": 0' in out, out[-3000:]
    print(out[-1500:], f"\nsoak took {time.monotonic() - t0:.1f} s")
