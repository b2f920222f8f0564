// Grammar engine benchmark: JSON Schema compile time and token-mask time per generated token for a
// nested schema, at the SmolLM2 vocabulary (49k) and at a synthesized 128k vocabulary (the SmolLM2
// pieces plus concatenations of them, standing in for Llama 3's 128,256 tokens).
// Mask times are per fill_mask call, over a generation that picks random allowed tokens: "cold"
// is the first generation with a freshly compiled schema (position tables built on first use),
// "warm" a later generation reusing the compiled schema (what a cached response_format costs).
// Times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a loaded machine does not inflate them.
// Usage: bench_grammar_mask [--tokenizer DIR] [--tokens N]   (DIR holds tokenizer.json)
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "runtime/grammar_json_schema.h"
#include "runtime/grammar_matcher.h"
#include "runtime/hf_tokenizer.h"
#include "runtime/tokenizer.h"

namespace {

using namespace troupe;

const char* k_schema = R"({
  "$defs": {"address": {"type": "object", "properties": {
      "street": {"type": "string", "maxLength": 40}, "city": {"type": "string"},
      "zip": {"type": "string", "pattern": "^[0-9]{5}$"}, "country": {"enum": ["US", "DE", "FR", "JP"]}},
    "required": ["street", "city", "country"], "additionalProperties": false}},
  "type": "object",
  "properties": {
    "id": {"type": "string", "format": "uuid"},
    "name": {"type": "string", "minLength": 1, "maxLength": 64},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": "string", "format": "email"},
    "score": {"type": "number", "minimum": 0, "maximum": 100},
    "active": {"type": "boolean"},
    "home": {"$ref": "#/$defs/address"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 5},
    "orders": {"type": "array", "maxItems": 3, "items": {"type": "object", "properties": {
        "sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1},
        "ship_to": {"anyOf": [{"$ref": "#/$defs/address"}, {"type": "null"}]},
        "placed": {"type": "string", "format": "date-time"}},
      "required": ["sku", "qty"], "additionalProperties": false}}
  },
  "required": ["id", "name", "age", "home", "orders"],
  "additionalProperties": false
})";

double cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// One generation: fill_mask timings in microseconds.
std::vector<double> generate(const compiled_constraint& c, const grammar_vocab& v, uint32_t seed, int max_tokens,
                             int* produced) {
  std::mt19937 rng(seed);
  auto m = c.start();
  token_mask mask;
  mask.resize(v.vocab_size);
  std::vector<double> times;
  std::vector<int32_t> allowed, closing;
  int n = 0;
  for (; n < max_tokens && !m->is_terminated(); ++n) {
    const double t0 = cpu_us();
    m->fill_mask(mask);
    times.push_back(cpu_us() - t0);
    allowed.clear();
    closing.clear();
    for (int32_t t = 0; t < v.vocab_size; ++t) {
      if (!mask.test(t)) continue;
      allowed.push_back(t);
      if (v.pieces[t].find_first_of("\"}]") != std::string::npos) closing.push_back(t);
    }
    if (allowed.empty()) break;
    int32_t pick = allowed[rng() % allowed.size()];
    if (!closing.empty() && rng() % 3 == 0) pick = closing[rng() % closing.size()];
    if (!m->accept(pick)) break;
  }
  *produced = n;
  return times;
}

void run_vocab(const char* label, std::shared_ptr<const grammar_vocab> vocab, int max_tokens) {
  const double t0 = cpu_us();
  auto c = compile_constraint_for_vocab(constraint_spec{constraint_spec::kind::json_schema, k_schema}, vocab);
  const double compile_ms = (cpu_us() - t0) / 1e3;
  if (!c.ok()) {
    std::fprintf(stderr, "compile failed: %s\n", c.err().to_string().c_str());
    std::exit(1);
  }
  int produced = 0;
  const auto cold = generate(**c, *vocab, 1, max_tokens, &produced);
  std::vector<double> warm;
  int warm_tokens = 0;
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    int n = 0;
    auto t = generate(**c, *vocab, seed, max_tokens, &n);
    warm.insert(warm.end(), t.begin(), t.end());
    warm_tokens += n;
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  std::printf("%-14s vocab %6d  compile %.2f ms\n  cold (fresh schema): %4d tokens  median %7.1f us  mean %7.1f us  "
              "p90 %7.1f us  max %7.0f us\n  warm (cached schema): %4d tokens  median %7.1f us  mean %7.1f us  "
              "p90 %7.1f us  max %7.0f us\n",
              label, vocab->vocab_size, compile_ms, produced, median(cold), mean(cold), percentile(cold, 0.9),
              cold.empty() ? 0.0 : *std::max_element(cold.begin(), cold.end()), warm_tokens, median(warm), mean(warm),
              percentile(warm, 0.9), warm.empty() ? 0.0 : *std::max_element(warm.begin(), warm.end()));
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "tests/data/smollm2_tokenizer";
  int max_tokens = 400;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tokenizer" && i + 1 < argc) dir = argv[++i];
    else if (a == "--tokens" && i + 1 < argc) max_tokens = std::max(1, std::atoi(argv[++i]));
  }
  auto data = read_hf_tokenizer_data(dir);
  if (!data.ok()) {
    std::fprintf(stderr, "%s (run from the repository root or pass --tokenizer)\n", data.err().to_string().c_str());
    return 1;
  }
  auto tok = tokenizer::from_data(std::move(*data));
  if (!tok.ok()) return 1;
  // Schema compile time alone (grammar construction; masks are built lazily on first use).
  std::vector<double> compile_ms;
  for (int i = 0; i < 20; ++i) {
    const double t0 = cpu_us();
    auto g = json_schema_grammar(k_schema);
    compile_ms.push_back((cpu_us() - t0) / 1e3);
    if (!g.ok()) return 1;
  }
  std::printf("schema compile (grammar only): median %.2f ms over 20\n", median(compile_ms));
  const double t0 = cpu_us();
  auto v49 = grammar_vocab_for(*tok);
  std::printf("vocabulary trie build (once per tokenizer): %.1f ms, %zu trie nodes\n", (cpu_us() - t0) / 1e3,
              v49->nodes.size());
  run_vocab("smollm2-49k", v49, max_tokens);
  // 128k: the real pieces, then pairs of them until 128,256 tokens.
  std::vector<std::string> pieces = v49->pieces;
  std::mt19937 rng(42);
  std::vector<int32_t> normal;
  for (int32_t t = 0; t < v49->vocab_size; ++t) {
    if (!v49->pieces[t].empty()) normal.push_back(t);
  }
  while (pieces.size() < 128256) {
    pieces.push_back(v49->pieces[normal[rng() % normal.size()]] + v49->pieces[normal[rng() % normal.size()]]);
  }
  auto v128 = grammar_vocab::from_pieces(std::move(pieces), v49->eos_ids);
  run_vocab("synthetic-128k", v128, max_tokens);
  return 0;
}
