// End-to-end tests of the cluster: ft-node processes on 127.0.0.1, driven
// over their HTTP endpoints. Every test bounds its waits and its processes
// die with it (process_harness.hpp).

#include <catch2/catch.hpp>

#include <signal.h>

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "process_harness.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using ft_test::http_get;
using ft_test::http_post;

namespace {

const std::string host = "127.0.0.1";

/// One ft-node process and its addresses.
struct test_node {
  std::string name;
  uint16_t port = 0;
  uint16_t http_port = 0;
  std::unique_ptr<ft_test::child_process> proc;
  std::string log;
};

/// N nodes of one cluster, all seeds of each other, sharing a secret.
class test_cluster {
public:
  explicit test_cluster(size_t n, std::vector<std::string> extra = {})
    : dir_("ft-cluster-test"), extra_(std::move(extra)) {
    ft_test::write_file(dir_ / "secret", "test-secret\n");
    auto ports = ft_test::free_ports(2 * n);
    for (size_t i = 0; i < n; ++i) {
      test_node nd;
      nd.name = "n" + std::to_string(i + 1);
      nd.port = ports[2 * i];
      nd.http_port = ports[2 * i + 1];
      if (!seeds_.empty())
        seeds_ += ",";
      seeds_ += host + ":" + std::to_string(nd.port);
      nodes_.push_back(std::move(nd));
    }
    for (auto& nd : nodes_)
      start(nd);
    for (auto& nd : nodes_)
      REQUIRE(wait_up(nd, n));
  }

  test_node& operator[](size_t i) {
    return nodes_.at(i);
  }

  test_node& by_name(const std::string& name) {
    for (auto& nd : nodes_)
      if (nd.name == name)
        return nd;
    FAIL("no node " << name);
    throw std::logic_error("unreachable");
  }

  size_t size() const {
    return nodes_.size();
  }

  const ft_test::temp_dir& dir() const {
    return dir_;
  }

  const std::string& seeds() const {
    return seeds_;
  }

  std::vector<std::string> argv(const test_node& nd,
                                const std::string& secret_file = {}) const {
    std::vector<std::string> args{FT_NODE,
                                  "--name",
                                  nd.name,
                                  "--port",
                                  std::to_string(nd.port),
                                  "--http-port",
                                  std::to_string(nd.http_port),
                                  "--seeds",
                                  seeds_,
                                  "--data-dir",
                                  (dir_ / nd.name).string(),
                                  "--cluster-secret-file",
                                  secret_file.empty()
                                    ? (dir_ / "secret").string()
                                    : secret_file};
    args.insert(args.end(), extra_.begin(), extra_.end());
    return args;
  }

  void start(test_node& nd) {
    nd.log = (dir_ / (nd.name + ".log")).string();
    ft_test::child_process::options opts;
    opts.stdout_path = nd.log;
    nd.proc = std::make_unique<ft_test::child_process>(argv(nd), opts);
  }

  /// Up, holding its lease, seeing `members` alive members.
  bool wait_up(const test_node& nd, size_t members,
               std::chrono::milliseconds timeout = 20s) {
    auto ok = ft_test::wait_until(
      [&] {
        auto st = http_get(host, nd.http_port, "/api/status", 1s);
        return st && st.status == 200 && st.json["state"] == "up"
               && st.json["lease"] == true && st.json["members"] == members;
      },
      timeout);
    if (!ok)
      UNSCOPED_INFO("node " << nd.name << " log:\n"
                            << ft_test::read_file(nd.log));
    return ok;
  }

  json spawn(const std::string& type, const std::string& key,
             const std::string& on = {}) {
    json body{{"type", type}, {"key", key}};
    if (!on.empty())
      body["on"] = on;
    auto r = http_post(host, nodes_[0].http_port, "/api/entities", body, 30s);
    INFO(r.body << r.error);
    REQUIRE(r.status == 201);
    return r.json;
  }

  ft_test::http_reply ask(const test_node& via, const std::string& key,
                          const std::string& msg,
                          std::vector<std::string> args = {},
                          std::chrono::milliseconds timeout = 30s) {
    return http_post(host, via.http_port, "/api/entities/" + key + "/ask",
                     json{{"message", msg}, {"args", args}}, timeout);
  }

  std::string home_of(const test_node& via, const std::string& key) {
    auto r = http_get(host, via.http_port, "/api/entities/" + key);
    REQUIRE(r.status == 200);
    return r.json["node"].get<std::string>();
  }

private:
  ft_test::temp_dir dir_;
  std::vector<std::string> extra_;
  std::string seeds_;
  std::vector<test_node> nodes_;
};

int64_t result_of(const ft_test::http_reply& r) {
  INFO(r.status << " " << r.body << r.error);
  REQUIRE(r.status == 200);
  return r.json["result"].get<int64_t>();
}

} // namespace

TEST_CASE("a killed home's entity answers from another node with its last "
          "acknowledged value",
          "[cluster]") {
  test_cluster c{3};
  auto rec = c.spawn("counter", "c1");
  auto home = rec["node"].get<std::string>();
  auto& asker = c[home == "n1" ? 1 : 0];
  int64_t acked = 0;
  for (int i = 1; i <= 10; ++i)
    acked = result_of(c.ask(asker, "c1", "add", {std::to_string(i)}));
  CHECK(acked == 55);
  c.by_name(home).proc->signal(SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.ask(asker, "c1", "get");
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(result_of(r) == 55);
  CHECK(r.json["node"] != home);
  // The defaults find the dead node within about a second; the router
  // buffered the request meanwhile instead of failing it.
  CHECK(took < 5s);
  // The entity keeps working on its new home.
  CHECK(result_of(c.ask(asker, "c1", "add", {"5"})) == 60);
}

TEST_CASE("a node killed and restarted on its own address at once rejoins, "
          "before the others declared it down",
          "[cluster]") {
  test_cluster c{3};
  c.spawn("counter", "c1", "n3");
  CHECK(result_of(c.ask(c[0], "c1", "add", {"5"})) == 5);
  auto& n3 = c.by_name("n3");
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    n3.proc->signal(SIGKILL);
    n3.proc->wait_for(5s);
    // Restarted while n1 and n2 still count the old process as a member
    // (and redial its address): the same name at the same address with a
    // newer incarnation is that node restarted, not a duplicate.
    c.start(n3);
    REQUIRE(c.wait_up(n3, 3));
    CHECK_THAT(ft_test::read_file(c[0].log),
               !Catch::Contains("refused node 'n3'"));
  }
  // Its entity lived on (failed over, or back on the new incarnation).
  CHECK(result_of(c.ask(c[0], "c1", "get")) == 5);
}

TEST_CASE("a node paused shorter than the grace period keeps its entities",
          "[cluster]") {
  test_cluster c{3};
  c.spawn("counter", "c1", "n2");
  CHECK(result_of(c.ask(c[0], "c1", "add", {"3"})) == 3);
  auto before = http_get(host, c[0].http_port, "/api/entities/c1").json;
  c[1].proc->signal(SIGSTOP);
  std::this_thread::sleep_for(200ms);
  c[1].proc->signal(SIGCONT);
  // Well past the time a failover would have taken.
  std::this_thread::sleep_for(1500ms);
  auto after = http_get(host, c[0].http_port, "/api/entities/c1").json;
  CHECK(after["node"] == "n2");
  CHECK(after["epoch"] == before["epoch"]);
  auto st = http_get(host, c[0].http_port, "/api/status").json;
  CHECK(st["failovers"] == 0);
  CHECK(result_of(c.ask(c[2], "c1", "add", {"4"})) == 7);
}

TEST_CASE("a node paused longer fails over, and on resuming stops its stale "
          "copy: never two answers from two homes",
          "[cluster]") {
  test_cluster c{3};
  c.spawn("counter", "c1", "n2");
  CHECK(result_of(c.ask(c[0], "c1", "add", {"10"})) == 10);
  c[1].proc->signal(SIGSTOP);
  // While n2 sleeps, c1 moves and keeps counting.
  auto r = c.ask(c[0], "c1", "add", {"1"}, 20s);
  CHECK(result_of(r) == 11);
  auto new_home = r.json["node"].get<std::string>();
  CHECK(new_home != "n2");
  c[1].proc->signal(SIGCONT);
  // n2 learns it was declared down, drops its copy and rejoins.
  REQUIRE(c.wait_up(c[1], 3));
  auto log = ft_test::read_file(c[1].log);
  CHECK_THAT(log, Catch::Contains("declared down by the cluster"));
  // Asked through n2, c1 answers from its new home only, with the value
  // that includes the add made while n2 was paused.
  auto via_n2 = c.ask(c[1], "c1", "get");
  CHECK(result_of(via_n2) == 11);
  CHECK(via_n2.json["node"] == new_home);
  // Every node agrees on one home.
  std::set<std::string> homes;
  for (size_t i = 0; i < c.size(); ++i)
    homes.insert(c.home_of(c[i], "c1"));
  CHECK(homes == std::set<std::string>{new_home});
  auto st = http_get(host, c[1].http_port, "/api/status").json;
  CHECK(st["entities"] == 0);
}

TEST_CASE("migration under a steady stream of adds loses none",
          "[cluster]") {
  test_cluster c{3};
  c.spawn("counter", "m1", "n1");
  std::atomic<int64_t> sent{0};
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread writer{[&] {
    while (!stop) {
      auto r = c.ask(c[2], "m1", "add", {"1"});
      if (r.status == 200)
        ++sent;
      else
        ++failures;
    }
  }};
  ft_test::wait_until([&] { return sent >= 20; }, 10s);
  for (auto to : {"n2", "n3", "n1"}) {
    auto r = http_post(host, c[0].http_port, "/api/entities/m1/migrate",
                       json{{"to", to}}, 60s);
    INFO(r.body);
    CHECK(r.status == 200);
    CHECK(r.json["node"] == to);
    std::this_thread::sleep_for(100ms);
  }
  stop = true;
  writer.join();
  CHECK(failures == 0);
  CHECK(result_of(c.ask(c[1], "m1", "get")) == sent.load());
}

TEST_CASE("membership converges after a join and a leave", "[cluster]") {
  test_cluster c{2};
  // A third node joins through the seeds.
  test_node extra;
  extra.name = "n3";
  auto ports = ft_test::free_ports(2);
  extra.port = ports[0];
  extra.http_port = ports[1];
  c.start(extra);
  REQUIRE(c.wait_up(extra, 3));
  REQUIRE(c.wait_up(c[0], 3));
  REQUIRE(c.wait_up(c[1], 3));
  // It leaves gracefully: every other node records `left`.
  CHECK(extra.proc->stop(10s) == 0);
  for (size_t i = 0; i < c.size(); ++i) {
    auto ok = ft_test::wait_until(
      [&] {
        auto v = http_get(host, c[i].http_port, "/api/nodes").json;
        for (auto& nd : v["nodes"])
          if (nd["name"] == "n3")
            return nd["state"] == "left";
        return false;
      },
      5s);
    CHECK(ok);
  }
}

TEST_CASE("a node with the wrong secret is refused, logged on both sides",
          "[cluster]") {
  test_cluster c{1};
  ft_test::write_file(c.dir() / "wrong", "not-the-secret\n");
  test_node bad;
  bad.name = "intruder";
  auto ports = ft_test::free_ports(2);
  bad.port = ports[0];
  bad.http_port = ports[1];
  auto args = c.argv(bad, (c.dir() / "wrong").string());
  args.push_back("--join-timeout");
  args.push_back("3s");
  auto res = ft_test::run(args, 20s);
  CHECK(res.rc == 1);
  CHECK_THAT(res.output(), Catch::Contains("auth_failed"));
  CHECK_THAT(ft_test::read_file(c[0].log),
             Catch::Contains("refused node 'intruder'")
               && Catch::Contains("wrong cluster secret"));
  auto v = http_get(host, c[0].http_port, "/api/nodes").json;
  CHECK(v["nodes"].size() == 1);
}

TEST_CASE("bad input gets a clear error, never a crash", "[cluster]") {
  test_cluster c{2};
  SECTION("unknown entity type") {
    auto r = http_post(host, c[0].http_port, "/api/entities",
                       json{{"type", "nope"}, {"key", "x"}});
    CHECK(r.status == 404);
    CHECK(r.json["error"] == "unknown_entity_type");
    CHECK_THAT(r.json["message"].get<std::string>(),
               Catch::Contains("nope") && Catch::Contains("counter"));
  }
  SECTION("ask for an unknown key") {
    auto r = c.ask(c[1], "ghost", "get");
    CHECK(r.status == 404);
    CHECK(r.json["error"] == "unknown_entity");
  }
  SECTION("a spawn of an existing key") {
    c.spawn("counter", "k1");
    auto r = http_post(host, c[1].http_port, "/api/entities",
                       json{{"type", "kv"}, {"key", "k1"}}, 30s);
    CHECK(r.status == 409);
    CHECK(r.json["error"] == "entity_exists");
  }
  SECTION("a bad command reaches the entity and is refused by it") {
    c.spawn("counter", "k2");
    auto r = c.ask(c[0], "k2", "add", {"many"});
    CHECK(r.status == 400);
    CHECK(r.json["error"] == "invalid_argument");
    CHECK(result_of(c.ask(c[0], "k2", "get")) == 0);
  }
  SECTION("a duplicate node name") {
    test_node dup;
    dup.name = "n2";
    auto ports = ft_test::free_ports(2);
    dup.port = ports[0];
    dup.http_port = ports[1];
    auto args = c.argv(dup);
    args.push_back("--join-timeout");
    args.push_back("3s");
    auto res = ft_test::run(args, 20s);
    CHECK(res.rc == 1);
    CHECK_THAT(res.output(), Catch::Contains("duplicate_node_name"));
  }
  SECTION("a port in use") {
    test_node clash;
    clash.name = "n9";
    clash.port = c[0].port;
    clash.http_port = ft_test::free_port();
    auto res = ft_test::run(c.argv(clash), 20s);
    CHECK(res.rc == 1);
    CHECK_THAT(res.output(),
               Catch::Contains("cluster port 127.0.0.1:"
                               + std::to_string(c[0].port)));
  }
  SECTION("an unreachable seed") {
    ft_test::temp_dir dir{"ft-seedless"};
    ft_test::write_file(dir / "secret", "s\n");
    auto ports = ft_test::free_ports(3);
    auto res = ft_test::run({FT_NODE, "--name", "lonely", "--port",
                             std::to_string(ports[0]), "--http-port",
                             std::to_string(ports[1]), "--seeds",
                             "127.0.0.1:" + std::to_string(ports[2]),
                             "--data-dir", (dir / "d").string(),
                             "--cluster-secret-file",
                             (dir / "secret").string(), "--join-timeout",
                             "1s"},
                            20s);
    CHECK(res.rc == 1);
    CHECK_THAT(res.output(), Catch::Contains("join_failed")
                               && Catch::Contains(std::to_string(ports[2])));
  }
  SECTION("a malformed config file") {
    ft_test::write_file(c.dir() / "bad.yaml", "name: x\nport: [1, 2\n");
    auto res = ft_test::run({FT_NODE, (c.dir() / "bad.yaml").string()}, 20s);
    CHECK(res.rc == 1);
    CHECK_THAT(res.output(), Catch::Contains("bad.yaml:"));
  }
  // Whatever was tried, both nodes are still up and serving.
  CHECK(c.wait_up(c[0], 2, 5s));
  CHECK(c.wait_up(c[1], 2, 5s));
}

TEST_CASE("with certificates configured, nodes talk TLS and a node without "
          "one cannot join",
          "[cluster]") {
  ft_test::temp_dir certs{"ft-tls"};
  auto sh = [&](const std::string& cmd) {
    auto res = ft_test::run({"/bin/sh", "-c", "cd '" + certs.str() + "' && "
                                                + cmd},
                            60s);
    INFO(res.output());
    REQUIRE(res.rc == 0);
  };
  // A throwaway CA and one certificate it signed, shared by the nodes.
  sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
     "-days 2 -subj /CN=ft-test-ca");
  sh("openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr "
     "-subj /CN=127.0.0.1");
  sh("openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key "
     "-CAcreateserial -out node.pem -days 2");
  ft_test::write_file(certs / "tls.yaml", "tls:\n"
                                          "  cert_file: node.pem\n"
                                          "  key_file: node.key\n"
                                          "  ca_file: ca.pem\n");
  test_cluster c{2, {(certs / "tls.yaml").string()}};
  c.spawn("counter", "t1", "n2");
  CHECK(result_of(c.ask(c[0], "t1", "add", {"2"})) == 2);
  // A node speaking plain CAF to a TLS port fails its handshake.
  test_node plain;
  plain.name = "plain";
  auto ports = ft_test::free_ports(2);
  plain.port = ports[0];
  plain.http_port = ports[1];
  auto args = c.argv(plain);
  args.resize(args.size() - 1); // without the TLS config
  args.push_back("--join-timeout");
  args.push_back("2s");
  auto res = ft_test::run(args, 20s);
  CHECK(res.rc == 1);
  CHECK_THAT(res.output(), Catch::Contains("join_failed"));
}

TEST_CASE("with rebalance_on_join, a joining node takes over entities",
          "[cluster]") {
  ft_test::temp_dir cfg_dir{"ft-rebalance"};
  ft_test::write_file(cfg_dir / "rebalance.yaml", "rebalance_on_join: true\n");
  test_cluster c{2, {(cfg_dir / "rebalance.yaml").string()}};
  // Six entities on the first two nodes, one of them pinned.
  c.spawn("counter", "p0", "n1");
  for (int i = 1; i < 6; ++i) {
    auto key = "r" + std::to_string(i);
    c.spawn("counter", key);
    CHECK(result_of(c.ask(c[0], key, "add", {std::to_string(i)})) == i);
  }
  test_node extra;
  extra.name = "n3";
  auto ports = ft_test::free_ports(2);
  extra.port = ports[0];
  extra.http_port = ports[1];
  c.start(extra);
  REQUIRE(c.wait_up(extra, 3));
  // The leader moves entities until every node hosts two.
  auto balanced = ft_test::wait_until(
    [&] {
      auto v = http_get(host, c[0].http_port, "/api/nodes").json;
      for (auto& nd : v["nodes"])
        if (nd["entities"] != 2)
          return false;
      return true;
    },
    20s);
  CHECK(balanced);
  CHECK(c.home_of(c[0], "p0") == "n1");
  // Moved entities kept their state.
  for (int i = 1; i < 6; ++i)
    CHECK(result_of(c.ask(c[1], "r" + std::to_string(i), "get")) == i);
}

namespace {

/// The newest snapshot sequence of `key` in a node's store (read by
/// `ftctl snapshot ls` while the node keeps it open); 0 when absent.
int64_t stored_sequence(const ft_test::temp_dir& dir, const std::string& node,
                        const std::string& key) {
  auto res = ft_test::run({FTCTL, "snapshot", "ls", "--dir",
                           (dir / node / "snapshots").string(), "--key", key,
                           "--format", "json"},
                          20s);
  if (res.rc != 0)
    return 0;
  auto j = json::parse(res.out, nullptr, false);
  if (j.is_discarded() || j.empty())
    return 0;
  return j[0]["latest_sequence"].get<int64_t>();
}

} // namespace

TEST_CASE("a node that rejoins catches up on the snapshots it missed",
          "[cluster]") {
  test_cluster c{3};
  c.spawn("counter", "c1", "n1");
  for (int i = 0; i < 3; ++i)
    result_of(c.ask(c[1], "c1", "add", {"1"}));
  c[2].proc->signal(SIGKILL);
  REQUIRE(ft_test::wait_until(
    [&] {
      auto v = http_get(host, c[0].http_port, "/api/nodes").json;
      for (auto& nd : v["nodes"])
        if (nd["name"] == "n3")
          return nd["state"] == "down";
      return false;
    },
    10s));
  // Written while n3 was away: acknowledged by n2's replica only.
  for (int i = 0; i < 5; ++i)
    CHECK(result_of(c.ask(c[1], "c1", "add", {"1"})) == 4 + i);
  auto home_seq = stored_sequence(c.dir(), "n1", "c1");
  CHECK(home_seq > 0);
  CHECK(stored_sequence(c.dir(), "n3", "c1") < home_seq);
  c.start(c[2]);
  REQUIRE(c.wait_up(c[2], 3));
  // n3 copied the newest snapshot from c1's home without any new write.
  CHECK(ft_test::wait_until(
    [&] { return stored_sequence(c.dir(), "n3", "c1") == home_seq; }, 10s,
    200ms));
}
