// constraint_cache: hits return the same compiled constraint, the least recently used entry goes
// first, failures are not cached, and concurrent lookups of one spec agree.
#include <thread>

#include "grammar_test_support.h"
#include "runtime/constraint_cache.h"

namespace troupe {
namespace {

using namespace grammar_test;
using kind = constraint_spec::kind;

TEST(constraint_cache, a_repeated_spec_is_compiled_once) {
  constraint_cache cache(tiny_vocab(), 4);
  const constraint_spec spec{kind::grammar, R"(root ::= "a")"};
  auto a = cache.get(spec);
  auto b = cache.get(spec);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);
  // Same text, other kind: a different entry.
  auto c = cache.get(constraint_spec{kind::regex, R"(root ::= "a")"});
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->get(), c->get());
  // Same schema, strict and not: different entries.
  auto s1 = cache.get(constraint_spec{kind::json_schema, "{}", true});
  auto s2 = cache.get(constraint_spec{kind::json_schema, "{}", false});
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_NE(s1->get(), s2->get());
}

TEST(constraint_cache, the_least_recently_used_entry_is_evicted_beyond_capacity) {
  constraint_cache cache(tiny_vocab(), 2);
  auto spec = [](const char* s) { return constraint_spec{kind::choice, s}; };
  auto a = cache.get(spec(R"(["a"])"));
  ASSERT_TRUE(cache.get(spec(R"(["b"])")).ok());
  ASSERT_TRUE(cache.get(spec(R"(["a"])")).ok());  // a is now the most recent
  ASSERT_TRUE(cache.get(spec(R"(["c"])")).ok());  // evicts b
  EXPECT_EQ(cache.size(), 2u);
  const uint64_t misses = cache.misses();
  auto a2 = cache.get(spec(R"(["a"])"));
  EXPECT_EQ(cache.misses(), misses);
  EXPECT_EQ(a->get(), a2->get());
  ASSERT_TRUE(cache.get(spec(R"(["b"])")).ok());
  EXPECT_EQ(cache.misses(), misses + 1);
}

TEST(constraint_cache, failures_are_returned_and_not_cached) {
  constraint_cache cache(tiny_vocab(), 2);
  auto bad = cache.get(constraint_spec{kind::regex, "(("});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.err().code, errc::invalid_argument);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(constraint_cache, concurrent_lookups_of_one_spec_agree) {
  constraint_cache cache(tiny_vocab(), 8);
  const constraint_spec spec{kind::json_object, ""};
  std::vector<const compiled_constraint*> got(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      auto c = cache.get(spec);
      got[i] = c.ok() ? c->get() : nullptr;
      if (c.ok()) {
        auto m = (*c)->start();
        token_mask mask;
        mask.resize(tiny_vocab()->vocab_size);
        m->fill_mask(mask);  // position tables shared between threads
      }
    });
  }
  for (auto& t : threads) t.join();
  auto final_entry = cache.get(spec);
  ASSERT_TRUE(final_entry.ok());
  for (auto* p : got) EXPECT_NE(p, nullptr);
  EXPECT_EQ(cache.size(), 1u);
}

}  // namespace
}  // namespace troupe
