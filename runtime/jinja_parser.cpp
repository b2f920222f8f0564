// Jinja parser: tokens into statements (if/elif/else, for with else and filter, set, break,
// continue) and expressions with jinja2's precedence: conditional < or < and < not < comparison
// < + - < ~ < * / // % < ** < unary < postfix (. [] () | is).
#include "runtime/jinja_ast.h"

namespace troupe::jinja {

namespace {

constexpr int k_max_depth = 256;  // nesting limit, so hostile templates cannot overflow the stack

struct parser {
  explicit parser(const std::vector<token>& tokens) : t(tokens) {}
  const std::vector<token>& t;
  size_t p = 0;
  int depth = 0;

  const token& peek(size_t k = 0) const { return t[std::min(p + k, t.size() - 1)]; }
  [[noreturn]] void fail(const std::string& what) const {
    throw error("syntax error at line " + std::to_string(peek().line) + ": " + what);
  }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).kind == tok::op && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).kind == tok::name && peek(k).text == n; }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "'");
    ++p;
  }
  std::string expect_name() {
    if (peek().kind != tok::name) fail("expected a name");
    return t[p++].text;
  }
  void expect_block_end() {
    if (peek().kind != tok::block_end) fail("expected '%}'");
    ++p;
  }
  struct depth_guard {
    parser& ps;
    explicit depth_guard(parser& p) : ps(p) {
      if (++ps.depth > k_max_depth) ps.fail("nesting too deep");
    }
    ~depth_guard() { --ps.depth; }
  };

  static expr_ptr node(expr::kind_t k, int line) {
    auto e = std::make_unique<expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // ---- statements ----
  // Parses until a block tag whose keyword is in `stops` (left unconsumed) or the end.
  stmt_list parse_body(std::initializer_list<const char*> stops) {
    depth_guard g(*this);
    stmt_list out;
    for (;;) {
      const token& k = peek();
      if (k.kind == tok::end) {
        if (stops.size() != 0) fail("unexpected end of template (missing end tag)");
        return out;
      }
      if (k.kind == tok::text) {
        auto s = std::make_unique<stmt>();
        s->kind = stmt::raw;
        s->text = k.text;
        out.push_back(std::move(s));
        ++p;
      } else if (k.kind == tok::var_begin) {
        ++p;
        auto s = std::make_unique<stmt>();
        s->kind = stmt::output;
        s->line = k.line;
        s->value = parse_expr();
        if (peek().kind != tok::var_end) fail("expected '}}'");
        ++p;
        out.push_back(std::move(s));
      } else if (k.kind == tok::block_begin) {
        const token& kw = peek(1);
        for (const char* stop : stops)
          if (kw.kind == tok::name && kw.text == stop) return out;
        ++p;
        out.push_back(parse_statement());
      } else {
        fail("unexpected token");
      }
    }
  }

  std::unique_ptr<stmt> parse_statement() {
    int line = peek().line;
    std::string kw = expect_name();
    auto s = std::make_unique<stmt>();
    s->line = line;
    if (kw == "if") {
      s->kind = stmt::if_;
      expr_ptr cond = parse_expr();
      expect_block_end();
      for (;;) {
        stmt_list body = parse_body({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(cond), std::move(body));
        ++p;  // block_begin
        std::string next = expect_name();
        if (next == "elif") { cond = parse_expr(); expect_block_end(); continue; }
        if (next == "else") {
          expect_block_end();
          s->branches.emplace_back(nullptr, parse_body({"endif"}));
          p += 2;
        }
        expect_block_end();
        return s;
      }
    }
    if (kw == "for") {
      s->kind = stmt::for_;
      s->targets.push_back(expect_name());
      while (is_op(",")) { ++p; s->targets.push_back(expect_name()); }
      if (!is_name("in")) fail("expected 'in'");
      ++p;
      s->value = parse_or_expr();  // no conditional here: "if" starts the loop filter
      if (is_name("if")) { ++p; s->loop_filter = parse_or_expr(); }
      if (is_name("recursive")) fail("recursive loops are not supported");
      expect_block_end();
      s->body = parse_body({"else", "endfor"});
      ++p;
      if (expect_name() == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"});
        p += 2;
      }
      expect_block_end();
      return s;
    }
    if (kw == "set") {
      s->kind = stmt::set;
      s->targets.push_back(expect_name());
      if (is_op(".")) { ++p; s->targets.push_back(expect_name()); }
      if (!is_op("=")) fail("block 'set' is not supported; use 'set x = ...'");
      ++p;
      s->value = parse_expr();
      expect_block_end();
      return s;
    }
    if (kw == "break" || kw == "continue") {
      s->kind = kw == "break" ? stmt::break_ : stmt::continue_;
      expect_block_end();
      return s;
    }
    fail("unsupported statement '" + kw + "'");
  }

  // ---- expressions ----
  expr_ptr parse_expr() {
    depth_guard g(*this);
    expr_ptr e = parse_or_expr();
    if (is_name("if")) {
      ++p;
      auto c = node(expr::cond, peek().line);
      c->args.push_back(parse_or_expr());  // condition
      c->args.push_back(std::move(e));     // then
      if (is_name("else")) { ++p; c->args.push_back(parse_expr()); }
      return c;
    }
    return e;
  }
  expr_ptr binary(std::string op, expr_ptr a, expr_ptr b) {
    auto e = node(expr::binary, peek().line);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }
  expr_ptr parse_or_expr() {
    expr_ptr e = parse_and();
    while (is_name("or")) { ++p; e = binary("or", std::move(e), parse_and()); }
    return e;
  }
  expr_ptr parse_and() {
    expr_ptr e = parse_not();
    while (is_name("and")) { ++p; e = binary("and", std::move(e), parse_not()); }
    return e;
  }
  expr_ptr parse_not() {
    if (is_name("not")) {
      depth_guard g(*this);
      ++p;
      auto e = node(expr::unary, peek().line);
      e->name = "not";
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  expr_ptr parse_compare() {
    expr_ptr e = parse_add();
    for (;;) {
      if (peek().kind == tok::op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                     peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        std::string op = t[p++].text;
        e = binary(op, std::move(e), parse_add());
      } else if (is_name("in")) {
        ++p;
        e = binary("in", std::move(e), parse_add());
      } else if (is_name("not") && is_name("in", 1)) {
        p += 2;
        e = binary("not in", std::move(e), parse_add());
      } else {
        return e;
      }
    }
  }
  expr_ptr parse_add() {
    expr_ptr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = t[p++].text;
      e = binary(op, std::move(e), parse_concat());
    }
    return e;
  }
  expr_ptr parse_concat() {
    expr_ptr e = parse_mul();
    while (is_op("~")) { ++p; e = binary("~", std::move(e), parse_mul()); }
    return e;
  }
  expr_ptr parse_mul() {
    expr_ptr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = t[p++].text;
      e = binary(op, std::move(e), parse_pow());
    }
    return e;
  }
  expr_ptr parse_pow() {
    expr_ptr e = parse_unary();
    while (is_op("**")) { ++p; e = binary("**", std::move(e), parse_unary()); }
    return e;
  }
  expr_ptr parse_unary() {
    if (is_op("-") || is_op("+")) {
      depth_guard g(*this);
      auto e = node(expr::unary, peek().line);
      e->name = t[p++].text;
      e->args.push_back(parse_unary());
      return e;
    }
    return parse_postfix(parse_primary());
  }

  void parse_call_args(expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().kind == tok::name && is_op("=", 1)) {
        std::string key = t[p].text;
        p += 2;
        e.kwargs.emplace_back(key, parse_expr());
      } else {
        e.args.push_back(parse_expr());
      }
      if (!is_op(",")) break;
      ++p;
    }
    expect_op(")");
  }

  expr_ptr parse_postfix(expr_ptr e) {
    for (;;) {
      int line = peek().line;
      if (is_op(".")) {
        ++p;
        auto a = node(expr::attr, line);
        if (peek().kind == tok::integer) { a->kind = expr::item; a->value = t[p++].value; }
        else a->name = expect_name();
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        ++p;
        e = parse_subscript(std::move(e), line);
      } else if (is_op("(")) {
        auto c = node(expr::call, line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else if (is_op("|")) {
        ++p;
        auto f = node(expr::filter, line);
        f->name = expect_name();
        f->args.push_back(std::move(e));
        if (is_op("(")) parse_call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        ++p;
        auto x = node(expr::test, line);
        if (is_name("not")) { ++p; x->negated = true; }
        x->name = peek().kind == tok::op && (peek().text == "==" || peek().text == "!=") ? t[p++].text : expect_name();
        x->args.push_back(std::move(e));
        if (is_op("(")) parse_call_args(*x);
        else if (peek().kind == tok::string || peek().kind == tok::integer || peek().kind == tok::number)
          x->args.push_back(parse_primary());
        e = std::move(x);
      } else {
        return e;
      }
    }
  }

  expr_ptr parse_subscript(expr_ptr subject, int line) {
    expr_ptr parts[3];
    int n = 0;
    bool is_slice = false;
    for (;;) {
      if (is_op("]")) { ++p; break; }
      if (is_op(":")) {
        ++p;
        is_slice = true;
        if (++n > 2) fail("bad slice");
        continue;
      }
      if (parts[n]) fail("expected ']'");
      parts[n] = parse_expr();
    }
    auto e = node(is_slice ? expr::slice : expr::item, line);
    e->args.push_back(std::move(subject));
    if (!is_slice) {
      if (!parts[0]) fail("empty subscript");
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    for (auto& part : parts) e->args.push_back(part ? std::move(part) : nullptr);
    return e;
  }

  expr_ptr parse_primary() {
    depth_guard g(*this);
    const token& k = peek();
    int line = k.line;
    if (k.kind == tok::string) {
      auto e = node(expr::literal, line);
      std::string s;
      while (peek().kind == tok::string) s += t[p++].text;  // adjacent literals concatenate
      e->value = s;
      return e;
    }
    if (k.kind == tok::integer || k.kind == tok::number) {
      auto e = node(expr::literal, line);
      e->value = t[p++].value;
      return e;
    }
    if (k.kind == tok::name) {
      ++p;
      auto e = node(expr::literal, line);
      if (k.text == "true" || k.text == "True") e->value = true;
      else if (k.text == "false" || k.text == "False") e->value = false;
      else if (k.text == "none" || k.text == "None") e->value = nullptr;
      else { e->kind = expr::var; e->name = k.text; }
      return e;
    }
    if (is_op("(")) {
      ++p;
      if (is_op(")")) { ++p; auto e = node(expr::list, line); return e; }
      expr_ptr e = parse_expr();
      if (is_op(",")) {  // a tuple: treated as a list
        auto l = node(expr::list, line);
        l->args.push_back(std::move(e));
        while (is_op(",")) {
          ++p;
          if (is_op(")")) break;
          l->args.push_back(parse_expr());
        }
        e = std::move(l);
      }
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      ++p;
      auto l = node(expr::list, line);
      while (!is_op("]")) {
        l->args.push_back(parse_expr());
        if (!is_op(",")) break;
        ++p;
      }
      expect_op("]");
      return l;
    }
    if (is_op("{")) {
      ++p;
      auto d = node(expr::dict, line);
      while (!is_op("}")) {
        d->args.push_back(parse_expr());
        expect_op(":");
        d->args.push_back(parse_expr());
        if (!is_op(",")) break;
        ++p;
      }
      expect_op("}");
      return d;
    }
    fail("unexpected '" + k.text + "' in expression");
  }
};

}  // namespace

stmt_list parse(const std::vector<token>& tokens) {
  parser ps(tokens);
  stmt_list program = ps.parse_body({});
  return program;
}

}  // namespace troupe::jinja
