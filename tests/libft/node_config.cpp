#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "ft/error.hpp"
#include "ft/node_config.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace fs = std::filesystem;

namespace {

using ft::node_config;

node_config parse(const std::string& text) {
  auto res = ft::node_config_from_yaml(text, "node.yaml");
  if (!res)
    FAIL(ft::render(res.error()));
  return *res;
}

/// Requires an invalid_config error and returns its rendering.
std::string parse_error(const std::string& text) {
  auto res = ft::node_config_from_yaml(text, "node.yaml");
  REQUIRE_FALSE(res);
  CHECK(ft::is(res.error(), ft::errc::invalid_config));
  return ft::render(res.error());
}

/// A valid config to break one field of.
node_config valid() {
  node_config x;
  x.name = "n1";
  return x;
}

/// Requires `validate` to fail with invalid_config and returns the text.
std::string invalid(const std::function<void(node_config&)>& mutate) {
  auto x = valid();
  mutate(x);
  auto err = ft::validate(x);
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_config));
  return ft::render(err);
}

/// A directory of its own, removed with everything in it.
struct temp_dir {
  fs::path path;

  temp_dir() {
    auto tmpl = (fs::temp_directory_path() / "ft-node-config-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }

  std::string write(const std::string& name, const std::string& text) const {
    auto file = (path / name).string();
    std::ofstream out{file};
    out << text;
    return file;
  }
};

caf::expected<ft::node_command_line>
command_line(const std::vector<std::string>& args) {
  std::vector<const char*> argv{"ft-node"};
  for (auto& arg : args)
    argv.push_back(arg.c_str());
  return ft::parse_node_command_line(static_cast<int>(argv.size()),
                                     argv.data());
}

ft::node_command_line cli(const std::vector<std::string>& args) {
  auto res = command_line(args);
  if (!res)
    FAIL(ft::render(res.error()));
  return std::move(*res);
}

std::string cli_error(const std::vector<std::string>& args) {
  auto res = command_line(args);
  REQUIRE_FALSE(res);
  CHECK(ft::is(res.error(), ft::errc::invalid_config));
  return ft::render(res.error());
}

} // namespace

// -- defaults -----------------------------------------------------------------

TEST_CASE("node config defaults", "[node_config]") {
  node_config x;
  CHECK(x.name.empty());
  CHECK(x.host == "127.0.0.1");
  CHECK(x.port == 0);
  CHECK(x.seeds.empty());
  CHECK_FALSE(x.rebalance_on_join);
  CHECK(x.http_host == "127.0.0.1");
  CHECK(x.http_port == 0);
  CHECK(x.data_dir.empty());
  CHECK(x.labels.empty());
  CHECK(x.cluster_secret_file.empty());
  CHECK(x.lease == 300ms);
  CHECK(x.join_timeout == 10s);
  CHECK(x.placement == ft::placement_strategy::least_loaded);
  CHECK(x.replication.factor == 2);
  CHECK(x.replication.min_acks == 1);
  CHECK(x.replication.timeout == 2s);
  CHECK(x.failure_detector.kind == ft::detector_kind::phi_accrual);
  CHECK(x.failure_detector.heartbeat_interval == 100ms);
  CHECK(x.tls_cert_file.empty());
  SECTION("entities checkpoint every message and reply after the commit") {
    auto& ft = x.fault_tolerance;
    CHECK(ft.strategy == ft::ft_strategy::checkpoint);
    CHECK(ft.checkpoint_every == 1u);
    CHECK(ft.reply_after_checkpoint);
    CHECK(ft.checkpoint_on_stop);
    // The rest as fault_tolerance_config.
    ft::fault_tolerance_config plain;
    CHECK(ft.checkpoint_interval == plain.checkpoint_interval);
    CHECK(ft.max_recovery_attempts == plain.max_recovery_attempts);
    CHECK(ft.dedupe_window == plain.dedupe_window);
    CHECK(ft.checkpoint_dir == plain.checkpoint_dir);
    CHECK_FALSE(ft::validate(ft));
    CHECK(node_config::default_entity_fault_tolerance().checkpoint_every
          == 1u);
    // A snapshot per message: entities keep the last 8 per key.
    CHECK(ft.keep_snapshots == 8u);
    CHECK(plain.keep_snapshots == 0u);
  }
  SECTION("only the name is missing") {
    auto err = ft::validate(x);
    REQUIRE(err);
    CHECK_THAT(ft::render(err), StartsWith("invalid_config: name = ''"));
    x.name = "n1";
    CHECK_FALSE(ft::validate(x));
  }
}

// -- host:port ----------------------------------------------------------------

TEST_CASE("parse_host_port reads host:port and names what is wrong",
          "[node_config]") {
  auto ok = [](const std::string& text, bool allow_zero = false) {
    auto res = ft::parse_host_port(text, "seed", allow_zero);
    if (!res)
      FAIL(ft::render(res.error()));
    return *res;
  };
  auto bad = [](const std::string& text, bool allow_zero = false) {
    auto res = ft::parse_host_port(text, "seed", allow_zero);
    REQUIRE_FALSE(res);
    CHECK(ft::is(res.error(), ft::errc::invalid_config));
    auto str = ft::render(res.error());
    CHECK_THAT(str, Contains("seed = '" + text + "' is not host:port"));
    return str;
  };
  CHECK(ok("10.0.0.1:4000") == ft::host_port{"10.0.0.1", 4000});
  CHECK(ok("node-2.example.org:65535")
        == ft::host_port{"node-2.example.org", 65535});
  CHECK(ok("[::1]:4000") == ft::host_port{"::1", 4000});
  CHECK(ok("localhost:0", true) == ft::host_port{"localhost", 0});
  CHECK(ft::to_string(ft::host_port{"h", 1}) == "h:1");
  CHECK(ft::to_string(ok("[fe80::1]:7")) == "[fe80::1]:7");
  CHECK(ft::to_string(ok("a.b:4001")) == "a.b:4001");
  CHECK_THAT(bad("localhost:0"), Contains("must be in 1..65535"));
  CHECK_THAT(bad("localhost:65536", true), Contains("must be in 0..65535"));
  CHECK_THAT(bad("localhost"), Contains("no ':'"));
  CHECK_THAT(bad(":4000"), Contains("no host"));
  CHECK_THAT(bad("h:"), Contains("not a number"));
  CHECK_THAT(bad("h:4x"), Contains("not a number"));
  CHECK_THAT(bad("h:-1"), Contains("not a number"));
  CHECK_THAT(bad("h:123456"), Contains("not a number"));
  CHECK_THAT(bad("::1:4000"), Contains("brackets"));
  CHECK_THAT(bad("[::1]4000"), Contains("no ':port'"));
  CHECK_THAT(bad("[::1:4000"), Contains("no ']'"));
  CHECK_THAT(bad("my host:4000"), Contains("whitespace"));
  CHECK_THAT(bad(""), Contains("no ':'"));
}

// -- validate -----------------------------------------------------------------

TEST_CASE("validate names the first bad node field and its value",
          "[node_config]") {
  CHECK_FALSE(ft::validate(valid()));
  SECTION("name") {
    CHECK_THAT(invalid([](auto& x) { x.name = "a b"; }),
               Contains("name = 'a b' (required: 1..64 letters"));
    CHECK_THAT(invalid([](auto& x) { x.name = "n/1"; }),
               Contains("name = 'n/1'"));
    CHECK_THAT(invalid([](auto& x) { x.name = std::string(65, 'a'); }),
               Contains("name = 'aaaa"));
    auto x = valid();
    x.name = std::string(64, 'a');
    CHECK_FALSE(ft::validate(x));
    x.name = "Node-1_eu.west";
    CHECK_FALSE(ft::validate(x));
  }
  SECTION("addresses and ports") {
    CHECK_THAT(invalid([](auto& x) { x.host = ""; }), Contains("host = ''"));
    CHECK_THAT(invalid([](auto& x) { x.http_host = ""; }),
               Contains("http_host = ''"));
    CHECK_THAT(invalid([](auto& x) { x.port = x.http_port = 4000; }),
               Contains("http_port = 4000 (must differ from port 4000)"));
    auto x = valid();
    x.port = 4000;
    x.http_port = 8080;
    CHECK_FALSE(ft::validate(x));
  }
  SECTION("seeds") {
    CHECK_THAT(invalid([](auto& x) { x.seeds = {{"", 4000}}; }),
               Contains("seeds[0] = ':4000' is not host:port (no host)"));
    CHECK_THAT(invalid([](auto& x) {
                 x.seeds = {{"a", 4000}, {"b", 0}};
               }),
               Contains("seeds[1] = 'b:0'"));
    auto x = valid();
    x.seeds = {{"a", 4000}, {"::1", 4001}};
    CHECK_FALSE(ft::validate(x));
  }
  SECTION("labels") {
    CHECK_THAT(invalid([](auto& x) { x.labels["a=b"] = "c"; }),
               Contains("labels['a=b'] = 'c' (keys must be non-empty"));
    CHECK_THAT(invalid([](auto& x) { x.labels[""] = "c"; }),
               Contains("labels['']"));
    auto x = valid();
    x.labels["gpu"] = "true";
    x.labels["zone"] = "";
    CHECK_FALSE(ft::validate(x));
  }
  SECTION("failure detector and lease") {
    CHECK_THAT(invalid([](auto& x) { x.failure_detector.threshold = 0; }),
               Contains("failure_detector.threshold = 0"));
    CHECK_THAT(invalid([](auto& x) {
                 x.failure_detector.heartbeat_interval = 0ms;
               }),
               Contains("failure_detector.heartbeat_interval = 0s"));
    CHECK_THAT(invalid([](auto& x) { x.lease = 0ms; }),
               Contains("lease = 0s (must be > 0)"));
    CHECK_THAT(invalid([](auto& x) { x.lease = 600ms; }),
               Contains("lease = 0.6s (must be below "
                        "failure_detector.heartbeat_interval + "
                        "failure_detector.acceptable_heartbeat_pause = 0.5s)"));
    // Exactly the silence is too long: the node must stop first.
    CHECK_THAT(invalid([](auto& x) { x.lease = 500ms; }),
               Contains("lease = 0.5s"));
    auto x = valid();
    x.lease = 499ms;
    CHECK_FALSE(ft::validate(x));
    x.failure_detector.acceptable_heartbeat_pause = 0ms;
    CHECK_THAT(ft::render(ft::validate(x)),
               Contains("lease = 0.499s (must be below"));
    CHECK_THAT(invalid([](auto& x) { x.join_timeout = 0s; }),
               Contains("join_timeout = 0s (must be > 0)"));
    CHECK_THAT(invalid([](auto& x) {
                 x.placement = static_cast<ft::placement_strategy>(7);
               }),
               Contains("placement = 7"));
  }
  SECTION("replication") {
    CHECK_THAT(invalid([](auto& x) { x.replication.factor = 17; }),
               Contains("replication.factor = 17 (must be in 0..16"));
    CHECK_THAT(invalid([](auto& x) { x.replication.factor = -1; }),
               Contains("replication.factor = -1"));
    CHECK_THAT(invalid([](auto& x) { x.replication.min_acks = 3; }),
               Contains("replication.min_acks = 3 (must be in "
                        "0..replication.factor = 2)"));
    CHECK_THAT(invalid([](auto& x) { x.replication.min_acks = -1; }),
               Contains("replication.min_acks = -1"));
    CHECK_THAT(invalid([](auto& x) { x.replication.timeout = 0s; }),
               Contains("replication.timeout = 0s"));
    auto x = valid();
    x.replication.factor = 16;
    x.replication.min_acks = 16;
    CHECK_FALSE(ft::validate(x));
    x.replication.factor = 0;
    x.replication.min_acks = 0;
    CHECK_FALSE(ft::validate(x));
  }
  SECTION("fault_tolerance") {
    CHECK_THAT(invalid([](auto& x) {
                 x.fault_tolerance.max_recovery_attempts = 0;
               }),
               Contains("fault_tolerance.max_recovery_attempts = 0"));
    CHECK_THAT(invalid([](auto& x) { x.fault_tolerance.checkpoint_every = 5; }),
               Contains("fault_tolerance.reply_after_checkpoint = true"));
  }
  SECTION("TLS is all or none") {
    CHECK_THAT(invalid([](auto& x) { x.tls_cert_file = "c.pem"; }),
               Contains("tls.key_file = '' (TLS needs cert_file, key_file "
                        "and ca_file, or none)"));
    CHECK_THAT(invalid([](auto& x) {
                 x.tls_cert_file = "c.pem";
                 x.tls_key_file = "k.pem";
               }),
               Contains("tls.ca_file = ''"));
    CHECK_THAT(invalid([](auto& x) { x.tls_ca_file = "ca.pem"; }),
               Contains("tls.cert_file = ''"));
    auto x = valid();
    x.tls_cert_file = "c.pem";
    x.tls_key_file = "k.pem";
    x.tls_ca_file = "ca.pem";
    CHECK_FALSE(ft::validate(x));
  }
}

// -- YAML ---------------------------------------------------------------------

namespace {

const char* full_document = R"(name: n2
host: 10.0.0.2
port: 4002
seeds: ["10.0.0.1:4001", "[::1]:4003"]
http_host: 0.0.0.0
http_port: 8082
data_dir: /var/lib/ft/n2
labels:
  gpu: "true"
  zone: eu-1
cluster_secret_file: /etc/ft/secret
lease: 0.25
join_timeout: 3
placement: label_aware
rebalance_on_join: true
tls:
  cert_file: /etc/ft/n2.pem
  key_file: /etc/ft/n2.key
  ca_file: /etc/ft/ca.pem
failure_detector:
  kind: timeout
  heartbeat_interval: 0.05
  threshold: 10
  max_sample_size: 50
  min_std_deviation: 0.02
  acceptable_heartbeat_pause: 0.3
replication:
  factor: 3
  min_acks: 2
  timeout: 1.5
fault_tolerance:
  max_recovery_attempts: 5
  dedupe_window: 64
)";

void check_full(const node_config& x) {
  CHECK(x.name == "n2");
  CHECK(x.rebalance_on_join);
  CHECK(x.host == "10.0.0.2");
  CHECK(x.port == 4002);
  REQUIRE(x.seeds.size() == 2);
  CHECK(x.seeds[0] == ft::host_port{"10.0.0.1", 4001});
  CHECK(x.seeds[1] == ft::host_port{"::1", 4003});
  CHECK(x.http_host == "0.0.0.0");
  CHECK(x.http_port == 8082);
  CHECK(x.data_dir == "/var/lib/ft/n2");
  CHECK(x.labels == std::map<std::string, std::string>{{"gpu", "true"},
                                                       {"zone", "eu-1"}});
  CHECK(x.cluster_secret_file == "/etc/ft/secret");
  CHECK(x.lease == 250ms);
  CHECK(x.join_timeout == 3s);
  CHECK(x.placement == ft::placement_strategy::label_aware);
  CHECK(x.tls_cert_file == "/etc/ft/n2.pem");
  CHECK(x.tls_key_file == "/etc/ft/n2.key");
  CHECK(x.tls_ca_file == "/etc/ft/ca.pem");
  auto& fd = x.failure_detector;
  CHECK(fd.kind == ft::detector_kind::timeout);
  CHECK(fd.heartbeat_interval == 50ms);
  CHECK(fd.threshold == 10.0);
  CHECK(fd.max_sample_size == 50u);
  CHECK(fd.min_std_deviation == 20ms);
  CHECK(fd.acceptable_heartbeat_pause == 300ms);
  CHECK(x.replication.factor == 3);
  CHECK(x.replication.min_acks == 2);
  CHECK(x.replication.timeout == 1500ms);
  CHECK(x.fault_tolerance.max_recovery_attempts == 5);
  CHECK(x.fault_tolerance.dedupe_window == 64u);
  // Fields the section leaves out keep the entity defaults.
  CHECK(x.fault_tolerance.checkpoint_every == 1u);
  CHECK(x.fault_tolerance.reply_after_checkpoint);
}

/// `text` indented by two spaces.
std::string indent(const std::string& text) {
  std::string result;
  size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    result += "  " + text.substr(pos, eol - pos + 1);
    pos = eol + 1;
  }
  return result;
}

} // namespace

TEST_CASE("a full node document sets every field", "[node_config]") {
  SECTION("at the top level") {
    check_full(parse(full_document));
  }
  SECTION("under node:") {
    check_full(parse("node:\n" + indent(full_document)));
  }
  SECTION("under node:, with the sections beside it") {
    std::string text = full_document;
    auto sections = text.find("failure_detector:");
    check_full(parse("node:\n" + indent(text.substr(0, sections))
                     + text.substr(sections)));
  }
  SECTION("flow style") {
    auto x = parse("{name: n3, port: 4003, labels: {gpu: 'true'}, "
                   "seeds: ['a:1'], replication: {factor: 1, min_acks: 1}, "
                   "failure_detector: {heartbeat_interval: 1, "
                   "acceptable_heartbeat_pause: 2}, lease: 2.5}");
    CHECK(x.name == "n3");
    CHECK(x.port == 4003);
    CHECK(x.labels.at("gpu") == "true");
    CHECK(x.seeds == std::vector<ft::host_port>{{"a", 1}});
    CHECK(x.replication.factor == 1);
    CHECK(x.failure_detector.heartbeat_interval == 1s);
    CHECK(x.lease == 2500ms);
  }
}

TEST_CASE("sections a node document leaves out keep their defaults",
          "[node_config]") {
  auto x = parse("name: n1\n");
  CHECK(x.name == "n1");
  CHECK(x.host == "127.0.0.1");
  CHECK(x.lease == 300ms);
  CHECK(x.replication.factor == 2);
  CHECK(x.failure_detector.threshold == 8.0);
  CHECK(x.fault_tolerance.reply_after_checkpoint);
  auto y = parse("name: n1\nfailure_detector:\nreplication:\n"
                 "fault_tolerance:\ntls:\nlabels:\nseeds:\n");
  CHECK(y.failure_detector.heartbeat_interval == 100ms);
  CHECK(y.replication.min_acks == 1);
  CHECK(y.fault_tolerance.checkpoint_every == 1u);
  CHECK(y.seeds.empty());
  CHECK(y.labels.empty());
  // Turning the per-message checkpoint off needs both fields.
  auto z = parse("name: n1\nfault_tolerance:\n  checkpoint_every: 0\n"
                 "  reply_after_checkpoint: false\n");
  CHECK(z.fault_tolerance.checkpoint_every == 0u);
  CHECK_FALSE(z.fault_tolerance.reply_after_checkpoint);
  CHECK(parse("node:\n  name: n1\n").name == "n1");
  CHECK(parse("node:\n  name: n1\nreplication: {factor: 4}\n")
          .replication.factor
        == 4);
}

TEST_CASE("every bad node field is named with its line", "[node_config]") {
  SECTION("node fields") {
    CHECK_THAT(parse_error(""),
               StartsWith("invalid_config: node.yaml: name = ''"));
    CHECK_THAT(parse_error("port: 4000\n"),
               StartsWith("invalid_config: node.yaml: name = ''"));
    CHECK_THAT(parse_error("host: h\nname: 'a b'\n"),
               StartsWith("invalid_config: node.yaml:2: name = 'a b'"));
    CHECK_THAT(parse_error("name: [a]\n"),
               Contains("node.yaml:1: name must be a scalar"));
    CHECK_THAT(parse_error("name: n1\nnmae: n2\n"),
               Contains("node.yaml:2: nmae is not a known field (known: "));
    CHECK_THAT(parse_error("name: n1\nport: 70000\n"),
               Contains("node.yaml:2: port = 70000 is out of range"));
    CHECK_THAT(parse_error("name: n1\n\nhttp_port: -1\n"),
               Contains("node.yaml:3: http_port = -1 is out of range"));
    CHECK_THAT(parse_error("name: n1\nport: high\n"),
               Contains("node.yaml:2: port = 'high' is not a number"));
    CHECK_THAT(parse_error("name: n1\nport: 4000\nhttp_port: 4000\n"),
               Contains("node.yaml:3: http_port = 4000 (must differ"));
    CHECK_THAT(parse_error("name: n1\nhost: ''\n"),
               Contains("node.yaml:2: host = ''"));
    CHECK_THAT(parse_error("name: n1\nplacement: random\n"),
               Contains("node.yaml:2: placement = 'random' is not "
                        "least_loaded, label_aware or pinned"));
    CHECK_THAT(parse_error("name: n1\njoin_timeout: 0\n"),
               Contains("node.yaml:2: join_timeout = 0s (must be > 0)"));
    CHECK_THAT(parse_error("name: n1\njoin_timeout: -1\n"),
               Contains("node.yaml:2: join_timeout = -1 is out of range"));
    CHECK_THAT(parse_error("name: n1\ndata_dir: {a: b}\n"),
               Contains("node.yaml:2: data_dir must be a scalar"));
  }
  SECTION("seeds and labels") {
    CHECK_THAT(parse_error("name: n1\nseeds:\n  - a:1\n  - b\n"),
               Contains("node.yaml:4: seeds[1] = 'b' is not host:port"));
    CHECK_THAT(parse_error("name: n1\nseeds:\n  - a:1\n  - [b, 2]\n"),
               Contains("node.yaml:4: seeds[1] must be a host:port string"));
    CHECK_THAT(parse_error("name: n1\nseeds: a:1\n"),
               Contains("node.yaml:2: seeds must be a list of host:port"));
    CHECK_THAT(parse_error("name: n1\nlabels: [gpu]\n"),
               Contains("node.yaml:2: labels must be a mapping"));
    CHECK_THAT(parse_error("name: n1\nlabels:\n  gpu: true\n  zone: [a]\n"),
               Contains("node.yaml:4: labels['zone'] must be a scalar"));
    CHECK_THAT(parse_error("name: n1\nlabels:\n  gpu:\n"),
               Contains("node.yaml:3: labels['gpu'] must be a scalar"));
    CHECK_THAT(parse_error("name: n1\nlabels:\n  a=b: c\n"),
               Contains("node.yaml:3: labels['a=b'] = 'c' (keys must"));
  }
  SECTION("lease against the failure detector") {
    CHECK_THAT(parse_error("name: n1\nlease: 0.6\n"),
               Contains("node.yaml:2: lease = 0.6s (must be below "
                        "failure_detector.heartbeat_interval + "
                        "failure_detector.acceptable_heartbeat_pause = 0.5s)"));
    CHECK_THAT(parse_error("name: n1\nlease: 0\n"),
               Contains("node.yaml:2: lease = 0s (must be > 0)"));
    // The lease left at its default loses against the section's timing:
    // the error points at the field that made it too long.
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n"
                           "  threshold: 9\n"
                           "  acceptable_heartbeat_pause: 0.1\n"),
               Contains("node.yaml:4: lease = 0.3s (must be below"));
  }
  SECTION("failure_detector") {
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n  kind: gossip\n"),
               Contains("node.yaml:3: failure_detector.kind = 'gossip' is "
                        "not phi_accrual or timeout"));
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n  threshold: 0\n"),
               Contains("node.yaml:3: failure_detector.threshold = 0"));
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n  threshold: x\n"),
               Contains("node.yaml:3: failure_detector.threshold = 'x' is "
                        "not a number"));
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n"
                           "  max_sample_size: 1\n"),
               Contains("node.yaml:3: failure_detector.max_sample_size = 1"));
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n"
                           "  max_sample_size: -5\n"),
               Contains("node.yaml:3: failure_detector.max_sample_size = -5"));
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n"
                           "  min_std_deviation: 0\n"),
               Contains("node.yaml:3: failure_detector.min_std_deviation"));
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n"
                           "  heartbeat_interval: soon\n"),
               Contains("node.yaml:3: failure_detector.heartbeat_interval = "
                        "'soon'"));
    CHECK_THAT(parse_error("name: n1\nfailure_detector:\n  interval: 1\n"),
               Contains("node.yaml:3: failure_detector.interval is not a "
                        "known field"));
    CHECK_THAT(parse_error("name: n1\nfailure_detector: 3\n"),
               Contains("node.yaml:2: failure_detector must be a mapping"));
  }
  SECTION("replication") {
    CHECK_THAT(parse_error("name: n1\nreplication:\n  factor: 17\n"),
               Contains("node.yaml:3: replication.factor = 17"));
    CHECK_THAT(parse_error("name: n1\nreplication:\n  factor: 1.5\n"),
               Contains("node.yaml:3: replication.factor = '1.5' is not an "
                        "integer"));
    CHECK_THAT(parse_error("name: n1\nreplication:\n  factor: 2\n"
                           "  min_acks: 3\n"),
               Contains("node.yaml:4: replication.min_acks = 3"));
    // min_acks left at 1 loses against factor 0: point at the factor.
    CHECK_THAT(parse_error("name: n1\nreplication:\n  timeout: 1\n"
                           "  factor: 0\n"),
               Contains("node.yaml:4: replication.min_acks = 1 (must be in "
                        "0..replication.factor = 0)"));
    CHECK_THAT(parse_error("name: n1\nreplication:\n  timeout: 0\n"),
               Contains("node.yaml:3: replication.timeout = 0s"));
    CHECK_THAT(parse_error("name: n1\nreplication:\n  acks: 1\n"),
               Contains("node.yaml:3: replication.acks is not a known field "
                        "(known: factor, min_acks, timeout)"));
  }
  SECTION("fault_tolerance") {
    CHECK_THAT(parse_error("name: n1\nfault_tolerance:\n"
                           "  max_recovery_attempts: 0\n"),
               Contains("node.yaml:3: fault_tolerance.max_recovery_attempts "
                        "= 0"));
    CHECK_THAT(parse_error("name: n1\nfault_tolerance:\n  strategy: retry\n"),
               Contains("node.yaml:3: fault_tolerance.strategy = 'retry'"));
    // reply_after_checkpoint is on by default for entities: raising
    // checkpoint_every alone breaks the rule, at checkpoint_every's line.
    CHECK_THAT(parse_error("name: n1\nfault_tolerance:\n"
                           "  checkpoint_every: 5\n"),
               Contains("node.yaml:3: fault_tolerance.reply_after_checkpoint "
                        "= true (needs checkpoint_every = 1, not 5"));
    CHECK_THAT(parse_error("name: n1\nfault_tolerance:\n  every: 5\n"),
               Contains("node.yaml:3: fault_tolerance.every is not a known "
                        "field"));
    CHECK_THAT(parse_error("name: n1\nfault_tolerance: [1]\n"),
               Contains("node.yaml:2: fault_tolerance must be a mapping"));
  }
  SECTION("tls") {
    // A missing field points at its section (whose mapping starts at 3).
    CHECK_THAT(parse_error("name: n1\ntls:\n  cert_file: c.pem\n"
                           "  key_file: k.pem\n"),
               Contains("node.yaml:3: tls.ca_file = '' (TLS needs"));
    CHECK_THAT(parse_error("name: n1\ntls:\n  cert: c.pem\n"),
               Contains("node.yaml:3: tls.cert is not a known field "
                        "(known: ca_file, cert_file, key_file)"));
    CHECK_THAT(parse_error("name: n1\ntls: on\n"),
               Contains("node.yaml:2: tls must be a mapping"));
  }
  SECTION("the document's shape") {
    CHECK_THAT(parse_error("name: n1\nport: [\n"),
               StartsWith("invalid_config: node.yaml:3:"));
    CHECK_THAT(parse_error("name: n1\n  port: 1\n"),
               StartsWith("invalid_config: node.yaml:2:"));
    CHECK_THAT(parse_error("- a\n- b\n"),
               Contains("node.yaml: expected a mapping of node settings"));
    CHECK_THAT(parse_error("node: n1\n"),
               Contains("node.yaml:1: node must be a mapping"));
    CHECK_THAT(parse_error("node:\n  name: n1\nname: n2\n"),
               Contains("node.yaml:3: name is not a known field (known: "
                        "alerts, breakers, failure_detector, "
                        "fault_tolerance, node, replication, watchdog)"));
    CHECK_THAT(parse_error("node:\n  name: n1\n  replication: {factor: 1}\n"
                           "replication: {factor: 2}\n"),
               Contains("node.yaml:4: replication is given both under node: "
                        "and at the top level"));
    CHECK_THAT(parse_error("node:\n  name: n1\nreplication:\n"
                           "  min_acks: 9\n"),
               Contains("node.yaml:4: replication.min_acks = 9"));
  }
}

// -- files --------------------------------------------------------------------

TEST_CASE("node_config_from_file reads relative paths next to the file",
          "[node_config]") {
  temp_dir dir;
  auto path = dir.write("node.yaml", "name: n1\n"
                                     "data_dir: data\n"
                                     "cluster_secret_file: secret\n"
                                     "tls:\n"
                                     "  cert_file: tls/n1.pem\n"
                                     "  key_file: /etc/ft/n1.key\n"
                                     "  ca_file: ../ca.pem\n");
  auto res = ft::node_config_from_file(path);
  if (!res)
    FAIL(ft::render(res.error()));
  CHECK(res->name == "n1");
  CHECK(res->data_dir == (dir.path / "data").string());
  CHECK(res->cluster_secret_file == (dir.path / "secret").string());
  CHECK(res->tls_cert_file == (dir.path / "tls/n1.pem").string());
  CHECK(res->tls_key_file == "/etc/ft/n1.key");
  CHECK(res->tls_ca_file == (dir.path / "../ca.pem").string());
  SECTION("errors name the file and line") {
    auto bad = dir.write("bad.yaml", "name: n1\nlease: 9\n");
    auto err = ft::node_config_from_file(bad);
    REQUIRE_FALSE(err);
    CHECK_THAT(ft::render(err.error()),
               StartsWith("invalid_config: " + bad + ":2: lease = 9s"));
    auto syntax = dir.write("syntax.yaml", "name: n1\nseeds: [a:1,\n\n");
    err = ft::node_config_from_file(syntax);
    REQUIRE_FALSE(err);
    CHECK(ft::is(err.error(), ft::errc::invalid_config));
    CHECK_THAT(ft::render(err.error()), StartsWith("invalid_config: " + syntax
                                                   + ":"));
    auto missing = (dir.path / "missing.yaml").string();
    err = ft::node_config_from_file(missing);
    REQUIRE_FALSE(err);
    CHECK(ft::is(err.error(), ft::errc::invalid_config));
    CHECK_THAT(ft::render(err.error()),
               Contains(missing + ": cannot open file"));
  }
}

TEST_CASE("read_cluster_secret reads the file without trailing whitespace",
          "[node_config]") {
  temp_dir dir;
  auto x = valid();
  auto none = ft::read_cluster_secret(x);
  REQUIRE(none);
  CHECK(none->empty());
  x.cluster_secret_file = dir.write("secret", "  s3cr3t word \n\r\n\t");
  auto secret = ft::read_cluster_secret(x);
  REQUIRE(secret);
  CHECK(*secret == "  s3cr3t word");
  x.cluster_secret_file = dir.write("empty", " \n\n");
  auto empty = ft::read_cluster_secret(x);
  REQUIRE_FALSE(empty);
  CHECK(ft::is(empty.error(), ft::errc::invalid_config));
  CHECK_THAT(ft::render(empty.error()),
             Contains("cluster_secret_file = '" + x.cluster_secret_file
                      + "' is empty"));
  x.cluster_secret_file = (dir.path / "nope").string();
  auto missing = ft::read_cluster_secret(x);
  REQUIRE_FALSE(missing);
  CHECK(ft::is(missing.error(), ft::errc::invalid_config));
  CHECK_THAT(ft::render(missing.error()),
             Contains("cluster_secret_file = '" + x.cluster_secret_file
                      + "' cannot be read"));
}

// -- command line -------------------------------------------------------------

TEST_CASE("command-line options override the config file", "[node_config]") {
  temp_dir dir;
  auto path = dir.write("node.yaml", full_document);
  SECTION("the file alone") {
    auto x = cli({path});
    check_full(x.config);
    CHECK(x.ready_file.empty());
    CHECK_FALSE(x.help);
  }
  SECTION("every option") {
    auto x = cli({path,
                  "--name", "n9",
                  "--host", "10.0.0.9",
                  "--port", "5009",
                  "--seeds", "a:1,b:2",
                  "--seeds", "c:3",
                  "--http-host", "127.0.0.2",
                  "--http-port", "9009",
                  "--data-dir", "/tmp/n9",
                  "--label", "gpu=false",
                  "--label", "rack=r1",
                  "--cluster-secret-file", "/tmp/secret",
                  "--heartbeat-interval", "200ms",
                  "--phi-threshold", "12.5",
                  "--acceptable-pause", "1s",
                  "--lease", "0.8",
                  "--replication-factor", "4",
                  "--min-acks", "3",
                  "--placement", "pinned",
                  "--ready-file", "/tmp/ready.json"});
    auto& c = x.config;
    CHECK(c.name == "n9");
    CHECK(c.host == "10.0.0.9");
    CHECK(c.port == 5009);
    CHECK(c.seeds
          == std::vector<ft::host_port>{{"a", 1}, {"b", 2}, {"c", 3}});
    CHECK(c.http_host == "127.0.0.2");
    CHECK(c.http_port == 9009);
    CHECK(c.data_dir == "/tmp/n9");
    // Labels add to the file's (and replace a value).
    CHECK(c.labels
          == std::map<std::string, std::string>{{"gpu", "false"},
                                                {"rack", "r1"},
                                                {"zone", "eu-1"}});
    CHECK(c.cluster_secret_file == "/tmp/secret");
    CHECK(c.failure_detector.heartbeat_interval == 200ms);
    CHECK(c.failure_detector.threshold == 12.5);
    CHECK(c.failure_detector.acceptable_heartbeat_pause == 1s);
    CHECK(c.lease == 800ms);
    CHECK(c.replication.factor == 4);
    CHECK(c.replication.min_acks == 3);
    CHECK(c.placement == ft::placement_strategy::pinned);
    CHECK(x.ready_file == "/tmp/ready.json");
    // What no option touched stays as the file says.
    CHECK(c.failure_detector.kind == ft::detector_kind::timeout);
    CHECK(c.replication.timeout == 1500ms);
    CHECK(c.join_timeout == 3s);
    CHECK(c.tls_ca_file == "/etc/ft/ca.pem");
  }
  SECTION("options before the file, repeated options, --opt=value") {
    auto x = cli({"--port=6000", "--port", "6001", path});
    CHECK(x.config.port == 6001);
    CHECK(x.config.name == "n2");
  }
  SECTION("--seeds '' clears the file's seeds") {
    CHECK(cli({path, "--seeds", ""}).config.seeds.empty());
    CHECK(cli({path, "--seeds", " a:1 , b:2 "}).config.seeds.size() == 2);
  }
  SECTION("a file without a name takes --name") {
    auto shared = dir.write("shared.yaml", "port: 0\nlease: 0.2\n");
    auto x = cli({shared, "--name", "n5"});
    CHECK(x.config.name == "n5");
    CHECK(x.config.lease == 200ms);
    CHECK_THAT(cli_error({shared}),
               Contains(shared + " has no name and --name is missing: "
                                 "name = ''"));
  }
  SECTION("relative paths in the file are the file's, in options the cwd's") {
    auto rel = dir.write("rel.yaml", "name: r\ndata_dir: d\n");
    CHECK(cli({rel}).config.data_dir == (dir.path / "d").string());
    CHECK(cli({rel, "--data-dir", "d"}).config.data_dir == "d");
  }
}

TEST_CASE("command-line durations take ms, s or plain seconds",
          "[node_config]") {
  auto lease = [](const std::string& text) {
    return cli({"--name", "n1", "--lease", text}).config.lease;
  };
  CHECK(lease("150ms") == 150ms);
  CHECK(lease("0.2s") == 200ms);
  CHECK(lease("0.25") == 250ms);
  CHECK(lease(".1") == 100ms);
  CHECK(lease("1.5ms") == 1500us);
  CHECK(cli({"--name", "n1", "--heartbeat-interval", "2s", "--lease", "1"})
          .config.failure_detector.heartbeat_interval
        == 2s);
  CHECK(cli({"--name", "n1", "--acceptable-pause", "0", "--lease", "50ms"})
          .config.failure_detector.acceptable_heartbeat_pause
        == 0s);
  for (auto bad : {"soon", "", "-1s", "1m", "ms", "s", "1 s", "2ss", "1e400",
                   "nan", "inf"})
    CHECK_THAT(cli_error({"--name", "n1", "--lease", bad}),
               Contains(std::string{"--lease = '"} + bad
                        + "' is not a duration (150ms, 2s or seconds"));
}

TEST_CASE("command-line errors name the option", "[node_config]") {
  auto base = std::vector<std::string>{"--name", "n1"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), base.begin(), base.end());
    return cli_error(args);
  };
  CHECK_THAT(with({"--port", "70000"}),
             Contains("--port = '70000' is not a port (0..65535)"));
  CHECK_THAT(with({"--http-port", "x"}), Contains("--http-port = 'x'"));
  CHECK_THAT(with({"--seeds", "a:1,b"}),
             Contains("--seeds = 'b' is not host:port (no ':')"));
  CHECK_THAT(with({"--label", "gpu"}),
             Contains("--label = 'gpu' is not KEY=VALUE"));
  CHECK_THAT(with({"--label", "=x"}), Contains("--label = '=x'"));
  CHECK_THAT(with({"--label", "a b=x"}),
             Contains("--label: labels['a b'] = 'x' (keys must"));
  CHECK_THAT(with({"--phi-threshold", "high"}),
             Contains("--phi-threshold = 'high' is not a number"));
  CHECK_THAT(with({"--replication-factor", "two"}),
             Contains("--replication-factor = 'two' is not an integer"));
  CHECK_THAT(with({"--placement", "random"}),
             Contains("--placement = 'random' is not least_loaded"));
  // Validation of the result names the option that set the field.
  CHECK_THAT(with({"--replication-factor", "20"}),
             Contains("--replication-factor: replication.factor = 20"));
  CHECK_THAT(with({"--min-acks", "3"}),
             Contains("--min-acks: replication.min_acks = 3"));
  CHECK_THAT(with({"--lease", "2s"}), Contains("--lease: lease = 2s"));
  CHECK_THAT(with({"--phi-threshold", "0"}),
             Contains("--phi-threshold: failure_detector.threshold = 0"));
  CHECK_THAT(with({"--port", "1", "--http-port", "1"}),
             Contains("--http-port: http_port = 1"));
  CHECK_THAT(cli_error({"--name", "a b"}), Contains("--name: name = 'a b'"));
  CHECK_THAT(cli_error({}), Contains("--name missing: name = ''"));
  // CLI11's own errors.
  CHECK_THAT(with({"--bogus", "1"}), Contains("--bogus"));
  CHECK_THAT(with({"--port"}), Contains("--port"));
  CHECK_THAT(with({"a.yaml", "b.yaml"}), Contains("b.yaml"));
  // The file's errors keep its name and line.
  temp_dir dir;
  auto path = dir.write("node.yaml", "name: n1\n\nport: x\n");
  CHECK_THAT(cli_error({path}), Contains(path + ":3: port = 'x'"));
  CHECK_THAT(cli_error({(dir.path / "none.yaml").string()}),
             Contains("none.yaml: cannot open file"));
}

TEST_CASE("--help returns the usage instead of exiting", "[node_config]") {
  for (auto flag : {"--help", "-h"}) {
    auto x = cli({"--port", "not-read", flag});
    CHECK(x.help);
    CHECK_THAT(x.help_text, Contains("--seeds"));
    CHECK_THAT(x.help_text, Contains("--ready-file"));
    CHECK_THAT(x.help_text, Contains("150ms"));
    // Nothing was read or validated.
    CHECK(x.config.name.empty());
  }
  CHECK_FALSE(cli({"--name", "n1"}).help);
}

// -- the node watchdog ----------------------------------------------------------

TEST_CASE("the watchdog: section configures the node watchdog",
          "[node_config][watchdog]") {
  SECTION("defaults: named node") {
    auto x = parse("name: n1\n");
    CHECK(x.watchdog.name == "node");
    CHECK(x.watchdog.heartbeat_timeout == 5s);
    CHECK(x.watchdog.operator_hook.empty());
  }
  SECTION("at the top level") {
    auto x = parse("name: n1\n"
                   "watchdog:\n"
                   "  heartbeat_timeout: 2   # seconds\n"
                   "  zombie_timeout: 0.5\n"
                   "  max_recoveries: 2\n"
                   "  escalation_severity: 3\n"
                   "  operator_hook: \"/usr/local/bin/page-oncall\"\n"
                   "lease: 0.25\n");
    CHECK(x.watchdog.name == "node");
    CHECK(x.watchdog.heartbeat_timeout == 2s);
    CHECK(x.watchdog.zombie_timeout == 500ms);
    CHECK(x.watchdog.max_recoveries == 2);
    CHECK(x.watchdog.escalation_severity == 3);
    CHECK(x.watchdog.operator_hook == "/usr/local/bin/page-oncall");
    // The section ends where the next node field starts.
    CHECK(x.lease == 250ms);
  }
  SECTION("inside node:, in flow style, with a name") {
    auto x = parse("node:\n"
                   "  name: n1\n"
                   "  watchdog: {name: nwd, heartbeat_timeout: 3}\n");
    CHECK(x.watchdog.name == "nwd");
    CHECK(x.watchdog.heartbeat_timeout == 3s);
  }
  SECTION("bad fields name watchdog.field and the document's line") {
    CHECK_THAT(parse_error("name: n1\n"
                           "watchdog:\n"
                           "  heartbeat_timeout: 2\n"
                           "  escalation_severity: 7\n"),
               Contains("node.yaml:4: watchdog.escalation_severity = 7 is "
                        "not a severity"));
    CHECK_THAT(parse_error("name: n1\n"
                           "\n"
                           "watchdog:\n"
                           "  hearbeat_timeout: 2\n"),
               Contains("node.yaml:4: watchdog.hearbeat_timeout is not a "
                        "known field"));
    CHECK_THAT(parse_error("node:\n"
                           "  name: n1\n"
                           "  watchdog:\n"
                           "    heartbeat_timeout: 0\n"),
               Contains("node.yaml:4: watchdog.heartbeat_timeout = 0s "
                        "(must be > 0)"));
    CHECK_THAT(parse_error("name: n1\nwatchdog: 5\n"),
               Contains("node.yaml:2: watchdog must be a mapping"));
  }
  SECTION("validate names watchdog.field") {
    auto x = parse("name: n1\n");
    x.watchdog.max_recoveries = 0;
    auto err = ft::validate(x);
    REQUIRE(err);
    CHECK_THAT(ft::render(err), Contains("watchdog.max_recoveries = 0"));
  }
}

TEST_CASE("the operator-hook option sets the node watchdog's hook",
          "[node_config][watchdog]") {
  auto x = cli({"--name", "n1", "--operator-hook", "logger -t ft"});
  CHECK(x.config.watchdog.operator_hook == "logger -t ft");
  CHECK(x.config.watchdog.name == "node");
}

TEST_CASE("the breakers: section configures the node's breaker registry",
          "[node_config][breaker]") {
  SECTION("absent: the breaker defaults, no scopes") {
    auto x = parse("name: n1\n");
    CHECK(x.breaker_defaults.failure_threshold == 5);
    CHECK(x.breaker_scopes.empty());
  }
  SECTION("default and named scopes") {
    auto x = parse("name: n1\n"
                   "breakers:\n"
                   "  default:\n"
                   "    failure_threshold: 7\n"
                   "  worker:\n"
                   "    failure_threshold: 3\n"
                   "    recovery_timeout: 2   # seconds\n"
                   "  hardware: {preset: aggressive}\n"
                   "lease: 0.25\n");
    CHECK(x.breaker_defaults.failure_threshold == 7);
    REQUIRE(x.breaker_scopes.size() == 2);
    CHECK(x.breaker_scopes["worker"].failure_threshold == 3);
    CHECK(x.breaker_scopes["worker"].recovery_timeout == 2s);
    auto aggressive = ft::breaker_preset("aggressive");
    REQUIRE(aggressive);
    CHECK(x.breaker_scopes["hardware"].failure_threshold
          == aggressive->failure_threshold);
    CHECK(x.lease == 250ms);
  }
  SECTION("bad fields name breakers.scope.field and the line") {
    CHECK_THAT(parse_error("name: n1\n"
                           "breakers:\n"
                           "  worker:\n"
                           "    failure_threshold: -1\n"),
               Contains("node.yaml:4: breakers.worker.failure_threshold"));
    CHECK_THAT(parse_error("name: n1\n"
                           "breakers:\n"
                           "  worker:\n"
                           "    failure_treshold: 3\n"),
               Contains("node.yaml:4: breakers.worker.failure_treshold is "
                        "not a known field"));
    CHECK_THAT(parse_error("name: n1\nbreakers:\n  worker: 3\n"),
               Contains("node.yaml:3: breakers.worker must be a mapping"));
    CHECK_THAT(parse_error("name: n1\nbreakers: [1]\n"),
               Contains("node.yaml:2: breakers must be a mapping"));
  }
}
