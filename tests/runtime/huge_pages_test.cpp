// advise_huge_pages: weights end up on 2 MiB transparent huge pages (decode streams them once per
// step), both through the call itself and through cpu_model::create. Skipped where the kernel has
// THP off or refuses the advice (the function is best effort by contract).
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/cpu_model.h"
#include "runtime/host_memory.h"
#include "runtime/model_weights.h"

namespace troupe {
namespace {

bool thp_off() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(in, s);
  return s.empty() || s.find("[never]") != std::string::npos;
}

TEST(huge_pages, advised_buffer_is_backed_by_huge_pages) {
  if (thp_off()) GTEST_SKIP() << "transparent huge pages are off on this machine";
  // A mapping of its own (a heap block's neighbours may be anything), resident so that the
  // collapse has pages to gather.
  const size_t bytes = size_t{16} << 20;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memset(p, 1, bytes);
  const char* w = static_cast<const char*>(p) + 4096;  // not 2 MiB-aligned, as a vector's data is not
  const bool advised = advise_huge_pages(w, bytes - 8192);
  const uint64_t huge = huge_page_bytes(w, bytes - 8192);
  munmap(p, bytes);
  if (!advised) GTEST_SKIP() << "the kernel refused MADV_HUGEPAGE/MADV_COLLAPSE";
  // At least the 2 MiB pages wholly inside the mapping (7 of its 8 in the worst alignment).
  EXPECT_GE(huge, uint64_t{7} << 20) << "huge pages " << huge;
}

TEST(huge_pages, cpu_model_puts_its_weights_on_huge_pages) {
  if (thp_off()) GTEST_SKIP() << "transparent huge pages are off on this machine";
  model_config c;
  c.name = "huge";
  c.vocab_size = 8192;
  c.hidden_size = 256;  // an 8 MiB float32 embedding
  c.intermediate_size = 512;
  c.num_layers = 1;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.tie_word_embeddings = true;
  auto w = make_dummy_weights(c, 1);
  ASSERT_TRUE(w.ok());
  const float* embed = w->embed.f32.data();  // the buffer moves into the model with the vector
  const size_t bytes = w->embed.f32.size() * sizeof(float);
  ASSERT_EQ(bytes, size_t{8} << 20);
  {
    std::vector<uint16_t> probe(2u << 20, 1);
    if (!advise_huge_pages(probe.data(), probe.size() * 2)) GTEST_SKIP() << "the kernel refused the advice";
  }
  auto m = cpu_model::create(c, std::move(*w), {4, 16, 1});
  ASSERT_TRUE(m.ok());
  EXPECT_GE(huge_page_bytes(embed, bytes), uint64_t{6} << 20);
}

}  // namespace
}  // namespace troupe
