#include <catch2/catch.hpp>

#include <chrono>

#include <nlohmann/json.hpp>

#include "ft/alert.hpp"
#include "ft/error.hpp"
#include "ft/node_config.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using ft::alert_config;
using ft::alert_limiter;

namespace {

std::string message(const caf::error& err) {
  return ft::render(err);
}

} // namespace

TEST_CASE("alert configs are validated field by field", "[alert]") {
  alert_config x;
  CHECK_FALSE(x.enabled());
  CHECK_FALSE(ft::validate(x));
  x.min_severity = 5;
  CHECK_THAT(message(ft::validate(x)), Contains("alerts.min_severity = 5"));
  x.min_severity = 3;
  x.max_alerts = 0;
  CHECK_THAT(message(ft::validate(x)), Contains("alerts.max_alerts = 0"));
  x.max_alerts = 5;
  x.url = "ftp://example/x";
  CHECK_THAT(message(ft::validate(x)), Contains("alerts.url = 'ftp://example/x'"));
  x.url = "http://127.0.0.1:9000/hook";
  CHECK_FALSE(ft::validate(x));
  CHECK(x.enabled());
}

TEST_CASE("alert URLs split into host, port and path", "[alert]") {
  auto t = ft::parse_http_url("http://127.0.0.1:9000/a/b?c=1");
  REQUIRE(t);
  CHECK(t->host == "127.0.0.1");
  CHECK(t->port == 9000);
  CHECK(t->path == "/a/b?c=1");
  t = ft::parse_http_url("http://alerts.local");
  REQUIRE(t);
  CHECK(t->port == 80);
  CHECK(t->path == "/");
  for (auto bad : {"https://x/", "http://", "http://:80/", "http://x:0/",
                   "http://x:70000/", "http://x:8a/", "x:80"})
    CHECK_FALSE(ft::parse_http_url(bad));
}

TEST_CASE("the alert limiter sends max_alerts per interval and reports the "
          "suppressed count with the next one",
          "[alert]") {
  alert_limiter lim{2, 10s};
  auto t0 = alert_limiter::time_point{} + 1h;
  CHECK(lim.admit(t0) == size_t{0});
  CHECK(lim.admit(t0 + 1s) == size_t{0});
  CHECK_FALSE(lim.admit(t0 + 2s));
  CHECK_FALSE(lim.admit(t0 + 9s));
  CHECK(lim.suppressed() == 2);
  // The first send leaves the window at t0 + 10s: one slot frees.
  CHECK(lim.admit(t0 + 10s) == size_t{2});
  CHECK(lim.suppressed() == 0);
  CHECK_FALSE(lim.admit(t0 + 10s));
  CHECK(lim.admit(t0 + 11s) == size_t{1});
}

TEST_CASE("alert JSON carries the event and the suppressed count",
          "[alert]") {
  ft::event_record x;
  x.id = 7;
  x.timestamp_ms = 1234;
  x.source = ft::event_source::breaker;
  x.kind = "open";
  x.severity = 3;
  x.subject = "worker/w1";
  x.message = "5 consecutive \"failures\"";
  auto doc = nlohmann::json::parse(ft::alert_json(x, "n1", 4));
  CHECK(doc["node"] == "n1");
  CHECK(doc["id"] == 7);
  CHECK(doc["ts_ms"] == 1234);
  CHECK(doc["source"] == "breaker");
  CHECK(doc["kind"] == "open");
  CHECK(doc["severity"] == 3);
  CHECK(doc["subject"] == "worker/w1");
  CHECK(doc["message"] == "5 consecutive \"failures\"");
  CHECK(doc["suppressed"] == 4);
}

TEST_CASE("a node config reads the alerts section and names bad fields",
          "[alert]") {
  auto cfg = ft::node_config_from_yaml("name: n1\n"
                                       "data_dir: /tmp/x\n"
                                       "alerts:\n"
                                       "  min_severity: 2\n"
                                       "  command: \"logger -t ft\"\n"
                                       "  url: http://127.0.0.1:9/hook\n"
                                       "  max_alerts: 3\n"
                                       "  interval: 30\n",
                                       "node.yaml");
  REQUIRE(cfg);
  CHECK(cfg->alerts.min_severity == 2);
  CHECK(cfg->alerts.command == "logger -t ft");
  CHECK(cfg->alerts.url == "http://127.0.0.1:9/hook");
  CHECK(cfg->alerts.max_alerts == 3);
  CHECK(cfg->alerts.interval == 30s);
  auto bad = ft::node_config_from_yaml("name: n1\n"
                                       "alerts:\n"
                                       "  min_severity: 9\n",
                                       "node.yaml");
  REQUIRE_FALSE(bad);
  CHECK_THAT(message(bad.error()), Contains("node.yaml:3"));
  CHECK_THAT(message(bad.error()), Contains("alerts.min_severity = 9"));
  auto unknown = ft::node_config_from_yaml("name: n1\n"
                                           "alerts:\n"
                                           "  severity: 3\n",
                                           "node.yaml");
  REQUIRE_FALSE(unknown);
  CHECK_THAT(message(unknown.error()), Contains("severity"));
  const char* argv[] = {"ft-node", "--name", "n1", "--alert-url",
                        "http://127.0.0.1:1/x", "--alert-min-severity", "4"};
  auto cl = ft::parse_node_command_line(7, argv);
  REQUIRE(cl);
  CHECK(cl->config.alerts.url == "http://127.0.0.1:1/x");
  CHECK(cl->config.alerts.min_severity == 4);
  const char* argv2[] = {"ft-node", "--name", "n1", "--alert-min-severity",
                         "0"};
  auto cl2 = ft::parse_node_command_line(5, argv2);
  REQUIRE_FALSE(cl2);
  CHECK_THAT(message(cl2.error()), Contains("--alert-min-severity"));
}
