// Chat template tests: the real templates of SmolLM2, Llama 3.1/3.2, Qwen2.5 and Mistral v0.3
// rendered byte for byte like Python jinja2 (tests/data/chat_templates/expected.json, made by
// tools/render_chat_templates.py), plus the Jinja features and error paths one by one.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"

namespace troupe {
namespace {

using json = nlohmann::json;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string render_ok(const std::string& src, const json& extra = json::object(), bool gen = false,
                      const json& messages = json::array()) {
  auto t = chat_template::parse(src);
  EXPECT_TRUE(t.ok()) << t.err().to_string();
  if (!t.ok()) return "<parse error>";
  auto r = t->render(messages, gen, extra);
  EXPECT_TRUE(r.ok()) << r.err().to_string();
  return r.ok() ? *r : "<render error>";
}

TEST(chat_template, real_templates_match_python_jinja2) {
  const std::string dir = std::string(TROUPE_TEST_DATA_DIR) + "/chat_templates/";
  json expected = json::parse(read_text(dir + "expected.json"));
  ASSERT_GE(expected["cases"].size(), 40u);
  for (const auto& c : expected["cases"]) {
    std::string name = c["template"];
    SCOPED_TRACE(name + " / " + c["conversation"].get<std::string>() +
                 (c["add_generation_prompt"].get<bool>() ? " / gen" : ""));
    chat_template_options opt;
    opt.fixed_time = expected["fixed_time"].get<std::time_t>();
    auto t = chat_template::parse(read_text(dir + name + ".jinja"), opt);
    ASSERT_TRUE(t.ok()) << t.err().to_string();
    auto r = t->render(c["messages"], c["add_generation_prompt"].get<bool>(), c["extra"]);
    if (c.contains("error")) {
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.err().message.find(c["error"].get<std::string>()), std::string::npos) << r.err().message;
    } else {
      ASSERT_TRUE(r.ok()) << r.err().to_string();
      EXPECT_EQ(*r, c["output"].get<std::string>());
    }
  }
}

TEST(chat_template, whitespace_control_trims_like_jinja2) {
  EXPECT_EQ(render_ok("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(render_ok("x\n  {% if true %}\ny\n  {% endif %}\nz"), "x\ny\nz");  // lstrip + trim_blocks
  EXPECT_EQ(render_ok("{# note #}\nq"), "q");
}

TEST(chat_template, loops_expose_loop_variables) {
  EXPECT_EQ(render_ok("{% for x in [3, 4, 5] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
                      "{{ loop.length }};{% endfor %}"),
            "10TrueFalse3;21FalseFalse3;32FalseTrue3;");
  EXPECT_EQ(render_ok("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render_ok("{% for x in range(6) if x is even %}{{ x }}{% endfor %}"), "024");
  EXPECT_EQ(render_ok("{% for k, v in {'b': 2, 'a': 1}.items() %}{{ k }}={{ v }} {% endfor %}"), "a=1 b=2 ");
  EXPECT_EQ(render_ok("{% for x in range(9) %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "012");
}

TEST(chat_template, namespace_survives_loop_scopes) {
  EXPECT_EQ(render_ok("{% set ns = namespace(n=0) %}{% set m = 1 %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}"
                      "{% set m = 99 %}{% endfor %}{{ ns.n }} {{ m }}"),
            "6 1");
}

TEST(chat_template, filters_and_tests_follow_python) {
  EXPECT_EQ(render_ok("{{ '  hi  ' | trim }}|{{ 'ab' | upper }}|{{ [1,2,3] | length }}|{{ [1,2] | join(', ') }}"),
            "hi|AB|3|1, 2");
  EXPECT_EQ(render_ok("{{ x | default('d') }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}"), "dTrueTrueTrue");
  EXPECT_EQ(render_ok("{{ {'a': [1, 'x', none, true]} | tojson }}"), "{\"a\": [1, \"x\", null, true]}");
  EXPECT_EQ(render_ok("{{ 'abcdef'[1:-1] }}{{ [1,2,3][::-1] }}{{ 'é!'[0] }}"), "bcde[3, 2, 1]é");
  EXPECT_EQ(render_ok("{{ 7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 'a' ~ 1 }} {{ 'x' in 'xyz' }}"), "3 2 3.5 a1 True");
  EXPECT_EQ(render_ok("{{ [{'r': 'u'}, {'r': 'a'}] | selectattr('r', 'equalto', 'u') | list | length }}"), "1");
  EXPECT_EQ(render_ok("{{ 'Hello World'.lower().split(' ') }}"), "['hello', 'world']");
}

TEST(chat_template, strftime_now_is_deterministic_with_a_fixed_time) {
  chat_template_options opt;
  opt.fixed_time = 1727352000;
  auto t = chat_template::parse("{{ strftime_now('%d %b %Y') }}", opt);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t->render(json::array(), false), "26 Sep 2024");
}

TEST(chat_template, syntax_errors_are_reported_not_thrown) {
  for (const char* bad : {"{% if x %}never closed", "{{ 1 + }}", "{% for %}", "{{ 'unterminated }}", "{% endfor %}",
                          "{{ (((((((( }}", "{% macro m() %}{% endmacro %}", "{{ a b }}"}) {
    auto t = chat_template::parse(bad);
    EXPECT_FALSE(t.ok()) << bad;
    if (!t.ok()) EXPECT_EQ(t.err().code, errc::invalid_argument);
  }
  std::string deep(5000, '(');
  EXPECT_FALSE(chat_template::parse("{{ " + deep + " }}").ok());
}

TEST(chat_template, runtime_errors_are_reported_not_thrown) {
  for (const char* bad : {"{{ raise_exception('boom') }}", "{{ undefined_fn(1) }}", "{{ 1 + 'a' }}",
                          "{{ x.y.z }}", "{{ 1 // 0 }}", "{{ {} | nosuchfilter }}", "{% for x in 5 %}{% endfor %}"}) {
    auto t = chat_template::parse(bad);
    ASSERT_TRUE(t.ok()) << bad << ": " << t.err().to_string();
    auto r = t->render(json::array(), false);
    EXPECT_FALSE(r.ok()) << bad;
  }
  auto t = chat_template::parse("{{ raise_exception('roles must alternate') }}");
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->render(json::array(), false).err().message.find("roles must alternate"), std::string::npos);
}

TEST(chat_template, bos_and_eos_come_from_options_and_extra_overrides) {
  chat_template_options opt;
  opt.bos_token = "<s>";
  opt.eos_token = "</s>";
  auto t = chat_template::parse("{{ bos_token }}{{ messages[0].content }}{{ eos_token }}", opt);
  ASSERT_TRUE(t.ok());
  json msgs = json::array({{{"role", "user"}, {"content", "hi"}}});
  EXPECT_EQ(*t->render(msgs, false), "<s>hi</s>");
  EXPECT_EQ(*t->render(msgs, false, {{"eos_token", "<end>"}}), "<s>hi<end>");
}

}  // namespace
}  // namespace troupe
