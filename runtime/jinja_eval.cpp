// Jinja interpreter: walks the syntax tree with a stack of scopes (a for loop body is a scope, as
// in jinja2, so `set` inside it does not leak; namespace() objects are mutated where they live).
// Built-in callables: raise_exception, strftime_now, namespace, range, dict.
#include <ctime>

#include "runtime/jinja_ast.h"

namespace troupe::jinja {

namespace {

constexpr int k_max_depth = 512;
constexpr int64_t k_max_iterations = 1 << 24;

struct break_signal {};
struct continue_signal {};

bool is_builtin(const std::string& name) {
  return name == "raise_exception" || name == "strftime_now" || name == "namespace" || name == "range" ||
         name == "dict";
}

struct interpreter {
  explicit interpreter(const render_options& o) : opt(o) {}
  const render_options& opt;
  std::vector<std::map<std::string, json>> scopes;
  std::string out;
  int depth = 0;
  int64_t iterations = 0;

  struct depth_guard {
    interpreter& in;
    explicit depth_guard(interpreter& i) : in(i) {
      if (++in.depth > k_max_depth) throw error("template nesting too deep");
    }
    ~depth_guard() { --in.depth; }
  };

  json* lookup(const std::string& name) {
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return &f->second;
    }
    return nullptr;
  }

  static std::string where(int line) { return line > 0 ? " (line " + std::to_string(line) + ")" : ""; }

  // ---- expressions ----
  json eval(const expr& e) {
    depth_guard g(*this);
    switch (e.kind) {
      case expr::literal: return e.value;
      case expr::var: {
        json* v = lookup(e.name);
        return v ? *v : undefined();
      }
      case expr::attr: {
        json subject = eval(*e.args[0]);
        if (is_undefined(subject)) throw error("'" + describe(*e.args[0]) + "' is undefined" + where(e.line));
        if (subject.is_object() && subject.contains(e.name)) return subject[e.name];
        return undefined();
      }
      case expr::item: return index(eval(*e.args[0]), e.args.size() > 1 ? eval(*e.args[1]) : e.value, e);
      case expr::slice: return slice(e);
      case expr::call: return call(e);
      case expr::filter: {
        auto [args, kwargs] = eval_args(e, 1);
        return apply_filter(e.name, eval(*e.args[0]), args, kwargs);
      }
      case expr::test: {
        json subject;
        if (e.name == "defined" || e.name == "undefined") {
          if (e.args[0]->kind == expr::var && !lookup(e.args[0]->name)) subject = is_builtin(e.args[0]->name) ? json(true) : undefined();
          else subject = eval(*e.args[0]);
        } else {
          subject = eval(*e.args[0]);
        }
        auto [args, kwargs] = eval_args(e, 1);
        return apply_test(e.name, subject, args) != e.negated;
      }
      case expr::unary: {
        json v = eval(*e.args[0]);
        if (e.name == "not") return !truthy(v);
        if (!v.is_number()) throw error("unary '" + e.name + "' needs a number" + where(e.line));
        if (e.name == "+") return v;
        return v.is_number_float() ? json(-v.get<double>()) : json(-v.get<int64_t>());
      }
      case expr::binary: {
        if (e.name == "and") { json a = eval(*e.args[0]); return truthy(a) ? eval(*e.args[1]) : a; }
        if (e.name == "or") { json a = eval(*e.args[0]); return truthy(a) ? a : eval(*e.args[1]); }
        try {
          return binary_op(e.name, eval(*e.args[0]), eval(*e.args[1]));
        } catch (const error& x) {
          throw error(x.what() + where(e.line));
        }
      }
      case expr::cond:
        if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
        return e.args.size() > 2 ? eval(*e.args[2]) : undefined();
      case expr::list: {
        json l = json::array();
        for (const auto& x : e.args) l.push_back(eval(*x));
        return l;
      }
      case expr::dict: {
        json d = json::object();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) d[to_str(eval(*e.args[i]))] = eval(*e.args[i + 1]);
        return d;
      }
    }
    return undefined();
  }

  static std::string describe(const expr& e) {
    if (e.kind == expr::var) return e.name;
    if (e.kind == expr::attr) return describe(*e.args[0]) + "." + e.name;
    return "value";
  }

  std::pair<std::vector<json>, std::map<std::string, json>> eval_args(const expr& e, size_t skip) {
    std::vector<json> args;
    std::map<std::string, json> kwargs;
    for (size_t i = skip; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
    for (const auto& [k, v] : e.kwargs) kwargs[k] = eval(*v);
    return {args, kwargs};
  }

  json index(const json& subject, const json& key, const expr& e) {
    if (is_undefined(subject)) throw error("'" + describe(*e.args[0]) + "' is undefined" + where(e.line));
    if (subject.is_array() && key.is_number_integer()) {
      int64_t i = key.get<int64_t>(), n = static_cast<int64_t>(subject.size());
      if (i < 0) i += n;
      return i >= 0 && i < n ? subject[static_cast<size_t>(i)] : undefined();
    }
    if (subject.is_string() && key.is_number_integer()) {
      auto cp = codepoints(subject.get<std::string>());
      int64_t i = key.get<int64_t>(), n = static_cast<int64_t>(cp.size());
      if (i < 0) i += n;
      return i >= 0 && i < n ? json(from_codepoints(cp, i, i + 1)) : undefined();
    }
    if (subject.is_object() && key.is_string() && subject.contains(key.get<std::string>())) return subject[key.get<std::string>()];
    return undefined();
  }

  json slice(const expr& e) {
    json subject = eval(*e.args[0]);
    auto bound = [&](size_t i) -> std::optional<int64_t> {
      if (!e.args[i]) return std::nullopt;
      json v = eval(*e.args[i]);
      if (v.is_null()) return std::nullopt;
      if (!v.is_number_integer()) throw error("slice indices must be integers" + where(e.line));
      return v.get<int64_t>();
    };
    std::optional<int64_t> b = bound(1), en = bound(2), st = bound(3);
    int64_t step = st.value_or(1);
    if (step == 0) throw error("slice step cannot be zero" + where(e.line));
    std::vector<uint32_t> cps;
    bool is_str = subject.is_string();
    if (is_str) cps = codepoints(subject.get<std::string>());
    else if (!subject.is_array()) throw error("only lists and strings can be sliced" + where(e.line));
    int64_t n = is_str ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(subject.size());
    auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
      if (!v) return dflt;
      int64_t x = *v < 0 ? *v + n : *v;
      return step > 0 ? std::clamp<int64_t>(x, 0, n) : std::clamp<int64_t>(x, -1, n - 1);
    };
    int64_t lo = clamp(b, step > 0 ? 0 : n - 1), hi = clamp(en, step > 0 ? n : -1);
    json list = json::array();
    std::vector<uint32_t> picked;
    for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
      if (is_str) picked.push_back(cps[i]);
      else list.push_back(subject[static_cast<size_t>(i)]);
    }
    return is_str ? json(from_codepoints(picked, 0, picked.size())) : list;
  }

  json call(const expr& e) {
    const expr& callee = *e.args[0];
    auto [args, kwargs] = eval_args(e, 1);
    if (callee.kind == expr::attr) {
      json subject = eval(*callee.args[0]);
      try {
        return call_method(subject, callee.name, args);
      } catch (const error& x) {
        throw error(x.what() + where(e.line));
      }
    }
    if (callee.kind != expr::var) throw error("value is not callable" + where(e.line));
    const std::string& fn = callee.name;
    if (lookup(fn)) throw error("'" + fn + "' is not callable" + where(e.line));
    if (fn == "raise_exception") throw error(args.empty() ? std::string("raise_exception") : to_str(args[0]));
    if (fn == "strftime_now") {
      std::time_t t = opt.fixed_time ? *opt.fixed_time : std::time(nullptr);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof(buf), args.empty() ? "" : to_str(args[0]).c_str(), &tm);
      return std::string(buf, n);
    }
    if (fn == "namespace" || fn == "dict") {
      json ns = json::object();
      for (const auto& [k, v] : kwargs) ns[k] = v;
      return ns;
    }
    if (fn == "range") {
      int64_t start = 0, stop = 0, step = 1;
      for (const auto& a : args) if (!a.is_number_integer()) throw error("range needs integers" + where(e.line));
      if (args.size() == 1) stop = args[0].get<int64_t>();
      else if (args.size() >= 2) { start = args[0].get<int64_t>(); stop = args[1].get<int64_t>(); }
      if (args.size() >= 3) step = args[2].get<int64_t>();
      if (step == 0) throw error("range step cannot be zero" + where(e.line));
      json l = json::array();
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (++iterations > k_max_iterations) throw error("range too large");
        l.push_back(i);
      }
      return l;
    }
    throw error("'" + fn + "' is undefined" + where(e.line));
  }

  // ---- statements ----
  void emit(const std::string& s) {
    out += s;
    if (out.size() > opt.max_output_bytes) throw error("template output exceeds the size limit");
  }

  void exec(const stmt_list& list) {
    for (const auto& s : list) exec(*s);
  }

  void exec(const stmt& s) {
    depth_guard g(*this);
    switch (s.kind) {
      case stmt::raw: emit(s.text); break;
      case stmt::output: emit(to_str(eval(*s.value))); break;
      case stmt::if_:
        for (const auto& [cond, body] : s.branches) {
          if (!cond || truthy(eval(*cond))) { exec(body); break; }
        }
        break;
      case stmt::for_: exec_for(s); break;
      case stmt::set: {
        json v = eval(*s.value);
        if (s.targets.size() == 1) { scopes.back()[s.targets[0]] = std::move(v); break; }
        json* ns = lookup(s.targets[0]);
        if (!ns || !ns->is_object()) throw error("cannot set attribute of '" + s.targets[0] + "'" + where(s.line));
        (*ns)[s.targets[1]] = std::move(v);
        break;
      }
      case stmt::break_: throw break_signal{};
      case stmt::continue_: throw continue_signal{};
    }
  }

  void exec_for(const stmt& s) {
    json seq = eval(*s.value);
    json items = json::array();
    if (seq.is_object()) for (auto it = seq.begin(); it != seq.end(); ++it) items.push_back(it.key());
    else if (seq.is_string()) items = apply_filter("list", seq, {}, {});
    else if (seq.is_array()) items = seq;
    else if (!is_undefined(seq) && !seq.is_null()) throw error("value is not iterable" + where(s.line));
    else if (seq.is_null()) throw error("'NoneType' object is not iterable" + where(s.line));

    auto bind = [&](std::map<std::string, json>& scope, const json& item) {
      if (s.targets.size() == 1) { scope[s.targets[0]] = item; return; }
      if (!item.is_array() || item.size() != s.targets.size()) throw error("cannot unpack loop item" + where(s.line));
      for (size_t k = 0; k < s.targets.size(); ++k) scope[s.targets[k]] = item[k];
    };
    if (s.loop_filter) {  // the filter sees the loop variables but not `loop`
      json kept = json::array();
      for (const json& item : items) {
        scopes.emplace_back();
        bind(scopes.back(), item);
        bool keep = truthy(eval(*s.loop_filter));
        scopes.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const size_t n = items.size();
    if (n == 0) { exec(s.else_body); return; }
    for (size_t i = 0; i < n; ++i) {
      if (++iterations > k_max_iterations) throw error("too many loop iterations");
      scopes.emplace_back();
      bind(scopes.back(), items[i]);
      json loop = {{"index", i + 1}, {"index0", i}, {"revindex", n - i}, {"revindex0", n - i - 1},
                   {"first", i == 0}, {"last", i + 1 == n}, {"length", n}};
      loop["previtem"] = i > 0 ? items[i - 1] : undefined();
      loop["nextitem"] = i + 1 < n ? items[i + 1] : undefined();
      scopes.back()["loop"] = std::move(loop);
      bool stop = false;
      try {
        exec(s.body);
      } catch (const break_signal&) {
        stop = true;
      } catch (const continue_signal&) {
      }
      scopes.pop_back();
      if (stop) break;
    }
  }
};

}  // namespace

std::string render(const stmt_list& program, const json& variables, const render_options& options) {
  interpreter in(options);
  in.scopes.emplace_back();
  if (variables.is_object())
    for (auto it = variables.begin(); it != variables.end(); ++it) in.scopes.back()[it.key()] = it.value();
  in.scopes.emplace_back();  // template-level sets shadow the inputs
  try {
    in.exec(program);
  } catch (const break_signal&) {
    throw error("'break' outside a loop");
  } catch (const continue_signal&) {
    throw error("'continue' outside a loop");
  }
  return std::move(in.out);
}

}  // namespace troupe::jinja
