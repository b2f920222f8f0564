// troupe::extensions (registration in code) and the static registry of named extensions.
#include <algorithm>
#include <map>
#include <mutex>

#include "troupe/extension.h"

namespace troupe {

extensions& extensions::add_filter(std::string name, filter_factory make, std::chrono::milliseconds timeout) {
  filters_.push_back({std::move(name), std::move(make), timeout});
  return *this;
}

extensions& extensions::add_observer(std::string name, observer_factory make) {
  observers_.push_back({std::move(name), std::move(make)});
  return *this;
}

extensions& extensions::add_route(std::string name, std::string method, std::string path, route_factory make,
                                  std::chrono::milliseconds timeout, bool needs_auth) {
  routes_.push_back({std::move(name), std::move(method), std::move(path), std::move(make), timeout, needs_auth});
  return *this;
}

extensions& extensions::merge(const extensions& other) {
  filters_.insert(filters_.end(), other.filters_.begin(), other.filters_.end());
  observers_.insert(observers_.end(), other.observers_.begin(), other.observers_.end());
  routes_.insert(routes_.end(), other.routes_.begin(), other.routes_.end());
  return *this;
}

namespace {

struct registry_data {
  std::mutex mu;
  std::map<std::string, extension_installer> installers;
};

registry_data& registry() {
  static registry_data r;  // constructed on first use: safe from other static initializers
  return r;
}

}  // namespace

bool extension_registry::add(const std::string& name, extension_installer install) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.installers.emplace(name, std::move(install)).second;
}

std::vector<std::string> extension_registry::names() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> out;
  for (const auto& [name, fn] : r.installers) out.push_back(name);
  return out;
}

result<extensions> extension_registry::resolve(const std::vector<std::string>& names) {
  extensions set;
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const std::string& name : names) {
    auto it = r.installers.find(name);
    if (it == r.installers.end()) {
      std::string known;
      for (const auto& [n, fn] : r.installers) known += (known.empty() ? "" : ", ") + n;
      return make_error(errc::invalid_argument, "unknown extension '" + name + "' (linked into this binary: " +
                                                    (known.empty() ? std::string("none") : known) + ")");
    }
    it->second(set);
  }
  return set;
}

}  // namespace troupe
