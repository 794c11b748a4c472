#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "ft/checkpoint.hpp"
#include "ft/error.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using ft::fault_tolerance_config;
using ft::ft_strategy;

fault_tolerance_config parse(const std::string& text) {
  auto res = ft::fault_tolerance_from_yaml(text, "ft.yaml");
  if (!res)
    FAIL(ft::render(res.error()));
  return *res;
}

/// Requires an invalid_config error and returns its rendering.
std::string parse_error(const std::string& text) {
  auto res = ft::fault_tolerance_from_yaml(text, "ft.yaml");
  REQUIRE_FALSE(res);
  CHECK(ft::is(res.error(), ft::errc::invalid_config));
  return ft::render(res.error());
}

} // namespace

TEST_CASE("the fault_tolerance defaults are valid", "[checkpoint_config]") {
  fault_tolerance_config x;
  CHECK_FALSE(ft::validate(x));
  CHECK(x.strategy == ft_strategy::checkpoint);
  CHECK(x.checkpoint_interval == caf::timespan{0});
  CHECK(x.checkpoint_every == 0u);
  CHECK(x.max_recovery_attempts == 3);
  CHECK(x.dedupe_window == 1024u);
  CHECK_FALSE(x.reply_after_checkpoint);
  CHECK(x.checkpoint_on_stop);
  CHECK(std::string{ft::to_string(ft_strategy::restart)} == "restart");
  auto y = parse("");
  CHECK(y.max_recovery_attempts == 3);
  CHECK(parse("fault_tolerance:\n").dedupe_window == 1024u);
}

TEST_CASE("validate names the field and the value", "[checkpoint_config]") {
  fault_tolerance_config x;
  x.max_recovery_attempts = 0;
  auto err = ft::validate(x);
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_config));
  CHECK_THAT(ft::render(err), Contains("max_recovery_attempts = 0"));
  x = {};
  x.checkpoint_interval = -1s;
  CHECK_THAT(ft::render(ft::validate(x)), Contains("checkpoint_interval"));
  x = {};
  x.dedupe_window = 2'000'000;
  CHECK_THAT(ft::render(ft::validate(x)), Contains("dedupe_window = 2000000"));
  x = {};
  x.reply_after_checkpoint = true;
  CHECK_THAT(ft::render(ft::validate(x)),
             Contains("needs checkpoint_every = 1, not 0"));
  x.checkpoint_every = 1;
  CHECK_FALSE(ft::validate(x));
}

TEST_CASE("a full fault_tolerance section round-trips",
          "[checkpoint_config]") {
  auto text = std::string{"strategy: restart\n"
                          "checkpoint_interval: 2.5\n"
                          "checkpoint_every: 1\n"
                          "max_recovery_attempts: 5\n"
                          "checkpoint_dir: /var/lib/ft\n"
                          "dedupe_window: 16\n"
                          "reply_after_checkpoint: true\n"
                          "checkpoint_on_stop: false\n"};
  auto check = [](const fault_tolerance_config& x) {
    CHECK(x.strategy == ft_strategy::restart);
    CHECK(x.checkpoint_interval == 2500ms);
    CHECK(x.checkpoint_every == 1u);
    CHECK(x.max_recovery_attempts == 5);
    CHECK(x.checkpoint_dir == "/var/lib/ft");
    CHECK(x.dedupe_window == 16u);
    CHECK(x.reply_after_checkpoint);
    CHECK_FALSE(x.checkpoint_on_stop);
  };
  SECTION("the mapping itself") {
    check(parse(text));
  }
  SECTION("a document with a fault_tolerance section among others") {
    std::string doc = "node: n1\nfault_tolerance:\n";
    size_t pos = 0;
    while (pos < text.size()) {
      auto eol = text.find('\n', pos);
      doc += "  " + text.substr(pos, eol - pos + 1);
      pos = eol + 1;
    }
    doc += "cluster: {seeds: []}\n";
    check(parse(doc));
  }
  SECTION("flow style") {
    auto x = parse("fault_tolerance: {strategy: checkpoint, "
                   "checkpoint_interval: 60.0, checkpoint_every: 100, "
                   "max_recovery_attempts: 3, checkpoint_dir: /tmp/ft}");
    CHECK(x.strategy == ft_strategy::checkpoint);
    CHECK(x.checkpoint_interval == 60s);
    CHECK(x.checkpoint_every == 100u);
    CHECK(x.checkpoint_dir == "/tmp/ft");
  }
}

TEST_CASE("every bad fault_tolerance field is named with its line",
          "[checkpoint_config]") {
  CHECK_THAT(parse_error("checkpoint_every: 1\nstrategy: retry\n"),
             StartsWith("invalid_config: ft.yaml:2: strategy = 'retry'"));
  CHECK_THAT(parse_error("checkpoint_interval: -1\n"),
             Contains("ft.yaml:1: checkpoint_interval = -1"));
  CHECK_THAT(parse_error("checkpoint_interval: soon\n"),
             Contains("ft.yaml:1: checkpoint_interval = 'soon'"));
  CHECK_THAT(parse_error("\ncheckpoint_every: -3\n"),
             Contains("ft.yaml:2: checkpoint_every = -3"));
  CHECK_THAT(parse_error("checkpoint_every: 1.5\n"),
             Contains("ft.yaml:1: checkpoint_every = '1.5'"));
  CHECK_THAT(parse_error("strategy: checkpoint\nmax_recovery_attempts: 0\n"),
             Contains("ft.yaml:2: max_recovery_attempts = 0"));
  CHECK_THAT(parse_error("checkpoint_dir: [a, b]\n"),
             Contains("ft.yaml:1: checkpoint_dir must be a scalar"));
  CHECK_THAT(parse_error("dedupe_window: -1\n"),
             Contains("ft.yaml:1: dedupe_window = -1"));
  CHECK_THAT(parse_error("dedupe_window: 5000000\n"),
             Contains("ft.yaml:1: dedupe_window = 5000000"));
  CHECK_THAT(parse_error("reply_after_checkpoint: maybe\n"),
             Contains("ft.yaml:1: reply_after_checkpoint = 'maybe'"));
  CHECK_THAT(parse_error("checkpoint_on_stop: 2\n"),
             Contains("ft.yaml:1: checkpoint_on_stop = '2'"));
  CHECK_THAT(parse_error("checkpoint_every: 5\n"
                         "reply_after_checkpoint: true\n"),
             Contains("ft.yaml:2: reply_after_checkpoint = true (needs "
                      "checkpoint_every = 1, not 5"));
  CHECK_THAT(parse_error("fault_tolerance:\n  strategy: checkpoint\n"
                         "  max_recovery_atempts: 2\n"),
             Contains("ft.yaml:3: max_recovery_atempts is not a known field"));
  CHECK_THAT(parse_error("fault_tolerance: 3\n"),
             Contains("ft.yaml:1: fault_tolerance must be a mapping"));
  CHECK_THAT(parse_error("strategy: [\n"), StartsWith("invalid_config: ft.yaml:"));
  CHECK_THAT(parse_error("- a\n- b\n"), Contains("ft.yaml"));
}

TEST_CASE("keep_snapshots sets the writer's retention: 0 or at least 2",
          "[checkpoint_config]") {
  CHECK(parse("strategy: checkpoint\n").keep_snapshots == 0);
  CHECK(parse("keep_snapshots: 5\n").keep_snapshots == 5);
  CHECK_THAT(parse_error("strategy: checkpoint\nkeep_snapshots: 1\n"),
             Contains("ft.yaml:2: keep_snapshots = 1 (must be 0 (keep all) "
                      "or >= 2"));
  CHECK_THAT(parse_error("keep_snapshots: -3\n"),
             Contains("ft.yaml:1: keep_snapshots"));
}
