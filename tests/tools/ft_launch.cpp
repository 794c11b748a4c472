// ft-launch, run as a user runs it: the real binary (FT_LAUNCH) starting
// real ft-node processes (FT_NODE); ftctl (FTCTL) against the cluster it
// starts. Every test is bounded and its processes die with it: ft-launch
// runs in its own process group, which its nodes share.

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "process_harness.hpp"

using Catch::Matchers::Contains;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// How long a local cluster may take to come up on a busy 2-core machine.
constexpr auto up_timeout = 60s;

ft_test::run_result ft_launch(std::vector<std::string> args,
                              std::chrono::milliseconds timeout = 30s) {
  args.insert(args.begin(), FT_LAUNCH);
  return ft_test::run(std::move(args), timeout);
}

/// Writes an executable shell script (a stand-in ft-node).
void write_script(const fs::path& path, const std::string& body) {
  ft_test::write_file(path, "#!/bin/sh\n" + body);
  fs::permissions(path, fs::perms::owner_all);
}

/// Pids a stand-in ft-node appended to `file`, one per line.
std::vector<pid_t> read_pids(const fs::path& file) {
  std::vector<pid_t> pids;
  std::istringstream in{ft_test::read_file(file)};
  for (pid_t pid; in >> pid;)
    pids.push_back(pid);
  return pids;
}

/// A cluster file in a temp dir, for the config error tests.
struct config_fixture {
  ft_test::temp_dir dir{"ft-launch-cfg"};

  std::string file(const std::string& text) {
    auto path = dir / "cluster.yaml";
    ft_test::write_file(path, text);
    return path.string();
  }

  /// Runs ft-launch on `text` with a stand-in ft-node (never started: the
  /// config is checked before any node starts).
  ft_test::run_result launch(const std::string& text) {
    return ft_launch({file(text), "--ft-node", "/bin/true", "--run-dir",
                      (dir / "run").string(), "--no-status"});
  }
};

/// One ft-launch process and its run dir.
struct launch_fixture {
  ft_test::temp_dir dir{"ft-launch"};
  std::unique_ptr<ft_test::child_process> launch;

  /// ft-launch's whole output, to stderr: INFO(output()) shows only what was
  /// printed when it ran, and ctest shows this only for a failed test.
  ~launch_fixture() {
    if (launch)
      std::fprintf(stderr, "--- ft-launch output at the end ---\n%s\n",
                   launch->output().c_str());
  }

  fs::path run_dir() const {
    return dir / "run";
  }

  void start(std::vector<std::string> args) {
    args.insert(args.begin(), FT_LAUNCH);
    args.push_back("--run-dir");
    args.push_back(run_dir().string());
    launch = std::make_unique<ft_test::child_process>(
      std::move(args),
      ft_test::child_process::options{dir / "stdout", dir / "stderr", {}, {}});
  }

  /// Waits for `cluster up:` on stdout (false if ft-launch exits first).
  bool wait_up(std::chrono::milliseconds timeout = up_timeout) {
    ft_test::wait_until(
      [&] {
        return launch->out().find("cluster up:") != std::string::npos
               || !launch->running();
      },
      timeout, 50ms);
    return launch->out().find("cluster up:") != std::string::npos;
  }

  json cluster() const {
    return ft_test::read_json_file(run_dir() / "cluster.json")
      .value_or(json::object());
  }

  /// The node's entry in cluster.json (null when absent).
  json node(const std::string& name) const {
    for (auto& n : cluster().value("nodes", json::array()))
      if (n.value("name", "") == name)
        return n;
    return nullptr;
  }

  /// Waits until `pred(node entry)` holds.
  template <class Pred>
  bool wait_node(const std::string& name, Pred pred,
                 std::chrono::milliseconds timeout = up_timeout) {
    return ft_test::wait_until(
      [&] {
        auto n = node(name);
        return n.is_object() && pred(n);
      },
      timeout, 50ms);
  }

  pid_t pid_of(const std::string& name) const {
    auto n = node(name);
    return n.is_object() && n["pid"].is_number() ? n["pid"].get<pid_t>() : 0;
  }

  uint16_t http_port_of(const std::string& name) const {
    return node(name).value("http_port", uint16_t{0});
  }

  std::string output() const {
    return launch ? launch->output() : std::string{};
  }
};

} // namespace

// -- command line and config errors (no node starts) -------------------------

TEST_CASE("ft-launch --help lists its options", "[ft_launch]") {
  auto res = ft_launch({"--help"});
  INFO(res.output());
  CHECK(res.rc == 0);
  for (auto opt : {"--nodes", "--ft-node", "--run-dir", "--base-port",
                   "--secret-file", "--no-status", "--status-interval"})
    CHECK_THAT(res.out, Contains(opt));
  auto both = ft_launch({"cluster.yaml", "--nodes", "2"});
  CHECK(both.rc == 1);
  CHECK_THAT(both.err, Contains("excludes"));
  auto zero = ft_launch({"--nodes", "0"});
  CHECK(zero.rc == 1);
}

TEST_CASE_METHOD(config_fixture, "ft-launch names file:line of malformed YAML",
                 "[ft_launch]") {
  auto res = launch("cluster:\n"
                    "  run_dir: x\n"
                    "nodes:\n"
                    "  - name: n1\n"
                    "  - name: [n2\n");
  INFO(res.output());
  CHECK(res.rc == 1);
  CHECK_THAT(res.err, Contains(file("") + ":")); // the path, then the line
  CHECK_THAT(res.err, Contains("cluster.yaml:6:"));
  CHECK_THAT(res.err, Contains("malformed YAML"));
  CHECK_FALSE(fs::exists(dir / "run" / "cluster.json"));
}

TEST_CASE_METHOD(config_fixture,
                 "ft-launch rejects unknown keys and bad values, naming "
                 "file:line and field",
                 "[ft_launch]") {
  auto unknown = launch("cluster:\n"
                        "  run_dri: x\n"
                        "nodes:\n"
                        "  - name: n1\n");
  INFO(unknown.output());
  CHECK(unknown.rc == 1);
  CHECK_THAT(unknown.err,
             Contains("cluster.yaml:2: cluster.run_dri: unknown key"));
  auto top = launch("nodes:\n"
                    "  - name: n1\n"
                    "clusters: {}\n");
  INFO(top.output());
  CHECK(top.rc == 1);
  CHECK_THAT(top.err, Contains("cluster.yaml:3: clusters: unknown key"));
  auto restart = launch("cluster:\n"
                        "  restart:\n"
                        "    initial_delay: 0.5\n"
                        "    max_restart: 3\n"
                        "nodes:\n"
                        "  - name: n1\n");
  INFO(restart.output());
  CHECK(restart.rc == 1);
  CHECK_THAT(restart.err,
             Contains("cluster.yaml:4: cluster.restart.max_restart: "
                      "unknown key"));
  auto port = launch("nodes:\n"
                     "  - name: n1\n"
                     "  - name: n2\n"
                     "    port: eighty\n");
  INFO(port.output());
  CHECK(port.rc == 1);
  CHECK_THAT(port.err, Contains("cluster.yaml:4: nodes[1].port: expected an "
                                "integer in 0..65535, got 'eighty'"));
  auto delay = launch("cluster:\n"
                      "  restart: {period: -1}\n"
                      "nodes:\n"
                      "  - name: n1\n");
  INFO(delay.output());
  CHECK(delay.rc == 1);
  CHECK_THAT(delay.err, Contains("cluster.yaml:2: cluster.restart.period"));
  auto dup = launch("nodes:\n"
                    "  - name: n1\n"
                    "  - name: n1\n");
  INFO(dup.output());
  CHECK(dup.rc == 1);
  CHECK_THAT(dup.err, Contains("cluster.yaml:3: nodes[1].name: duplicate "
                               "node name 'n1'"));
  auto seeds = launch("nodes:\n"
                      "  - name: n1\n"
                      "    seeds: [127.0.0.1:1]\n");
  INFO(seeds.output());
  CHECK(seeds.rc == 1);
  CHECK_THAT(seeds.err, Contains("cluster.yaml:3: nodes[0].seeds: set by "
                                 "ft-launch"));
  auto none = launch("cluster: {}\n");
  CHECK(none.rc == 1);
  CHECK_THAT(none.err, Contains("nodes: missing"));
  auto secret = launch("cluster:\n"
                       "  secret_file: /nonexistent/secret\n"
                       "nodes:\n"
                       "  - name: n1\n");
  INFO(secret.output());
  CHECK(secret.rc == 1);
  CHECK_THAT(secret.err, Contains("secret file /nonexistent/secret is "
                                  "missing or empty"));
}

TEST_CASE_METHOD(config_fixture,
                 "ft-launch checks node fields with ft-node's schema and "
                 "points at the line",
                 "[ft_launch]") {
  // An unknown ft-node field in node_defaults.
  auto unknown = launch("node_defaults:\n"
                        "  host: 127.0.0.1\n"
                        "  leese: 0.3\n"
                        "nodes:\n"
                        "  - name: n1\n");
  INFO(unknown.output());
  CHECK(unknown.rc == 1);
  CHECK_THAT(unknown.err, Contains("cluster.yaml:3: node_defaults.leese: "));
  CHECK_THAT(unknown.err, Contains("leese"));
  // A cross-field rule (lease below the detector's silence) broken by one
  // node's own value: the blame goes to that line.
  auto lease = launch("node_defaults:\n"
                      "  failure_detector:\n"
                      "    heartbeat_interval: 0.1\n"
                      "nodes:\n"
                      "  - name: n1\n"
                      "  - name: n2\n"
                      "    labels: {gpu: 'true'}\n"
                      "    lease: 5\n");
  INFO(lease.output());
  CHECK(lease.rc == 1);
  CHECK_THAT(lease.err, Contains("cluster.yaml:8: nodes[1] (n2).lease: "));
  // Nothing was started, and no node config was left half-written.
  CHECK_FALSE(fs::exists(dir / "run" / "cluster.json"));
}

TEST_CASE("ft-launch reports a missing ft-node binary", "[ft_launch]") {
  ft_test::temp_dir dir{"ft-launch-bin"};
  auto res = ft_launch({"--ft-node", "/nonexistent/ft-node", "--run-dir",
                        (dir / "run").string()});
  INFO(res.output());
  CHECK(res.rc == 1);
  CHECK_THAT(res.err, Contains("/nonexistent/ft-node"));
  CHECK_THAT(res.err, Contains("missing or not executable"));
  CHECK_FALSE(fs::exists(dir / "run"));
}

// -- stand-in nodes: ft-launch's own mechanics -------------------------------

TEST_CASE("ft-launch finds ft-node in its own directory (installed layout)",
          "[ft_launch]") {
  ft_test::temp_dir dir{"ft-launch-inst"};
  fs::create_directories(dir / "bin");
  fs::copy_file(FT_LAUNCH, dir / "bin" / "ft-launch");
  // This ft-node shows how it was called and fails, so ft-launch stops.
  write_script(dir / "bin" / "ft-node", "echo \"stub ft-node $*\"\nexit 1\n");
  auto res = ft_test::run({(dir / "bin" / "ft-launch").string(), "--nodes",
                           "1", "--run-dir", (dir / "run").string()},
                          30s);
  INFO(res.output());
  CHECK(res.rc == 1);
  CHECK_THAT(res.err, Contains("[n1] stub ft-node " + (dir / "run").string()
                               + "/n1.yaml --ready-file "));
  CHECK_THAT(res.err, Contains("exited with code 1 before it came up"));
}

TEST_CASE("ft-launch --base-port gives node i port P+i and HTTP port "
          "P+100+i",
          "[ft_launch]") {
  ft_test::temp_dir dir{"ft-launch-base"};
  write_script(dir / "ft-node", "exit 1\n");
  auto res = ft_launch({"--nodes", "3", "--base-port", "20000", "--ft-node",
                        (dir / "ft-node").string(), "--run-dir",
                        (dir / "run").string()});
  INFO(res.output());
  CHECK(res.rc == 1);
  // Every node's config is written before the first node starts.
  auto n3 = YAML::LoadFile((dir / "run" / "n3.yaml").string());
  CHECK(n3["name"].as<std::string>() == "n3");
  CHECK(n3["port"].as<int>() == 20003);
  CHECK(n3["http_port"].as<int>() == 20103);
  REQUIRE(n3["seeds"].size() == 1);
  CHECK(n3["seeds"][0].as<std::string>() == "127.0.0.1:20001");
  CHECK(n3["data_dir"].as<std::string>() == (dir / "run" / "n3").string());
  CHECK(n3["cluster_secret_file"].as<std::string>()
        == (dir / "run" / "cluster.secret").string());
  auto doc = ft_test::read_json_file(dir / "run" / "cluster.json");
  REQUIRE(doc);
  REQUIRE((*doc)["nodes"].size() == 3);
  CHECK((*doc)["nodes"][1]["port"] == 20002);
  CHECK((*doc)["nodes"][1]["http_port"] == 20102);
  // Only the seed was started; the others wait for it.
  CHECK((*doc)["nodes"][0]["state"] == "stopped");
  CHECK_THAT(res.err, !Contains("n2: started"));
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch gives up when nodes do not come up in time",
                 "[ft_launch]") {
  write_script(dir / "ft-node", "echo $$ >> " + (dir / "pids").string()
                                  + "\necho waiting forever\nexec sleep 600\n");
  start({"--nodes", "2", "--ft-node", (dir / "ft-node").string(),
         "--startup-timeout", "1s", "--no-status"});
  auto rc = launch->wait_for(20s);
  INFO(output());
  REQUIRE(rc);
  CHECK(*rc == 1);
  CHECK_THAT(launch->err(), Contains("ft-launch: n1, n2 did not come up "
                                     "within 1s"));
  CHECK_THAT(launch->err(), Contains("waiting forever"));
  auto pids = read_pids(dir / "pids");
  REQUIRE(pids.size() == 1);
  CHECK_FALSE(ft_test::process_alive(pids[0]));
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch SIGKILLs nodes that ignore SIGTERM after the stop "
                 "timeout",
                 "[ft_launch]") {
  write_script(dir / "ft-node", "trap '' TERM INT\necho $$ >> "
                                  + (dir / "pids").string()
                                  + "\nexec sleep 600\n");
  start({"--nodes", "1", "--ft-node", (dir / "ft-node").string(),
         "--startup-timeout", "120s", "--stop-timeout", "500ms",
         "--no-status"});
  INFO(output());
  REQUIRE(ft_test::wait_until(
    [&] { return read_pids(dir / "pids").size() == 1; }, 20s));
  auto pid = read_pids(dir / "pids")[0];
  launch->signal(SIGINT);
  auto rc = launch->wait_for(20s);
  REQUIRE(rc);
  CHECK(*rc == 0);
  CHECK_THAT(launch->err(), Contains("SIGINT: stopping the cluster"));
  CHECK_THAT(launch->err(), Contains("n1: killing pid " + std::to_string(pid)
                                     + " (SIGKILL)"));
  CHECK_FALSE(ft_test::process_alive(pid));
}

// -- real clusters ------------------------------------------------------------

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch --nodes 3 brings a cluster up and lists it",
                 "[ft_launch][ftctl_cluster]") {
  // No --ft-node: ft-launch finds the build tree's ft-node itself.
  start({"--nodes", "3", "--stop-timeout", "2s"});
  REQUIRE(wait_up());
  INFO(output());
  auto out = launch->out();
  CHECK_THAT(out, Contains("cluster up: n1 http://127.0.0.1:"));
  auto doc = cluster();
  REQUIRE(doc["nodes"].size() == 3);
  CHECK(doc["state"] == "up");
  CHECK(doc["launcher_pid"] == launch->pid());
  for (auto name : {"n1", "n2", "n3"}) {
    auto n = node(name);
    INFO(n.dump());
    CHECK(n["state"] == "up");
    CHECK(n["restarts"] == 0);
    auto pid = n["pid"].get<pid_t>();
    CHECK(ft_test::process_alive(pid));
    CHECK_THAT(out, Contains(std::string{name} + " http://127.0.0.1:"
                             + std::to_string(n["http_port"].get<int>())));
    auto st = ft_test::http_get("127.0.0.1", n["http_port"].get<uint16_t>(),
                                "/api/status");
    REQUIRE(st);
    CHECK(st.json["state"] == "up");
    CHECK(st.json["pid"] == pid);
    // Each node got its own config, data dir and log.
    CHECK(fs::exists(run_dir() / (std::string{name} + ".yaml")));
    CHECK(fs::is_directory(run_dir() / name));
    CHECK_THAT(ft_test::read_file(run_dir() / (std::string{name} + ".log")),
               Contains("up"));
  }
  // Node logs are forwarded with a prefix; the secret file is private.
  CHECK_THAT(launch->err(), Contains("[n2] "));
  auto perms = fs::status(run_dir() / "cluster.secret").permissions();
  CHECK((perms & fs::perms::group_all) == fs::perms::none);
  CHECK((perms & fs::perms::others_all) == fs::perms::none);
  // The status table (stdout is a file: printed when it changes).
  REQUIRE(ft_test::wait_until(
    [&] { return launch->out().find("RESTARTS") != std::string::npos; }, 10s));
  // ftctl sees the same three members, all up, through any node.
  auto address = "127.0.0.1:" + std::to_string(http_port_of("n3"));
  json members;
  REQUIRE(ft_test::wait_until(
    [&] {
      auto res = ft_test::run({FTCTL, "nodes", "--format", "json", "--node",
                               address},
                              30s);
      members = json::parse(res.out, nullptr, false);
      if (res.rc != 0 || members.is_discarded())
        return false;
      auto& ns = members["nodes"];
      return ns.size() == 3
             && std::all_of(ns.begin(), ns.end(),
                            [](auto& x) { return x["state"] == "up"; });
    },
    20s, 200ms));
  std::set<std::string> names;
  for (auto& x : members["nodes"])
    names.insert(x["name"].get<std::string>());
  CHECK(names == std::set<std::string>{"n1", "n2", "n3"});
  CHECK(members["leader"].is_string());
  CHECK(launch->stop(20s) == 0);
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch restarts a node killed with SIGKILL",
                 "[ft_launch]") {
  start({"--nodes", "3", "--ft-node", FT_NODE, "--no-status",
         "--stop-timeout", "2s"});
  REQUIRE(wait_up());
  INFO(output());
  auto old_pid = pid_of("n2");
  REQUIRE(old_pid > 0);
  REQUIRE(::kill(old_pid, SIGKILL) == 0);
  REQUIRE(wait_node("n2", [&](const json& n) {
    return n["pid"].is_number() && n["pid"] != old_pid && n["state"] == "up";
  }));
  auto n2 = node("n2");
  CHECK(n2["restarts"] == 1);
  auto new_pid = n2["pid"].get<pid_t>();
  CHECK_FALSE(ft_test::process_alive(old_pid));
  auto st = ft_test::http_get("127.0.0.1", http_port_of("n2"), "/api/status");
  REQUIRE(st);
  CHECK(st.json["pid"] == new_pid);
  CHECK(st.json["state"] == "up");
  CHECK_THAT(launch->err(),
             Contains("n2: pid " + std::to_string(old_pid)
                      + " was killed by SIGKILL; restarting in"));
  // The others were left alone.
  CHECK(node("n1")["restarts"] == 0);
  CHECK(node("n3")["restarts"] == 0);
  CHECK(launch->running());
  CHECK(launch->stop(20s) == 0);
}

TEST_CASE_METHOD(launch_fixture, "ft-launch stops every node on SIGTERM",
                 "[ft_launch]") {
  start({"--nodes", "3", "--ft-node", FT_NODE, "--no-status",
         "--stop-timeout", "5s"});
  REQUIRE(wait_up());
  INFO(output());
  std::vector<pid_t> pids;
  for (auto name : {"n1", "n2", "n3"})
    pids.push_back(pid_of(name));
  for (auto pid : pids)
    REQUIRE(ft_test::process_alive(pid));
  launch->signal(SIGTERM);
  auto rc = launch->wait_for(30s);
  REQUIRE(rc);
  CHECK(*rc == 0);
  // ft-launch reaps its nodes before it exits: none may be left.
  for (auto pid : pids)
    CHECK_FALSE(ft_test::process_alive(pid));
  auto doc = cluster(); // a temporary's member would dangle in the loop
  CHECK(doc["state"] == "stopped");
  for (auto& n : doc["nodes"])
    CHECK(n["pid"].is_null());
  CHECK_THAT(launch->err(), Contains("SIGTERM: stopping the cluster"));
  // Per the ft-node contract the nodes leave gracefully (exit 0) on
  // SIGTERM rather than needing the SIGKILL after the stop timeout.
  CHECK_THAT(launch->err(), !Contains("SIGKILL"));
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch's nodes die with it even when it is SIGKILLed",
                 "[ft_launch]") {
  // A stand-in ft-node that records its pid and sleeps (default SIGTERM
  // action: it dies), so this checks ft-launch's PR_SET_PDEATHSIG alone.
  auto stub = dir / "stub-node";
  write_script(stub, "echo $$ >> " + (dir / "pids").string() + "\n"
                     "exec sleep 600\n");
  start({"--nodes", "2", "--ft-node", stub.string(), "--no-status",
         "--startup-timeout", "120s"});
  INFO(output());
  std::vector<pid_t> pids;
  REQUIRE(ft_test::wait_until(
    [&] {
      pids = read_pids(dir / "pids");
      return pids.size() == 1; // the seed; n2 waits for it to be up
    },
    20s));
  REQUIRE(ft_test::process_alive(pids[0]));
  ::kill(launch->pid(), SIGKILL); // only ft-launch, not its group
  REQUIRE(launch->wait_for(10s));
  CHECK(ft_test::wait_until([&] { return !ft_test::process_alive(pids[0]); },
                            10s));
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch gives up on a node that keeps crashing and keeps "
                 "the others",
                 "[ft_launch]") {
  ft_test::write_file(dir / "cluster.yaml",
                      "cluster:\n"
                      "  restart:\n"
                      "    initial_delay: 0.05\n"
                      "    max_delay: 0.1\n"
                      "    max_restarts: 1\n"
                      "    period: 60\n"
                      "nodes:\n"
                      "  - name: n1\n"
                      "  - name: n2\n");
  start({(dir / "cluster.yaml").string(), "--ft-node", FT_NODE, "--no-status",
         "--stop-timeout", "2s"});
  REQUIRE(wait_up());
  INFO(output());
  auto first = pid_of("n2");
  REQUIRE(::kill(first, SIGKILL) == 0);
  REQUIRE(wait_node("n2", [&](const json& n) {
    return n["pid"].is_number() && n["pid"] != first && n["state"] == "up";
  }));
  auto second = pid_of("n2");
  REQUIRE(::kill(second, SIGKILL) == 0);
  REQUIRE(wait_node("n2", [](const json& n) { return n["state"] == "failed"; },
                    20s));
  CHECK(node("n2")["pid"].is_null());
  CHECK(node("n2")["restarts"] == 1);
  CHECK_THAT(launch->err(), Contains("escalation"));
  // Degraded, not dead: n1 runs on and ft-launch keeps supervising it.
  CHECK(cluster()["state"] == "degraded");
  CHECK(node("n1")["state"] == "up");
  CHECK(ft_test::process_alive(pid_of("n1")));
  CHECK(launch->running());
  CHECK(launch->stop(20s) == 0);
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch exits 2 once every node was given up",
                 "[ft_launch]") {
  ft_test::write_file(dir / "cluster.yaml",
                      "cluster:\n"
                      "  restart: {max_restarts: 0, period: 60}\n"
                      "nodes:\n"
                      "  - name: solo\n");
  start({(dir / "cluster.yaml").string(), "--ft-node", FT_NODE,
         "--no-status"});
  REQUIRE(wait_up());
  INFO(output());
  REQUIRE(::kill(pid_of("solo"), SIGKILL) == 0);
  auto rc = launch->wait_for(20s);
  REQUIRE(rc);
  CHECK(*rc == 2);
  CHECK_THAT(launch->err(), Contains("every node failed"));
  CHECK(node("solo")["state"] == "failed");
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch exits 1 with the node's last lines when its port "
                 "is taken",
                 "[ft_launch]") {
  ft_test::bound_socket taken;
  taken.listen();
  ft_test::write_file(dir / "cluster.yaml",
                      "nodes:\n"
                      "  - name: n1\n"
                      "    port: "
                        + std::to_string(taken.port()) + "\n");
  start({(dir / "cluster.yaml").string(), "--ft-node", FT_NODE,
         "--no-status"});
  auto rc = launch->wait_for(30s);
  INFO(output());
  REQUIRE(rc);
  CHECK(*rc == 1);
  auto err = launch->err();
  CHECK_THAT(err, Contains("ft-launch: n1 pid "));
  CHECK_THAT(err, Contains("exited with code 1 before it came up"));
  CHECK_THAT(err, Contains("last lines of n1"));
  CHECK_THAT(err, Contains(std::to_string(taken.port())));
  // It did not try again.
  CHECK(node("n1")["restarts"] == 0);
  CHECK_THAT(launch->out(), !Contains("cluster up"));
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch starts the nodes a cluster file describes",
                 "[ft_launch]") {
  auto ports = ft_test::free_ports(2);
  ft_test::write_file(dir / "cluster.yaml",
                      "cluster:\n"
                      "  seeds: 1\n"
                      "node_defaults:\n"
                      "  labels: {zone: eu}\n"
                      "nodes:\n"
                      "  - name: alpha\n"
                      "    http_port: "
                        + std::to_string(ports[0])
                        + "\n"
                          "  - name: beta\n"
                          "    port: "
                        + std::to_string(ports[1])
                        + "\n"
                          "    labels: {gpu: 'true'}\n");
  ft_test::write_file(dir / "secret", "s3cr3t-for-this-test\n");
  start({(dir / "cluster.yaml").string(), "--ft-node", FT_NODE, "--no-status",
         "--stop-timeout", "2s", "--secret-file", (dir / "secret").string()});
  REQUIRE(wait_up());
  INFO(output());
  CHECK(http_port_of("alpha") == ports[0]);
  CHECK_FALSE(fs::exists(run_dir() / "cluster.secret"));
  CHECK(YAML::LoadFile((run_dir() / "alpha.yaml").string())
          ["cluster_secret_file"]
            .as<std::string>()
        == (dir / "secret").string());
  CHECK(node("beta")["port"] == ports[1]);
  CHECK(node("alpha")["seed"] == true);
  CHECK(node("beta")["seed"] == false);
  // beta's config: its labels merged over the defaults, alpha as seed.
  auto beta = ft_test::read_file(run_dir() / "beta.yaml");
  CHECK_THAT(beta, Contains("gpu"));
  CHECK_THAT(beta, Contains("zone"));
  CHECK_THAT(beta, Contains("127.0.0.1:" + std::to_string(node("alpha")["port"]
                                                          .get<int>())));
  json seen;
  REQUIRE(ft_test::wait_until(
    [&] {
      auto r = ft_test::http_get("127.0.0.1", ports[0], "/api/nodes");
      if (!r || !r.json.is_object())
        return false;
      for (auto& n : r.json["nodes"])
        if (n["name"] == "beta")
          seen = n;
      return seen.is_object();
    },
    20s, 100ms));
  CHECK(seen["labels"] == json({{"gpu", "true"}, {"zone", "eu"}}));
  CHECK(launch->stop(20s) == 0);
}

TEST_CASE_METHOD(launch_fixture,
                 "ftctl spawns, asks, finds and migrates an entity on a real "
                 "cluster",
                 "[ftctl_cluster]") {
  start({"--nodes", "3", "--ft-node", FT_NODE, "--no-status",
         "--stop-timeout", "5s"});
  REQUIRE(wait_up());
  INFO(output());
  auto address = "127.0.0.1:" + std::to_string(http_port_of("n1"));
  ft_test::run_result last;
  auto ftctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), FTCTL);
    args.push_back("--node");
    args.push_back(address);
    last = ft_test::run(std::move(args), 40s);
    return last;
  };
  // Right after startup a node may still wait for its lease: retry what
  // the cluster calls transient.
  auto transient = [&] {
    return last.rc == 1
           && (last.err.find("entity_unavailable") != std::string::npos
               || last.err.find("placement_failed") != std::string::npos);
  };
  REQUIRE(ft_test::wait_until(
    [&] {
      ftctl({"entity", "spawn", "counter", "c1", "--on", "n2", "--format",
             "json"});
      return !transient();
    },
    20s, 200ms));
  INFO(last.output());
  REQUIRE(last.rc == 0);
  auto spawned = json::parse(last.out);
  CHECK(spawned["key"] == "c1");
  CHECK(spawned["node"] == "n2");
  REQUIRE(ft_test::wait_until(
    [&] {
      ftctl({"entity", "ask", "c1", "add", "5"});
      return !transient();
    },
    20s, 200ms));
  CHECK(last.rc == 0);
  CHECK(last.out == "5\n");
  CHECK(ftctl({"entity", "ask", "c1", "add", "2"}).out == "7\n");
  auto where = ftctl({"entity", "where", "c1", "--format", "json"});
  REQUIRE(where.rc == 0);
  CHECK(json::parse(where.out)["node"] == "n2");
  auto moved = ftctl({"entity", "migrate", "c1", "--to", "n3", "--format",
                      "json"});
  INFO(moved.output());
  REQUIRE(moved.rc == 0);
  CHECK(json::parse(moved.out)["node"] == "n3");
  // The state moved with it.
  REQUIRE(ft_test::wait_until(
    [&] {
      ftctl({"entity", "ask", "c1", "get"});
      return !transient();
    },
    20s, 200ms));
  CHECK(last.out == "7\n");
  auto ls = ftctl({"entity", "ls"});
  CHECK_THAT(ls.out, Contains("c1"));
  CHECK_THAT(ls.out, Contains("n3"));
  auto missing = ftctl({"entity", "where", "c9"});
  CHECK(missing.rc == 3);
  CHECK_THAT(missing.err, Contains("error: unknown_entity: "));
  CHECK(launch->stop(20s) == 0);
}

// -- hung nodes ---------------------------------------------------------------

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch kills and restarts a node that hangs (SIGSTOP)",
                 "[ft_launch][hang]") {
  start({"--nodes", "2", "--ft-node", FT_NODE, "--no-status",
         "--hang-timeout", "2s", "--stop-timeout", "2s"});
  REQUIRE(wait_up());
  INFO(output());
  auto old_pid = pid_of("n2");
  REQUIRE(old_pid > 0);
  // Healthy nodes are left alone for longer than the hang timeout.
  std::this_thread::sleep_for(3s);
  REQUIRE(pid_of("n2") == old_pid);
  REQUIRE(node("n1")["restarts"] == 0);
  auto st = ft_test::http_get("127.0.0.1", http_port_of("n2"), "/api/status");
  REQUIRE(st);
  CHECK(st.json["watchdog"]["state"] == "ok");
  auto stopped_at = std::chrono::steady_clock::now();
  REQUIRE(::kill(old_pid, SIGSTOP) == 0);
  // Killed within hang_timeout plus a margin (the status interval is
  // hang_timeout / 4; a busy machine adds some).
  CHECK(ft_test::wait_until([&] { return !ft_test::process_alive(old_pid)
                                         || pid_of("n2") != old_pid; },
                            8s, 50ms));
  // Not before hang_timeout after its last answer, which came at most one
  // status interval (0.5 s) before the SIGSTOP.
  auto killed_after = std::chrono::steady_clock::now() - stopped_at;
  CHECK(killed_after >= 1400ms);
  REQUIRE(wait_node(
    "n2",
    [&](const json& n) {
      return n["pid"].is_number() && n["pid"] != old_pid && n["state"] == "up";
    },
    20s));
  auto n2 = node("n2");
  CHECK(n2["restarts"] == 1);
  CHECK_FALSE(ft_test::process_alive(old_pid));
  CHECK_THAT(launch->err(), Contains("n2: hung: /api/status has not answered "
                                     "for"));
  CHECK_THAT(launch->err(), Contains("n2: pid " + std::to_string(old_pid)
                                     + " was killed by SIGKILL (hung); "
                                       "restarting in"));
  auto again = ft_test::http_get("127.0.0.1", http_port_of("n2"),
                                 "/api/status");
  REQUIRE(again);
  CHECK(again.json["pid"] == n2["pid"]);
  // The healthy node was never touched.
  CHECK(node("n1")["restarts"] == 0);
  CHECK(launch->running());
  CHECK(launch->stop(20s) == 0);
}

TEST_CASE_METHOD(launch_fixture,
                 "ft-launch does not take a node that is still starting for "
                 "hung",
                 "[ft_launch][hang]") {
  // Never up: no ready file, no HTTP endpoint.
  auto stub = dir / "stub-node";
  write_script(stub, "echo $$ >> " + (dir / "pids").string() + "\n"
                     "exec sleep 600\n");
  start({"--nodes", "1", "--ft-node", stub.string(), "--no-status",
         "--hang-timeout", "0.5s", "--startup-timeout", "3s",
         "--stop-timeout", "1s"});
  INFO(output());
  REQUIRE(launch->wait_for(20s));
  CHECK(launch->exit_code() == 1);
  CHECK_THAT(launch->err(), Contains("did not come up within 3s"));
  CHECK(launch->err().find("hung") == std::string::npos);
  CHECK(read_pids(dir / "pids").size() == 1); // never restarted
}

TEST_CASE_METHOD(config_fixture, "cluster.hang_timeout is read and checked",
                 "[ft_launch][hang]") {
  auto res = launch("cluster:\n  hang_timeout: -1\nnodes:\n  - name: n1\n");
  CHECK(res.rc == 1);
  CHECK_THAT(res.err, Contains("cluster.yaml:2"));
  CHECK_THAT(res.err, Contains("cluster.hang_timeout"));
}
