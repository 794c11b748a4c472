// A node's operator surface through its HTTP endpoint, as an operator (or
// a Prometheus server, a load balancer, a browser) sees it: health, the
// supervision tree, events, metrics, circuits and their reset, fault
// injection, the secret check, alerts and the dashboard.

#include "ft/cluster.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <caf/all.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/hmac.h>

#include "ft/breaker_registry.hpp"
#include "tools/process_harness.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using json = nlohmann::json;

namespace {

constexpr const char* secret = "s3cret-token";

struct op_node {
  ft_test::temp_dir dir{"ft-node-ops"};
  std::unique_ptr<ft::node> node;

  explicit op_node(std::function<void(ft::node_config&)> tune = {}) {
    ft_test::write_file(dir / "secret", std::string{secret} + "\n");
    ft::node_config cfg;
    cfg.name = "a1";
    cfg.data_dir = (dir / "data").string();
    cfg.cluster_secret_file = (dir / "secret").string();
    cfg.replication.factor = 0;
    cfg.replication.min_acks = 0;
    if (tune)
      tune(cfg);
    ft::entity_types types;
    ft::add_stock_entity_types(types);
    auto n = ft::node::start(cfg, std::move(types));
    if (!n)
      FAIL("node::start: " << ft::render(n.error()));
    node = std::move(*n);
  }

  ~op_node() {
    if (node)
      node->stop();
  }

  ft_test::http_reply get(const std::string& path) {
    return ft_test::http_get("127.0.0.1", node->http_port(), path);
  }

  ft_test::http_reply post(const std::string& path, const json& body,
                           const std::string& token = {}) {
    httplib::Client cli{"127.0.0.1", node->http_port()};
    cli.set_read_timeout(5s);
    httplib::Headers headers;
    if (!token.empty())
      headers.emplace("Authorization", "Bearer " + token);
    return ft_test::detail::to_reply(
      cli.Post(path.c_str(), headers, body.dump(), "application/json"));
  }

  void spawn(const std::string& key) {
    auto r = post("/api/entities", json{{"type", "counter"}, {"key", key}});
    REQUIRE(r.status == 201);
  }

  /// The child `id` of supervisor `sup` in `/api/tree`.
  json child(const std::string& sup, const std::string& id) {
    auto r = get("/api/tree");
    REQUIRE(r.status == 200);
    for (auto& s : r.json["supervisors"])
      if (s["name"] == sup)
        for (auto& c : s["children"])
          if (c["id"] == id)
            return c;
    return nullptr;
  }

  /// Forces circuit scope/key open through the node's registry.
  void force_open(const std::string& scope, const std::string& key) {
    caf::scoped_actor self{node->system()};
    bool done = false;
    ft::registry_force_open(self, node->breakers(), scope, key, 5s)
      .receive([&] { done = true; }, [](caf::error&) {});
    REQUIRE(done);
  }

  /// Events of `kind` about `subject` after cursor `since` (0: all so far).
  size_t count_events(const std::string& kind, const std::string& subject,
                      uint64_t since = 0) {
    auto r = get("/api/events?since=" + std::to_string(since));
    size_t n = 0;
    for (auto& e : r.json["events"])
      if (e["kind"] == kind && e["subject"] == subject)
        ++n;
    return n;
  }
};

std::string hmac_hex(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &len);
  static const char* digits = "0123456789abcdef";
  std::string result;
  for (unsigned i = 0; i < len; ++i) {
    result += digits[out[i] >> 4];
    result += digits[out[i] & 0xf];
  }
  return result;
}

} // namespace

TEST_CASE("a fresh node is healthy, ready and started", "[operator_api]") {
  op_node n;
  // Its lease and first watchdog pulse come with its first ticks, which a
  // loaded machine may run a little after start() returned.
  ft_test::http_reply r;
  CHECK(ft_test::wait_until(
    [&] {
      r = n.get("/health");
      return r.status == 200;
    },
    10s));
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(r.json["node"] == "a1");
  CHECK(r.json["status"] == "healthy");
  CHECK(r.json["liveness"]["status"] == "up");
  CHECK(r.json["readiness"]["status"] == "ready");
  CHECK(r.json["startup"]["status"] == "started");
  for (auto name : {"supervision", "breakers", "snapshot_store", "cluster"})
    CHECK(r.json["components"][name]["status"] == "healthy");
  auto one = n.get("/health?component=cluster");
  REQUIRE(one.status == 200);
  CHECK(one.json["components"].size() == 1);
  CHECK(n.get("/health?component=nope").status == 404);
}

TEST_CASE("a crashing entity shows in the tree, the events, health and the "
          "metrics",
          "[operator_api]") {
  op_node n;
  n.spawn("c1");
  auto c = n.child("entities@a1", "c1");
  REQUIRE(c.is_object());
  CHECK(c["state"] == "running");
  CHECK(c["restarts"] == 0);
  CHECK(c["last_exit"].is_null());
  CHECK(c["type"] == "worker");
  // Events reach the node's journal asynchronously: the cursor is taken
  // once c1's start is in, so only the crash's events come after it.
  auto seen = [&](uint64_t since, const std::string& kind) {
    return n.count_events(kind, "entities@a1/c1", since) > 0;
  };
  REQUIRE(ft_test::wait_until([&] { return seen(0, "child_started"); }, 10s));
  auto cursor = n.get("/api/events?since=0").json["next"].get<uint64_t>();
  auto crash = n.post("/api/entities/c1/ask", json{{"message", "crash"}});
  CHECK(crash.status >= 400);
  REQUIRE(ft_test::wait_until(
    [&] {
      auto x = n.child("entities@a1", "c1");
      return x.is_object() && x["restarts"] == 1 && x["state"] == "running";
    },
    10s));
  CHECK_THAT(n.child("entities@a1", "c1")["last_exit"].get<std::string>(),
             Contains("runtime_error"));
  // The tree comes from the supervisor itself, the events through the
  // node's event sink (asynchronously): wait for the sink to see them.
  REQUIRE(ft_test::wait_until([&] { return seen(cursor, "child_restarted"); },
                              10s));
  // Only what came after the cursor, oldest first, and the cursor moves.
  auto ev = n.get("/api/events?since=" + std::to_string(cursor));
  REQUIRE(ev.status == 200);
  std::vector<std::string> kinds;
  for (auto& e : ev.json["events"]) {
    CHECK(e["id"].get<uint64_t>() > cursor);
    if (e["subject"] == "entities@a1/c1")
      kinds.push_back(e["kind"]);
  }
  CHECK(kinds == std::vector<std::string>{"child_exited", "child_restarted"});
  auto next = ev.json["next"].get<uint64_t>();
  CHECK(next > cursor);
  CHECK(n.get("/api/events?since=" + std::to_string(next)).json["events"]
          .empty());
  auto warn = n.get("/api/events?since=0&min_severity=2");
  for (auto& e : warn.json["events"])
    CHECK(e["severity"].get<int>() >= 2);
  CHECK(n.get("/api/events?since=abc").status == 400);
  CHECK(n.get("/api/events?min_severity=5").status == 400);
  // One restart in the last minute: degraded, still ready.
  auto h = n.get("/health");
  REQUIRE(h.status == 200);
  CHECK(h.json["status"] == "degraded");
  CHECK(h.json["components"]["supervision"]["status"] == "degraded");
  CHECK(h.json["readiness"]["status"] == "ready");
  // The sparkline's history has the restart in its last buckets.
  auto st = n.get("/api/status");
  auto counts = st.json["restart_history"]["counts"];
  REQUIRE(counts.size() == 60);
  uint64_t sum = 0;
  for (auto& x : counts)
    sum += x.get<uint64_t>();
  CHECK(sum == 1);
  CHECK(st.json["wall_ms"].get<int64_t>() > 0);
  auto m = n.get("/metrics");
  REQUIRE(m.status == 200);
  CHECK_THAT(m.body, Contains("# TYPE ft_supervisor_restarts_total counter"));
  CHECK_THAT(m.body, Contains("ft_supervisor_restarts_total{node=\"a1\","
                              "supervisor=\"entities@a1\"} 1"));
  CHECK_THAT(m.body, Contains("# TYPE ft_snapshot_write_seconds histogram"));
  CHECK_THAT(m.body, Contains("ft_cluster_members{node=\"a1\",state=\"up\"} 1"));
  CHECK_THAT(m.body, Contains("ft_entities{node=\"a1\"} 1"));
}

TEST_CASE("circuits show in their JSON, health and metrics; a reset needs "
          "the cluster token",
          "[operator_api]") {
  op_node n;
  n.force_open("worker", "w1");
  auto cb = n.get("/api/circuit-breakers");
  REQUIRE(cb.status == 200);
  CHECK(cb.json["worker"]["w1"]["state"] == "forced_open");
  CHECK(cb.json["aggregate"]["open_circuits"] == 1);
  // The only circuit refuses everything: unhealthy, 503.
  auto h = n.get("/health");
  CHECK(h.status == 503);
  CHECK(h.json["status"] == "unhealthy");
  CHECK(h.json["components"]["breakers"]["status"] == "unhealthy");
  CHECK_THAT(h.json["components"]["breakers"]["reasons"].dump(),
             Contains("worker/w1"));
  CHECK(n.count_events("forced_open", "worker/w1") == 1);
  auto m = n.get("/metrics");
  CHECK_THAT(m.body, Contains("ft_breaker_state{node=\"a1\",scope=\"worker\","
                              "key=\"w1\",state=\"forced_open\"} 1"));
  CHECK_THAT(m.body, Contains("ft_breaker_transitions_total{node=\"a1\","
                              "scope=\"worker\",key=\"w1\","
                              "to=\"forced_open\"} 1"));
  // No token, a wrong token: refused, nothing changes.
  auto body = json{{"scope", "worker"}, {"key", "w1"}};
  auto r = n.post("/api/circuit-breakers/reset", body);
  CHECK(r.status == 401);
  CHECK(r.json["error"] == "auth_failed");
  CHECK(n.post("/api/circuit-breakers/reset", body, "wrong").status == 401);
  CHECK(n.get("/api/circuit-breakers").json["worker"]["w1"]["state"]
        == "forced_open");
  CHECK(n.post("/api/circuit-breakers/reset", json{{"key", "w1"}}, secret)
          .status
        == 400);
  r = n.post("/api/circuit-breakers/reset", body, secret);
  REQUIRE(r.status == 200);
  CHECK(r.json["reset"] == 1);
  CHECK(n.get("/api/circuit-breakers").json["worker"]["w1"]["state"]
        == "closed");
  CHECK(n.count_events("closed", "worker/w1") == 1);
  n.force_open("hardware", "gpu");
  n.force_open("hardware", "tpu");
  r = n.post("/api/circuit-breakers/reset", json{{"scope", "hardware"}},
             secret);
  CHECK(r.json["reset"] == 2);
  r = n.post("/api/circuit-breakers/reset", json{{"all", true}}, secret);
  CHECK(r.json["reset"] == 3);
  CHECK(n.post("/api/circuit-breakers/reset",
               json{{"scope", "worker"}, {"key", "nope"}}, secret)
          .status
        == 404);
  CHECK(n.get("/health").json["components"]["breakers"]["status"]
        == "healthy");
}

TEST_CASE("kill actor restarts a child through its supervisor; kill needs "
          "the token",
          "[operator_api]") {
  op_node n;
  n.spawn("c1");
  auto before = n.child("entities@a1", "c1")["actor"];
  CHECK(n.post("/api/kill", json{{"actor", "entities@a1/c1"}}).status == 401);
  CHECK(n.post("/api/kill", json{{"actor", "entities@a1/nope"}}, secret).status
        == 404);
  CHECK(n.post("/api/kill", json{{"actor", "nonsense"}}, secret).status
        == 400);
  CHECK(n.post("/api/kill", json{{"what", 1}}, secret).status == 400);
  auto r = n.post("/api/kill", json{{"actor", "entities@a1/c1"}}, secret);
  REQUIRE(r.status == 200);
  CHECK(r.json["killed"] == "entities@a1/c1");
  CHECK(r.json["actor"] == before);
  REQUIRE(ft_test::wait_until(
    [&] {
      auto c = n.child("entities@a1", "c1");
      return c.is_object() && c["restarts"] == 1 && c["state"] == "running"
             && c["actor"] != before;
    },
    10s));
  CHECK(n.child("entities@a1", "c1")["last_exit"] == "kill");
}

TEST_CASE("auth-check proves the secret without revealing it",
          "[operator_api]") {
  op_node n;
  auto nonce = std::string{"00112233445566778899aabbccddeeff"};
  auto r = n.get("/api/auth-check?nonce=" + nonce);
  REQUIRE(r.status == 200);
  CHECK(r.json["proof"] == hmac_hex(secret, "doctor|" + nonce));
  CHECK(r.json["proof"] != hmac_hex("other", "doctor|" + nonce));
  CHECK_THAT(r.body, !Contains(secret));
  CHECK(n.get("/api/auth-check?nonce=zz").status == 400);
  CHECK(n.get("/api/auth-check").status == 400);
}

TEST_CASE("alerts go to a webhook and a command, rate-limited",
          "[operator_api]") {
  // A webhook on a free port that keeps what it receives.
  httplib::Server hook;
  std::mutex mtx;
  std::vector<json> received;
  hook.Post("/alerts", [&](const httplib::Request& req, httplib::Response&) {
    std::lock_guard<std::mutex> guard{mtx};
    received.push_back(json::parse(req.body, nullptr, false));
  });
  auto port = hook.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread server{[&] { hook.listen_after_bind(); }};
  ft_test::temp_dir out{"ft-alerts"};
  auto file = (out / "alerts.log").string();
  {
    op_node n{[&](ft::node_config& cfg) {
      cfg.alerts.url = "http://127.0.0.1:" + std::to_string(port) + "/alerts";
      cfg.alerts.command = "printf '%s|%s\\n' \"$FT_KIND\" \"$FT_EVENT\" >> '"
                           + file + "'";
      cfg.alerts.min_severity = 3;
      cfg.alerts.max_alerts = 2;
      cfg.alerts.interval = 60s;
    }};
    // Severity 1 and 2 events (starts, restarts) do not alert.
    n.spawn("c1");
    n.force_open("worker", "w1"); // severity 3: alerts
    REQUIRE(ft_test::wait_until(
      [&] {
        std::lock_guard<std::mutex> guard{mtx};
        return received.size() == 1;
      },
      10s));
    {
      std::lock_guard<std::mutex> guard{mtx};
      auto& a = received.front();
      CHECK(a["node"] == "a1");
      CHECK(a["source"] == "breaker");
      CHECK(a["kind"] == "forced_open");
      CHECK(a["severity"] == 3);
      CHECK(a["subject"] == "worker/w1");
      CHECK(a["suppressed"] == 0);
    }
    REQUIRE(ft_test::wait_until(
      [&] {
        return ft_test::read_file(file).find("forced_open|{") == 0;
      },
      10s));
    CHECK_THAT(ft_test::read_file(file), Contains("\"subject\":\"worker/w1\""));
    n.force_open("worker", "w2"); // the second of two per minute
    n.force_open("worker", "w3"); // over the limit: suppressed
    n.force_open("worker", "w4");
    REQUIRE(ft_test::wait_until(
      [&] {
        return n.get("/metrics").body.find(
                 "ft_alerts_total{node=\"a1\",result=\"suppressed\"} 2")
               != std::string::npos;
      },
      10s));
    CHECK_THAT(n.get("/metrics").body,
               Contains("ft_alerts_total{node=\"a1\",result=\"sent\"} 2"));
    REQUIRE(ft_test::wait_until(
      [&] {
        std::lock_guard<std::mutex> guard{mtx};
        return received.size() == 2;
      },
      10s));
    std::this_thread::sleep_for(300ms);
    std::lock_guard<std::mutex> guard{mtx};
    CHECK(received.size() == 2);
    CHECK(received.back()["subject"] == "worker/w2");
  }
  hook.stop();
  server.join();
}

TEST_CASE("the dashboard renders the node in a headless browser",
          "[operator_api][dashboard]") {
  op_node n;
  n.spawn("c1");
  n.force_open("worker", "w1");
  auto page = n.get("/");
  REQUIRE(page.status == 200);
  CHECK_THAT(page.body, Contains("<html"));
  // Self-contained: no script, style or image fetched from elsewhere.
  CHECK_THAT(page.body, !Contains("src=\"http"));
  CHECK_THAT(page.body, !Contains("href=\"http"));
  auto url = "http://127.0.0.1:" + std::to_string(n.node->http_port()) + "/";
  auto res = ft_test::run({"/usr/bin/chromium", "--headless", "--no-sandbox",
                           "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", url},
                          60s);
  INFO(res.err);
  REQUIRE(res.rc == 0);
  auto& dom = res.out;
  CHECK_THAT(dom, Contains("data-ready=\"1\""));
  CHECK_THAT(dom, Contains("data-node=\"a1\""));
  CHECK_THAT(dom, Contains("data-supervisor=\"entities@a1\""));
  CHECK_THAT(dom, Contains("data-supervisor=\"node@a1\""));
  CHECK_THAT(dom, Contains("data-child=\"c1\""));
  CHECK_THAT(dom, Contains("data-circuit=\"worker/w1\""));
  CHECK_THAT(dom, Contains("data-state=\"forced_open\""));
  CHECK_THAT(dom, Contains("data-event-id=\""));
  CHECK_THAT(dom, Contains("id=\"sparkline\""));
  CHECK_THAT(dom, Contains("data-status=\"unhealthy\""));
}
