// ftctl's cluster commands: talk to one node's HTTP JSON endpoint (ft-node).
//
//   ftctl nodes                                   [--node H:P] [--format F]
//   ftctl entity ls                               [--node H:P] [--format F]
//   ftctl entity spawn TYPE KEY [--on NODE] [--require K=V ...]
//   ftctl entity ask KEY MSG [ARGS...]
//   ftctl entity where KEY
//   ftctl entity migrate KEY --to NODE
//
// `--node` defaults to $FT_NODE, else 127.0.0.1:8101. `--format json` prints
// the node's JSON reply as is; `table` prints aligned columns (`ask`: only
// the result value). Exit codes: 0 ok; 1 unreachable node, usage or server
// error; 3 the entity (or entity type) does not exist (HTTP 404).

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "ftctl.hpp"

namespace {

using ftctl::cell;
using ftctl::exit_error;
using ftctl::field;
using ftctl::node_api;
using ftctl::print_json;
using json = nlohmann::json;

/// Options every cluster command shares.
struct cluster_options {
  std::string node;
  std::string format = "table";
  // Command arguments (each command uses some).
  std::string type;
  std::string key;
  std::string message;
  std::vector<std::string> args;
  std::string on;
  std::vector<std::string> requires_;
  std::string to;
};

std::string entity_path(const std::string& key, const char* suffix = "") {
  return "/api/entities/" + ftctl::url_encode(key) + suffix;
}

/// Entity records (`{"key","type","node","epoch","state"}`) as a table.
void print_entities(const std::vector<json>& records) {
  std::vector<std::vector<std::string>> rows;
  for (auto& x : records)
    rows.push_back({field(x, "key"), field(x, "type"), field(x, "node"),
                    field(x, "epoch"), field(x, "state")});
  ftctl::print_table({"KEY", "TYPE", "NODE", "EPOCH", "STATE"}, rows);
}

/// `42ms`, `1.5s`; `-` for null (the node itself).
std::string heartbeat_age(const json& x) {
  if (!x.is_number())
    return "-";
  auto ms = x.get<double>();
  if (ms < 1000)
    return std::to_string(static_cast<int64_t>(ms)) + "ms";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", ms / 1000.0);
  return buf;
}

std::string labels_cell(const json& x) {
  if (!x.is_object() || x.empty())
    return "-";
  std::string out;
  for (auto& [k, v] : x.items()) {
    if (!out.empty())
      out += ',';
    out += k + '=' + cell(v);
  }
  return out;
}

// -- commands -----------------------------------------------------------------

int nodes_cmd(const cluster_options& opts) {
  node_api api{opts.node};
  auto doc = api.get("/api/nodes");
  if (!doc)
    return api.rc();
  if (opts.format == "json") {
    print_json(*doc);
    return 0;
  }
  auto leader = doc->value("leader", json{});
  std::vector<std::vector<std::string>> rows;
  for (auto& n : doc->value("nodes", json::array())) {
    auto name = field(n, "name");
    char phi[32] = "-";
    if (n.contains("phi") && n["phi"].is_number())
      std::snprintf(phi, sizeof(phi), "%.2f",
                    std::max(0.0, n["phi"].get<double>())); // no "-0.00"
    rows.push_back({name + (leader.is_string() && leader == name ? " *" : ""),
                    field(n, "state"),
                    field(n, "host") + ":" + field(n, "port"),
                    field(n, "http_port"), field(n, "incarnation"),
                    field(n, "entities"),
                    heartbeat_age(n.value("last_heartbeat_ms", json{})), phi,
                    labels_cell(n.value("labels", json{}))});
  }
  ftctl::print_table({"NODE", "STATE", "ADDRESS", "HTTP", "INCARNATION",
                      "ENTITIES", "HEARTBEAT", "PHI", "LABELS"},
                     rows);
  std::cout << "leader: " << cell(leader) << " (*)\n";
  return 0;
}

int entity_ls_cmd(const cluster_options& opts) {
  node_api api{opts.node};
  auto doc = api.get("/api/entities");
  if (!doc)
    return api.rc();
  if (opts.format == "json") {
    print_json(*doc);
    return 0;
  }
  std::vector<json> records;
  for (auto& x : doc->value("entities", json::array()))
    records.push_back(x);
  print_entities(records);
  return 0;
}

/// Prints one entity record (spawn, where, migrate).
int print_record(const cluster_options& opts, const json& record) {
  if (opts.format == "json")
    print_json(record);
  else
    print_entities({record});
  return 0;
}

int entity_spawn_cmd(const cluster_options& opts) {
  json body = {{"type", opts.type}, {"key", opts.key}};
  if (!opts.on.empty())
    body["on"] = opts.on;
  if (!opts.requires_.empty()) {
    auto req = json::object();
    for (auto& kv : opts.requires_) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "ftctl: error: --require " << kv
                  << ": expected KEY=VALUE\n";
        return exit_error;
      }
      req[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    body["requires"] = std::move(req);
  }
  node_api api{opts.node};
  auto doc = api.post("/api/entities", body);
  if (!doc)
    return api.rc();
  return print_record(opts, *doc);
}

int entity_ask_cmd(const cluster_options& opts) {
  json body = {{"message", opts.message}, {"args", opts.args}};
  node_api api{opts.node};
  auto doc = api.post(entity_path(opts.key, "/ask"), body);
  if (!doc)
    return api.rc();
  if (opts.format == "json") {
    print_json(*doc);
    return 0;
  }
  auto result = doc->value("result", json{});
  // Strings print raw, so `$(ftctl entity ask c1 get)` is the value itself.
  std::cout << (result.is_string() ? result.get<std::string>() : result.dump())
            << '\n';
  return 0;
}

int entity_where_cmd(const cluster_options& opts) {
  node_api api{opts.node};
  auto doc = api.get(entity_path(opts.key));
  if (!doc)
    return api.rc();
  return print_record(opts, *doc);
}

int entity_migrate_cmd(const cluster_options& opts) {
  node_api api{opts.node};
  auto doc = api.post(entity_path(opts.key, "/migrate"), {{"to", opts.to}});
  if (!doc)
    return api.rc();
  return print_record(opts, *doc);
}

} // namespace

namespace ftctl {

/// Adds `nodes` and `entity ...` to `app`. The returned function runs the
/// command the parsed command line selected, or returns -1 when it selected
/// none of them.
std::function<int()> add_cluster_commands(CLI::App& app) {
  auto opts = std::make_shared<cluster_options>();
  // $FT_NODE is read here rather than with CLI11's envname: every command
  // shares `opts->node`, and CLI11 applies an envname to the options of the
  // commands that did not run too, overwriting an explicit --node.
  opts->node = ftctl::default_node();
  auto add_common = [opts](CLI::App* cmd) {
    cmd->add_option("--node", opts->node,
                    "the node's HTTP endpoint HOST:PORT (default: $FT_NODE, "
                    "else 127.0.0.1:8101)");
    cmd->add_option("--format", opts->format, "output format")
      ->check(CLI::IsMember({"table", "json"}));
  };
  auto* nodes = app.add_subcommand("nodes", "list the cluster's members");
  add_common(nodes);

  auto* entity = app.add_subcommand("entity", "spawn, find, ask and move "
                                               "entities");
  entity->require_subcommand(1);
  auto* ls = entity->add_subcommand("ls", "list all entities");
  add_common(ls);

  auto* spawn = entity->add_subcommand("spawn", "start an entity");
  add_common(spawn);
  spawn->add_option("type", opts->type, "the entity type (e.g. counter)")
    ->required();
  spawn->add_option("key", opts->key, "the entity's key")->required();
  spawn->add_option("--on", opts->on, "pin it to this node");
  spawn->add_option("--require", opts->requires_,
                    "only on nodes with this label (K=V, repeatable)");

  auto* ask = entity->add_subcommand("ask", "send a message, print the reply");
  add_common(ask);
  ask->add_option("key", opts->key, "the entity's key")->required();
  ask->add_option("message", opts->message, "the command (e.g. add, get)")
    ->required();
  ask->add_option("args", opts->args, "its arguments");

  auto* where = entity->add_subcommand("where", "show an entity's home");
  add_common(where);
  where->add_option("key", opts->key, "the entity's key")->required();

  auto* migrate = entity->add_subcommand("migrate",
                                         "move an entity to another node");
  add_common(migrate);
  migrate->add_option("key", opts->key, "the entity's key")->required();
  migrate->add_option("--to", opts->to, "the target node")->required();

  return [=]() -> int {
    if (*nodes)
      return nodes_cmd(*opts);
    if (*ls)
      return entity_ls_cmd(*opts);
    if (*spawn)
      return entity_spawn_cmd(*opts);
    if (*ask)
      return entity_ask_cmd(*opts);
    if (*where)
      return entity_where_cmd(*opts);
    if (*migrate)
      return entity_migrate_cmd(*opts);
    return -1;
  };
}

} // namespace ftctl
