// A node's configuration: `host:port` parsing, validation, the YAML file and
// `ft-node`'s command line. Plain data, so the node, `ft-launch` and
// `ftctl doctor` agree on every field and every error message.

#include "ft/node_config.hpp"

#include "breaker_config_yaml.hpp"
#include "fault_tolerance_yaml.hpp"
#include "watchdog_yaml.hpp"
#include "yaml_reader.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include <CLI/CLI.hpp>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"

namespace ft {

using detail::context_of;

// -- host:port ----------------------------------------------------------------

namespace {


/// `invalid_config` with `prefix` put in front of the context of `err`.
caf::error with_prefix(const caf::error& err, const std::string& prefix) {
  return make_error(errc::invalid_config, prefix + context_of(err));
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
         || c == '\v';
}

std::string trim(const std::string& x) {
  size_t first = 0;
  while (first < x.size() && is_space(x[first]))
    ++first;
  auto last = x.size();
  while (last > first && is_space(x[last - 1]))
    --last;
  return x.substr(first, last - first);
}

} // namespace

caf::expected<host_port> parse_host_port(const std::string& text,
                                         const std::string& what,
                                         bool allow_zero) {
  auto fail = [&](const std::string& why) {
    return make_error(errc::invalid_config,
                      what + " = '" + text + "' is not host:port (" + why
                        + ")");
  };
  host_port result;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    // `[::1]:4000`: an IPv6 address holds colons of its own.
    auto close = text.find(']');
    if (close == std::string::npos)
      return fail("no ']' after the IPv6 address");
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return fail("no ':port' after ']'");
    result.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos)
      return fail("no ':'");
    result.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (result.host.find(':') != std::string::npos)
      return fail("write an IPv6 host in brackets, [::1]:4000");
  }
  if (result.host.empty())
    return fail("no host");
  for (auto c : result.host)
    if (is_space(c))
      return fail("whitespace in the host");
  if (port.empty() || port.size() > 5
      || port.find_first_not_of("0123456789") != std::string::npos)
    return fail("the port is not a number");
  auto num = std::stoi(port);
  if (num > 65535 || (num == 0 && !allow_zero))
    return fail(std::string{"the port must be in "}
                + (allow_zero ? "0" : "1") + "..65535");
  result.port = static_cast<uint16_t>(num);
  return result;
}

std::string to_string(const host_port& x) {
  if (x.host.find(':') != std::string::npos)
    return "[" + x.host + "]:" + std::to_string(x.port);
  return x.host + ":" + std::to_string(x.port);
}

// -- defaults and validation --------------------------------------------------

fault_tolerance_config node_config::default_entity_fault_tolerance() {
  // An entity's caller should not see an answer whose effect a crash of
  // the home can undo: every message is checkpointed before its reply.
  fault_tolerance_config x;
  x.strategy = ft_strategy::checkpoint;
  x.checkpoint_every = 1;
  x.reply_after_checkpoint = true;
  x.checkpoint_on_stop = true;
  // Every message is a snapshot: without retention the store only grows.
  x.keep_snapshots = 8;
  return x;
}

watchdog_config node_config::default_node_watchdog() {
  // The node's own watchdog: its workers are the node's pulse and the
  // watchdogs user code registers with it, so "node" names it at theirs.
  watchdog_config x;
  x.name = "node";
  return x;
}

namespace {

/// Longer names make unwieldy keys in logs, metrics and directories.
constexpr size_t max_name_length = 64;

/// More copies than this cost every write more than they protect.
constexpr int max_replication_factor = 16;

bool valid_name(const std::string& x) {
  if (x.empty() || x.size() > max_name_length)
    return false;
  for (auto c : x)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_'
        && c != '.')
      return false;
  return true;
}

/// `--label K=V` splits at the first `=`, so a key cannot hold one; nor
/// whitespace, which no one can type in a label reliably.
caf::error check_label_key(const std::string& key, const std::string& value) {
  bool ok = !key.empty() && key.find('=') == std::string::npos;
  for (auto c : key)
    ok = ok && !is_space(c);
  if (ok)
    return caf::none;
  return make_error(errc::invalid_config,
                    "labels['" + key + "'] = '" + value
                      + "' (keys must be non-empty, without '=' or "
                        "whitespace)");
}

std::string quoted(const std::string& x) {
  return "'" + x + "'";
}

} // namespace

caf::error validate(const node_config& x) {
  // Context `field = value (why)`: the YAML reader finds the field's line
  // from the first word (`section.field` for a section's field).
  auto fail = [](const std::string& field, const std::string& value,
                 const std::string& why) {
    return make_error(errc::invalid_config,
                      field + " = " + value + " (" + why + ")");
  };
  if (!valid_name(x.name))
    return fail("name", quoted(x.name),
                "required: 1..64 letters, digits, '-', '_' or '.'");
  if (x.host.empty())
    return fail("host", "''", "must be set");
  if (x.http_host.empty())
    return fail("http_host", "''", "must be set");
  if (x.port != 0 && x.port == x.http_port)
    return fail("http_port", std::to_string(x.http_port),
                "must differ from port " + std::to_string(x.port));
  for (size_t i = 0; i < x.seeds.size(); ++i) {
    auto field = "seeds[" + std::to_string(i) + "]";
    if (auto hp = parse_host_port(to_string(x.seeds[i]), field); !hp)
      return std::move(hp.error());
  }
  for (auto& [key, value] : x.labels)
    if (auto err = check_label_key(key, value))
      return err;
  if (auto err = validate(x.failure_detector))
    return with_prefix(err, "failure_detector.");
  // A node must stop serving before its peers may declare it down and
  // resume its entities elsewhere, or two homes serve one entity.
  auto silence = x.failure_detector.heartbeat_interval
                 + x.failure_detector.acceptable_heartbeat_pause;
  if (x.lease <= caf::timespan{0})
    return fail("lease", render_seconds(x.lease), "must be > 0");
  if (x.lease >= silence)
    return fail("lease", render_seconds(x.lease),
                "must be below failure_detector.heartbeat_interval + "
                "failure_detector.acceptable_heartbeat_pause = "
                  + render_seconds(silence));
  if (x.join_timeout <= caf::timespan{0})
    return fail("join_timeout", render_seconds(x.join_timeout), "must be > 0");
  if (!parse_placement_strategy(to_string(x.placement)))
    return fail("placement", std::to_string(static_cast<int>(x.placement)),
                "must be least_loaded, label_aware or pinned");
  auto& r = x.replication;
  if (r.factor < 0 || r.factor > max_replication_factor)
    return fail("replication.factor", std::to_string(r.factor),
                "must be in 0.." + std::to_string(max_replication_factor)
                  + "; 0 = off");
  if (r.min_acks < 0 || r.min_acks > r.factor)
    return fail("replication.min_acks", std::to_string(r.min_acks),
                "must be in 0..replication.factor = "
                  + std::to_string(r.factor));
  if (r.timeout <= caf::timespan{0})
    return fail("replication.timeout", render_seconds(r.timeout),
                "must be > 0");
  if (auto err = validate(x.fault_tolerance))
    return with_prefix(err, "fault_tolerance.");
  if (auto err = validate(x.watchdog))
    return with_prefix(err, "watchdog.");
  if (auto err = validate(x.alerts))
    return err;
  // TLS is all or nothing: a node with half a setup would silently talk
  // in plain text.
  std::pair<const char*, const std::string*> tls[] = {
    {"tls.cert_file", &x.tls_cert_file},
    {"tls.key_file", &x.tls_key_file},
    {"tls.ca_file", &x.tls_ca_file}};
  size_t tls_set = 0;
  for (auto& [field, value] : tls)
    tls_set += value->empty() ? 0 : 1;
  if (tls_set != 0 && tls_set != 3)
    for (auto& [field, value] : tls)
      if (value->empty())
        return fail(field, "''",
                    "TLS needs cert_file, key_file and ca_file, or none");
  return caf::none;
}

// -- YAML ---------------------------------------------------------------------

namespace {

using detail::yaml_reader;

/// The node fields' mapping (the document, or the value of its `node:` key)
/// and, with `node:`, the document around it, where the sections may stand
/// too.
struct node_document {
  YAML::Node doc;
  YAML::Node fields;
  bool nested = false;

  /// The value of `key` among the node fields or (nested) at the top level;
  /// an invalid node (false) when neither has it.
  YAML::Node get(const std::string& key) const {
    const YAML::Node& f = fields;
    if (f.IsMap())
      if (auto x = f[key])
        return x;
    // Not nested, `doc` is `fields` (or null): this is the missing node.
    const YAML::Node& d = doc;
    return d[key];
  }
};

/// `source:line: section.field ...` as `invalid_config`.
caf::error in_section(const caf::error& err, const std::string& source,
                      const std::string& section) {
  return detail::in_section(err, source, section, errc::invalid_config);
}

/// Reads the section `name` with `read` (which sees it as a mapping);
/// nothing when the document lacks it or leaves it empty. Errors name
/// `name.field`.
template <class Read>
caf::error read_section(const node_document& d, const std::string& source,
                        const std::string& name, Read read) {
  const YAML::Node node = d.get(name);
  if (!node || node.IsNull())
    return caf::none;
  yaml_reader in{node, source, errc::invalid_config};
  if (!node.IsMap())
    return in.fail(node, name, "must be a mapping");
  auto err = read(in);
  return err ? in_section(err, source, name) : caf::none;
}

caf::error read_port(const yaml_reader& in, const std::string& field,
                     uint16_t& dst) {
  if (!in.has(field))
    return caf::none;
  auto x = in.integer(field);
  if (!x)
    return x.error();
  if (*x < 0 || *x > 65535)
    return in.fail(in.root()[field], field,
                   "= " + std::to_string(*x)
                     + " is out of range (0..65535; 0 picks a free port)");
  dst = static_cast<uint16_t>(*x);
  return caf::none;
}

caf::error read_seeds(const yaml_reader& in, std::vector<host_port>& dst) {
  if (!in.has("seeds"))
    return caf::none;
  const YAML::Node node = in.root()["seeds"];
  std::vector<host_port> result;
  if (node.IsNull()) {
    dst.clear();
    return caf::none;
  }
  if (!node.IsSequence())
    return in.fail(node, "seeds", "must be a list of host:port");
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    auto field = "seeds[" + std::to_string(i) + "]";
    if (!item.IsScalar())
      return in.fail(item, field, "must be a host:port string");
    auto hp = parse_host_port(item.Scalar(), field);
    if (!hp)
      return make_error(errc::invalid_config,
                        in.where(item) + ": " + context_of(hp.error()));
    result.emplace_back(std::move(*hp));
  }
  dst = std::move(result);
  return caf::none;
}

caf::error read_labels(const yaml_reader& in,
                       std::map<std::string, std::string>& dst) {
  if (!in.has("labels"))
    return caf::none;
  const YAML::Node node = in.root()["labels"];
  std::map<std::string, std::string> result;
  if (!node.IsNull() && !node.IsMap())
    return in.fail(node, "labels", "must be a mapping of scalars (gpu: true)");
  if (node.IsMap()) {
    for (auto kvp : node) {
      if (!kvp.first.IsScalar())
        return in.fail(kvp.first, "labels", "keys must be scalars");
      auto key = kvp.first.Scalar();
      auto field = "labels['" + key + "']";
      // (At the key's line: an empty value's position is the next line.)
      if (!kvp.second.IsScalar())
        return in.fail(kvp.first, field, "must be a scalar");
      if (auto err = check_label_key(key, kvp.second.Scalar()))
        return make_error(errc::invalid_config,
                          in.where(kvp.first) + ": " + context_of(err));
      result[key] = kvp.second.Scalar();
    }
  }
  dst = std::move(result);
  return caf::none;
}

caf::error read_placement(const yaml_reader& in, placement_strategy& dst) {
  if (!in.has("placement"))
    return caf::none;
  auto v = in.text("placement");
  if (!v)
    return v.error();
  auto s = parse_placement_strategy(*v);
  if (!s)
    return in.fail(in.root()["placement"], "placement",
                   "= '" + *v
                     + "' is not least_loaded, label_aware or pinned");
  dst = *s;
  return caf::none;
}

caf::error read_failure_detector(const yaml_reader& in,
                                 failure_detector_config& x) {
  if (auto err = in.check_known({"kind", "heartbeat_interval", "threshold",
                                 "max_sample_size", "min_std_deviation",
                                 "acceptable_heartbeat_pause"}))
    return err;
  if (in.has("kind")) {
    auto v = in.text("kind");
    if (!v)
      return v.error();
    auto k = parse_detector_kind(*v);
    if (!k)
      return in.fail(in.root()["kind"], "kind",
                     "= '" + *v + "' is not phi_accrual or timeout");
    x.kind = *k;
  }
  for (auto [field, dst] :
       {std::pair<const char*, caf::timespan*>{"heartbeat_interval",
                                               &x.heartbeat_interval},
        std::pair<const char*, caf::timespan*>{"min_std_deviation",
                                               &x.min_std_deviation},
        std::pair<const char*, caf::timespan*>{"acceptable_heartbeat_pause",
                                               &x.acceptable_heartbeat_pause}})
    if (auto err = in.read_optional(field, *dst))
      return err;
  if (auto err = in.read_optional("threshold", x.threshold))
    return err;
  if (in.has("max_sample_size")) {
    auto v = in.integer("max_sample_size");
    if (!v)
      return v.error();
    if (*v < 0)
      return in.fail(in.root()["max_sample_size"], "max_sample_size",
                     "= " + std::to_string(*v) + " (must be >= 2)");
    x.max_sample_size = static_cast<size_t>(*v);
  }
  return caf::none;
}

caf::error read_replication(const yaml_reader& in, replication_config& x) {
  if (auto err = in.check_known({"factor", "min_acks", "timeout"}))
    return err;
  if (auto err = in.read_optional("factor", x.factor))
    return err;
  if (auto err = in.read_optional("min_acks", x.min_acks))
    return err;
  return in.read_optional("timeout", x.timeout);
}

caf::error read_alerts(const yaml_reader& in, alert_config& x) {
  if (auto err = in.check_known({"min_severity", "command", "url",
                                 "max_alerts", "interval", "timeout"}))
    return err;
  if (auto err = in.read_optional("min_severity", x.min_severity))
    return err;
  if (auto err = in.read_optional("command", x.command))
    return err;
  if (auto err = in.read_optional("url", x.url))
    return err;
  if (auto err = in.read_optional("max_alerts", x.max_alerts))
    return err;
  if (auto err = in.read_optional("interval", x.interval))
    return err;
  return in.read_optional("timeout", x.timeout);
}

caf::error read_tls(const yaml_reader& in, node_config& x) {
  if (auto err = in.check_known({"cert_file", "key_file", "ca_file"}))
    return err;
  if (auto err = in.read_optional("cert_file", x.tls_cert_file))
    return err;
  if (auto err = in.read_optional("key_file", x.tls_key_file))
    return err;
  return in.read_optional("ca_file", x.tls_ca_file);
}

/// `breakers: {default: {...}, SCOPE: {...}}`: each mapping through the
/// breaker reader, its errors as `SCOPE.field` (`read_section` adds
/// `breakers.`).
caf::error read_breakers(const yaml_reader& in, const std::string& source,
                         node_config& x) {
  for (auto kvp : in.root()) {
    auto scope = kvp.first.as<std::string>();
    if (scope.empty())
      return in.fail(kvp.first, "scope", "must not be empty");
    if (!kvp.second.IsNull() && !kvp.second.IsMap())
      return in.fail(kvp.second, scope, "must be a mapping");
    breaker_config cfg;
    if (auto err = detail::read_breaker_config(kvp.second, source, cfg))
      return detail::in_section(err, source, scope, errc::invalid_config);
    if (scope == "default")
      x.breaker_defaults = std::move(cfg);
    else
      x.breaker_scopes[scope] = std::move(cfg);
  }
  return caf::none;
}

/// The sections: keys that may stand at the top level next to `node:`.
const std::set<std::string> section_keys = {"failure_detector", "replication",
                                            "fault_tolerance", "watchdog",
                                            "alerts", "breakers"};

/// The `watchdog:` section through the watchdog's own reader (so the node
/// and a standalone watchdog file accept the same fields and report the
/// same errors). A section that leaves `name` out keeps the node's.
caf::error read_watchdog(const node_document& d, const std::string& source,
                         watchdog_config& x) {
  return read_section(d, source, "watchdog", [&](const yaml_reader& sub) {
    watchdog_config parsed;
    if (auto err = detail::read_watchdog_config(sub.root(), source, parsed))
      return err;
    if (!sub.has("name"))
      parsed.name = x.name;
    x = std::move(parsed);
    return caf::error{};
  });
}

caf::error read_fields(const node_document& d, const std::string& source,
                       node_config& x) {
  yaml_reader in{d.fields, source, errc::invalid_config};
  if (auto err = in.check_known(
        {"name", "host", "port", "seeds", "http_host", "http_port",
         "data_dir", "labels", "cluster_secret_file", "failure_detector",
         "lease", "join_timeout", "placement", "rebalance_on_join",
         "replication", "fault_tolerance", "tls", "watchdog", "alerts",
         "breakers"}))
    return err;
  for (auto [field, dst] :
       {std::pair<const char*, std::string*>{"name", &x.name},
        std::pair<const char*, std::string*>{"host", &x.host},
        std::pair<const char*, std::string*>{"http_host", &x.http_host},
        std::pair<const char*, std::string*>{"data_dir", &x.data_dir},
        std::pair<const char*, std::string*>{"cluster_secret_file",
                                             &x.cluster_secret_file}})
    if (auto err = in.read_optional(field, *dst))
      return err;
  if (auto err = read_port(in, "port", x.port))
    return err;
  if (auto err = read_port(in, "http_port", x.http_port))
    return err;
  if (auto err = read_seeds(in, x.seeds))
    return err;
  if (auto err = read_labels(in, x.labels))
    return err;
  if (auto err = in.read_optional("lease", x.lease))
    return err;
  if (auto err = in.read_optional("join_timeout", x.join_timeout))
    return err;
  if (auto err = in.read_optional("rebalance_on_join", x.rebalance_on_join))
    return err;
  if (auto err = read_placement(in, x.placement))
    return err;
  if (auto err = read_section(d, source, "tls", [&](const yaml_reader& sub) {
        return read_tls(sub, x);
      }))
    return err;
  if (auto err = read_section(d, source, "failure_detector",
                              [&](const yaml_reader& sub) {
                                return read_failure_detector(
                                  sub, x.failure_detector);
                              }))
    return err;
  if (auto err = read_section(d, source, "replication",
                              [&](const yaml_reader& sub) {
                                return read_replication(sub, x.replication);
                              }))
    return err;
  if (auto err = read_watchdog(d, source, x.watchdog))
    return err;
  if (auto err = read_section(d, source, "alerts", [&](const yaml_reader& sub) {
        return read_alerts(sub, x.alerts);
      }))
    return err;
  if (auto err = read_section(d, source, "breakers",
                              [&](const yaml_reader& sub) {
                                return read_breakers(sub, source, x);
                              }))
    return err;
  // The shared reader checks its own keys and validates the section over
  // the entity defaults x holds.
  return read_section(d, source, "fault_tolerance",
                      [&](const yaml_reader& sub) {
                        return detail::read_fault_tolerance(sub.root(), source,
                                                            x.fault_tolerance);
                      });
}

/// The node at `keys[i..]` below `at`: exactly, or (`exact` false) the
/// deepest that exists. A key `[N]` indexes a list. (Returned, never
/// reassigned: assigning a YAML::Node writes into the document.)
std::optional<YAML::Node> descend(const YAML::Node& at,
                                  const std::vector<std::string>& keys,
                                  size_t i, bool exact) {
  if (i == keys.size())
    return at;
  auto& key = keys[i];
  auto is_index = key.size() > 2 && key.front() == '['
                  && key.find_first_not_of("0123456789", 1) == key.size() - 1;
  if (is_index && at.IsSequence()) {
    auto idx = std::stoul(key.substr(1, key.size() - 2));
    if (idx < at.size())
      return descend(at[idx], keys, i + 1, exact);
  } else if (!is_index && at.IsMap()) {
    if (const YAML::Node next = at[key])
      return descend(next, keys, i + 1, exact);
  }
  if (exact)
    return std::nullopt;
  return at;
}

/// Splits `replication.min_acks` or `seeds[1]` into keys (`[1]` stays one
/// key); `labels['a b']` stops at its quote (the labels map is close
/// enough).
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> keys;
  std::string cur;
  for (size_t i = 0; i < path.size(); ++i) {
    auto c = path[i];
    if (c == '.' || c == '[') {
      if (!cur.empty())
        keys.push_back(cur);
      cur.clear();
      if (c == '[') {
        auto close = path.find(']', i);
        if (close == std::string::npos || path[i + 1] == '\'')
          return keys;
        keys.push_back(path.substr(i, close - i + 1));
        i = close;
      }
    } else {
      cur += c;
    }
  }
  if (!cur.empty())
    keys.push_back(cur);
  return keys;
}

/// Points an error of `validate` (context `field = value ...`, the field
/// maybe `section.field` or `seeds[N]`) at the line of that field; when the
/// document does not set it, at a field it was checked against
/// (`replication.factor` for `replication.min_acks`, the failure detector's
/// timing for `lease`), else at its section.
caf::error locate(const node_document& d, const std::string& source,
                  const caf::error& err) {
  auto ctx = context_of(err);
  if (ctx.empty())
    return err;
  auto field = ctx.substr(0, ctx.find(' '));
  auto find = [&](const std::string& path,
                  bool exact) -> std::optional<YAML::Node> {
    auto keys = split_path(path);
    if (keys.empty())
      return std::nullopt;
    const YAML::Node top = d.get(keys.front());
    if (!top)
      return std::nullopt;
    return descend(top, keys, 1, exact);
  };
  std::vector<std::string> fallbacks;
  if (field == "lease")
    fallbacks = {"failure_detector.heartbeat_interval",
                 "failure_detector.acceptable_heartbeat_pause"};
  else if (field == "replication.min_acks")
    fallbacks = {"replication.factor"};
  else if (field == "http_port")
    fallbacks = {"port"};
  auto node = find(field, true);
  for (size_t i = 0; !node && i < fallbacks.size(); ++i)
    node = find(fallbacks[i], true);
  if (!node)
    node = find(field, false);
  auto where = source;
  if (node) {
    yaml_reader in{*node, source, errc::invalid_config};
    where = in.where(*node);
  }
  return caf::error{err.code(), err.category(),
                    caf::make_message(where + ": " + ctx)};
}

/// Reads a document; `name_required` false accepts a document without a
/// name (the command line may give it) and validates everything else.
caf::expected<node_config> parse_document(const std::string& text,
                                          const std::string& source,
                                          bool name_required) {
  auto loaded = detail::load_mapping(text, source, errc::invalid_config,
                                     "node settings");
  if (!loaded)
    return loaded.error();
  node_config result;
  try {
    const YAML::Node& doc = *loaded;
    bool nested = doc.IsMap() && doc["node"];
    const node_document d{doc, nested ? doc["node"] : doc, nested};
    if (nested) {
      const YAML::Node& fields = d.fields;
      yaml_reader top{doc, source, errc::invalid_config};
      auto known = section_keys;
      known.insert("node");
      if (auto err = top.check_known(known))
        return err;
      if (!fields.IsNull() && !fields.IsMap())
        return top.fail(fields, "node", "must be a mapping");
      for (auto& key : section_keys)
        if (fields.IsMap() && fields[key] && doc[key])
          return top.fail(doc[key], key,
                          "is given both under node: and at the top level");
    }
    if (doc.IsMap())
      if (auto err = read_fields(d, source, result))
        return err;
    auto check = result;
    if (!name_required && check.name.empty())
      check.name = "unnamed"; // checks all else; the caller checks the name
    if (auto err = validate(check))
      return locate(d, source, err);
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, errc::invalid_config);
  }
  return result;
}

/// Reads the file at `path`; relative paths in it are relative to its
/// directory.
caf::expected<node_config> read_file(const std::string& path,
                                     bool name_required) {
  std::ifstream in{path};
  if (!in)
    return make_error(errc::invalid_config,
                      path + ": cannot open file (" + std::strerror(errno)
                        + ")");
  std::stringstream buf;
  buf << in.rdbuf();
  auto result = parse_document(buf.str(), path, name_required);
  if (!result)
    return result;
  // A config file names its data and secrets next to itself, wherever the
  // node is started from.
  auto dir = std::filesystem::path{path}.parent_path();
  if (!dir.empty())
    for (auto* file : {&result->data_dir, &result->cluster_secret_file,
                       &result->tls_cert_file, &result->tls_key_file,
                       &result->tls_ca_file})
      if (!file->empty() && std::filesystem::path{*file}.is_relative())
        *file = (dir / *file).string();
  return result;
}

} // namespace

caf::expected<node_config> node_config_from_yaml(const std::string& text,
                                                 const std::string& source) {
  return parse_document(text, source, true);
}

caf::expected<node_config> node_config_from_file(const std::string& path) {
  return read_file(path, true);
}

caf::expected<std::string> read_cluster_secret(const node_config& x) {
  if (x.cluster_secret_file.empty())
    return std::string{};
  auto& path = x.cluster_secret_file;
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::invalid_config,
                      "cluster_secret_file = '" + path + "' cannot be read ("
                        + std::strerror(errno) + ")");
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return make_error(errc::invalid_config,
                      "cluster_secret_file = '" + path + "' cannot be read");
  auto secret = buf.str();
  while (!secret.empty() && is_space(secret.back()))
    secret.pop_back();
  if (secret.empty())
    return make_error(errc::invalid_config,
                      "cluster_secret_file = '" + path
                        + "' is empty (a secret must not be)");
  return secret;
}

// -- command line -------------------------------------------------------------

namespace {

/// `150ms`, `2s` or plain seconds (`0.5`).
std::optional<caf::timespan> parse_duration(const std::string& text) {
  auto num = text;
  double scale = 1.0;
  auto ends_with = [&](const char* suffix) {
    auto n = std::strlen(suffix);
    return num.size() > n && num.compare(num.size() - n, n, suffix) == 0;
  };
  if (ends_with("ms")) {
    num.resize(num.size() - 2);
    scale = 1e-3;
  } else if (ends_with("s")) {
    num.resize(num.size() - 1);
  }
  if (num.empty() || !(std::isdigit(static_cast<unsigned char>(num[0]))
                       || num[0] == '.'))
    return std::nullopt;
  try {
    size_t pos = 0;
    auto x = std::stod(num, &pos);
    if (pos != num.size() || !std::isfinite(x) || x < 0 || x * scale > 1e9)
      return std::nullopt;
    // Rounded in the unit given, so `1.5ms` is 1500 us, not 1499.999.
    if (scale != 1.0)
      return std::chrono::round<caf::timespan>(
        std::chrono::duration<double, std::milli>(x));
    return std::chrono::round<caf::timespan>(std::chrono::duration<double>(x));
  } catch (std::exception&) {
    return std::nullopt;
  }
}

/// A whole number within `min..max`.
std::optional<long long> parse_integer(const std::string& text, long long min,
                                       long long max) {
  if (text.empty() || is_space(text.front()))
    return std::nullopt;
  try {
    size_t pos = 0;
    auto x = std::stoll(text, &pos);
    if (pos != text.size() || x < min || x > max)
      return std::nullopt;
    return x;
  } catch (std::exception&) {
    return std::nullopt;
  }
}

/// One option of `ft-node` that overrides a config field.
struct cli_option {
  /// The CLI11 name, e.g. `--port`.
  const char* flag;
  /// The field as `validate` names it, so its errors name the option.
  const char* field;
  const char* type;
  const char* help;
  /// Applies every value given (in order); errors name the option.
  caf::error (*apply)(node_config&, const std::string& flag,
                      const std::vector<std::string>& values);
};

caf::error bad_value(const std::string& flag, const std::string& value,
                     const std::string& what) {
  return make_error(errc::invalid_config,
                    flag + " = '" + value + "' is not " + what);
}

/// The last of repeated values counts, as with most command lines.
template <std::string node_config::*Field>
caf::error set_text(node_config& x, const std::string&,
                    const std::vector<std::string>& values) {
  x.*Field = values.back();
  return caf::none;
}

template <uint16_t node_config::*Field>
caf::error set_port(node_config& x, const std::string& flag,
                    const std::vector<std::string>& values) {
  auto v = parse_integer(values.back(), 0, 65535);
  if (!v)
    return bad_value(flag, values.back(), "a port (0..65535)");
  x.*Field = static_cast<uint16_t>(*v);
  return caf::none;
}

template <int replication_config::*Field>
caf::error set_replication(node_config& x, const std::string& flag,
                           const std::vector<std::string>& values) {
  auto v = parse_integer(values.back(), -1'000'000'000, 1'000'000'000);
  if (!v)
    return bad_value(flag, values.back(), "an integer");
  x.replication.*Field = static_cast<int>(*v);
  return caf::none;
}

caf::error set_duration(caf::timespan& dst, const std::string& flag,
                        const std::vector<std::string>& values) {
  auto v = parse_duration(values.back());
  if (!v)
    return bad_value(flag, values.back(),
                     "a duration (150ms, 2s or seconds like 0.5)");
  dst = *v;
  return caf::none;
}

/// Every `--seeds` together replaces the file's seeds; empty items are
/// skipped, so `--seeds ''` clears them (start a new cluster).
caf::error set_seeds(node_config& x, const std::string& flag,
                     const std::vector<std::string>& values) {
  std::vector<host_port> seeds;
  for (auto& value : values) {
    size_t pos = 0;
    while (pos <= value.size()) {
      auto comma = value.find(',', pos);
      if (comma == std::string::npos)
        comma = value.size();
      auto item = trim(value.substr(pos, comma - pos));
      pos = comma + 1;
      if (item.empty())
        continue;
      auto hp = parse_host_port(item, flag);
      if (!hp)
        return std::move(hp.error());
      seeds.emplace_back(std::move(*hp));
    }
  }
  x.seeds = std::move(seeds);
  return caf::none;
}

/// `--label K=V` adds to the file's labels (or replaces the value of K).
caf::error set_labels(node_config& x, const std::string& flag,
                      const std::vector<std::string>& values) {
  for (auto& value : values) {
    auto eq = value.find('=');
    if (eq == std::string::npos || eq == 0)
      return bad_value(flag, value, "KEY=VALUE");
    auto key = value.substr(0, eq);
    auto val = value.substr(eq + 1);
    if (auto err = check_label_key(key, val))
      return with_prefix(err, flag + ": ");
    x.labels[key] = val;
  }
  return caf::none;
}

const cli_option cli_options[] = {
  {"--name", "name", "NAME", "Node name, unique in the cluster",
   set_text<&node_config::name>},
  {"--host", "host", "HOST", "Address the cluster endpoint binds to",
   set_text<&node_config::host>},
  {"--port", "port", "PORT", "Cluster port (0 picks a free one)",
   set_port<&node_config::port>},
  {"--seeds", "seeds", "H:P,H:P",
   "Nodes to join through (repeatable; replaces the file's seeds)",
   set_seeds},
  {"--http-host", "http_host", "HOST", "Address of the HTTP JSON endpoint",
   set_text<&node_config::http_host>},
  {"--http-port", "http_port", "PORT", "HTTP port (0 picks a free one)",
   set_port<&node_config::http_port>},
  {"--data-dir", "data_dir", "DIR", "Directory of the snapshot store",
   set_text<&node_config::data_dir>},
  {"--label", "labels", "K=V",
   "A label placement matches (repeatable; adds to the file's labels)",
   set_labels},
  {"--cluster-secret-file", "cluster_secret_file", "FILE",
   "File holding the cluster secret",
   set_text<&node_config::cluster_secret_file>},
  {"--heartbeat-interval", "failure_detector.heartbeat_interval", "DURATION",
   "Heartbeat interval",
   [](node_config& x, const std::string& flag,
      const std::vector<std::string>& values) {
     return set_duration(x.failure_detector.heartbeat_interval, flag, values);
   }},
  {"--phi-threshold", "failure_detector.threshold", "PHI",
   "Suspicion at which a peer counts as down",
   [](node_config& x, const std::string& flag,
      const std::vector<std::string>& values) {
     auto& text = values.back();
     try {
       size_t pos = 0;
       auto v = text.empty() || is_space(text.front()) ? 0.0
                                                       : std::stod(text, &pos);
       if (pos == 0 || pos != text.size() || !std::isfinite(v))
         return bad_value(flag, text, "a number");
       x.failure_detector.threshold = v;
     } catch (std::exception&) {
       return bad_value(flag, text, "a number");
     }
     return caf::error{};
   }},
  {"--acceptable-pause", "failure_detector.acceptable_heartbeat_pause",
   "DURATION", "Silence beyond the heartbeat interval that is still normal",
   [](node_config& x, const std::string& flag,
      const std::vector<std::string>& values) {
     return set_duration(x.failure_detector.acceptable_heartbeat_pause, flag,
                         values);
   }},
  {"--lease", "lease", "DURATION",
   "How long the node serves after its last quorum-acknowledged heartbeat",
   [](node_config& x, const std::string& flag,
      const std::vector<std::string>& values) {
     return set_duration(x.lease, flag, values);
   }},
  {"--join-timeout", "join_timeout", "DURATION",
   "How long joining waits for a seed before failing",
   [](node_config& x, const std::string& flag,
      const std::vector<std::string>& values) {
     return set_duration(x.join_timeout, flag, values);
   }},
  {"--replication-factor", "replication.factor", "N",
   "Snapshot copies on other nodes (0..16)",
   set_replication<&replication_config::factor>},
  {"--min-acks", "replication.min_acks", "N",
   "Replica commits a write waits for (0..factor)",
   set_replication<&replication_config::min_acks>},
  {"--placement", "placement", "STRATEGY",
   "Default placement: least_loaded, label_aware or pinned",
   [](node_config& x, const std::string& flag,
      const std::vector<std::string>& values) {
     auto s = parse_placement_strategy(values.back());
     if (!s)
       return bad_value(flag, values.back(),
                        "least_loaded, label_aware or pinned");
     x.placement = *s;
     return caf::error{};
   }},
  {"--alert-command", "alerts.command", "CMD",
   "Command (/bin/sh -c) run for each alert (events at alerts.min_severity)",
   [](node_config& x, const std::string&,
      const std::vector<std::string>& values) {
     x.alerts.command = values.back();
     return caf::error{};
   }},
  {"--alert-url", "alerts.url", "URL",
   "http://host:port/path that receives each alert as a JSON POST",
   [](node_config& x, const std::string&,
      const std::vector<std::string>& values) {
     x.alerts.url = values.back();
     return caf::error{};
   }},
  {"--alert-min-severity", "alerts.min_severity", "N",
   "Lowest severity (1..4) that alerts",
   [](node_config& x, const std::string& flag,
      const std::vector<std::string>& values) {
     auto v = parse_integer(values.back(), 1, 4);
     if (!v)
       return bad_value(flag, values.back(), "an integer 1..4");
     x.alerts.min_severity = static_cast<int>(*v);
     return caf::error{};
   }},
  {"--operator-hook", "watchdog.operator_hook", "CMD",
   "Command (/bin/sh -c) the node watchdog runs when it escalates",
   [](node_config& x, const std::string&,
      const std::vector<std::string>& values) {
     x.watchdog.operator_hook = values.back();
     return caf::error{};
   }},
};

/// The option that set the field `validate` names in `err`, if one did.
std::optional<std::string>
option_of(const caf::error& err, const std::set<std::string>& given_fields) {
  auto ctx = context_of(err);
  auto field = ctx.substr(0, ctx.find(' '));
  field = field.substr(0, field.find('[')); // seeds[1], labels['k']
  if (given_fields.count(field) == 0)
    return std::nullopt;
  for (auto& opt : cli_options)
    if (field == opt.field)
      return std::string{opt.flag};
  return std::nullopt;
}

} // namespace

caf::expected<node_command_line> parse_node_command_line(int argc,
                                                         const char* const* argv) {
  node_command_line result;
  CLI::App app{"Runs one node of a libft cluster. Options override the "
               "config file's values.",
               "ft-node"};
  app.footer("Durations take 150ms, 2s or plain seconds (0.5).");
  std::string config_path;
  app.add_option("config", config_path, "YAML node config (optional)")
    ->type_name("CONFIG.yaml");
  // Every option collects its values as text, one per occurrence: the
  // conversions and their errors are ours, naming the option.
  std::vector<std::vector<std::string>> values(std::size(cli_options));
  for (size_t i = 0; i < std::size(cli_options); ++i) {
    auto& opt = cli_options[i];
    app.add_option(opt.flag, values[i], opt.help)
      ->type_name(opt.type)
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }
  std::vector<std::string> ready_file;
  app.add_option("--ready-file", ready_file,
                 "Write {name, pid, port, http_port} as JSON here when up")
    ->type_name("FILE")
    ->expected(1)
    ->allow_extra_args(false)
    ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    // The caller prints it and exits: a library never ends the process.
    result.help = true;
    result.help_text = app.help();
    return result;
  } catch (const CLI::Error& ex) {
    return make_error(errc::invalid_config,
                      std::string{"command line: "} + ex.what());
  }
  if (!config_path.empty()) {
    auto cfg = read_file(config_path, false);
    if (!cfg)
      return std::move(cfg.error());
    result.config = std::move(*cfg);
  }
  std::set<std::string> given_fields;
  for (size_t i = 0; i < std::size(cli_options); ++i) {
    if (values[i].empty())
      continue;
    auto& opt = cli_options[i];
    if (auto err = opt.apply(result.config, opt.flag, values[i]))
      return err;
    given_fields.insert(opt.field);
  }
  if (!ready_file.empty())
    result.ready_file = ready_file.back();
  if (auto err = validate(result.config)) {
    if (auto flag = option_of(err, given_fields))
      return with_prefix(err, *flag + ": ");
    if (result.config.name.empty())
      return with_prefix(err, config_path.empty()
                                ? "--name missing: "
                                : config_path + " has no name and --name "
                                                "is missing: ");
    return err;
  }
  return result;
}

} // namespace ft
