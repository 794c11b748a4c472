// The node watchdog of an in-process `ft::node`, through its HTTP endpoint:
// `/api/status` reports its pulse, `/api/watchdog` lists the watchdogs user
// code registered with `node.watchdog()`, a wedged actor system shows as
// "stale", and the operator hook from the node config runs on escalation.
// Real threads and real time: each test is bounded (a few seconds).

#include "ft/cluster.hpp"
#include "ft/watchdog.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "tools/process_harness.hpp"

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

/// One single-node cluster in this process, on free ports.
struct node_fixture {
  ft_test::temp_dir dir{"ft-node-wd"};
  std::unique_ptr<ft::node> node;

  ft::node_config config() {
    ft::node_config cfg;
    cfg.name = "wd1";
    cfg.data_dir = (dir / "data").string();
    return cfg;
  }

  void start(ft::node_config cfg,
             std::function<void(caf::actor_system_config&)> customize = {}) {
    ft::entity_types types;
    ft::add_stock_entity_types(types);
    auto n = ft::node::start(std::move(cfg), std::move(types),
                             std::move(customize));
    if (!n)
      FAIL("node::start: " << ft::render(n.error()));
    node = std::move(*n);
  }

  ~node_fixture() {
    if (node)
      node->stop();
  }

  ft_test::http_reply get(const std::string& path) {
    return ft_test::http_get("127.0.0.1", node->http_port(), path);
  }

  /// The worker `id` in `/api/watchdog` (null when absent).
  json worker(const std::string& id) {
    auto res = get("/api/watchdog");
    if (res.status != 200)
      return nullptr;
    for (auto& w : res.json.value("workers", json::array()))
      if (w.value("id", "") == id)
        return w;
    return nullptr;
  }
};

using stall_atom = caf::atom_constant<caf::atom("stall")>;

} // namespace

TEST_CASE_METHOD(node_fixture,
                 "GET /api/status reports the node watchdog as ok",
                 "[node_watchdog]") {
  start(config());
  REQUIRE(node->watchdog());
  // The pulse answers within a heartbeat_interval (1 s) of the start.
  json wd;
  REQUIRE(ft_test::wait_until(
    [&] {
      auto st = get("/api/status");
      wd = st.json.is_object() ? st.json.value("watchdog", json{}) : json{};
      return wd.is_object() && wd.value("workers", 0) >= 1;
    },
    5s, 50ms));
  INFO(wd.dump());
  CHECK(wd["state"] == "ok");
  CHECK(wd["last_beat_ms"].get<int64_t>() >= 0);
  CHECK(wd["last_beat_ms"].get<int64_t>() < 5000);
  // The pulse is the node watchdog's own worker.
  auto pulse = worker("pulse");
  REQUIRE(pulse.is_object());
  CHECK(pulse["alive"] == true);
  auto st = node->status();
  CHECK(st.watchdog_state == "ok");
}

TEST_CASE_METHOD(node_fixture,
                 "a watchdog registered with node.watchdog() shows in "
                 "/api/watchdog",
                 "[node_watchdog]") {
  start(config());
  CHECK(worker("pool-wd").is_null());
  ft::watchdog_config cfg;
  cfg.name = "pool-wd";
  cfg.heartbeat_interval = 100ms;
  ft::watchdog_options opts;
  opts.parent = node->watchdog();
  REQUIRE(opts.parent.handle);
  auto wd = ft::spawn_watchdog(node->system(), cfg, caf::actor{}, opts);
  REQUIRE(wd);
  json w;
  REQUIRE(ft_test::wait_until(
    [&] {
      w = worker("pool-wd");
      return w.is_object();
    },
    5s, 50ms));
  INFO(w.dump());
  CHECK(w["alive"] == true);
  CHECK(w["actor"] == (*wd).id());
  CHECK(w["silent_ms"].get<int64_t>() < 2000);
  // /api/status counts it too (pulse + pool-wd) from the next pulse on.
  CHECK(ft_test::wait_until(
    [&] {
      auto st = get("/api/status");
      return st.json.is_object()
             && st.json["watchdog"].value("workers", 0) >= 2;
    },
    5s, 50ms));
  // The node watchdog sees it die.
  caf::anon_send_exit(*wd, caf::exit_reason::kill);
  REQUIRE(ft_test::wait_until(
    [&] {
      w = worker("pool-wd");
      return w.is_object() && w["alive"] == false;
    },
    5s, 50ms));
}

TEST_CASE_METHOD(node_fixture,
                 "a wedged actor system shows as a stale node watchdog",
                 "[node_watchdog]") {
  auto cfg = config();
  cfg.watchdog.heartbeat_timeout = 1s;
  cfg.watchdog.heartbeat_interval = 100ms;
  start(cfg, [](caf::actor_system_config& sc) {
    sc.set("scheduler.max-threads", size_t{2});
  });
  REQUIRE(ft_test::wait_until(
    [&] {
      auto st = get("/api/status");
      return st.json.is_object()
             && st.json["watchdog"].value("workers", 0) >= 1;
    },
    5s, 50ms));
  CHECK(get("/api/status").json["watchdog"]["state"] == "ok");
  // Occupy every scheduler thread (deliberately blocking handlers: this
  // is what a wedged node looks like from outside).
  std::vector<caf::actor> blockers;
  for (int i = 0; i < 4; ++i)
    blockers.push_back(node->system().spawn([] {
      return caf::behavior{
        [](stall_atom) { std::this_thread::sleep_for(1500ms); }};
    }));
  for (auto& b : blockers)
    caf::anon_send(b, stall_atom::value);
  json wd;
  CHECK(ft_test::wait_until(
    [&] {
      auto st = get("/api/status");
      wd = st.json.is_object() ? st.json["watchdog"] : json{};
      return wd.is_object() && wd["state"] == "stale";
    },
    5s, 50ms));
  INFO(wd.dump());
  CHECK(wd["last_beat_ms"].get<int64_t>() > 1000);
  // When the scheduler is free again, the pulse resumes.
  CHECK(ft_test::wait_until(
    [&] { return get("/api/status").json["watchdog"]["state"] == "ok"; },
    10s, 50ms));
  for (auto& b : blockers)
    caf::anon_send_exit(b, caf::exit_reason::kill);
}

TEST_CASE_METHOD(node_fixture,
                 "the node watchdog runs the configured operator hook",
                 "[node_watchdog]") {
  auto out = dir / "hook.out";
  auto cfg = config();
  cfg.watchdog.zombie_timeout = 200ms;
  cfg.watchdog.max_recoveries = 1;
  cfg.watchdog.escalation_severity = 3;
  cfg.watchdog.hook_min_interval = caf::timespan{0};
  cfg.watchdog.operator_hook
    = "echo \"$FT_SEVERITY $FT_WORKER $FT_KIND $FT_NODE $FT_WATCHDOG\" >> '"
      + out.string() + "'";
  start(cfg);
  ft::watchdog_config wcfg;
  wcfg.name = "pool-wd";
  wcfg.heartbeat_interval = 100ms;
  ft::watchdog_options opts;
  opts.parent = ft::watchdog_ref{ft::node::watchdog_name};
  auto wd = ft::spawn_watchdog(node->system(), wcfg, caf::actor{}, opts);
  REQUIRE(wd);
  REQUIRE(ft_test::wait_until([&] { return worker("pool-wd").is_object(); },
                              5s, 50ms));
  CHECK_FALSE(std::filesystem::exists(out));
  // Dead with no replacement: the node supervisor does not run it, so its
  // recovery fails and escalates at once (max_recoveries 1).
  caf::anon_send_exit(*wd, caf::exit_reason::kill);
  REQUIRE(ft_test::wait_until(
    [&] {
      return std::filesystem::exists(out) && !ft_test::read_file(out).empty();
    },
    10s, 50ms));
  CHECK(ft_test::read_file(out).rfind("3 pool-wd zombie wd1 node", 0) == 0);
}
