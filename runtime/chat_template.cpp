// chat_template: the boundary between the Jinja engine (which reports errors by exception
// internally) and the rest of troupe (which gets result values). Nothing is thrown past here.
#include "runtime/chat_template.h"

#include "runtime/jinja_ast.h"

namespace troupe {

result<chat_template> chat_template::parse(const std::string& source, chat_template_options options) {
  chat_template t;
  t.source_ = source;
  t.options_ = std::move(options);
  try {
    auto tokens = jinja::lex(source, jinja::lex_options{});
    t.program_ = std::make_shared<const jinja::stmt_list>(jinja::parse(tokens));
  } catch (const jinja::error& e) {
    return make_error(errc::invalid_argument, std::string("chat template: ") + e.what());
  } catch (const std::exception& e) {
    return make_error(errc::internal, std::string("chat template parser: ") + e.what());
  }
  return t;
}

result<std::string> chat_template::render(const nlohmann::json& messages, bool add_generation_prompt,
                                          const nlohmann::json& extra) const {
  if (!program_) return make_error(errc::internal, "chat template: not parsed");
  if (!messages.is_array()) return make_error(errc::invalid_argument, "chat template: messages must be a list");
  nlohmann::json vars = nlohmann::json::object();
  vars["bos_token"] = options_.bos_token;
  vars["eos_token"] = options_.eos_token;
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) vars[it.key()] = it.value();
  vars["messages"] = messages;
  vars["add_generation_prompt"] = add_generation_prompt;
  jinja::render_options ro;
  ro.fixed_time = options_.fixed_time;
  try {
    return jinja::render(*program_, vars, ro);
  } catch (const jinja::error& e) {
    return make_error(errc::invalid_argument, std::string("chat template: ") + e.what());
  } catch (const std::exception& e) {
    return make_error(errc::internal, std::string("chat template: ") + e.what());
  }
}

}  // namespace troupe
