#include "ft/fault_handler.hpp"

#include <map>
#include <mutex>

#include "ft/error.hpp"

namespace ft {

fault_handler::~fault_handler() {
  // nop
}

namespace {

struct registry {
  std::mutex mtx;
  std::map<std::string, fault_handler_factory> factories;
};

registry& global_registry() {
  static registry instance;
  return instance;
}

} // namespace

void register_fault_handler(const std::string& name,
                            fault_handler_factory factory) {
  auto& reg = global_registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  reg.factories[name] = std::move(factory);
}

caf::expected<std::shared_ptr<fault_handler>>
make_fault_handler(const std::string& name) {
  fault_handler_factory factory;
  {
    auto& reg = global_registry();
    std::lock_guard<std::mutex> guard{reg.mtx};
    auto i = reg.factories.find(name);
    if (i == reg.factories.end())
      return make_error(errc::unknown_fault_handler, "strategy = " + name);
    factory = i->second;
  }
  auto result = factory();
  if (!result)
    return make_error(errc::unknown_fault_handler,
                      "factory for " + name + " returned null");
  return result;
}

std::vector<std::string> registered_fault_handlers() {
  auto& reg = global_registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  std::vector<std::string> result;
  for (auto& kvp : reg.factories)
    result.push_back(kvp.first);
  return result;
}

bool has_fault_handler(const std::string& name) {
  auto& reg = global_registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  return reg.factories.count(name) > 0;
}

} // namespace ft
