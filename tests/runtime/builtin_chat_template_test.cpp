// The built-in chat templates (Gemma 3, Phi-3) against jinja2: the source equals the model card's
// text that tools/make_chat_template_refs.py renders, and troupe's Jinja engine renders every
// reference conversation byte for byte (or refuses it where jinja2 raised); and the choice between
// --chat-template, the model file's template and the built-in one.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/builtin_chat_templates.h"
#include "runtime/chat_template.h"

namespace troupe {
namespace {

using json = nlohmann::json;

json reference() {
  std::ifstream f(std::string(TROUPE_TEST_DATA_DIR) + "/chat_templates/builtin_reference.json");
  return json::parse(f);
}

TEST(builtin_chat_template, gemma3_and_phi3_render_like_jinja2_byte_for_byte) {
  const json ref = reference();
  ASSERT_TRUE(ref.at("templates").contains("gemma3"));
  ASSERT_TRUE(ref.at("templates").contains("phi3"));
  for (const auto& [arch, t] : ref.at("templates").items()) {
    SCOPED_TRACE(arch);
    const char* src = builtin_chat_template(arch);
    ASSERT_NE(src, nullptr);
    EXPECT_EQ(std::string(src), t.at("template").get<std::string>()) << "the built-in text drifted from the model card's";
    chat_template_options o;
    o.bos_token = t.at("bos_token");
    o.eos_token = t.at("eos_token");
    auto ct = chat_template::parse(src, o);
    ASSERT_TRUE(ct.ok()) << ct.err().to_string();
    int rendered = 0, refused = 0;
    for (const auto& c : t.at("cases")) {
      auto got = ct->render(c.at("messages"), c.at("add_generation_prompt").get<bool>());
      if (c.contains("error")) {
        ASSERT_FALSE(got.ok()) << c.dump();
        EXPECT_EQ(got.err().code, errc::invalid_argument);
        EXPECT_NE(got.err().message.find(c.at("error").get<std::string>()), std::string::npos) << got.err().message;
        ++refused;
      } else {
        ASSERT_TRUE(got.ok()) << c.dump() << ": " << got.err().to_string();
        EXPECT_EQ(*got, c.at("expected").get<std::string>()) << c.dump();
        ++rendered;
      }
    }
    EXPECT_GE(rendered, 10);
    if (arch == "gemma3") EXPECT_GE(refused, 2);  // roles out of order
  }
}

TEST(builtin_chat_template, only_known_architectures_have_one) {
  EXPECT_EQ(builtin_chat_template("llama"), nullptr);
  EXPECT_EQ(builtin_chat_template("qwen3"), nullptr);
  EXPECT_EQ(builtin_chat_template(""), nullptr);
}

TEST(choose_chat_template, option_then_model_then_builtin_then_none) {
  auto c = choose_chat_template("{{ 'model' }}", "gemma3", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->origin, chat_template_origin::model);
  EXPECT_EQ(c->source, "{{ 'model' }}");

  c = choose_chat_template("", "gemma3", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->origin, chat_template_origin::builtin);
  EXPECT_EQ(c->source, builtin_chat_template("gemma3"));

  c = choose_chat_template("", "llama", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->origin, chat_template_origin::none);
  EXPECT_TRUE(c->source.empty());

  c = choose_chat_template("{{ 'model' }}", "phi3", "{% for m in messages %}{{ m.content }}{% endfor %}");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->origin, chat_template_origin::option);
  EXPECT_EQ(c->source, "{% for m in messages %}{{ m.content }}{% endfor %}");
}

TEST(choose_chat_template, option_reads_a_file_and_names_itself_when_it_cannot) {
  const auto path = std::filesystem::temp_directory_path() / "troupe-chat-template-test.jinja";
  {
    std::ofstream f(path, std::ios::binary);
    f << "{{ messages[0]['content'] }}\n";
  }
  auto c = choose_chat_template("", "llama", path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(c.ok()) << c.err().to_string();
  EXPECT_EQ(c->origin, chat_template_origin::option);
  EXPECT_EQ(c->source, "{{ messages[0]['content'] }}\n");

  auto bad = choose_chat_template("", "gemma3", "/nonexistent/template.jinja");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.err().code, errc::invalid_argument);
  EXPECT_NE(bad.err().message.find("--chat-template"), std::string::npos);
  EXPECT_NE(bad.err().message.find("/nonexistent/template.jinja"), std::string::npos);
}

}  // namespace
}  // namespace troupe
