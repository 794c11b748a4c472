// An in-process `ft::node`, from the outside: what a CAF client that never
// proved the cluster secret can do to it (nothing), and an entity that
// crashes on its home coming back with its state and still reachable.

#include "ft/cluster.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "ft/breaker_registry.hpp"
#include "ft/checkpoint.hpp"

#include "tools/process_harness.hpp"

using namespace std::chrono_literals;

namespace {

struct one_node {
  ft_test::temp_dir dir{"ft-node-auth"};
  std::unique_ptr<ft::node> node;

  explicit one_node(std::function<void(ft::node_config&)> customize = {}) {
    ft::node_config cfg;
    cfg.name = "a1";
    cfg.data_dir = (dir / "data").string();
    // Alone: no replicas to wait for.
    cfg.replication.factor = 0;
    cfg.replication.min_acks = 0;
    if (customize)
      customize(cfg);
    ft::entity_types types;
    ft::add_stock_entity_types(types);
    auto n = ft::node::start(cfg, std::move(types));
    if (!n)
      FAIL("node::start: " << ft::render(n.error()));
    node = std::move(*n);
  }

  ~one_node() {
    if (node)
      node->stop();
  }

  /// Asks entity `key` through the node's router.
  caf::expected<std::string> ask(const std::string& key,
                                 caf::message msg) {
    caf::scoped_actor self{node->system()};
    caf::expected<std::string> result{caf::error{}};
    self
      ->request(node->router(), 20s, ft::entity_ask_atom::value, key,
                std::move(msg))
      .receive([&](std::string& x) { result = x; },
               [&](caf::error& err) { result = err; });
    return result;
  }
};

caf::message text(std::string cmd, ft::text_args args = {}) {
  return caf::make_message(std::move(cmd), std::move(args));
}

} // namespace

TEST_CASE("a client without the secret cannot control a node",
          "[cluster_node]") {
  one_node n;
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.add_error_category(ft::error_category, ft::render_ft_error);
  caf::actor_system sys{cfg};
  auto agent = sys.middleman().remote_actor("127.0.0.1", n.node->port());
  REQUIRE(agent);
  caf::scoped_actor self{sys};
  // `leave` and `directory_sync` are agent messages only the node itself or
  // a greeted member may send.
  for (auto msg : {caf::make_message(caf::atom("ftleave")),
                   caf::make_message(caf::atom("ftdirsync"))}) {
    caf::error got;
    self->request(*agent, 5s, msg)
      .receive([](const caf::message&) {},
               [&](caf::error& err) { got = err; });
    CAPTURE(ft::render(got));
    CHECK(ft::is(got, ft::errc::auth_failed));
  }
  // The node is still up and a member of its own cluster.
  auto st = n.node->status();
  CHECK(st.state == ft::member_status::up);
  CHECK(st.lease);
}

TEST_CASE("an entity that crashes is restarted with its state and stays "
          "reachable by key",
          "[cluster_node]") {
  one_node n;
  {
    caf::scoped_actor self{n.node->system()};
    ft::placement_request req;
    bool spawned = false;
    self
      ->request(n.node->router(), 30s, ft::entity_spawn_atom::value,
                std::string{"counter"}, std::string{"c1"}, req)
      .receive([&](ft::entity_record&) { spawned = true; },
               [&](caf::error& err) { FAIL(ft::render(err)); });
    REQUIRE(spawned);
  }
  CHECK(n.ask("c1", text("add", {"5"})) == std::string{"5"});
  auto crash = n.ask("c1", text("crash"));
  CHECK_FALSE(crash);
  // The supervisor restarted it from its snapshot; the router follows the
  // new handle.
  CHECK(n.ask("c1", text("get")) == std::string{"5"});
  CHECK(n.ask("c1", text("add", {"1"})) == std::string{"6"});
  // The node counts restarts from the supervisor's events, asynchronously.
  CHECK(ft_test::wait_until([&] { return n.node->status().restarts >= 1; },
                            5000ms));
  CHECK(n.node->status().restarts == 1);
}

TEST_CASE("a message the caller wrapped with an id keeps it through the "
          "router, so a retry by the caller is not applied twice",
          "[cluster_node]") {
  one_node n;
  // Code on the node finds the router by name (entities have no handle).
  REQUIRE(ft::node_router(n.node->system()) == n.node->router());
  {
    caf::scoped_actor self{n.node->system()};
    ft::placement_request req;
    self
      ->request(n.node->router(), 30s, ft::entity_spawn_atom::value,
                std::string{"counter"}, std::string{"c1"}, req)
      .receive([&](ft::entity_record&) {},
               [&](caf::error& err) { FAIL(ft::render(err)); });
  }
  auto add = ft::with_message_id("task-17", text("add", {"5"}));
  CHECK(n.ask("c1", add) == std::string{"5"});
  // The same id again (the caller restarted and replays its effect): the
  // entity recognises it although the router saw two separate asks.
  auto again = n.ask("c1", add);
  REQUIRE_FALSE(again);
  CHECK(ft::is(again.error(), ft::errc::duplicate_message));
  CHECK(n.ask("c1", text("get")) == std::string{"5"});
  // Unwrapped asks still get a fresh id each: both are applied.
  CHECK(n.ask("c1", text("add", {"1"})) == std::string{"6"});
  CHECK(n.ask("c1", text("add", {"1"})) == std::string{"7"});
}

TEST_CASE("the node's breaker registry takes its scopes from the node config "
          "and is reachable by name",
          "[cluster_node]") {
  one_node n{[](ft::node_config& cfg) {
    ft::breaker_config worker;
    worker.failure_threshold = 1;
    worker.recovery_timeout = std::chrono::seconds(30);
    cfg.breaker_scopes["worker"] = worker;
  }};
  auto reg = ft::node_breakers(n.node->system());
  REQUIRE(reg == n.node->breakers());
  caf::scoped_actor self{n.node->system()};
  auto acquire = [&](const std::string& scope) {
    caf::expected<uint64_t> result{caf::error{}};
    self
      ->request(reg, 5s, ft::registry_acquire_atom::value, scope,
                std::string{"w1"})
      .receive([&](uint64_t t) { result = t; },
               [&](caf::error& err) { result = err; });
    return result;
  };
  auto fail = [&](uint64_t ticket) {
    self
      ->request(reg, 5s, ft::registry_complete_atom::value, ticket,
                ft::make_error(ft::errc::invalid_argument, "boom"))
      .receive([] {}, [&](caf::error& err) { FAIL(ft::render(err)); });
  };
  // One failure opens a `worker` circuit (threshold 1 from the config) ...
  auto t1 = acquire("worker");
  REQUIRE(t1);
  fail(*t1);
  auto refused = acquire("worker");
  REQUIRE_FALSE(refused);
  CHECK(ft::is(refused.error(), ft::errc::circuit_open));
  // ... while another scope keeps the default threshold (5).
  auto t2 = acquire("hardware");
  REQUIRE(t2);
  fail(*t2);
  CHECK(acquire("hardware"));
}
