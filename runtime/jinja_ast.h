// The Jinja subset behind chat templates (internal to runtime/): tokens, the syntax tree, and the
// entry points of the lexer, parser, value helpers and interpreter. Values are nlohmann::json;
// Jinja's `undefined` is a discarded json. Errors inside are jinja::error exceptions, caught and
// turned into a status by chat_template (they never leave the library).
#pragma once

#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe::jinja {

using json = nlohmann::json;

struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- lexer ----
enum class tok { text, var_begin, var_end, block_begin, block_end, name, string, integer, number, op, end };
struct token {
  tok kind;
  std::string text;  // text, name, string contents or operator
  json value;        // integer/number literal
  int line = 1;
};
struct lex_options {
  bool trim_blocks = true;    // what transformers uses for chat templates
  bool lstrip_blocks = true;
};
std::vector<token> lex(const std::string& source, const lex_options& options);

// ---- syntax tree ----
struct expr;
using expr_ptr = std::unique_ptr<expr>;
struct expr {
  enum kind_t { literal, var, attr, item, slice, call, filter, test, unary, binary, cond, list, dict } kind;
  json value;                    // literal
  std::string name;              // name, attribute, filter, test or operator
  std::vector<expr_ptr> args;    // operands; for filter/test/call: subject first (call: callee)
  std::vector<std::pair<std::string, expr_ptr>> kwargs;
  bool negated = false;          // "is not"
  int line = 0;
};

struct stmt;
using stmt_list = std::vector<std::unique_ptr<stmt>>;
struct stmt {
  enum kind_t { raw, output, if_, for_, set, break_, continue_ } kind;
  std::string text;                    // text
  expr_ptr value;                      // output, set value, for iterable
  std::vector<std::pair<expr_ptr, stmt_list>> branches;  // if/elif (cond), else (null cond)
  std::vector<std::string> targets;    // for loop variables; set: name (+ attribute for ns.attr)
  expr_ptr loop_filter;                // for ... if cond
  stmt_list body, else_body;           // for
  int line = 0;
};

stmt_list parse(const std::vector<token>& tokens);

// ---- values ----
json undefined();
bool is_undefined(const json& v);
bool truthy(const json& v);
std::string to_str(const json& v);  // Python str()
std::string to_json(const json& v, int indent);  // HF's tojson: json.dumps(ensure_ascii=False)
std::vector<uint32_t> codepoints(const std::string& s);
std::string from_codepoints(const std::vector<uint32_t>& cps, size_t begin, size_t end);
json apply_filter(const std::string& name, const json& subject, const std::vector<json>& args,
                  const std::map<std::string, json>& kwargs);
bool apply_test(const std::string& name, const json& subject, const std::vector<json>& args);
json call_method(const json& subject, const std::string& name, const std::vector<json>& args);
json binary_op(const std::string& op, const json& a, const json& b);

// ---- interpreter ----
struct render_options {
  std::optional<std::time_t> fixed_time;  // strftime_now uses it instead of the clock
  size_t max_output_bytes = 64u << 20;
};
std::string render(const stmt_list& program, const json& variables, const render_options& options);

}  // namespace troupe::jinja
