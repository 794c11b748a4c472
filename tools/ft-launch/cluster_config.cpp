#include "cluster_config.hpp"

#include <cmath>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "ft/error.hpp"
#include "ft/node_config.hpp"

namespace ft::launch {

namespace {

/// Parses one document with its source name for errors.
class reader {
public:
  explicit reader(std::string source) : source_(std::move(source)) {
    // nop
  }

  /// `file:line` of `x` (or just the file for nodes without a mark).
  std::string where(const YAML::Node& x) const {
    return where(x.Mark().is_null() ? 0 : x.Mark().line + 1);
  }

  std::string where(int line) const {
    if (line <= 0)
      return source_;
    return source_ + ":" + std::to_string(line);
  }

  [[noreturn]] void fail(const YAML::Node& x, const std::string& field,
                         const std::string& problem) const {
    throw config_error(where(x) + ": " + field + ": " + problem);
  }

  /// Rejects keys not in `known` (naming the key's line) and non-maps.
  void check_keys(const YAML::Node& map, const std::string& field,
                  const std::set<std::string>& known) const {
    if (!map.IsMap())
      fail(map, field, "expected a map");
    for (auto kv : map) {
      auto key = kv.first.Scalar();
      if (known.count(key) == 0) {
        std::string hint;
        for (auto& k : known)
          hint += (hint.empty() ? "" : ", ") + k;
        throw config_error(where(kv.first) + ": " + join(field, key)
                           + ": unknown key (expected one of: " + hint + ")");
      }
    }
  }

  static std::string join(const std::string& field, const std::string& key) {
    return field.empty() ? key : field + "." + key;
  }

  std::string text(const YAML::Node& x, const std::string& field) const {
    if (!x.IsScalar() || x.Scalar().empty())
      fail(x, field, "expected a non-empty string");
    return x.Scalar();
  }

  /// An integer in [lo, hi].
  int integer(const YAML::Node& x, const std::string& field, int lo,
              int hi) const {
    std::optional<int> value;
    if (x.IsScalar()) {
      try {
        value = x.as<int>();
      } catch (const YAML::Exception&) {
        // reported below
      }
    }
    if (!value || *value < lo || *value > hi)
      fail(x, field,
           "expected an integer in " + std::to_string(lo) + ".."
             + std::to_string(hi) + ", got " + describe(x));
    return *value;
  }

  /// Seconds (fractions allowed), as node configs take durations.
  millis seconds(const YAML::Node& x, const std::string& field,
                 bool allow_zero) const {
    std::optional<double> value;
    if (x.IsScalar()) {
      try {
        value = x.as<double>();
      } catch (const YAML::Exception&) {
        // reported below
      }
    }
    if (!value || !std::isfinite(*value) || *value < 0
        || (!allow_zero && *value == 0) || *value > 1e6)
      fail(x, field,
           std::string{"expected seconds (a number "}
             + (allow_zero ? ">= 0" : "> 0") + ", e.g. 0.5), got "
             + describe(x));
    return millis{static_cast<int64_t>(std::llround(*value * 1000))};
  }

  static std::string describe(const YAML::Node& x) {
    if (x.IsScalar())
      return "'" + x.Scalar() + "'";
    if (x.IsMap())
      return "a map";
    if (x.IsSequence())
      return "a list";
    return "nothing";
  }

  const std::string& source() const {
    return source_;
  }

private:
  std::string source_;
};

/// `over` on top of `base`: maps merge key by key, anything else replaces.
YAML::Node merge(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsDefined() || !base.IsMap() || !over.IsMap())
    return YAML::Clone(over);
  auto out = YAML::Clone(base);
  for (auto kv : over) {
    auto key = kv.first.Scalar();
    if (out[key].IsDefined())
      out[key] = merge(out[key], kv.second);
    else
      out[key] = YAML::Clone(kv.second);
  }
  return out;
}

/// Records every leaf of `map` (recursing into maps) with its key's line.
void collect_origins(const YAML::Node& map, const std::string& section,
                     std::vector<std::string> prefix,
                     std::vector<field_origin>& out,
                     const std::set<std::string>& skip = {}) {
  for (auto kv : map) {
    if (prefix.empty() && skip.count(kv.first.Scalar()) != 0)
      continue;
    auto path = prefix;
    path.push_back(kv.first.Scalar());
    if (kv.second.IsMap() && kv.second.size() > 0) {
      collect_origins(kv.second, section, path, out);
      continue;
    }
    auto line = kv.first.Mark().is_null() ? 0 : kv.first.Mark().line + 1;
    out.push_back({std::move(path), section, line});
  }
}

/// Fields ft-launch sets itself for every node.
const std::set<std::string> launcher_fields = {"seeds",
                                               "cluster_secret_file"};

/// Fields every node must set for itself (not in node_defaults).
const std::set<std::string> per_node_fields = {"name", "port", "http_port"};

YAML::Node load(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw config_error(source + ":" + std::to_string(e.mark.line + 1) + ":"
                       + std::to_string(e.mark.column + 1)
                       + ": malformed YAML: " + e.msg);
  }
}

} // namespace

cluster_config parse_cluster_config(const std::string& text,
                                    const std::string& source) {
  reader rd{source};
  auto doc = load(text, source);
  cluster_config cfg;
  cfg.source = source;
  if (!doc.IsMap())
    throw config_error(rd.where(doc)
                       + ": expected a map with cluster, node_defaults "
                         "and nodes");
  rd.check_keys(doc, "", {"cluster", "node_defaults", "nodes"});
  if (auto c = doc["cluster"]; c.IsDefined() && !c.IsNull()) {
    rd.check_keys(c, "cluster",
                  {"run_dir", "secret_file", "base_port", "seeds",
                   "startup_timeout", "hang_timeout", "restart"});
    if (auto x = c["run_dir"])
      cfg.run_dir = rd.text(x, "cluster.run_dir");
    if (auto x = c["secret_file"])
      cfg.secret_file = rd.text(x, "cluster.secret_file");
    if (auto x = c["base_port"])
      cfg.base_port = rd.integer(x, "cluster.base_port", 0, 65535 - 200);
    if (auto x = c["seeds"])
      cfg.seeds = rd.integer(x, "cluster.seeds", 1, 1000);
    if (auto x = c["startup_timeout"])
      cfg.startup_timeout = rd.seconds(x, "cluster.startup_timeout", false);
    if (auto x = c["hang_timeout"])
      cfg.hang_timeout = rd.seconds(x, "cluster.hang_timeout", true);
    if (auto r = c["restart"]; r.IsDefined() && !r.IsNull()) {
      rd.check_keys(r, "cluster.restart",
                    {"initial_delay", "max_delay", "max_restarts", "period"});
      auto& rs = cfg.restart;
      if (auto x = r["initial_delay"])
        rs.initial_delay = rd.seconds(x, "cluster.restart.initial_delay",
                                      true);
      if (auto x = r["max_delay"])
        rs.max_delay = rd.seconds(x, "cluster.restart.max_delay", true);
      if (auto x = r["max_restarts"])
        rs.max_restarts = rd.integer(x, "cluster.restart.max_restarts", 0,
                                     1'000'000);
      if (auto x = r["period"])
        rs.period = rd.seconds(x, "cluster.restart.period", false);
      if (rs.max_delay < rs.initial_delay)
        rd.fail(r["max_delay"] ? r["max_delay"] : r,
                "cluster.restart.max_delay", "must not be below initial_delay");
    }
  }
  YAML::Node defaults{YAML::NodeType::Map};
  std::vector<field_origin> default_origins;
  if (auto d = doc["node_defaults"]; d.IsDefined() && !d.IsNull()) {
    if (!d.IsMap())
      rd.fail(d, "node_defaults", "expected a map of ft-node fields");
    for (auto kv : d) {
      auto key = kv.first.Scalar();
      if (per_node_fields.count(key) != 0)
        throw config_error(rd.where(kv.first) + ": node_defaults." + key
                           + ": not allowed here (each node sets its own)");
      if (launcher_fields.count(key) != 0)
        throw config_error(rd.where(kv.first) + ": node_defaults." + key
                           + ": set by ft-launch (use cluster.seeds or "
                             "cluster.secret_file)");
    }
    defaults = d;
    collect_origins(d, "node_defaults", {}, default_origins);
  }
  auto nodes = doc["nodes"];
  if (!nodes.IsDefined() || nodes.IsNull())
    throw config_error(rd.where(doc) + ": nodes: missing (a list of nodes)");
  if (!nodes.IsSequence() || nodes.size() == 0)
    rd.fail(nodes, "nodes", "expected a non-empty list of nodes");
  std::set<std::string> names;
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto entry = nodes[i];
    auto field = "nodes[" + std::to_string(i) + "]";
    if (!entry.IsMap())
      rd.fail(entry, field, "expected a map with at least a name");
    node_spec spec;
    spec.line = entry.Mark().is_null() ? 0 : entry.Mark().line + 1;
    auto name = entry["name"];
    if (!name)
      rd.fail(entry, field + ".name", "missing");
    spec.name = rd.text(name, field + ".name");
    if (!names.insert(spec.name).second)
      rd.fail(name, field + ".name", "duplicate node name '" + spec.name + "'");
    YAML::Node own{YAML::NodeType::Map};
    for (auto kv : entry) {
      auto key = kv.first.Scalar();
      if (key == "name")
        continue;
      if (key == "port")
        spec.port = static_cast<uint16_t>(
          rd.integer(kv.second, field + ".port", 0, 65535));
      else if (key == "http_port")
        spec.http_port = static_cast<uint16_t>(
          rd.integer(kv.second, field + ".http_port", 0, 65535));
      else if (launcher_fields.count(key) != 0)
        throw config_error(rd.where(kv.first) + ": " + field + "." + key
                           + ": set by ft-launch (use cluster.seeds or "
                             "cluster.secret_file)");
      else
        own[key] = kv.second;
    }
    spec.fields = merge(defaults, own);
    // From the entry itself: its keys carry the lines.
    collect_origins(entry, field + " (" + spec.name + ")", {}, spec.origins,
                    per_node_fields);
    spec.origins.insert(spec.origins.end(), default_origins.begin(),
                        default_origins.end());
    cfg.nodes.push_back(std::move(spec));
  }
  if (cfg.seeds > static_cast<int>(cfg.nodes.size()))
    cfg.seeds = static_cast<int>(cfg.nodes.size());
  return cfg;
}

cluster_config load_cluster_config(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    throw config_error(path + ": cannot read the file");
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_cluster_config(buf.str(), path);
}

const std::string& default_cluster_yaml() {
  static const std::string text =
    R"(# ft-launch's default: three nodes on 127.0.0.1, free ports.
cluster:
  run_dir: ft-cluster
  base_port: 0          # 0: free ports; else node i: base+i, HTTP base+100+i
  seeds: 1              # the first node is everyone's seed
  startup_timeout: 30   # seconds until all nodes must be up
  hang_timeout: 5       # up but silent (or watchdog stale) this long: killed
  restart:
    initial_delay: 0.5  # seconds, doubling per consecutive crash
    max_delay: 10
    max_restarts: 5     # more within `period` seconds: give up on the node
    period: 60
node_defaults:
  host: 127.0.0.1
nodes:
  - name: n1
  - name: n2
  - name: n3
)";
  return text;
}

cluster_config default_cluster_config(int nodes) {
  auto cfg = parse_cluster_config(default_cluster_yaml(), "<default>");
  if (nodes > 0) {
    auto proto = cfg.nodes.front();
    cfg.nodes.clear();
    for (int i = 1; i <= nodes; ++i) {
      auto spec = proto;
      spec.name = "n" + std::to_string(i);
      spec.fields = YAML::Clone(proto.fields);
      cfg.nodes.push_back(std::move(spec));
    }
    cfg.seeds = std::min(cfg.seeds, nodes);
  }
  return cfg;
}

std::string field_or(const YAML::Node& fields, const char* key,
                     const std::string& fallback) {
  if (fields.IsMap()) {
    if (auto x = fields[key]; x && x.IsScalar() && !x.Scalar().empty())
      return x.Scalar();
  }
  return fallback;
}

YAML::Node node_config_yaml(const node_spec& node, const node_plan& plan,
                            const std::vector<std::string>& seeds,
                            const std::string& secret_file) {
  YAML::Node out{YAML::NodeType::Map};
  out["name"] = node.name;
  out["host"] = plan.host;
  out["port"] = plan.port;
  out["http_host"] = plan.http_host;
  out["http_port"] = plan.http_port;
  YAML::Node seq{YAML::NodeType::Sequence};
  for (auto& s : seeds)
    seq.push_back(s);
  out["seeds"] = seq;
  out["data_dir"] = plan.data_dir;
  out["cluster_secret_file"] = secret_file;
  for (auto kv : node.fields) {
    auto key = kv.first.Scalar();
    if (!out[key].IsDefined())
      out[key] = YAML::Clone(kv.second);
  }
  return out;
}

namespace {

/// One line, so that the parser's messages for two variants of a document
/// differ only where the variants do (line numbers stay 1).
std::string emit_flow(const YAML::Node& x) {
  // Parsed nodes keep their own style; set flow on every collection.
  auto copy = YAML::Clone(x);
  auto set_flow = [](auto& self, YAML::Node n) -> void {
    if (n.IsMap() || n.IsSequence()) {
      n.SetStyle(YAML::EmitterStyle::Flow);
      for (auto it = n.begin(); it != n.end(); ++it)
        self(self, n.IsMap() ? it->second : *it);
    }
  };
  set_flow(set_flow, copy);
  YAML::Emitter out;
  out << copy;
  return out.c_str();
}

/// The node config parser's verdict on `doc`: empty when valid.
std::optional<std::string> problem_of(const YAML::Node& doc) {
  auto cfg = ft::node_config_from_yaml(emit_flow(doc), "node");
  if (cfg)
    return std::nullopt;
  return ft::render(cfg.error());
}

/// Removes `path` from `doc`; false when it is not there.
bool remove_path(YAML::Node doc, const std::vector<std::string>& path) {
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (!doc.IsMap() || !doc[path[i]])
      return false;
    // reset, not `=`: assigning a yaml-cpp node overwrites what it refers to.
    doc.reset(doc[path[i]]);
  }
  return doc.IsMap() && doc.remove(path.back());
}

std::string join_path(const std::vector<std::string>& path) {
  std::string out;
  for (auto& p : path)
    out += (out.empty() ? "" : ".") + p;
  return out;
}

} // namespace

void check_node_config(const cluster_config& cfg, const node_spec& node,
                       const YAML::Node& full, const std::string& text,
                       const std::string& file) {
  auto problem = problem_of(full);
  if (!problem)
    return;
  // The message the user reads names the generated file and its line.
  auto shown = ft::node_config_from_yaml(text, file);
  auto message = shown ? *problem : ft::render(shown.error());
  reader rd{cfg.source};
  // Blame the first field whose removal changes the verdict: its line in
  // the cluster file is where the user has to look.
  for (auto& origin : node.origins) {
    auto copy = YAML::Clone(full);
    if (!remove_path(copy, origin.path))
      continue;
    auto without = problem_of(copy);
    if (!without || *without != *problem)
      throw config_error(rd.where(origin.line) + ": " + origin.section + "."
                         + join_path(origin.path) + ": " + message);
  }
  throw config_error(rd.where(node.line) + ": node " + node.name + ": "
                     + message);
}

} // namespace ft::launch
