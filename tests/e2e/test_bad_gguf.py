"""`troupe serve --model X.gguf` on GGUF files the loader must refuse: a tensor of a type troupe
cannot read (IQ2_XXS) and quantized data cut short by the end of the file. The server exits with a
non-zero code and a message naming the tensor (and its type), never a crash or a hang. The files are
the fuzz seeds of tests/fuzz/corpus/gguf (a complete one-layer Q4_1 llama, tests/fuzz/make_seeds.py),
whose intact version serves; and, when the default model is installed, that model with one tensor's
type patched to IQ2_XXS.
"""
import os
import shutil
import struct
import subprocess

import pytest
import requests

from conftest import BINARY, SMALL_FLAGS

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SEEDS = os.path.join(ROOT, "tests", "fuzz", "corpus", "gguf")
DEFAULT_MODEL = os.path.expanduser("~/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf")
EXIT_TIMEOUT_S = 120.0
CRASH_MARKERS = ("terminate called", "Segmentation fault", "Aborted", "core dumped", "AddressSanitizer")


def seed(name, tmp_path):
    """A corpus seed copied to NAME.gguf (troupe tells a GGUF by its extension)."""
    dst = tmp_path / (name + ".gguf")
    shutil.copyfile(os.path.join(SEEDS, name), dst)
    return str(dst)


def serve_expecting_refusal(model):
    """Runs `troupe serve --model model`; returns its output after asserting a clean refusal."""
    r = subprocess.run([BINARY, "serve", "--port", "0", "--host", "127.0.0.1", "--model", model] + SMALL_FLAGS,
                       capture_output=True, text=True, timeout=EXIT_TIMEOUT_S, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode > 0, f"expected a non-zero exit, got {r.returncode}:\n{out[-3000:]}"
    assert "listening on" not in out, out[-3000:]
    for marker in CRASH_MARKERS:
        assert marker not in out, out[-3000:]
    return out


def test_the_intact_quantized_seed_serves(server_factory, tmp_path):
    # The control: the same file without the damage loads and answers, so the refusals below are
    # about the damage alone.
    srv = server_factory("--model", seed("tiny_llama_q4_1", tmp_path))
    r = requests.post(srv.url + "/v1/completions", json={"prompt": "hello", "max_tokens": 3}, timeout=60)
    assert r.status_code == 200, r.text


def test_an_unsupported_tensor_type_is_refused_with_the_tensor_and_type(tmp_path):
    out = serve_expecting_refusal(seed("tiny_llama_iq2_xxs", tmp_path))
    assert "tensor 'blk.0.ffn_down.weight' has type IQ2_XXS, which troupe cannot load" in out, out[-3000:]


def test_truncated_quantized_data_is_refused_with_the_tensor(tmp_path):
    out = serve_expecting_refusal(seed("tiny_llama_q4_1_truncated", tmp_path))
    assert "tensor 'blk.0.ffn_down.weight' data" in out and "beyond the end of the file" in out, out[-3000:]


def tensor_type_offsets(data):
    """{tensor name: offset of its type field} from a GGUF v2/v3 header."""
    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(t):
        nonlocal pos
        if t == 8:
            (n,) = struct.unpack_from("<Q", data, pos)
            pos += 8 + n
        elif t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if et == 8 or et == 9:
                for _ in range(n):
                    skip(et)
            else:
                pos += sizes[et] * n
        else:
            pos += sizes[t]

    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        skip(t)
    out = {}
    for _ in range(n_tensors):
        (n,) = struct.unpack_from("<Q", data, pos)
        name = data[pos + 8:pos + 8 + n].decode()
        pos += 8 + n
        (nd,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 8 * nd
        out[name] = pos
        pos += 12
    return out


@pytest.mark.skipif(not os.path.exists(DEFAULT_MODEL), reason="default model not installed")
def test_the_default_model_with_an_iq2_xxs_tensor_is_refused(tmp_path):
    # ffn_down rows hold 1536 = 6 x 256 elements, whole IQ2_XXS blocks, and IQ2_XXS takes fewer bytes
    # than Q4_1: the file still parses, and the loader must refuse the tensor by name.
    with open(DEFAULT_MODEL, "rb") as f:
        data = bytearray(f.read())
    off = tensor_type_offsets(data)["blk.7.ffn_down.weight"]
    assert struct.unpack_from("<I", data, off)[0] == 3  # Q4_1
    struct.pack_into("<I", data, off, 16)
    path = tmp_path / "smollm2-iq2.gguf"
    path.write_bytes(bytes(data))
    out = serve_expecting_refusal(str(path))
    assert "tensor 'blk.7.ffn_down.weight' has type IQ2_XXS, which troupe cannot load" in out, out[-3000:]
