// ftctl's cluster commands against a stand-in node: an httplib::Server in
// the test process that answers with canned replies shaped like ft-node's
// HTTP contract and records what ftctl sent. The real binary (FTCTL) runs
// as a user runs it; its output, exit codes and requests are checked.

#include <catch2/catch.hpp>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "process_harness.hpp"

using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

/// A request as the fake node saw it.
struct seen_request {
  std::string method;
  std::string path;
  json body;
};

/// Serves the contract's endpoints with fixed data on 127.0.0.1.
class fake_node {
public:
  fake_node() {
    svr_.Get("/api/nodes", [this](const auto& req, auto& res) {
      record(req);
      reply(res, 200, nodes_doc());
    });
    svr_.Get("/api/entities", [this](const auto& req, auto& res) {
      record(req);
      reply(res, 200,
            {{"entities",
              {record_of("c1", "counter", "n2", 3),
               record_of("kv-7", "kv", "n1", 1)}}});
    });
    svr_.Post("/api/entities", [this](const auto& req, auto& res) {
      auto body = record(req);
      auto key = body.value("key", "");
      auto type = body.value("type", "");
      if (key == "dup")
        return error(res, 409, "entity_exists", "entity dup exists on n1");
      if (type == "nope")
        return error(res, 404, "unknown_entity_type",
                     "no entity type 'nope' (known: counter, kv)");
      reply(res, 201, record_of(key, type, body.value("on", "n2"), 1));
    });
    svr_.Post(R"(/api/entities/(.+)/ask)", [this](const auto& req, auto& res) {
      auto body = record(req);
      auto key = req.matches[1].str();
      if (key != "c1")
        return error(res, 404, "unknown_entity", "no entity " + key);
      auto msg = body.value("message", "");
      json result;
      if (msg == "add")
        result = 42;
      else if (msg == "name")
        result = "counter c1";
      else if (msg == "dump")
        result = {{"value", 42}, {"history", {1, 2}}};
      else
        return error(res, 503, "entity_unavailable",
                     "c1 is migrating; retry shortly");
      reply(res, 200, {{"key", key}, {"node", "n2"}, {"result", result}});
    });
    svr_.Post(R"(/api/entities/(.+)/migrate)",
              [this](const auto& req, auto& res) {
                auto body = record(req);
                auto to = body.value("to", "");
                if (to == "nowhere")
                  return error(res, 503, "placement_failed",
                               "no node named nowhere is up");
                reply(res, 200,
                      record_of(req.matches[1].str(), "counter", to, 4));
              });
    svr_.Get(R"(/api/entities/(.+))", [this](const auto& req, auto& res) {
      record(req);
      auto key = req.matches[1].str();
      if (key == "teapot") {
        // Not the contract's error shape: ftctl must still say something.
        res.status = 500;
        res.set_content("internal failure", "text/plain");
        return;
      }
      // Like ft-node, whose messages start with the error's name.
      if (key != "c1" && key != "acct/alice")
        return error(res, 404, "unknown_entity",
                     "unknown_entity: no entity " + key);
      reply(res, 200, record_of(key, "counter", "n2", 3));
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread{[this] { svr_.listen_after_bind(); }};
  }

  ~fake_node() {
    svr_.stop();
    thread_.join();
  }

  std::string address() const {
    return "127.0.0.1:" + std::to_string(port_);
  }

  std::vector<seen_request> requests() {
    std::lock_guard<std::mutex> guard{mtx_};
    return seen_;
  }

  static json nodes_doc() {
    return {{"leader", "n1"},
            {"nodes",
             {{{"name", "n1"},
               {"host", "127.0.0.1"},
               {"port", 7101},
               {"http_port", 8101},
               {"state", "up"},
               {"incarnation", 11},
               {"labels", json::object()},
               {"entities", 2},
               {"last_heartbeat_ms", nullptr},
               {"phi", 0.0}},
              {{"name", "n2"},
               {"host", "127.0.0.1"},
               {"port", 7102},
               {"http_port", 8102},
               {"state", "suspect"},
               {"incarnation", 12},
               {"labels", {{"gpu", "true"}}},
               {"entities", 1},
               {"last_heartbeat_ms", 1250},
               {"phi", 4.5}}}}};
  }

  static json record_of(const std::string& key, const std::string& type,
                        const std::string& node, int epoch) {
    return {{"key", key},
            {"type", type},
            {"node", node},
            {"epoch", epoch},
            {"state", "active"}};
  }

private:
  json record(const httplib::Request& req) {
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      body = nullptr;
    std::lock_guard<std::mutex> guard{mtx_};
    seen_.push_back({req.method, req.path, body});
    return body.is_object() ? body : json::object();
  }

  static void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
  }

  static void error(httplib::Response& res, int status, const std::string& code,
                    const std::string& message) {
    reply(res, status, {{"error", code}, {"message", message}});
  }

  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mtx_;
  std::vector<seen_request> seen_;
};

/// Runs ftctl with `args`; FT_NODE is unset unless given, so a developer's
/// environment cannot change the outcome.
ft_test::run_result ftctl(std::vector<std::string> args,
                          std::optional<std::string> ft_node = std::nullopt) {
  args.insert(args.begin(), FTCTL);
  return ft_test::run(std::move(args), std::chrono::seconds{40},
                      {{"FT_NODE", ft_node}});
}

} // namespace

TEST_CASE("ftctl nodes prints the members as a table and as JSON",
          "[ftctl_cluster]") {
  fake_node node;
  auto table = ftctl({"nodes", "--node", node.address()});
  INFO(table.output());
  REQUIRE(table.rc == 0);
  // A header and one aligned row per node; the leader is starred.
  CHECK_THAT(table.out, Contains("NODE"));
  CHECK_THAT(table.out, Contains("HEARTBEAT"));
  CHECK_THAT(table.out, Contains("n1 *"));
  CHECK_THAT(table.out, Contains("suspect"));
  CHECK_THAT(table.out, Contains("127.0.0.1:7102"));
  CHECK_THAT(table.out, Contains("1.2s"));
  CHECK_THAT(table.out, Contains("4.50"));
  CHECK_THAT(table.out, Contains("gpu=true"));
  auto header = table.out.substr(0, table.out.find('\n'));
  auto row = table.out.substr(table.out.find("n2 "));
  CHECK(row.find("suspect") == header.find("STATE"));
  auto js = ftctl({"nodes", "--format", "json", "--node", node.address()});
  INFO(js.output());
  REQUIRE(js.rc == 0);
  CHECK(json::parse(js.out) == fake_node::nodes_doc());
  auto reqs = node.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].method == "GET");
  CHECK(reqs[0].path == "/api/nodes");
}

TEST_CASE("ftctl takes the node from FT_NODE unless --node is given",
          "[ftctl_cluster]") {
  fake_node node;
  auto from_env = ftctl({"entity", "ls", "--format", "json"}, node.address());
  INFO(from_env.output());
  REQUIRE(from_env.rc == 0);
  CHECK(json::parse(from_env.out)["entities"].size() == 2);
  // --node wins over FT_NODE.
  auto dead = "127.0.0.1:" + std::to_string(ft_test::free_port());
  auto override = ftctl({"entity", "ls", "--node", node.address()}, dead);
  INFO(override.output());
  CHECK(override.rc == 0);
  CHECK_THAT(override.out, Contains("kv-7"));
  CHECK(node.requests().size() == 2);
}

TEST_CASE("ftctl entity ls and where print records", "[ftctl_cluster]") {
  fake_node node;
  auto ls = ftctl({"entity", "ls", "--node", node.address()});
  INFO(ls.output());
  REQUIRE(ls.rc == 0);
  CHECK_THAT(ls.out, Contains("KEY"));
  CHECK_THAT(ls.out, Contains("EPOCH"));
  CHECK_THAT(ls.out, Contains("c1"));
  CHECK_THAT(ls.out, Contains("kv-7"));
  CHECK_THAT(ls.out, Contains("active"));
  auto where = ftctl({"entity", "where", "c1", "--node", node.address(),
                      "--format", "json"});
  INFO(where.output());
  REQUIRE(where.rc == 0);
  CHECK(json::parse(where.out)
        == fake_node::record_of("c1", "counter", "n2", 3));
  // A key with a slash travels percent-encoded as one path segment.
  auto slash = ftctl({"entity", "where", "acct/alice", "--node",
                      node.address()});
  INFO(slash.output());
  REQUIRE(slash.rc == 0);
  CHECK_THAT(slash.out, Contains("acct/alice"));
  auto reqs = node.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[2].path == "/api/entities/acct/alice");
}

TEST_CASE("ftctl entity spawn sends type, key, placement and requirements",
          "[ftctl_cluster]") {
  fake_node node;
  auto res = ftctl({"entity", "spawn", "counter", "c1", "--on", "n3",
                    "--require", "gpu=true", "--require", "zone=eu-1",
                    "--node", node.address()});
  INFO(res.output());
  REQUIRE(res.rc == 0);
  CHECK_THAT(res.out, Contains("c1"));
  CHECK_THAT(res.out, Contains("n3"));
  auto reqs = node.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].path == "/api/entities");
  CHECK(reqs[0].body
        == json({{"type", "counter"},
                 {"key", "c1"},
                 {"on", "n3"},
                 {"requires", {{"gpu", "true"}, {"zone", "eu-1"}}}}));
  // Without placement options the body has only type and key.
  auto plain = ftctl({"entity", "spawn", "kv", "k2", "--format", "json",
                      "--node", node.address()});
  INFO(plain.output());
  REQUIRE(plain.rc == 0);
  CHECK(json::parse(plain.out)["node"] == "n2");
  CHECK(node.requests().at(1).body == json({{"type", "kv"}, {"key", "k2"}}));
  auto bad = ftctl({"entity", "spawn", "kv", "k3", "--require", "gpu",
                    "--node", node.address()});
  CHECK(bad.rc == 1);
  CHECK_THAT(bad.err, Contains("KEY=VALUE"));
  CHECK(node.requests().size() == 2);
}

TEST_CASE("ftctl entity ask prints only the result in table format",
          "[ftctl_cluster]") {
  fake_node node;
  auto add = ftctl({"entity", "ask", "c1", "add", "5", "-3", "--node",
                    node.address()});
  INFO(add.output());
  REQUIRE(add.rc == 0);
  CHECK(add.out == "42\n");
  auto reqs = node.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].path == "/api/entities/c1/ask");
  CHECK(reqs[0].body
        == json({{"message", "add"}, {"args", {"5", "-3"}}}));
  // Strings print raw, structured values as JSON.
  auto name = ftctl({"entity", "ask", "c1", "name", "--node", node.address()});
  REQUIRE(name.rc == 0);
  CHECK(name.out == "counter c1\n");
  CHECK(node.requests().at(1).body == json({{"message", "name"},
                                            {"args", json::array()}}));
  auto dump = ftctl({"entity", "ask", "c1", "dump", "--node", node.address()});
  REQUIRE(dump.rc == 0);
  CHECK(json::parse(dump.out) == json({{"value", 42}, {"history", {1, 2}}}));
  auto js = ftctl({"entity", "ask", "c1", "add", "1", "--format", "json",
                   "--node", node.address()});
  REQUIRE(js.rc == 0);
  CHECK(json::parse(js.out)
        == json({{"key", "c1"}, {"node", "n2"}, {"result", 42}}));
}

TEST_CASE("ftctl entity migrate posts the target and prints the new home",
          "[ftctl_cluster]") {
  fake_node node;
  auto res = ftctl({"entity", "migrate", "c1", "--to", "n3", "--node",
                    node.address(), "--format", "json"});
  INFO(res.output());
  REQUIRE(res.rc == 0);
  CHECK(json::parse(res.out) == fake_node::record_of("c1", "counter", "n3", 4));
  auto reqs = node.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].path == "/api/entities/c1/migrate");
  CHECK(reqs[0].body == json({{"to", "n3"}}));
  auto missing_to = ftctl({"entity", "migrate", "c1", "--node",
                           node.address()});
  CHECK(missing_to.rc == 1);
  CHECK_THAT(missing_to.err, Contains("--to"));
  CHECK(node.requests().size() == 1);
}

TEST_CASE("ftctl maps node errors to messages and exit codes",
          "[ftctl_cluster]") {
  fake_node node;
  auto n = node.address();
  auto unknown = ftctl({"entity", "where", "c9", "--node", n});
  INFO(unknown.output());
  CHECK(unknown.rc == 3);
  CHECK_THAT(unknown.err, Contains("error: unknown_entity: no entity c9"));
  CHECK_THAT(unknown.err, !Contains("unknown_entity: unknown_entity"));
  CHECK(unknown.out.empty());
  auto ask_unknown = ftctl({"entity", "ask", "c9", "get", "--node", n});
  CHECK(ask_unknown.rc == 3);
  auto no_type = ftctl({"entity", "spawn", "nope", "x", "--node", n});
  CHECK(no_type.rc == 3);
  CHECK_THAT(no_type.err, Contains("error: unknown_entity_type: no entity "
                                   "type 'nope'"));
  auto exists = ftctl({"entity", "spawn", "counter", "dup", "--node", n});
  CHECK(exists.rc == 1);
  CHECK_THAT(exists.err, Contains("error: entity_exists: entity dup exists"));
  auto busy = ftctl({"entity", "ask", "c1", "get", "--node", n});
  CHECK(busy.rc == 1);
  CHECK_THAT(busy.err, Contains("error: entity_unavailable: c1 is migrating"));
  auto placement = ftctl({"entity", "migrate", "c1", "--to", "nowhere",
                          "--node", n});
  CHECK(placement.rc == 1);
  CHECK_THAT(placement.err, Contains("error: placement_failed"));
  // An error body that is not the contract's JSON: status and body.
  auto odd = ftctl({"entity", "where", "teapot", "--node", n});
  CHECK(odd.rc == 1);
  CHECK_THAT(odd.err, Contains("error: http_500: internal failure"));
}

TEST_CASE("ftctl reports an unreachable node", "[ftctl_cluster]") {
  auto port = ft_test::free_port();
  auto address = "127.0.0.1:" + std::to_string(port);
  auto res = ftctl({"nodes", "--node", address});
  INFO(res.output());
  CHECK(res.rc == 1);
  CHECK_THAT(res.err, Contains("ftctl: cannot reach node " + address + ": "));
  CHECK(res.out.empty());
  // Through FT_NODE too, for an entity command.
  auto env = ftctl({"entity", "ask", "c1", "get"}, address);
  CHECK(env.rc == 1);
  CHECK_THAT(env.err, Contains("cannot reach node " + address));
  auto bad = ftctl({"nodes", "--node", "no-port-here"});
  CHECK(bad.rc == 1);
  CHECK_THAT(bad.err, Contains("no-port-here"));
  auto usage = ftctl({"entity", "frobnicate"});
  CHECK(usage.rc == 1);
}
