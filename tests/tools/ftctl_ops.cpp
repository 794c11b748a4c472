// ftctl's operations commands (health, tree, circuits, events, kill,
// doctor), run as a user runs them (FTCTL):
//
// - [ftctl_ops]: against a stand-in node (an httplib::Server in the test
//   process answering with replies shaped like the HTTP contract and
//   recording what ftctl sent);
// - [doctor]: `ftctl doctor` on configs, ports, data dirs and seeds the test
//   sets up on 127.0.0.1;
// - [ftctl_ops_live]: against a real ft-node process (FT_NODE).

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ft/snapshot_store.hpp"

#include "process_harness.hpp"

using Catch::Matchers::Contains;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

const std::string host = "127.0.0.1";

/// Runs ftctl with `args`; FT_NODE and FT_CLUSTER_SECRET_FILE are unset
/// unless given, so a developer's environment cannot change the outcome.
ft_test::run_result
ftctl(std::vector<std::string> args,
      std::map<std::string, std::optional<std::string>> env = {}) {
  args.insert(args.begin(), FTCTL);
  env.emplace("FT_NODE", std::nullopt);
  env.emplace("FT_CLUSTER_SECRET_FILE", std::nullopt);
  return ft_test::run(std::move(args), 40s, std::move(env));
}

std::string hmac_hex(const std::string& secret, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &len);
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += digits[out[i] >> 4];
    hex += digits[out[i] & 0x0f];
  }
  return hex;
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

// -- a stand-in node ----------------------------------------------------------

/// A request as the fake node saw it.
struct seen_request {
  std::string method;
  std::string path;
  std::map<std::string, std::string> params;
  std::string authorization;
  json body;
};

/// An HTTP server on 127.0.0.1 whose routes a test sets up before it
/// starts; every request is recorded.
class fake_node {
public:
  using handler = std::function<void(const httplib::Request&,
                                     httplib::Response&)>;

  fake_node() {
    port_ = svr_.bind_to_any_port(host.c_str());
    REQUIRE(port_ > 0);
  }

  ~fake_node() {
    svr_.stop();
    if (thread_.joinable())
      thread_.join();
  }

  void get(const std::string& pattern, handler f) {
    svr_.Get(pattern, wrap(std::move(f)));
  }

  void post(const std::string& pattern, handler f) {
    svr_.Post(pattern, wrap(std::move(f)));
  }

  /// Serves the routes set up so far.
  void start() {
    thread_ = std::thread{[this] { svr_.listen_after_bind(); }};
    REQUIRE(ft_test::wait_until([this] { return svr_.is_running(); }, 5s));
  }

  int port() const {
    return port_;
  }

  std::string address() const {
    return host + ":" + std::to_string(port_);
  }

  std::vector<seen_request> requests() {
    std::lock_guard<std::mutex> guard{mtx_};
    return seen_;
  }

  /// Requests to `path`.
  std::vector<seen_request> requests(const std::string& path) {
    std::vector<seen_request> out;
    for (auto& r : requests())
      if (r.path == path)
        out.push_back(r);
    return out;
  }

  static void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
  }

  static void error(httplib::Response& res, int status,
                    const std::string& code, const std::string& message) {
    reply(res, status, {{"error", code}, {"message", message}});
  }

private:
  handler wrap(handler f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      seen_request x;
      x.method = req.method;
      x.path = req.path;
      for (auto& [k, v] : req.params)
        x.params[k] = v;
      x.authorization = req.get_header_value("Authorization");
      x.body = json::parse(req.body, nullptr, false);
      if (x.body.is_discarded())
        x.body = nullptr;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        seen_.push_back(x);
      }
      f(req, res);
    };
  }

  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mtx_;
  std::vector<seen_request> seen_;
};

/// `Authorization: Bearer <secret>` or a 401, as the node checks it.
bool authorized(const httplib::Request& req, httplib::Response& res,
                const std::string& secret) {
  if (req.get_header_value("Authorization") == "Bearer " + secret)
    return true;
  fake_node::error(res, 401, "auth_failed", "missing or wrong cluster token");
  return false;
}

json health_doc(const std::string& status) {
  auto comp = [](const std::string& st, json reasons) {
    return json{{"status", st}, {"reasons", std::move(reasons)}};
  };
  return {{"node", "n1"},
          {"status", status},
          {"liveness", {{"status", "up"}}},
          {"readiness",
           {{"status", status == "unhealthy" ? "not_ready" : "ready"},
            {"reasons", status == "unhealthy"
                          ? json{"supervision is unhealthy"}
                          : json::array()}}},
          {"startup", {{"status", "started"}}},
          {"components",
           {{"supervision",
             comp(status == "unhealthy" ? "unhealthy" : "healthy",
                  status == "unhealthy"
                    ? json{"entities@n1 escalated"}
                    : json::array())},
            {"breakers",
             comp(status == "healthy" ? "healthy" : "degraded",
                  status == "healthy" ? json::array()
                                      : json{"worker/w1 is open"})},
            {"snapshot_store", comp("healthy", json::array())},
            {"cluster", comp("healthy", json::array())}}}};
}

// -- doctor fixtures ----------------------------------------------------------

/// A node config in a temp dir, written as YAML by `write()`.
struct doctor_fixture {
  ft_test::temp_dir dir{"ft-doctor-test"};
  std::string name = "n1";
  uint16_t port = 0;
  uint16_t http_port = 0;
  std::string data_dir;
  std::vector<std::string> seeds;
  std::string extra;

  doctor_fixture() {
    auto ports = ft_test::free_ports(2);
    port = ports[0];
    http_port = ports[1];
    data_dir = (dir / "data").string();
    ft_test::write_file(dir / "secret", "doctor-secret\n");
  }

  std::string config_path() const {
    return (dir / "node.yaml").string();
  }

  std::string write() const {
    std::string yaml = "name: " + name + "\nhost: 127.0.0.1\nport: "
                       + std::to_string(port) + "\nhttp_port: "
                       + std::to_string(http_port) + "\ndata_dir: " + data_dir
                       + "\ncluster_secret_file: secret\n";
    if (!seeds.empty()) {
      yaml += "seeds:\n";
      for (auto& s : seeds)
        yaml += "  - \"" + s + "\"\n";
    }
    yaml += extra;
    ft_test::write_file(config_path(), yaml);
    return config_path();
  }

  ft_test::run_result doctor(std::vector<std::string> args = {}) const {
    std::vector<std::string> argv{"doctor", "--config", config_path(),
                                  "--format", "json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return ftctl(argv);
  }
};

/// The check named `name` of doctor's JSON report.
json check_of(const ft_test::run_result& res, const std::string& name) {
  auto doc = json::parse(res.out, nullptr, false);
  REQUIRE_FALSE(doc.is_discarded());
  for (auto& c : doc["checks"])
    if (c["check"] == name)
      return c;
  FAIL("no check " << name);
  return {};
}

std::string detail_of(const json& check) {
  return check.value("detail", "");
}

/// A store with one snapshot of `key`, whose payload byte then flips.
void write_corrupt_store(const fs::path& dir) {
  {
    ft::snapshot_store_options opts;
    opts.mode = ft::durability::nosync;
    auto store = ft::snapshot_store::open(dir.string(), opts);
    REQUIRE(store);
    ft::snapshot_envelope x;
    x.key = "account/bob";
    x.actor_type = "account";
    x.sequence = 7;
    x.timestamp_ms = 1'700'000'000'000;
    std::string payload = "BOB-PAYLOAD-TO-CORRUPT-0123";
    x.payload.assign(payload.begin(), payload.end());
    REQUIRE_FALSE(store->write(x));
  }
  auto path = dir / "data.mdb";
  std::string bytes;
  {
    std::ifstream in{path, std::ios::binary};
    bytes.assign(std::istreambuf_iterator<char>{in}, {});
  }
  auto pos = bytes.find("BOB-PAYLOAD-TO-CORRUPT-0123");
  REQUIRE(pos != std::string::npos);
  bytes[pos + 10] ^= 0x20;
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

} // namespace

// -- health -------------------------------------------------------------------

TEST_CASE("ftctl health prints components and exits 4 only when unhealthy",
          "[ftctl_ops]") {
  std::string status = "healthy";
  fake_node node;
  node.get("/health", [&](const auto& req, auto& res) {
    auto doc = health_doc(status);
    if (req.has_param("component")) {
      auto name = req.get_param_value("component");
      if (!doc["components"].contains(name))
        return fake_node::error(res, 404, "not_found",
                                "no health component " + name);
      doc["components"] = {{name, doc["components"][name]}};
    }
    fake_node::reply(res, status == "unhealthy" ? 503 : 200, doc);
  });
  node.start();
  auto healthy = ftctl({"health", "--node", node.address()});
  INFO(healthy.output());
  CHECK(healthy.rc == 0);
  CHECK_THAT(healthy.out, Contains("COMPONENT"));
  CHECK_THAT(healthy.out, Contains("REASONS"));
  CHECK_THAT(healthy.out, Contains("snapshot_store"));
  CHECK_THAT(healthy.out, Contains("node n1: healthy"));
  status = "degraded";
  auto degraded = ftctl({"health", "--node", node.address()});
  INFO(degraded.output());
  CHECK(degraded.rc == 0);
  CHECK_THAT(degraded.out, Contains("worker/w1 is open"));
  // 503 still carries the report: it is printed, the exit code is 4.
  status = "unhealthy";
  auto unhealthy = ftctl({"health", "--node", node.address()});
  INFO(unhealthy.output());
  CHECK(unhealthy.rc == 4);
  CHECK_THAT(unhealthy.out, Contains("entities@n1 escalated"));
  CHECK_THAT(unhealthy.out, Contains("not ready: supervision is unhealthy"));
  auto js = ftctl({"health", "--format", "json", "--node", node.address()});
  CHECK(js.rc == 4);
  CHECK(json::parse(js.out) == health_doc("unhealthy"));
  // One component: the exit code follows it.
  auto breakers = ftctl({"health", "--component", "breakers", "--node",
                         node.address()});
  INFO(breakers.output());
  CHECK(breakers.rc == 0);
  CHECK_THAT(breakers.out, Contains("breakers"));
  CHECK_THAT(breakers.out, !Contains("\nsupervision"));
  auto sup = ftctl({"health", "--component", "supervision", "--node",
                    node.address()});
  CHECK(sup.rc == 4);
  auto unknown = ftctl({"health", "--component", "nope", "--node",
                        node.address()});
  INFO(unknown.output());
  CHECK(unknown.rc == 3);
  CHECK_THAT(unknown.err, Contains("no health component nope"));
  auto reqs = node.requests("/health");
  REQUIRE(reqs.size() == 7);
  CHECK(reqs[4].params.at("component") == "breakers");
}

TEST_CASE("ftctl health reports an unreachable node", "[ftctl_ops]") {
  auto address = host + ":" + std::to_string(ft_test::free_port());
  auto res = ftctl({"health", "--node", address});
  CHECK(res.rc == 1);
  CHECK_THAT(res.err, Contains("cannot reach node " + address));
}

// -- tree ---------------------------------------------------------------------

TEST_CASE("ftctl tree prints supervisors and children as a tree",
          "[ftctl_ops]") {
  json inner = {{"name", "shard@n1"},
                {"strategy", "one_for_all"},
                {"intensity", 3},
                {"period_ms", 5000},
                {"restarts_in_window", 1},
                {"dynamic_children", 0},
                {"truncated", false},
                {"children",
                 {{{"id", "w1"},
                   {"type", "worker"},
                   {"state", "restarting"},
                   {"actor", nullptr},
                   {"restarts", 2},
                   {"last_exit", "kill"}}}}};
  json doc = {{"node", "n1"},
              {"supervisors",
               {{{"name", "entities@n1"},
                 {"strategy", "one_for_one"},
                 {"intensity", 1000},
                 {"period_ms", 10000},
                 {"restarts_in_window", 0},
                 {"dynamic_children", 2},
                 {"truncated", false},
                 {"children",
                  {{{"id", "c1"},
                    {"type", "worker"},
                    {"state", "running"},
                    {"actor", 42},
                    {"restarts", 3},
                    {"last_exit", "user_shutdown"}},
                   {{"id", "shard"},
                    {"type", "supervisor"},
                    {"state", "running"},
                    {"actor", 43},
                    {"restarts", 0},
                    {"last_exit", nullptr},
                    {"supervisor", inner}}}}}}}};
  fake_node node;
  node.get("/api/tree",
           [&](const auto&, auto& res) { fake_node::reply(res, 200, doc); });
  node.start();
  auto res = ftctl({"tree", "--node", node.address()});
  INFO(res.output());
  REQUIRE(res.rc == 0);
  CHECK_THAT(res.out, Contains("entities@n1  one_for_one  restarts 0/1000 "
                               "per 10s  2 dynamic\n"));
  CHECK_THAT(res.out, Contains("|-- c1     worker      running  restarts 3  "
                               "last exit: user_shutdown\n"));
  CHECK_THAT(res.out, Contains("`-- shard  supervisor  running  restarts 0  "
                               "-> shard@n1  one_for_all  restarts 1/3 per "
                               "5s\n"));
  CHECK_THAT(res.out, Contains("    `-- w1  worker  restarting  restarts 2  "
                               "last exit: kill\n"));
  auto js = ftctl({"tree", "--format", "json", "--node", node.address()});
  REQUIRE(js.rc == 0);
  CHECK(json::parse(js.out) == doc);
}

// -- circuits -----------------------------------------------------------------

TEST_CASE("ftctl circuits lists every scope's breakers", "[ftctl_ops]") {
  json doc = {{"aggregate",
               {{"total_circuits", 3},
                {"open_circuits", 1},
                {"half_open_circuits", 0},
                {"closed_circuits", 2},
                {"average_health", 70.5},
                {"overall_health", 70.5}}},
              {"worker",
               {{"w1",
                 {{"state", "open"},
                  {"health_percentage", 12.5},
                  {"successes", 1},
                  {"failures", 7},
                  {"rejected", 30},
                  {"last_transition", 1733350000000}}},
                {"w2",
                 {{"state", "closed"},
                  {"health_percentage", 100},
                  {"successes", 50},
                  {"failures", 0},
                  {"rejected", 0},
                  {"last_transition", nullptr}}}}},
              {"hardware",
               {{"gpu0",
                 {{"state", "closed"},
                  {"health_percentage", 99},
                  {"successes", 9},
                  {"failures", 0},
                  {"rejected", 0},
                  {"last_transition", nullptr}}}}},
              {"task_type", json::object()}};
  fake_node node;
  node.get("/api/circuit-breakers",
           [&](const auto&, auto& res) { fake_node::reply(res, 200, doc); });
  node.start();
  auto res = ftctl({"circuits", "--node", node.address()});
  INFO(res.output());
  REQUIRE(res.rc == 0);
  CHECK_THAT(res.out, Contains("SCOPE"));
  CHECK_THAT(res.out, Contains("REJECTED"));
  CHECK_THAT(res.out, Contains("gpu0"));
  CHECK_THAT(res.out, Contains("12.5%"));
  CHECK_THAT(res.out, Contains("100%"));
  CHECK_THAT(res.out, Contains("3 circuits: 1 open, 0 half-open, 2 closed; "
                               "overall health 70.5%"));
  auto header = res.out.substr(0, res.out.find('\n'));
  auto row = res.out.substr(res.out.find("worker    w1"));
  CHECK(row.find("open") == header.find("STATE"));
  CHECK(row.find("30") == header.find("REJECTED"));
  auto js = ftctl({"circuits", "--format", "json", "--node", node.address()});
  REQUIRE(js.rc == 0);
  CHECK(json::parse(js.out) == doc);
}

TEST_CASE("ftctl circuits reset sends the scope, key and cluster token",
          "[ftctl_ops]") {
  ft_test::temp_dir dir{"ft-ops-secret"};
  ft_test::write_file(dir / "secret", "s3cret\n");
  ft_test::write_file(dir / "wrong", "not-it\n");
  ft_test::write_file(dir / "empty", "\n");
  auto secret = (dir / "secret").string();
  fake_node node;
  node.post("/api/circuit-breakers/reset", [&](const auto& req, auto& res) {
    if (!authorized(req, res, "s3cret"))
      return;
    auto body = json::parse(req.body);
    fake_node::reply(res, 200, {{"reset", body.contains("key") ? 1 : 4}});
  });
  node.start();
  auto n = node.address();
  auto key = ftctl({"circuits", "reset", "w1", "--secret-file", secret,
                    "--node", n});
  INFO(key.output());
  CHECK(key.rc == 0);
  CHECK(key.out == "reset 1 circuit\n");
  auto scoped = ftctl({"circuits", "reset", "gpu0", "--scope", "hardware",
                       "--secret-file", secret, "--node", n});
  CHECK(scoped.rc == 0);
  auto scope = ftctl({"circuits", "reset", "--scope", "task_type",
                      "--secret-file", secret, "--node", n});
  CHECK(scope.rc == 0);
  CHECK(scope.out == "reset 4 circuits\n");
  // The token may come from FT_CLUSTER_SECRET_FILE.
  auto all = ftctl({"circuits", "reset", "--all", "--format", "json",
                    "--node", n},
                   {{"FT_CLUSTER_SECRET_FILE", secret}});
  INFO(all.output());
  CHECK(all.rc == 0);
  CHECK(json::parse(all.out) == json({{"reset", 4}}));
  auto reqs = node.requests();
  REQUIRE(reqs.size() == 4);
  CHECK(reqs[0].body == json({{"scope", "worker"}, {"key", "w1"}}));
  CHECK(reqs[1].body == json({{"scope", "hardware"}, {"key", "gpu0"}}));
  CHECK(reqs[2].body == json({{"scope", "task_type"}}));
  CHECK(reqs[3].body == json({{"all", true}}));
  for (auto& r : reqs) {
    CHECK(r.method == "POST");
    CHECK(r.authorization == "Bearer s3cret"); // the newline is stripped
  }
  // A wrong token: the node's 401 in words, exit 1.
  auto wrong = ftctl({"circuits", "reset", "--all", "--secret-file",
                      (dir / "wrong").string(), "--node", n});
  INFO(wrong.output());
  CHECK(wrong.rc == 1);
  CHECK_THAT(wrong.err, Contains("auth_failed"));
  CHECK_THAT(wrong.err, Contains("rejected the cluster token from "
                                 + (dir / "wrong").string()));
  // Nothing is sent without a token, an empty one, or without a target.
  auto none = ftctl({"circuits", "reset", "--all", "--node", n});
  CHECK(none.rc == 1);
  CHECK_THAT(none.err, Contains("--secret-file"));
  CHECK_THAT(none.err, Contains("FT_CLUSTER_SECRET_FILE"));
  auto empty = ftctl({"circuits", "reset", "--all", "--secret-file",
                      (dir / "empty").string(), "--node", n});
  CHECK(empty.rc == 1);
  CHECK_THAT(empty.err, Contains("empty"));
  auto missing = ftctl({"circuits", "reset", "--all", "--secret-file",
                        (dir / "nope").string(), "--node", n});
  CHECK(missing.rc == 1);
  CHECK_THAT(missing.err, Contains((dir / "nope").string()));
  auto nothing = ftctl({"circuits", "reset", "--secret-file", secret,
                        "--node", n});
  CHECK(nothing.rc == 1);
  CHECK_THAT(nothing.err, Contains("--all"));
  auto both = ftctl({"circuits", "reset", "w1", "--all", "--secret-file",
                     secret, "--node", n});
  CHECK(both.rc == 1);
  CHECK(node.requests().size() == 5);
}

// -- events -------------------------------------------------------------------

namespace {

/// A journal the test appends to while ftctl polls it.
class fake_journal {
public:
  void append(int severity, const std::string& kind) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto id = events_.size() + 1;
    events_.push_back({{"id", id},
                       {"ts_ms", 1733350000000 + static_cast<int64_t>(id)},
                       {"source", "supervisor"},
                       {"kind", kind},
                       {"severity", severity},
                       {"subject", "entities@n1/c" + std::to_string(id)},
                       {"message", kind + " number " + std::to_string(id)}});
  }

  void serve(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> guard{mtx_};
    uint64_t since = std::stoull(req.get_param_value("since"));
    int min_sev = req.has_param("min_severity")
                    ? std::stoi(req.get_param_value("min_severity"))
                    : 1;
    size_t limit = req.has_param("limit")
                     ? std::stoul(req.get_param_value("limit"))
                     : 1000;
    auto out = json::array();
    uint64_t next = since;
    for (auto& ev : events_)
      if (ev["id"].get<uint64_t>() > since && ev["severity"] >= min_sev
          && out.size() < limit) {
        out.push_back(ev);
        next = ev["id"].get<uint64_t>();
      }
    fake_node::reply(res, 200,
                     {{"node", "n1"}, {"next", next}, {"events", out}});
  }

  json event(size_t id) {
    std::lock_guard<std::mutex> guard{mtx_};
    return events_.at(id - 1);
  }

private:
  std::mutex mtx_;
  std::vector<json> events_;
};

/// The non-empty lines of `text`.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (!line.empty())
      out.push_back(line);
  return out;
}

} // namespace

TEST_CASE("ftctl events prints the journal since a cursor", "[ftctl_ops]") {
  fake_journal journal;
  journal.append(1, "child_started");
  journal.append(3, "child_restarted");
  journal.append(2, "opened");
  fake_node node;
  node.get("/api/events",
           [&](const auto& req, auto& res) { journal.serve(req, res); });
  node.start();
  auto table = ftctl({"events", "--node", node.address()});
  INFO(table.output());
  REQUIRE(table.rc == 0);
  CHECK_THAT(table.out, Contains("SEVERITY"));
  CHECK_THAT(table.out, Contains("2024-12-04T22:06:40.002Z"));
  CHECK_THAT(table.out, Contains("error"));
  CHECK_THAT(table.out, Contains("child_restarted number 2"));
  CHECK(lines_of(table.out).size() == 4);
  // JSON: one object per line, exactly as the node sent it.
  auto js = ftctl({"events", "--since", "1", "--min-severity", "warning",
                   "--format", "json", "--node", node.address()});
  INFO(js.output());
  REQUIRE(js.rc == 0);
  auto lines = lines_of(js.out);
  REQUIRE(lines.size() == 2);
  CHECK(json::parse(lines[0]) == journal.event(2));
  CHECK(json::parse(lines[1]) == journal.event(3));
  auto reqs = node.requests("/api/events");
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].params.at("since") == "0");
  CHECK(reqs[1].params.at("since") == "1");
  CHECK(reqs[1].params.at("min_severity") == "2");
  auto bad = ftctl({"events", "--min-severity", "loud", "--node",
                    node.address()});
  CHECK(bad.rc == 1);
  CHECK_THAT(bad.err, Contains("--min-severity loud"));
}

TEST_CASE("ftctl events --follow prints new events as they arrive",
          "[ftctl_ops]") {
  fake_journal journal;
  journal.append(1, "child_started");
  fake_node node;
  node.get("/api/events",
           [&](const auto& req, auto& res) { journal.serve(req, res); });
  node.start();
  ft_test::temp_dir dir{"ft-ops-follow"};
  SECTION("until --max-events") {
    ft_test::child_process proc{{FTCTL, "events", "--follow", "--format",
                                 "json", "--max-events", "3", "--node",
                                 node.address()},
                                {dir / "out", dir / "err", {}, {}}};
    REQUIRE(ft_test::wait_until(
      [&] { return lines_of(proc.out()).size() == 1; }, 5s));
    journal.append(2, "opened");
    REQUIRE(ft_test::wait_until(
      [&] { return lines_of(proc.out()).size() == 2; }, 5s));
    CHECK(proc.running());
    journal.append(4, "escalated");
    journal.append(1, "closed");
    auto rc = proc.wait_for(5s);
    INFO(proc.output());
    REQUIRE(rc);
    CHECK(*rc == 0);
    auto lines = lines_of(proc.out());
    REQUIRE(lines.size() == 3);
    for (size_t i = 0; i < 3; ++i)
      CHECK(json::parse(lines[i]) == journal.event(i + 1));
    // Each poll asked from the last id it got: nothing came twice.
    auto reqs = node.requests("/api/events");
    REQUIRE(reqs.size() >= 3);
    CHECK(reqs.front().params.at("since") == "0");
    CHECK(reqs.back().params.at("since") == "2");
  }
  SECTION("until SIGTERM") {
    ft_test::child_process proc{{FTCTL, "events", "-f", "--node",
                                 node.address()},
                                {dir / "out", dir / "err", {}, {}}};
    REQUIRE(ft_test::wait_until(
      [&] { return lines_of(proc.out()).size() == 2; }, 5s));
    CHECK_THAT(proc.out(), Contains("child_started number 1"));
    journal.append(3, "child_restarted");
    REQUIRE(ft_test::wait_until(
      [&] { return lines_of(proc.out()).size() == 3; }, 5s));
    proc.signal(SIGTERM);
    auto rc = proc.wait_for(5s);
    INFO(proc.output());
    REQUIRE(rc);
    CHECK(*rc == 0);
    CHECK_THAT(proc.out(), Contains("child_restarted number 2"));
  }
  SECTION("until --timeout") {
    auto t0 = std::chrono::steady_clock::now();
    auto res = ftctl({"events", "--follow", "--timeout", "1.5", "--node",
                      node.address()});
    auto took = std::chrono::steady_clock::now() - t0;
    INFO(res.output());
    CHECK(res.rc == 0);
    CHECK(took >= 1400ms);
    CHECK(took < 10s);
    // Polled about every 500 ms.
    auto polls = node.requests("/api/events").size();
    CHECK(polls >= 2);
    CHECK(polls <= 5);
  }
}

// -- kill ---------------------------------------------------------------------

TEST_CASE("ftctl kill actor posts the path with the token", "[ftctl_ops]") {
  ft_test::temp_dir dir{"ft-ops-kill"};
  ft_test::write_file(dir / "secret", "k\n");
  fake_node node;
  node.post("/api/kill", [&](const auto& req, auto& res) {
    if (!authorized(req, res, "k"))
      return;
    auto path = json::parse(req.body).value("actor", "");
    if (path != "entities@n1/c1")
      return fake_node::error(res, 404, "not_found", "no actor " + path);
    fake_node::reply(res, 200, {{"killed", path}, {"actor", 42}});
  });
  node.start();
  auto secret = (dir / "secret").string();
  auto res = ftctl({"kill", "actor", "entities@n1/c1", "--secret-file",
                    secret, "--node", node.address()});
  INFO(res.output());
  CHECK(res.rc == 0);
  CHECK_THAT(res.out, Contains("killed entities@n1/c1 (actor 42)"));
  auto unknown = ftctl({"kill", "actor", "entities@n1/zz", "--secret-file",
                        secret, "--node", node.address()});
  CHECK(unknown.rc == 3);
  CHECK_THAT(unknown.err, Contains("no actor entities@n1/zz"));
  auto reqs = node.requests("/api/kill");
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].body == json({{"actor", "entities@n1/c1"}}));
  CHECK(reqs[0].authorization == "Bearer k");
  auto no_token = ftctl({"kill", "actor", "entities@n1/c1", "--node",
                         node.address()});
  CHECK(no_token.rc == 1);
  CHECK(node.requests().size() == 2);
}

TEST_CASE("ftctl kill node asks the named node found in the member list",
          "[ftctl_ops]") {
  ft_test::temp_dir dir{"ft-ops-kill"};
  ft_test::write_file(dir / "secret", "k\n");
  fake_node victim;
  victim.post("/api/kill", [&](const auto& req, auto& res) {
    if (!authorized(req, res, "k"))
      return;
    fake_node::reply(res, 200, {{"killed", "n2"}, {"pid", 4242}});
  });
  victim.start();
  fake_node seed;
  seed.get("/api/nodes", [&](const auto&, auto& res) {
    fake_node::reply(
      res, 200,
      {{"leader", "n1"},
       {"nodes",
        {{{"name", "n1"},
          {"host", host},
          {"port", 7101},
          {"http_port", seed.port()},
          {"state", "up"}},
         {{"name", "n2"},
          {"host", host},
          {"port", 7102},
          {"http_port", victim.port()},
          {"state", "up"}}}}});
  });
  seed.post("/api/kill", [&](const auto&, auto& res) {
    fake_node::error(res, 500, "wrong_node", "the seed must not be killed");
  });
  seed.start();
  auto secret = (dir / "secret").string();
  auto res = ftctl({"kill", "node", "n2", "--secret-file", secret, "--node",
                    seed.address()});
  INFO(res.output());
  CHECK(res.rc == 0);
  CHECK_THAT(res.out, Contains("killed node n2 at " + victim.address()
                               + " (pid 4242)"));
  auto kills = victim.requests("/api/kill");
  REQUIRE(kills.size() == 1);
  CHECK(kills[0].body == json({{"node", true}}));
  CHECK(kills[0].authorization == "Bearer k");
  CHECK(seed.requests("/api/kill").empty());
  auto unknown = ftctl({"kill", "node", "n9", "--secret-file", secret,
                        "--node", seed.address()});
  INFO(unknown.output());
  CHECK(unknown.rc == 3);
  CHECK_THAT(unknown.err, Contains("no node n9"));
  CHECK_THAT(unknown.err, Contains("n1, n2"));
}

// -- doctor without a node ----------------------------------------------------

TEST_CASE("ftctl doctor passes a good config with free ports", "[doctor]") {
  doctor_fixture fx;
  fx.write();
  auto res = fx.doctor();
  INFO(res.output());
  CHECK(res.rc == 0);
  auto doc = json::parse(res.out);
  CHECK(doc["ok"] == true);
  for (auto& c : doc["checks"]) {
    INFO(c.dump());
    CHECK((c["status"] == "ok" || c["status"] == "skip"));
  }
  for (auto name : {"config", "ports", "data_dir", "seeds", "secret"})
    CHECK(check_of(res, name)["status"] == "ok");
  CHECK_THAT(detail_of(check_of(res, "ports")),
             Contains(std::to_string(fx.port) + " free"));
  // Nothing to ask: skipped, with why.
  CHECK(check_of(res, "secret match")["status"] == "skip");
  CHECK_THAT(detail_of(check_of(res, "clock skew")), Contains("--node"));
  // The probe left no data dir behind.
  CHECK_FALSE(fs::exists(fx.data_dir));
  // The table: one line per check, a summary.
  auto table = ftctl({"doctor", "--config", fx.config_path()});
  INFO(table.output());
  CHECK(table.rc == 0);
  CHECK_THAT(table.out, Contains("ok    config"));
  CHECK_THAT(table.out, Contains("skip  secret match"));
  CHECK_THAT(table.out, Contains("doctor: 5 ok, 0 failed, 2 skipped"));
}

TEST_CASE("ftctl doctor names the line of a malformed config", "[doctor]") {
  doctor_fixture fx;
  ft_test::write_file(fx.config_path(), "name: n1\nport: 7101\nseeds: [a, "
                                        "\n  http_port: 3\n");
  auto res = fx.doctor();
  INFO(res.output());
  CHECK(res.rc == 1);
  auto config = check_of(res, "config");
  CHECK(config["status"] == "fail");
  CHECK_THAT(detail_of(config), Contains(fx.config_path() + ":"));
  CHECK_FALSE(config.value("fix", "").empty());
  // The checks that need the config say so.
  CHECK(check_of(res, "ports")["status"] == "skip");
  auto table = ftctl({"doctor", "--config", fx.config_path()});
  CHECK(table.rc == 1);
  CHECK_THAT(table.out, Contains("fail  config"));
  CHECK_THAT(table.out, Contains("fix: "));
}

TEST_CASE("ftctl doctor names an unknown field", "[doctor]") {
  doctor_fixture fx;
  fx.extra = "nmae: n2\n";
  fx.write();
  auto res = fx.doctor();
  INFO(res.output());
  CHECK(res.rc == 1);
  auto config = check_of(res, "config");
  CHECK(config["status"] == "fail");
  CHECK_THAT(detail_of(config), Contains(fx.config_path() + ":7: nmae is not "
                                                            "a known field"));
}

TEST_CASE("ftctl doctor names a port a foreign process listens on",
          "[doctor]") {
  doctor_fixture fx;
  ft_test::bound_socket busy;
  busy.listen();
  fx.http_port = busy.port();
  fx.write();
  auto res = fx.doctor();
  INFO(res.output());
  CHECK(res.rc == 1);
  auto ports = check_of(res, "ports");
  CHECK(ports["status"] == "fail");
  CHECK_THAT(detail_of(ports), Contains("http_port 127.0.0.1:"
                                        + std::to_string(busy.port())
                                        + " is in use by another process"));
  CHECK_THAT(ports.value("fix", ""), Contains(std::to_string(busy.port())));
  // The cluster port is still free.
  CHECK_THAT(detail_of(ports), !Contains("port 127.0.0.1:"
                                         + std::to_string(fx.port)));
}

TEST_CASE("ftctl doctor fails a data dir that cannot be created",
          "[doctor]") {
  doctor_fixture fx;
  // Under a regular file: not even root can create it.
  ft_test::write_file(fx.dir / "plain-file", "x");
  fx.data_dir = (fx.dir / "plain-file" / "data").string();
  fx.write();
  auto res = fx.doctor();
  INFO(res.output());
  CHECK(res.rc == 1);
  auto data = check_of(res, "data_dir");
  CHECK(data["status"] == "fail");
  CHECK_THAT(detail_of(data), Contains(fx.data_dir));
  CHECK_THAT(detail_of(data), Contains("cannot create"));
  // A data dir that is a file is named as such.
  fx.data_dir = (fx.dir / "plain-file").string();
  fx.write();
  auto file = fx.doctor();
  CHECK(file.rc == 1);
  CHECK_THAT(detail_of(check_of(file, "data_dir")),
             Contains("is not a directory"));
}

TEST_CASE("ftctl doctor fails a corrupt snapshot store", "[doctor]") {
  doctor_fixture fx;
  fx.write();
  write_corrupt_store(fs::path{fx.data_dir} / "snapshots");
  auto res = fx.doctor();
  INFO(res.output());
  CHECK(res.rc == 1);
  auto data = check_of(res, "data_dir");
  CHECK(data["status"] == "fail");
  CHECK_THAT(detail_of(data), Contains("1 of 1 records are bad"));
  CHECK_THAT(detail_of(data), Contains("account/bob #7"));
  CHECK_THAT(detail_of(data), Contains("checksum_mismatch"));
  CHECK_THAT(data.value("fix", ""), Contains("ftctl snapshot verify"));
  // The store itself is left as it was (read-only).
  CHECK(fs::exists(fs::path{fx.data_dir} / "snapshots" / "data.mdb"));
}

TEST_CASE("ftctl doctor names an unreachable seed", "[doctor]") {
  doctor_fixture fx;
  ft_test::bound_socket alive;
  alive.listen();
  auto dead = ft_test::free_port();
  fx.seeds = {host + ":" + std::to_string(alive.port()),
              host + ":" + std::to_string(dead)};
  fx.write();
  auto t0 = std::chrono::steady_clock::now();
  auto res = fx.doctor();
  INFO(res.output());
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  CHECK(res.rc == 1);
  auto seeds = check_of(res, "seeds");
  CHECK(seeds["status"] == "fail");
  CHECK_THAT(detail_of(seeds),
             Contains("seeds[1] 127.0.0.1:" + std::to_string(dead)));
  CHECK_THAT(detail_of(seeds),
             !Contains("127.0.0.1:" + std::to_string(alive.port())));
}

// -- doctor against a stand-in node -------------------------------------------

TEST_CASE("ftctl doctor matches the secret and measures clock skew",
          "[doctor]") {
  doctor_fixture fx;
  fx.write();
  std::atomic<int64_t> offset_ms{0};
  std::string node_secret = "doctor-secret";
  fake_node node;
  node.get("/api/status", [&](const auto&, auto& res) {
    fake_node::reply(res, 200,
                     {{"node", "n7"},
                      {"state", "up"},
                      {"wall_ms", now_ms() + offset_ms.load()}});
  });
  node.get("/api/nodes", [&](const auto&, auto& res) {
    fake_node::reply(res, 200,
                     {{"leader", "n7"},
                      {"nodes",
                       {{{"name", "n7"},
                         {"host", host},
                         {"port", 7107},
                         {"http_port", node.port()},
                         {"state", "up"}},
                        {{"name", "n8"},
                         {"host", host},
                         {"port", 7108},
                         {"http_port", 1},
                         {"state", "down"}}}}});
  });
  node.get("/api/auth-check", [&](const auto& req, auto& res) {
    auto nonce = req.get_param_value("nonce");
    fake_node::reply(res, 200,
                     {{"node", "n7"},
                      {"proof", hmac_hex(node_secret, "doctor|" + nonce)}});
  });
  node.start();
  auto good = fx.doctor({"--node", node.address()});
  INFO(good.output());
  CHECK(good.rc == 0);
  auto match = check_of(good, "secret match");
  CHECK(match["status"] == "ok");
  CHECK_THAT(detail_of(match), Contains("matches node n7"));
  auto clock = check_of(good, "clock skew");
  CHECK(clock["status"] == "ok");
  CHECK_THAT(detail_of(clock), Contains("n7 "));
  CHECK_THAT(detail_of(clock), !Contains("n8"));
  // A fresh nonce every time.
  auto checks = node.requests("/api/auth-check");
  REQUIRE(checks.size() == 1);
  CHECK(checks[0].params.at("nonce").size() == 32);
  // Another secret on the node; a clock 2 s ahead.
  node_secret = "other-secret";
  offset_ms = 2000;
  auto bad = fx.doctor({"--node", node.address()});
  INFO(bad.output());
  CHECK(bad.rc == 1);
  auto mismatch = check_of(bad, "secret match");
  CHECK(mismatch["status"] == "fail");
  CHECK_THAT(detail_of(mismatch), Contains("does not hold node n7"));
  auto skew = check_of(bad, "clock skew");
  CHECK(skew["status"] == "fail");
  CHECK_THAT(detail_of(skew), Contains("n7 +"));
  CHECK_THAT(detail_of(skew), Contains("limit 500 ms"));
  // The limit is a flag.
  auto lenient = fx.doctor({"--node", node.address(), "--max-skew-ms",
                            "5000"});
  CHECK(check_of(lenient, "clock skew")["status"] == "ok");
  // An unreachable --node: both skipped with why, not failed.
  auto dead = host + ":" + std::to_string(ft_test::free_port());
  auto none = fx.doctor({"--node", dead});
  INFO(none.output());
  CHECK(none.rc == 0);
  CHECK(check_of(none, "secret match")["status"] == "skip");
  CHECK_THAT(detail_of(check_of(none, "clock skew")), Contains(dead));
}

// -- against a real node ------------------------------------------------------
//
// These need ft-node's operator endpoints (/health, /api/tree,
// /api/circuit-breakers, /api/events, /api/kill, /api/auth-check,
// /api/status's wall_ms).

namespace {

/// One ft-node started from a config file, up and holding its lease.
struct live_node {
  doctor_fixture fx;
  std::unique_ptr<ft_test::child_process> proc;

  live_node() {
    fx.write();
    auto ready = fx.dir / "ready";
    proc = std::make_unique<ft_test::child_process>(
      std::vector<std::string>{FT_NODE, fx.config_path(), "--ready-file",
                               ready.string()},
      ft_test::child_process::options{fx.dir / "node.log", {}, {}, {}});
    auto up = ft_test::wait_until(
      [&] {
        auto st = ft_test::http_get(host, fx.http_port, "/api/status", 1s);
        return st && st.status == 200 && st.json["state"] == "up"
               && st.json["lease"] == true;
      },
      20s);
    if (!up)
      FAIL("ft-node did not come up:\n" << proc->output());
  }

  std::string address() const {
    return host + ":" + std::to_string(fx.http_port);
  }

  std::string secret() const {
    return (fx.dir / "secret").string();
  }

  void spawn(const std::string& key) {
    auto r = ft_test::http_post(host, fx.http_port, "/api/entities",
                                {{"type", "counter"}, {"key", key}}, 30s);
    INFO(r.body << r.error);
    REQUIRE(r.status == 201);
  }

  /// The child `id` of any supervisor in /api/tree (null when absent), and
  /// its supervisor's name.
  std::pair<json, std::string> find_child(const std::string& id) {
    auto tree = ft_test::http_get(host, fx.http_port, "/api/tree");
    REQUIRE(tree.status == 200);
    std::function<std::pair<json, std::string>(const json&)> walk;
    walk = [&](const json& sup) -> std::pair<json, std::string> {
      for (auto& c : sup.value("children", json::array())) {
        if (c.value("id", "") == id)
          return {c, sup.value("name", "")};
        if (c.contains("supervisor"))
          if (auto r = walk(c["supervisor"]); !r.first.is_null())
            return r;
      }
      return {nullptr, ""};
    };
    for (auto& sup : tree.json.value("supervisors", json::array()))
      if (auto r = walk(sup); !r.first.is_null())
        return r;
    return {nullptr, ""};
  }
};

} // namespace

TEST_CASE("ftctl health, tree and circuits read a live node",
          "[ftctl_ops_live]") {
  live_node n;
  auto health = ftctl({"health", "--node", n.address()});
  INFO(health.output());
  CHECK(health.rc == 0);
  for (auto comp : {"supervision", "breakers", "snapshot_store", "cluster"})
    CHECK_THAT(health.out, Contains(comp));
  auto one = ftctl({"health", "--component", "cluster", "--format", "json",
                    "--node", n.address()});
  INFO(one.output());
  CHECK(one.rc == 0);
  CHECK(json::parse(one.out)["components"].size() == 1);
  CHECK(ftctl({"health", "--component", "nope", "--node", n.address()}).rc
        == 3);
  n.spawn("c1");
  auto tree = ftctl({"tree", "--node", n.address()});
  INFO(tree.output());
  CHECK(tree.rc == 0);
  CHECK_THAT(tree.out, Contains("entities@n1"));
  CHECK_THAT(tree.out, Contains("c1"));
  auto circuits = ftctl({"circuits", "--node", n.address()});
  INFO(circuits.output());
  CHECK(circuits.rc == 0);
  CHECK_THAT(circuits.out, Contains("circuits:"));
  auto reset = ftctl({"circuits", "reset", "--all", "--secret-file",
                      n.secret(), "--node", n.address()});
  INFO(reset.output());
  CHECK(reset.rc == 0);
  CHECK_THAT(reset.out, Contains("reset "));
  ft_test::write_file(n.fx.dir / "wrong", "wrong\n");
  auto wrong = ftctl({"circuits", "reset", "--all", "--secret-file",
                      (n.fx.dir / "wrong").string(), "--node", n.address()});
  CHECK(wrong.rc == 1);
  CHECK_THAT(wrong.err, Contains("rejected the cluster token"));
}

TEST_CASE("ftctl kill actor restarts a child and events show it",
          "[ftctl_ops_live]") {
  live_node n;
  n.spawn("c1");
  auto [child, sup] = n.find_child("c1");
  INFO("tree child: " << child.dump());
  REQUIRE(child.is_object());
  auto before = child.value("restarts", 0);
  auto path = sup + "/c1";
  auto kill = ftctl({"kill", "actor", path, "--secret-file", n.secret(),
                     "--node", n.address()});
  INFO(kill.output());
  REQUIRE(kill.rc == 0);
  CHECK_THAT(kill.out, Contains("killed " + path));
  CHECK(ft_test::wait_until(
    [&] {
      auto [c, s] = n.find_child("c1");
      return c.is_object() && c.value("restarts", 0) > before
             && c.value("state", "") == "running";
    },
    10s));
  auto unknown = ftctl({"kill", "actor", sup + "/zz", "--secret-file",
                        n.secret(), "--node", n.address()});
  CHECK(unknown.rc == 3);
  // The restart is in the journal.
  auto events = ftctl({"events", "--format", "json", "--node", n.address()});
  INFO(events.output());
  REQUIRE(events.rc == 0);
  bool restarted = false;
  for (auto& line : lines_of(events.out)) {
    auto ev = json::parse(line);
    if (ev.value("kind", "") == "child_restarted")
      restarted = true;
  }
  CHECK(restarted);
  auto follow = ftctl({"events", "--follow", "--max-events", "1", "--timeout",
                       "10", "--format", "json", "--node", n.address()});
  INFO(follow.output());
  CHECK(follow.rc == 0);
  CHECK(lines_of(follow.out).size() == 1);
}

TEST_CASE("ftctl doctor on a running node's own config", "[ftctl_ops_live]") {
  live_node n;
  auto res = n.fx.doctor();
  INFO(res.output());
  CHECK(res.rc == 0);
  CHECK_THAT(detail_of(check_of(res, "ports")), Contains("held by node n1"));
  CHECK(check_of(res, "secret match")["status"] == "ok");
  CHECK(check_of(res, "clock skew")["status"] == "ok");
  ft_test::write_file(n.fx.dir / "wrong", "wrong\n");
  auto wrong = n.fx.doctor({"--secret-file", (n.fx.dir / "wrong").string()});
  INFO(wrong.output());
  CHECK(wrong.rc == 1);
  CHECK(check_of(wrong, "secret match")["status"] == "fail");
}

TEST_CASE("ftctl kill node SIGKILLs the named node", "[ftctl_ops_live]") {
  live_node n;
  auto res = ftctl({"kill", "node", "n1", "--secret-file", n.secret(),
                    "--node", n.address()});
  INFO(res.output());
  CHECK(res.rc == 0);
  CHECK_THAT(res.out, Contains("killed node n1"));
  auto rc = n.proc->wait_for(10s);
  REQUIRE(rc);
  CHECK(*rc == 128 + SIGKILL);
}
