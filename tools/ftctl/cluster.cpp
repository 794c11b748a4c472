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
#include <charconv>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace ftctl {

/// Prints rows as aligned columns under a header (main.cpp).
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

} // namespace ftctl

namespace {

using json = nlohmann::json;

constexpr int exit_error = 1;
constexpr int exit_not_found = 3;

constexpr const char* default_node = "127.0.0.1:8101";

/// Options every cluster command shares.
struct cluster_options {
  std::string node = default_node;
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

/// Renders any JSON value for a table cell: strings without quotes, null as
/// `-`.
std::string cell(const json& x) {
  if (x.is_null())
    return "-";
  if (x.is_string())
    return x.get<std::string>();
  return x.dump();
}

/// Field `name` of `obj` as a cell (`-` when absent).
std::string field(const json& obj, const char* name) {
  if (!obj.is_object())
    return "-";
  auto i = obj.find(name);
  return i == obj.end() ? "-" : cell(*i);
}

/// `HOST:PORT` (an `http://` prefix is accepted, as `ft-launch` prints
/// URLs).
struct endpoint {
  std::string host;
  int port = 0;
};

std::optional<endpoint> parse_endpoint(std::string text) {
  constexpr std::string_view scheme = "http://";
  if (text.compare(0, scheme.size(), scheme) == 0)
    text.erase(0, scheme.size());
  while (!text.empty() && text.back() == '/')
    text.pop_back();
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return std::nullopt;
  endpoint result;
  result.host = text.substr(0, colon);
  auto first = text.data() + colon + 1;
  auto last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, result.port);
  if (ec != std::errc{} || ptr != last || first == last || result.port < 1
      || result.port > 65535)
    return std::nullopt;
  return result;
}

/// What went wrong in words an operator acts on (httplib's names are terse).
std::string describe(httplib::Error err) {
  switch (err) {
    case httplib::Error::Connection:
      return "connection refused or failed (is the node running?)";
    case httplib::Error::ConnectionTimeout:
      return "no connection within 2 s";
    case httplib::Error::Read:
      return "no complete reply within 30 s (or the node closed the "
             "connection)";
    case httplib::Error::Write:
      return "sending the request failed";
    default:
      return httplib::to_string(err);
  }
}

/// One node's HTTP API with the timeouts an operator expects (connect 2 s,
/// read 30 s: a migration or an ask may wait for a failover). Reports every
/// failure on stderr and remembers the exit code it maps to.
class node_api {
public:
  explicit node_api(const cluster_options& opts) : name_(opts.node) {
    // nop
  }

  /// The body of a 2xx reply, or nullopt after reporting the failure.
  std::optional<json> get(const std::string& path) {
    return call(path, nullptr);
  }

  std::optional<json> post(const std::string& path, const json& body) {
    return call(path, &body);
  }

  int rc() const noexcept {
    return rc_;
  }

private:
  std::optional<json> call(const std::string& path, const json* body) {
    auto ep = parse_endpoint(name_);
    if (!ep) {
      std::cerr << "ftctl: error: invalid --node " << name_
                << " (expected HOST:PORT)\n";
      rc_ = exit_error;
      return std::nullopt;
    }
    httplib::Client cli{ep->host, ep->port};
    cli.set_connection_timeout(2, 0);
    cli.set_read_timeout(30, 0);
    // Paths are built with encode_query_param; no second encoding.
    cli.set_url_encode(false);
    auto res = body ? cli.Post(path.c_str(), body->dump(), "application/json")
                    : cli.Get(path.c_str());
    if (!res) {
      std::cerr << "ftctl: cannot reach node " << name_ << ": "
                << describe(res.error()) << '\n';
      rc_ = exit_error;
      return std::nullopt;
    }
    auto doc = json::parse(res->body, nullptr, false);
    if (res->status >= 200 && res->status < 300) {
      if (doc.is_discarded()) {
        std::cerr << "ftctl: error: node " << name_
                  << " sent a reply that is not JSON (HTTP " << res->status
                  << ")\n";
        rc_ = exit_error;
        return std::nullopt;
      }
      return doc;
    }
    // Errors are {"error": "<errc name>", "message": "human text"}.
    std::string error = "http_" + std::to_string(res->status);
    std::string message = res->body;
    if (doc.is_object()) {
      error = field(doc, "error");
      message = field(doc, "message");
      // A message rendered from the error may start with its name already.
      if (message.compare(0, error.size() + 2, error + ": ") == 0)
        message.erase(0, error.size() + 2);
    }
    std::cerr << "ftctl: error: " << error << ": " << message << '\n';
    rc_ = res->status == 404 || error == "unknown_entity" ? exit_not_found
                                                          : exit_error;
    return std::nullopt;
  }

  std::string name_;
  int rc_ = 0;
};

std::string entity_path(const std::string& key, const char* suffix = "") {
  // Percent-encodes everything but unreserved characters, `/` included.
  return "/api/entities/" + httplib::detail::encode_query_param(key) + suffix;
}

void print_json(const json& x) {
  std::cout << x.dump(2) << '\n';
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
  node_api api{opts};
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
  node_api api{opts};
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
  node_api api{opts};
  auto doc = api.post("/api/entities", body);
  if (!doc)
    return api.rc();
  return print_record(opts, *doc);
}

int entity_ask_cmd(const cluster_options& opts) {
  json body = {{"message", opts.message}, {"args", opts.args}};
  node_api api{opts};
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
  node_api api{opts};
  auto doc = api.get(entity_path(opts.key));
  if (!doc)
    return api.rc();
  return print_record(opts, *doc);
}

int entity_migrate_cmd(const cluster_options& opts) {
  node_api api{opts};
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
  if (auto* env = std::getenv("FT_NODE"); env && *env)
    opts->node = env;
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
