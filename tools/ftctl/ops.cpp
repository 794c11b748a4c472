// ftctl's operations commands: a node's health, supervision tree, circuit
// breakers and event journal, fault injection, and `doctor`, the check of a
// node's configuration and surroundings before (or while) it runs.
//
//   ftctl health [--component NAME]                [--node H:P] [--format F]
//   ftctl tree                                     [--node H:P] [--format F]
//   ftctl circuits                                 [--node H:P] [--format F]
//   ftctl circuits reset KEY [--scope S]           [--secret-file FILE]
//   ftctl circuits reset --scope S | --all         [--secret-file FILE]
//   ftctl events [--since ID] [--min-severity S] [--follow]
//                [--max-events N] [--timeout SECONDS]
//   ftctl kill actor PATH                          [--secret-file FILE]
//   ftctl kill node NAME                           [--secret-file FILE]
//   ftctl doctor [--config FILE] [--node H:P] [--secret-file FILE]
//                [--max-skew-ms MS] [--format F]
//
// `--node` defaults to $FT_NODE, else 127.0.0.1:8101. Commands that change a
// node (`circuits reset`, `kill`) send the cluster token as `Authorization:
// Bearer`: the content of --secret-file, else of the file
// $FT_CLUSTER_SECRET_FILE names (trailing whitespace stripped, as the node
// reads its `cluster_secret_file`).
//
// `events --follow` polls every 500 ms with the journal's cursor and prints
// events as they arrive until SIGINT or SIGTERM (exit 0), or until
// `--max-events` were printed or `--timeout` seconds passed. `--format json`
// prints one JSON object per event and line.
//
// `kill node NAME` looks NAME up in `--node`'s member list and asks NAME
// itself (its host and http_port from that list) to SIGKILL itself.
//
// `doctor` runs the checks config, ports, data_dir, seeds, secret, secret
// match and clock skew; each prints `ok`, `fail` (with a fix) or `skip` (it
// could not run, and why). The node it asks (secret match, clock skew) is
// --node or $FT_NODE when given, else the config's own HTTP endpoint when
// that node runs.
//
// Exit codes: 0 ok (`health`: healthy or degraded); 1 usage error,
// unreachable node, rejected token or server error (`doctor`: a check
// failed); 3 unknown health component, actor path or node name (HTTP 404);
// 4 `health`: unhealthy (the whole node, or the component asked for).

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <netdb.h>
#include <optional>
#include <poll.h>
#include <random>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <fcntl.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ft/error.hpp"
#include "ft/node_config.hpp"

#include "ftctl.hpp"

namespace {

namespace fs = std::filesystem;

using ftctl::cell;
using ftctl::exit_error;
using ftctl::exit_not_found;
using ftctl::exit_unhealthy;
using ftctl::field;
using ftctl::json;
using ftctl::node_api;
using ftctl::print_json;
using ftctl::print_table;
using ftctl::url_encode;
using std::chrono::milliseconds;

/// Options of all operations commands (each uses some).
struct ops_options {
  std::string node;
  std::string format = "table";
  std::string secret_file;
  // health
  std::string component;
  // circuits reset
  std::string key;
  std::string scope;
  bool all = false;
  // events
  uint64_t since = 0;
  std::string min_severity;
  bool follow = false;
  size_t max_events = 0;
  double timeout_s = 0;
  // kill
  std::string path;
  std::string name;
  // doctor
  std::string config;
  std::string doctor_node;
  int64_t max_skew_ms = 500;
};

int usage_error(const std::string& what) {
  std::cerr << "ftctl: error: " << what << '\n';
  return exit_error;
}

/// `a; b; c`, `-` for none.
std::string joined(const json& xs, const char* sep = "; ") {
  if (!xs.is_array() || xs.empty())
    return "-";
  std::string out;
  for (auto& x : xs) {
    if (!out.empty())
      out += sep;
    out += cell(x);
  }
  return out;
}

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

// -- the cluster token --------------------------------------------------------

/// The token `circuits reset` and `kill` send, and where it came from.
struct token {
  std::string value;
  std::string source;
};

/// Reads `path` as the node reads its `cluster_secret_file`
/// (`ft::read_cluster_secret`), so both strip the same whitespace.
caf::expected<std::string> read_secret(const std::string& path) {
  ft::node_config cfg;
  cfg.cluster_secret_file = path;
  return ft::read_cluster_secret(cfg);
}

/// The content of --secret-file, else of $FT_CLUSTER_SECRET_FILE; nullopt
/// after saying what is missing.
std::optional<token> load_token(const ops_options& opts) {
  std::string path = opts.secret_file;
  std::string origin = "--secret-file";
  if (path.empty()) {
    if (auto* env = std::getenv("FT_CLUSTER_SECRET_FILE"); env && *env) {
      path = env;
      origin = "FT_CLUSTER_SECRET_FILE";
    }
  }
  if (path.empty()) {
    usage_error("this command needs the cluster token: pass --secret-file "
                "FILE or set FT_CLUSTER_SECRET_FILE (the node's "
                "cluster_secret_file)");
    return std::nullopt;
  }
  auto secret = read_secret(path);
  if (!secret) {
    usage_error(origin + ": " + ft::render(secret.error()));
    return std::nullopt;
  }
  return token{std::move(*secret), path};
}

// -- health -------------------------------------------------------------------

int health_cmd(const ops_options& opts) {
  node_api api{opts.node};
  std::string path = "/health";
  if (!opts.component.empty())
    path += "?component=" + url_encode(opts.component);
  // 503 (unhealthy) still carries the report.
  auto doc = api.get(path, 503);
  if (!doc)
    return api.rc();
  auto components = doc->value("components", json::object());
  // The exit code follows the component when the operator asked for one.
  auto status = field(*doc, "status");
  if (!opts.component.empty()) {
    if (!components.is_object() || !components.contains(opts.component)) {
      std::cerr << "ftctl: error: node " << opts.node
                << " reported no component " << opts.component << '\n';
      return exit_not_found;
    }
    status = field(components[opts.component], "status");
  }
  bool unhealthy = status == "unhealthy"
                   || (status == "-" && api.status() == 503);
  if (opts.format == "json") {
    print_json(*doc);
  } else {
    std::vector<std::vector<std::string>> rows;
    if (components.is_object())
      for (auto& [name, comp] : components.items())
        rows.push_back({name, field(comp, "status"),
                        joined(comp.value("reasons", json::array()))});
    print_table({"COMPONENT", "STATUS", "REASONS"}, rows);
    auto readiness = doc->value("readiness", json::object());
    std::cout << "node " << field(*doc, "node") << ": "
              << field(*doc, "status") << " (liveness "
              << field(doc->value("liveness", json::object()), "status")
              << ", readiness " << field(readiness, "status") << ", startup "
              << field(doc->value("startup", json::object()), "status")
              << ")\n";
    auto why = readiness.value("reasons", json::array());
    if (why.is_array() && !why.empty())
      std::cout << "not ready: " << joined(why) << '\n';
  }
  return unhealthy ? exit_unhealthy : 0;
}

// -- tree ---------------------------------------------------------------------

/// `10s`, `1.5s`.
std::string period_text(const json& ms) {
  if (!ms.is_number())
    return "?";
  auto x = ms.get<double>();
  std::ostringstream os;
  os << x / 1000.0 << "s";
  return os.str();
}

/// `entities@n1  one_for_one  restarts 0/1000 per 10s`.
std::string supervisor_line(const json& sup) {
  std::string out = field(sup, "name") + "  " + field(sup, "strategy")
                    + "  restarts " + field(sup, "restarts_in_window") + "/"
                    + field(sup, "intensity") + " per "
                    + period_text(sup.value("period_ms", json{}));
  if (auto n = sup.value("dynamic_children", json{});
      n.is_number() && n.get<int64_t>() > 0)
    out += "  " + n.dump() + " dynamic";
  return out;
}

/// Prints the children of `sup` under `prefix`, like tree(1) in ASCII.
void print_children(const json& sup, const std::string& prefix) {
  auto children = sup.value("children", json::array());
  if (!children.is_array())
    return;
  // Align id, type and state among siblings.
  size_t id_w = 0;
  size_t type_w = 0;
  size_t state_w = 0;
  for (auto& c : children) {
    id_w = std::max(id_w, field(c, "id").size());
    type_w = std::max(type_w, field(c, "type").size());
    state_w = std::max(state_w, field(c, "state").size());
  }
  auto pad = [](std::string x, size_t w) {
    x.resize(std::max(w, x.size()), ' ');
    return x;
  };
  for (size_t i = 0; i < children.size(); ++i) {
    auto& c = children[i];
    bool last = i + 1 == children.size() && !sup.value("truncated", false);
    std::string line = prefix + (last ? "`-- " : "|-- ")
                       + pad(field(c, "id"), id_w) + "  "
                       + pad(field(c, "type"), type_w) + "  "
                       + pad(field(c, "state"), state_w) + "  restarts "
                       + field(c, "restarts");
    if (auto exit = c.value("last_exit", json{}); !exit.is_null())
      line += "  last exit: " + cell(exit);
    auto nested = c.value("supervisor", json{});
    if (nested.is_object())
      line += "  -> " + supervisor_line(nested);
    // Trailing padding of the last column is noise.
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    std::cout << line << '\n';
    if (nested.is_object())
      print_children(nested, prefix + (last ? "    " : "|   "));
  }
  if (sup.value("truncated", false))
    std::cout << prefix << "`-- ... (truncated by the node)\n";
}

int tree_cmd(const ops_options& opts) {
  node_api api{opts.node};
  auto doc = api.get("/api/tree");
  if (!doc)
    return api.rc();
  if (opts.format == "json") {
    print_json(*doc);
    return 0;
  }
  auto sups = doc->value("supervisors", json::array());
  if (!sups.is_array() || sups.empty())
    std::cout << "node " << field(*doc, "node") << " runs no supervisors\n";
  for (auto& sup : sups) {
    std::cout << supervisor_line(sup) << '\n';
    print_children(sup, "");
  }
  return 0;
}

// -- circuits -----------------------------------------------------------------

/// `87%`, `87.5%`; other values as cells.
std::string percent(const json& x) {
  if (!x.is_number())
    return cell(x);
  char buf[32];
  auto v = x.get<double>();
  if (v == static_cast<int64_t>(v))
    std::snprintf(buf, sizeof(buf), "%.0f%%", v);
  else
    std::snprintf(buf, sizeof(buf), "%.1f%%", v);
  return buf;
}

int circuits_cmd(const ops_options& opts) {
  node_api api{opts.node};
  auto doc = api.get("/api/circuit-breakers");
  if (!doc)
    return api.rc();
  if (opts.format == "json") {
    print_json(*doc);
    return 0;
  }
  // Every member but `aggregate` is a scope: {"<key>": {breaker}}.
  std::vector<std::vector<std::string>> rows;
  if (doc->is_object())
    for (auto& [scope, keys] : doc->items()) {
      if (scope == "aggregate" || !keys.is_object())
        continue;
      for (auto& [key, b] : keys.items())
        rows.push_back({scope, key, field(b, "state"),
                        percent(b.value("health_percentage", json{})),
                        field(b, "successes"), field(b, "failures"),
                        field(b, "rejected")});
    }
  print_table({"SCOPE", "KEY", "STATE", "HEALTH", "SUCCESSES", "FAILURES",
               "REJECTED"},
              rows);
  auto agg = doc->value("aggregate", json::object());
  std::cout << field(agg, "total_circuits") << " circuits: "
            << field(agg, "open_circuits") << " open, "
            << field(agg, "half_open_circuits") << " half-open, "
            << field(agg, "closed_circuits") << " closed; overall health "
            << percent(agg.value("overall_health", json{})) << '\n';
  return 0;
}

int circuits_reset_cmd(const ops_options& opts) {
  json body;
  if (opts.all) {
    if (!opts.key.empty() || !opts.scope.empty())
      return usage_error("circuits reset --all resets every circuit; it "
                         "takes no KEY or --scope");
    body = {{"all", true}};
  } else if (!opts.key.empty()) {
    body = {{"scope", opts.scope.empty() ? "worker" : opts.scope},
            {"key", opts.key}};
  } else if (!opts.scope.empty()) {
    body = {{"scope", opts.scope}};
  } else {
    return usage_error("circuits reset needs KEY (of scope --scope, default "
                       "worker), --scope S (all of its circuits) or --all");
  }
  auto tok = load_token(opts);
  if (!tok)
    return exit_error;
  node_api api{opts.node};
  api.set_token(tok->value, tok->source);
  auto doc = api.post("/api/circuit-breakers/reset", body);
  if (!doc)
    return api.rc();
  if (opts.format == "json") {
    print_json(*doc);
    return 0;
  }
  auto n = doc->value("reset", json{});
  std::cout << "reset " << cell(n) << " circuit"
            << (n.is_number() && n.get<int64_t>() == 1 ? "" : "s") << '\n';
  return 0;
}

// -- events -------------------------------------------------------------------

/// Set by SIGINT and SIGTERM: `events --follow` ends after its current poll.
volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int) {
  stop_requested = 1;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; // no SA_RESTART: a blocking read ends early
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

/// 1..4 from a number or a name of the journal's scale; 0 when invalid.
int parse_severity(const std::string& x) {
  static const char* names[] = {"info", "warning", "error", "critical"};
  for (int i = 0; i < 4; ++i)
    if (x == names[i] || x == std::to_string(i + 1))
      return i + 1;
  if (x == "warn")
    return 2;
  return 0;
}

std::string severity_name(const json& x) {
  static const char* names[] = {"info", "warning", "error", "critical"};
  if (x.is_number_integer()) {
    auto n = x.get<int64_t>();
    if (n >= 1 && n <= 4)
      return names[n - 1];
  }
  return cell(x);
}

std::vector<std::string> event_row(const json& ev) {
  auto ts = ev.value("ts_ms", json{});
  return {field(ev, "id"),
          ts.is_number() ? ftctl::iso_time(ts.get<int64_t>()) : cell(ts),
          severity_name(ev.value("severity", json{})),
          field(ev, "source"),
          field(ev, "kind"),
          field(ev, "subject"),
          field(ev, "message")};
}

const std::vector<std::string> event_header{"ID",   "TIME",    "SEVERITY",
                                            "SOURCE", "KIND", "SUBJECT",
                                            "MESSAGE"};

/// A row of `--follow`'s table: fixed widths, since later rows are unknown.
void print_event_line(const std::vector<std::string>& row) {
  static const size_t width[] = {6, 24, 8, 10, 20, 24};
  std::string line;
  for (size_t i = 0; i < row.size(); ++i) {
    line += row[i];
    if (i + 1 < row.size())
      line += std::string(i < 6 && row[i].size() < width[i]
                            ? width[i] - row[i].size() + 2
                            : 2,
                          ' ');
  }
  std::cout << line << '\n';
}

int events_cmd(const ops_options& opts) {
  int min_sev = 1;
  if (!opts.min_severity.empty()) {
    min_sev = parse_severity(opts.min_severity);
    if (min_sev == 0)
      return usage_error("--min-severity " + opts.min_severity
                         + ": expected 1..4 or info, warning, error, "
                           "critical");
  }
  bool as_json = opts.format == "json";
  node_api api{opts.node};
  if (opts.follow) {
    install_stop_handlers();
    // A poll must not outlast the operator's patience with ^C by much.
    api.set_timeouts(milliseconds{2000}, milliseconds{5000});
  }
  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> deadline;
  if (opts.timeout_s > 0)
    deadline = clock::now()
               + std::chrono::duration_cast<clock::duration>(
                 std::chrono::duration<double>{opts.timeout_s});
  auto expired = [&] {
    return stop_requested || (deadline && clock::now() >= *deadline);
  };
  uint64_t since = opts.since;
  size_t printed = 0;
  bool answered = false;
  bool lost = false;
  if (opts.follow && !as_json) {
    print_event_line(event_header);
    std::cout.flush();
  }
  for (;;) {
    auto path = "/api/events?since=" + std::to_string(since);
    if (min_sev > 1)
      path += "&min_severity=" + std::to_string(min_sev);
    if (opts.max_events > 0)
      path += "&limit=" + std::to_string(opts.max_events - printed);
    auto doc = api.get(path);
    if (!doc) {
      // Before the first answer (or without --follow) there is nothing to
      // follow; afterwards a restarting node is worth waiting for.
      if (!opts.follow || !answered || api.rc() == exit_not_found)
        return api.rc();
      if (!lost)
        std::cerr << "ftctl: lost node " << opts.node << ": " << api.error()
                  << "; retrying\n";
      lost = true;
    } else {
      if (lost)
        std::cerr << "ftctl: node " << opts.node << " answers again\n";
      lost = false;
      if (!answered)
        api.set_quiet(true); // from now on failures are reported above
      answered = true;
      auto events = doc->value("events", json::array());
      std::vector<std::vector<std::string>> rows;
      auto asked = since;
      for (auto& ev : events) {
        if (opts.max_events > 0 && printed == opts.max_events)
          break;
        if (auto id = ev.value("id", json{}); id.is_number_unsigned()) {
          // The contract sends only ids above the cursor; never print one
          // twice even if a node does not.
          if (id.get<uint64_t>() <= asked && asked > 0)
            continue;
          since = std::max(since, id.get<uint64_t>());
        }
        ++printed;
        if (as_json)
          std::cout << ev.dump() << '\n';
        else if (opts.follow)
          print_event_line(event_row(ev));
        else
          rows.push_back(event_row(ev));
      }
      if (auto next = doc->value("next", json{}); next.is_number_unsigned()
          && (opts.max_events == 0 || printed < opts.max_events))
        since = std::max(since, next.get<uint64_t>());
      if (!opts.follow && !as_json)
        print_table(event_header, rows);
      std::cout.flush();
      if (!opts.follow)
        return 0;
      if (opts.max_events > 0 && printed >= opts.max_events)
        return 0;
    }
    // Poll again in 500 ms, in slices so a signal ends the wait.
    auto next_poll = clock::now() + milliseconds{500};
    while (!expired() && clock::now() < next_poll)
      std::this_thread::sleep_for(milliseconds{20});
    if (expired())
      return 0;
  }
}

// -- kill ---------------------------------------------------------------------

int kill_actor_cmd(const ops_options& opts) {
  auto tok = load_token(opts);
  if (!tok)
    return exit_error;
  node_api api{opts.node};
  api.set_token(tok->value, tok->source);
  auto doc = api.post("/api/kill", {{"actor", opts.path}});
  if (!doc)
    return api.rc();
  if (opts.format == "json") {
    print_json(*doc);
    return 0;
  }
  std::cout << "killed " << field(*doc, "killed") << " (actor "
            << field(*doc, "actor")
            << "); its supervisor restarts it as configured\n";
  return 0;
}

int kill_node_cmd(const ops_options& opts) {
  auto tok = load_token(opts);
  if (!tok)
    return exit_error;
  node_api api{opts.node};
  auto doc = api.get("/api/nodes");
  if (!doc)
    return api.rc();
  std::optional<json> target;
  std::string known;
  for (auto& n : doc->value("nodes", json::array())) {
    if (field(n, "name") == opts.name)
      target = n;
    known += (known.empty() ? "" : ", ") + field(n, "name");
  }
  if (!target) {
    std::cerr << "ftctl: error: no node " << opts.name << " in the cluster of "
              << opts.node << " (members: " << (known.empty() ? "-" : known)
              << ")\n";
    return exit_not_found;
  }
  auto http_port = target->value("http_port", json{});
  if (!http_port.is_number_integer() || http_port.get<int64_t>() <= 0) {
    std::cerr << "ftctl: error: node " << opts.name
              << " has no HTTP port in the member list of " << opts.node
              << '\n';
    return exit_error;
  }
  auto address = field(*target, "host") + ":" + http_port.dump();
  node_api victim{address};
  victim.set_token(tok->value, tok->source);
  auto res = victim.post("/api/kill", {{"node", true}});
  if (!res)
    return victim.rc();
  if (opts.format == "json") {
    print_json(*res);
    return 0;
  }
  std::cout << "killed node " << field(*res, "killed") << " at " << address
            << " (pid " << field(*res, "pid") << ")\n";
  return 0;
}

// -- doctor: sockets ----------------------------------------------------------

/// Closes a file descriptor on scope exit.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// getaddrinfo's list, freed on scope exit.
struct addr_list {
  addrinfo* head = nullptr;
  ~addr_list() {
    if (head)
      freeaddrinfo(head);
  }
};

/// Resolves `host:port` for a TCP socket; the error in words otherwise.
std::string resolve(const std::string& host, uint16_t port, bool passive,
                    addr_list& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  auto service = std::to_string(port);
  auto rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &out.head);
  if (rc != 0)
    return "cannot resolve " + host + ": " + gai_strerror(rc);
  return {};
}

/// Binds (and releases) `host:port` as a node would (SO_REUSEADDR, so a
/// connection in TIME_WAIT does not count): 0 when free, else the errno of
/// the first address that failed; `resolve_error` when the host does not
/// resolve.
int try_bind(const std::string& host, uint16_t port,
             std::string& resolve_error) {
  addr_list addrs;
  resolve_error = resolve(host, port, true, addrs);
  if (!resolve_error.empty())
    return -1;
  for (auto* ai = addrs.head; ai; ai = ai->ai_next) {
    fd_guard s{::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol)};
    if (s.fd < 0)
      return errno;
    int one = 1;
    ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(s.fd, ai->ai_addr, ai->ai_addrlen) != 0)
      return errno;
  }
  return 0;
}

/// Connects to `host:port` within `timeout`; empty when it accepted, else
/// why not.
std::string try_connect(const std::string& host, uint16_t port,
                        milliseconds timeout) {
  addr_list addrs;
  if (auto err = resolve(host, port, false, addrs); !err.empty())
    return err;
  std::string why = "no address";
  for (auto* ai = addrs.head; ai; ai = ai->ai_next) {
    fd_guard s{::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol)};
    if (s.fd < 0)
      return std::strerror(errno);
    ::fcntl(s.fd, F_SETFL, ::fcntl(s.fd, F_GETFL) | O_NONBLOCK);
    if (::connect(s.fd, ai->ai_addr, ai->ai_addrlen) == 0)
      return {};
    if (errno != EINPROGRESS) {
      why = std::strerror(errno);
      continue;
    }
    pollfd p{s.fd, POLLOUT, 0};
    auto n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n == 0) {
      why = "no connection within " + std::to_string(timeout.count())
            + " ms";
      continue;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (n > 0 && err == 0)
      return {};
    why = std::strerror(n < 0 ? errno : err);
  }
  return why;
}

/// Where to dial a server listening on `host` (a wildcard is reached on
/// loopback).
std::string dial_host(const std::string& host) {
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]")
    return "127.0.0.1";
  return host;
}

// -- doctor: secrets ----------------------------------------------------------

std::string hex(const unsigned char* data, size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 0x0f];
  }
  return out;
}

/// hex(HMAC-SHA256(secret, data)), as the node computes its proof.
std::string hmac_hex(const std::string& secret, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(),
            out, &len))
    return {};
  return hex(out, len);
}

/// 16 random bytes as hex: every auth check asks a fresh question, so a
/// recorded answer proves nothing.
std::string make_nonce() {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof(buf)) != 1) {
    std::random_device rd;
    for (auto& b : buf)
      b = static_cast<unsigned char>(rd());
  }
  return hex(buf, sizeof(buf));
}

// -- doctor: checks -----------------------------------------------------------

/// One line of the report.
struct check {
  std::string name;
  /// `ok`, `fail` or `skip`.
  std::string status;
  std::string detail;
  /// What to do about a failure.
  std::string fix;
};

check ok(std::string name, std::string detail) {
  return {std::move(name), "ok", std::move(detail), {}};
}

check failed(std::string name, std::string detail, std::string fix) {
  return {std::move(name), "fail", std::move(detail), std::move(fix)};
}

check skipped(std::string name, std::string why) {
  return {std::move(name), "skip", std::move(why), {}};
}

/// The context of an error without its code's name (`node.yaml:2: ...`).
std::string reason_of(const caf::error& err) {
  auto text = ft::render(err);
  auto colon = text.find(": ");
  if (colon != std::string::npos
      && text.find_first_of(" /", 0) > colon) // a bare code name first
    text.erase(0, colon + 2);
  return text;
}

/// What the doctor learned along the way.
struct doctor_state {
  const ops_options* opts = nullptr;
  std::optional<ft::node_config> cfg;
  /// The config's node answering on its own HTTP endpoint (/api/status).
  std::optional<json> ours;
  /// A node to ask (secret match, clock skew), or why there is none.
  std::optional<node_api> node;
  std::string no_node_reason;
  /// The secret that passed the secret check.
  std::optional<std::string> secret;
  std::string secret_path;
};

/// Why a check that needs the config did not run.
std::string no_config_reason(const doctor_state& st) {
  return st.opts->config.empty() ? "no --config given" : "no valid config";
}

check check_config(doctor_state& st) {
  auto& opts = *st.opts;
  if (opts.config.empty())
    return skipped("config", "no --config FILE given (ports, data_dir and "
                             "seeds are checked against a config)");
  auto cfg = ft::node_config_from_file(opts.config);
  if (!cfg) {
    auto why = reason_of(cfg.error());
    return failed("config", why,
                  why.find("is not a known field") != std::string::npos
                    ? "remove or rename that field (the known ones are "
                      "listed); ft-node refuses unknown fields"
                    : "fix what the file:line names; ft-node refuses to "
                      "start with this config");
  }
  st.cfg = std::move(*cfg);
  auto& c = *st.cfg;
  // Is the config's node running? It then holds its ports.
  if (c.http_port != 0) {
    node_api probe{dial_host(c.http_host) + ":" + std::to_string(c.http_port)};
    probe.set_quiet(true);
    probe.set_timeouts(milliseconds{1000}, milliseconds{2000});
    if (auto status = probe.get("/api/status");
        status && field(*status, "node") == c.name)
      st.ours = std::move(*status);
  }
  return ok("config", opts.config + ": node " + c.name + ", cluster "
                        + c.host + ":" + std::to_string(c.port) + ", http "
                        + c.http_host + ":" + std::to_string(c.http_port)
                        + ", " + std::to_string(c.seeds.size()) + " seed"
                        + (c.seeds.size() == 1 ? "" : "s")
                        + (st.ours ? " (running)" : ""));
}

check check_ports(doctor_state& st) {
  if (!st.cfg)
    return skipped("ports", no_config_reason(st));
  auto& c = *st.cfg;
  struct port_use {
    const char* what;
    std::string host;
    uint16_t port;
  };
  std::vector<std::string> notes;
  std::vector<std::string> problems;
  std::vector<std::string> fixes;
  for (auto& p : {port_use{"port", c.host, c.port},
                  port_use{"http_port", c.http_host, c.http_port}}) {
    auto where = p.host + ":" + std::to_string(p.port);
    if (p.port == 0) {
      notes.push_back(std::string{p.what} + " 0 (picked at start)");
      continue;
    }
    std::string resolve_error;
    auto err = try_bind(p.host, p.port, resolve_error);
    if (err == 0) {
      notes.push_back(std::string{p.what} + " " + where + " free");
      continue;
    }
    if (!resolve_error.empty()) {
      problems.push_back(std::string{p.what} + " " + where + ": "
                         + resolve_error);
      fixes.push_back("set " + std::string{p.what == std::string{"port"}
                                             ? "host"
                                             : "http_host"}
                      + " to an address of this machine");
      continue;
    }
    if (err == EADDRINUSE) {
      if (st.ours && st.ours->value(p.what, json{}) == p.port) {
        notes.push_back(std::string{p.what} + " " + where + " held by node "
                        + c.name + " (running, pid "
                        + field(*st.ours, "pid") + ")");
        continue;
      }
      problems.push_back(std::string{p.what} + " " + where
                         + " is in use by another process");
      fixes.push_back("stop the process listening on port "
                      + std::to_string(p.port) + " (ss -ltnp 'sport = :"
                      + std::to_string(p.port) + "') or set another "
                      + p.what + " in " + st.opts->config);
      continue;
    }
    problems.push_back(std::string{p.what} + " " + where
                       + " cannot be bound: " + std::strerror(err));
    fixes.push_back(err == EADDRNOTAVAIL
                      ? "the host must be an address of this machine"
                      : "pick a port this user may bind (>= 1024 unless "
                        "root)");
  }
  auto join = [](const std::vector<std::string>& xs) {
    std::string out;
    for (auto& x : xs)
      out += (out.empty() ? "" : "; ") + x;
    return out;
  };
  if (!problems.empty())
    return failed("ports", join(problems), join(fixes));
  return ok("ports", join(notes));
}

check check_data_dir(doctor_state& st) {
  if (!st.cfg)
    return skipped("data_dir", no_config_reason(st));
  auto& dir = st.cfg->data_dir;
  auto& cfg_file = st.opts->config;
  if (dir.empty())
    return failed("data_dir", "data_dir is not set",
                  "set data_dir: DIR in " + cfg_file
                    + " (the snapshot store lives in DIR/snapshots)");
  std::error_code ec;
  fs::path path{dir};
  // Directories this check creates, removed again when done: the doctor
  // leaves no trace.
  std::vector<fs::path> created;
  if (!fs::exists(path, ec)) {
    for (auto p = path; !p.empty() && !fs::exists(p, ec);
         p = p.parent_path()) {
      created.push_back(p);
      if (p == p.parent_path())
        break;
    }
    if (!fs::create_directories(path, ec) && ec)
      return failed("data_dir",
                    "cannot create data_dir " + dir + ": " + ec.message(),
                    "create it, or point data_dir at a place under a "
                    "writable directory");
  } else if (!fs::is_directory(path, ec)) {
    return failed("data_dir", "data_dir " + dir + " is not a directory",
                  "point data_dir at a directory (or remove the file)");
  }
  auto cleanup = [&] {
    for (auto& p : created)
      fs::remove(p, ec);
  };
  auto probe = path / (".ftctl-doctor-" + std::to_string(::getpid()));
  fd_guard f{::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                    0600)};
  if (f.fd < 0 || ::write(f.fd, "x", 1) != 1) {
    auto why = std::string{std::strerror(errno)};
    if (f.fd >= 0)
      ::unlink(probe.c_str());
    cleanup();
    return failed("data_dir", "data_dir " + dir + " is not writable: " + why,
                  "give the user that runs ft-node write access (chown or "
                  "chmod) or point data_dir elsewhere");
  }
  ::unlink(probe.c_str());
  std::string detail = "data_dir " + dir
                       + (created.empty() ? " is writable"
                                          : " can be created and written");
  cleanup();
  auto snaps = path / "snapshots";
  if (!fs::is_directory(snaps, ec) || !fs::exists(snaps / "data.mdb", ec))
    return ok("data_dir", detail + "; no snapshot store yet");
  auto report = ftctl::verify_store(snaps.string());
  auto verify_fix = "ftctl snapshot verify --dir " + snaps.string()
                    + " lists them; remove bad records with ftctl snapshot "
                      "rm --dir "
                    + snaps.string() + " KEY --seq N";
  if (!report)
    return failed("data_dir",
                  "snapshot store " + snaps.string()
                    + " cannot be opened: " + reason_of(report.error()),
                  "move the directory aside (the node recovers its "
                  "entities from replicas) or restore it from a backup");
  if (!report->bad.empty()) {
    auto& first = report->bad.front();
    return failed("data_dir",
                  "snapshot store " + snaps.string() + ": "
                    + std::to_string(report->bad.size()) + " of "
                    + std::to_string(report->records)
                    + " records are bad (first: " + first.key + " #"
                    + std::to_string(first.sequence) + ": "
                    + ft::render(first.reason) + ")",
                  verify_fix);
  }
  return ok("data_dir", detail + "; snapshot store: "
                          + std::to_string(report->records)
                          + " records, all good");
}

check check_seeds(doctor_state& st) {
  if (!st.cfg)
    return skipped("seeds", no_config_reason(st));
  auto& c = *st.cfg;
  if (c.seeds.empty())
    return ok("seeds", "no seeds (the node starts a new cluster)");
  std::vector<std::string> good;
  std::vector<std::string> bad;
  for (size_t i = 0; i < c.seeds.size(); ++i) {
    auto& s = c.seeds[i];
    auto name = "seeds[" + std::to_string(i) + "] " + ft::to_string(s);
    if (s.host == c.host && s.port == c.port && !st.ours) {
      good.push_back(name + " (this node)");
      continue;
    }
    auto why = try_connect(s.host, s.port, milliseconds{1000});
    if (why.empty())
      good.push_back(name);
    else
      bad.push_back(name + ": " + why);
  }
  auto join = [](const std::vector<std::string>& xs) {
    std::string out;
    for (auto& x : xs)
      out += (out.empty() ? "" : "; ") + x;
    return out;
  };
  if (!bad.empty())
    return failed("seeds", join(bad) + " (unreachable)",
                  "start a node at that address, or fix seeds: in "
                    + st.opts->config
                    + " (a node that reaches no seed cannot join)");
  return ok("seeds", join(good) + " accept connections");
}

/// Finds the node to ask for the secret match and the clock skew.
void find_node(doctor_state& st) {
  auto& opts = *st.opts;
  auto explicit_node = opts.doctor_node;
  if (explicit_node.empty())
    if (auto* env = std::getenv("FT_NODE"); env && *env)
      explicit_node = env;
  if (!explicit_node.empty()) {
    node_api api{explicit_node};
    api.set_quiet(true);
    api.set_timeouts(milliseconds{1000}, milliseconds{3000});
    if (api.get("/api/status"))
      st.node = std::move(api);
    else
      st.no_node_reason = api.error();
    return;
  }
  if (st.ours) {
    node_api api{dial_host(st.cfg->http_host) + ":"
                 + std::to_string(st.cfg->http_port)};
    api.set_quiet(true);
    api.set_timeouts(milliseconds{1000}, milliseconds{3000});
    st.node = std::move(api);
    return;
  }
  st.no_node_reason = "no node to ask: give --node HOST:PORT (or start the "
                      "config's node)";
}

check check_secret(doctor_state& st) {
  auto& opts = *st.opts;
  std::string path = opts.secret_file;
  if (path.empty() && st.cfg)
    path = st.cfg->cluster_secret_file;
  if (path.empty())
    if (auto* env = std::getenv("FT_CLUSTER_SECRET_FILE"); env && *env)
      path = env;
  if (path.empty() && !opts.config.empty() && !st.cfg)
    return skipped("secret", "no valid config to name its "
                             "cluster_secret_file (or give --secret-file)");
  if (path.empty())
    return skipped("secret", "no --secret-file, no cluster_secret_file in "
                             "the config, no FT_CLUSTER_SECRET_FILE (a "
                             "cluster without a secret admits any node)");
  auto secret = read_secret(path);
  if (!secret)
    return failed("secret", reason_of(secret.error()),
                  "write the cluster's secret (one line) to " + path
                    + ", readable by the user that runs the node");
  st.secret = std::move(*secret);
  st.secret_path = path;
  return ok("secret", path + " is readable and not empty");
}

check check_secret_match(doctor_state& st) {
  const char* name = "secret match";
  if (!st.secret)
    return skipped(name, "no secret to match");
  if (!st.node)
    return skipped(name, st.no_node_reason);
  auto& api = *st.node;
  auto nonce = make_nonce();
  auto doc = api.get("/api/auth-check?nonce=" + nonce);
  if (!doc)
    return skipped(name, "node " + api.address()
                           + " gave no proof: " + api.error());
  auto expected = hmac_hex(*st.secret, "doctor|" + nonce);
  auto node = field(*doc, "node");
  if (field(*doc, "proof") == expected)
    return ok(name, st.secret_path + " matches node " + node + "'s secret");
  return failed(name,
                st.secret_path + " does not hold node " + node
                  + "'s cluster secret (at " + api.address() + ")",
                "copy the cluster's secret file (node " + node
                  + "'s cluster_secret_file) to " + st.secret_path);
}

check check_clock(doctor_state& st) {
  const char* name = "clock skew";
  if (!st.node)
    return skipped(name, st.no_node_reason);
  auto& api = *st.node;
  auto doc = api.get("/api/nodes");
  if (!doc)
    return skipped(name, "node " + api.address()
                           + " did not list its members: " + api.error());
  auto limit = st.opts->max_skew_ms;
  std::vector<std::string> measured;
  std::vector<std::string> too_far;
  std::vector<std::string> unknown;
  for (auto& n : doc->value("nodes", json::array())) {
    if (field(n, "state") != "up")
      continue;
    auto who = field(n, "name");
    node_api peer{field(n, "host") + ":" + field(n, "http_port")};
    peer.set_quiet(true);
    peer.set_timeouts(milliseconds{1000}, milliseconds{2000});
    auto t0 = wall_ms();
    auto s0 = std::chrono::steady_clock::now();
    auto status = peer.get("/api/status");
    auto rtt = std::chrono::duration<double, std::milli>(
                 std::chrono::steady_clock::now() - s0)
                 .count();
    if (!status) {
      unknown.push_back(who + " unreachable");
      continue;
    }
    auto wall = status->value("wall_ms", json{});
    if (!wall.is_number()) {
      unknown.push_back(who + " reports no wall_ms");
      continue;
    }
    // The node read its clock about halfway through the round trip.
    auto skew = static_cast<int64_t>(wall.get<double>() - (t0 + rtt / 2));
    auto text = who + " " + (skew >= 0 ? "+" : "") + std::to_string(skew)
                + " ms (rtt " + std::to_string(static_cast<int64_t>(rtt))
                + " ms)";
    measured.push_back(text);
    if (std::llabs(skew) > limit)
      too_far.push_back(text);
  }
  auto join = [](const std::vector<std::string>& xs) {
    std::string out;
    for (auto& x : xs)
      out += (out.empty() ? "" : ", ") + x;
    return out;
  };
  auto extra = unknown.empty() ? "" : "; not measured: " + join(unknown);
  if (!too_far.empty())
    return failed(name,
                  join(too_far) + " off the local clock (limit "
                    + std::to_string(limit) + " ms)" + extra,
                  "sync the clocks with NTP (chronyc tracking, timedatectl "
                  "timesync-status): event times and snapshot ages compare "
                  "clocks across nodes");
  if (measured.empty())
    return skipped(name, "no up node reported its clock" + extra);
  return ok(name, join(measured) + " (limit " + std::to_string(limit)
                    + " ms)" + extra);
}

int doctor_cmd(const ops_options& opts) {
  doctor_state st;
  st.opts = &opts;
  std::vector<check> checks;
  checks.push_back(check_config(st));
  checks.push_back(check_ports(st));
  checks.push_back(check_data_dir(st));
  checks.push_back(check_seeds(st));
  find_node(st);
  checks.push_back(check_secret(st));
  checks.push_back(check_secret_match(st));
  checks.push_back(check_clock(st));
  size_t n_ok = 0;
  size_t n_fail = 0;
  size_t n_skip = 0;
  for (auto& c : checks)
    (c.status == "ok" ? n_ok : c.status == "fail" ? n_fail : n_skip) += 1;
  if (opts.format == "json") {
    auto xs = json::array();
    for (auto& c : checks) {
      json x = {{"check", c.name}, {"status", c.status}, {"detail", c.detail}};
      if (!c.fix.empty())
        x["fix"] = c.fix;
      xs.push_back(std::move(x));
    }
    print_json({{"ok", n_fail == 0}, {"checks", xs}});
  } else {
    size_t width = 0;
    for (auto& c : checks)
      width = std::max(width, c.name.size());
    for (auto& c : checks) {
      std::cout << std::left << std::setw(6) << c.status << std::setw(width + 2)
                << c.name << c.detail << '\n';
      if (!c.fix.empty())
        std::cout << std::string(6 + width + 2, ' ') << "fix: " << c.fix
                  << '\n';
    }
    std::cout << "doctor: " << n_ok << " ok, " << n_fail << " failed, "
              << n_skip << " skipped\n";
  }
  return n_fail == 0 ? 0 : exit_error;
}

} // namespace

namespace ftctl {

/// Adds `health`, `tree`, `circuits [reset]`, `events`, `kill actor|node`
/// and `doctor` to `app`. The returned function runs the command the parsed
/// command line selected, or returns -1 when it selected none of them.
std::function<int()> add_ops_commands(CLI::App& app) {
  auto opts = std::make_shared<ops_options>();
  // Read here, not with CLI11's envname, for the reason add_cluster_commands
  // gives.
  opts->node = default_node();
  auto add_node = [opts](CLI::App* cmd) {
    cmd->add_option("--node", opts->node,
                    "the node's HTTP endpoint HOST:PORT (default: $FT_NODE, "
                    "else 127.0.0.1:8101)");
  };
  auto add_format = [opts](CLI::App* cmd) {
    cmd->add_option("--format", opts->format, "output format")
      ->check(CLI::IsMember({"table", "json"}));
  };
  auto add_common = [=](CLI::App* cmd) {
    add_node(cmd);
    add_format(cmd);
  };
  auto add_secret = [opts](CLI::App* cmd) {
    cmd->add_option("--secret-file", opts->secret_file,
                    "the cluster secret file (default: "
                    "$FT_CLUSTER_SECRET_FILE)");
  };

  auto* health = app.add_subcommand(
    "health", "the node's health; exit 4 when unhealthy");
  add_common(health);
  health->add_option("--component", opts->component,
                     "only this component (supervision, breakers, "
                     "snapshot_store, cluster)");

  auto* tree = app.add_subcommand("tree", "the node's supervision tree");
  add_common(tree);

  auto* circuits = app.add_subcommand("circuits",
                                      "the node's circuit breakers");
  add_common(circuits);
  circuits->require_subcommand(0, 1);
  auto* reset = circuits->add_subcommand(
    "reset", "close circuits: KEY [--scope S], --scope S or --all");
  add_common(reset);
  add_secret(reset);
  reset->add_option("key", opts->key, "the circuit's key");
  reset->add_option("--scope", opts->scope,
                    "the circuits' scope (with KEY: default worker)");
  reset->add_flag("--all", opts->all, "every circuit of every scope");

  auto* events = app.add_subcommand("events", "the node's event journal");
  add_common(events);
  events->add_option("--since", opts->since,
                     "only events with a higher id (default 0: all kept)");
  events->add_option("--min-severity", opts->min_severity,
                     "1..4 or info, warning, error, critical");
  events->add_flag("--follow,-f", opts->follow,
                   "keep polling (500 ms) until SIGINT/SIGTERM");
  events->add_option("--max-events", opts->max_events,
                     "end after printing this many events");
  events->add_option("--timeout", opts->timeout_s,
                     "end --follow after this many seconds");

  auto* kill = app.add_subcommand("kill", "fault injection: kill an actor "
                                          "or a node");
  kill->require_subcommand(1);
  auto* kill_actor = kill->add_subcommand(
    "actor", "kill a supervised child; its supervisor restarts it");
  add_common(kill_actor);
  add_secret(kill_actor);
  kill_actor->add_option("path", opts->path,
                         "SUPERVISOR/CHILD as `ftctl tree` shows it (e.g. "
                         "entities@n1/c1)")
    ->required();
  auto* kill_node = kill->add_subcommand(
    "node", "SIGKILL a node (found in --node's member list)");
  add_common(kill_node);
  add_secret(kill_node);
  kill_node->add_option("name", opts->name, "the node's name")->required();

  auto* doctor = app.add_subcommand(
    "doctor", "check a node's config, ports, data dir, seeds, secret and "
              "clock; exit 1 if any check fails");
  add_format(doctor);
  add_secret(doctor);
  doctor->add_option("--config", opts->config, "the node's YAML config");
  doctor->add_option("--node", opts->doctor_node,
                     "a running node to check the secret and clocks "
                     "against (default: $FT_NODE, else the config's node "
                     "when it runs)");
  doctor->add_option("--max-skew-ms", opts->max_skew_ms,
                     "the clock skew that fails (default 500)")
    ->check(CLI::NonNegativeNumber);

  return [=]() -> int {
    if (*health)
      return health_cmd(*opts);
    if (*tree)
      return tree_cmd(*opts);
    if (*reset)
      return circuits_reset_cmd(*opts);
    if (*circuits)
      return circuits_cmd(*opts);
    if (*events)
      return events_cmd(*opts);
    if (*kill_actor)
      return kill_actor_cmd(*opts);
    if (*kill_node)
      return kill_node_cmd(*opts);
    if (*doctor)
      return doctor_cmd(*opts);
    return -1;
  };
}

} // namespace ftctl
