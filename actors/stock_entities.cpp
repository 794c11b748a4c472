// The entity types `ft-node` ships: a counter and a key-value map, both
// speaking the text protocol (`(command, args) -> JSON text`), so they can
// be driven from ftctl and HTTP and serve as examples for user types.

#include <charconv>
#include <map>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include <nlohmann/json.hpp>

#include "ft/cluster.hpp"
#include "ft/error.hpp"

namespace ft {

namespace {

caf::error bad_args(const std::string& type, const std::string& usage) {
  return make_error(errc::invalid_argument, type + ": usage: " + usage);
}

std::optional<int64_t> parse_int(const std::string& x) {
  int64_t result = 0;
  auto first = x.data();
  auto last = x.data() + x.size();
  if (first != last && *first == '+')
    ++first;
  auto [ptr, ec] = std::from_chars(first, last, result);
  if (ec != std::errc{} || ptr != last || first == last)
    return std::nullopt;
  return result;
}

/// `counter`: one integer.
struct counter_state {
  int64_t value = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, counter_state& x) {
  return f(caf::meta::type_name("ft.counter_state"), x.value);
}

caf::behavior counter_behavior(checkpointed<counter_state>& ctx) {
  return {
    [&ctx](const std::string& cmd,
           const text_args& args) -> caf::result<std::string> {
      auto& st = ctx.state();
      if (cmd == "get") {
        if (!args.empty())
          return bad_args("counter", "get");
        return std::to_string(st.value);
      }
      if (cmd == "add") {
        auto n = args.size() == 1 ? parse_int(args[0]) : std::nullopt;
        if (!n)
          return bad_args("counter", "add N (an integer), got "
                                       + std::to_string(args.size())
                                       + " argument(s)");
        st.value += *n;
        return std::to_string(st.value);
      }
      if (cmd == "crash") {
        // Fault injection (demos, tests, `ftctl`): the entity dies; its
        // supervisor restarts it from its last snapshot.
        throw std::runtime_error("counter: crash requested");
      }
      return make_error(errc::invalid_argument,
                        "counter: unknown command '" + cmd
                          + "' (known: add N, get, crash)");
    },
  };
}

/// `kv`: a string map.
struct kv_state {
  std::map<std::string, std::string> entries;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_state& x) {
  return f(caf::meta::type_name("ft.kv_state"), x.entries);
}

caf::behavior kv_behavior(checkpointed<kv_state>& ctx) {
  using json = nlohmann::json;
  return {
    [&ctx](const std::string& cmd,
           const text_args& args) -> caf::result<std::string> {
      auto& m = ctx.state().entries;
      if (cmd == "put") {
        if (args.size() != 2)
          return bad_args("kv", "put KEY VALUE");
        m[args[0]] = args[1];
        return std::string{"null"};
      }
      if (cmd == "get") {
        if (args.size() != 1)
          return bad_args("kv", "get KEY");
        auto i = m.find(args[0]);
        return i == m.end() ? std::string{"null"} : json(i->second).dump();
      }
      if (cmd == "delete") {
        if (args.size() != 1)
          return bad_args("kv", "delete KEY");
        return std::string{m.erase(args[0]) != 0 ? "true" : "false"};
      }
      if (cmd == "keys") {
        auto arr = json::array();
        for (auto& kvp : m)
          arr.push_back(kvp.first);
        return arr.dump();
      }
      return make_error(errc::invalid_argument,
                        "kv: unknown command '" + cmd
                          + "' (known: put K V, get K, delete K, keys)");
    },
  };
}

} // namespace

std::vector<std::string> entity_types::names() const {
  std::vector<std::string> result;
  for (auto& kvp : factories_)
    result.push_back(kvp.first);
  return result;
}

void add_stock_entity_types(entity_types& types) {
  types.add<counter_state>("counter", counter_behavior);
  types.add<kv_state>("kv", kv_behavior);
}

} // namespace ft
