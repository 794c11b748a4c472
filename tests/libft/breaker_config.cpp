#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "ft/breaker_config.hpp"
#include "ft/error.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using ft::breaker_config;
using window_kind = ft::breaker_config::window_kind;

std::string message(const caf::error& err) {
  return ft::render(err);
}

breaker_config parse(const std::string& text) {
  auto res = ft::breaker_config_from_yaml(text, "brk.yaml");
  if (!res)
    FAIL(message(res.error()));
  return *res;
}

// Reads `text`, requires an invalid_breaker_config error and returns its
// rendering.
std::string parse_error(const std::string& text) {
  auto res = ft::breaker_config_from_yaml(text, "brk.yaml");
  REQUIRE_FALSE(res);
  CHECK(ft::is(res.error(), ft::errc::invalid_breaker_config));
  return message(res.error());
}

} // namespace

// -- presets ------------------------------------------------------------------

TEST_CASE("the presets are valid and match their documentation",
          "[breaker_config]") {
  SECTION("production") {
    auto x = ft::breaker_preset("production");
    REQUIRE(x);
    CHECK_FALSE(ft::validate(*x));
    CHECK(x->failure_threshold == 5);
    CHECK(x->success_threshold == 3);
    CHECK(x->recovery_timeout == 30s);
    CHECK(x->reset_timeout_factor == 2.0);
    CHECK(x->max_reset_timeout == 5min);
    CHECK(x->call_timeout == 10s);
    CHECK(x->half_open_max_calls == 1);
    CHECK(x->window == window_kind::count_based);
    CHECK(x->window_size == 100);
    CHECK(x->minimum_calls == 20);
    CHECK(x->failure_rate_threshold == 50.0);
    CHECK(x->slow_call_duration == caf::timespan{0});
  }
  SECTION("development") {
    auto x = ft::breaker_preset("development");
    REQUIRE(x);
    CHECK_FALSE(ft::validate(*x));
    CHECK(x->failure_threshold == 10);
    CHECK(x->success_threshold == 1);
    CHECK(x->recovery_timeout == 5s);
    CHECK(x->reset_timeout_factor == 1.5);
    CHECK(x->max_reset_timeout == 30s);
    CHECK(x->call_timeout == 30s);
    CHECK(x->half_open_max_calls == 3);
    CHECK(x->window == window_kind::none);
  }
  SECTION("aggressive") {
    auto x = ft::breaker_preset("aggressive");
    REQUIRE(x);
    CHECK_FALSE(ft::validate(*x));
    CHECK(x->failure_threshold == 2);
    CHECK(x->success_threshold == 2);
    CHECK(x->recovery_timeout == 10s);
    CHECK(x->max_reset_timeout == 10min);
    CHECK(x->call_timeout == 2s);
    CHECK(x->window == window_kind::count_based);
    CHECK(x->window_size == 20);
    CHECK(x->minimum_calls == 5);
    CHECK(x->failure_rate_threshold == 25.0);
    CHECK(x->slow_call_duration == 1s);
    CHECK(x->slow_call_rate_threshold == 50.0);
  }
  SECTION("aggressive trips sooner than production") {
    auto p = ft::breaker_preset("production");
    auto a = ft::breaker_preset("aggressive");
    REQUIRE(p);
    REQUIRE(a);
    CHECK(a->failure_threshold < p->failure_threshold);
    CHECK(a->failure_rate_threshold < p->failure_rate_threshold);
    CHECK(a->minimum_calls < p->minimum_calls);
  }
}

TEST_CASE("an unknown preset is an error naming it", "[breaker_config]") {
  auto x = ft::breaker_preset("staging");
  REQUIRE_FALSE(x);
  CHECK(ft::is(x.error(), ft::errc::invalid_breaker_config));
  CHECK_THAT(message(x.error()), Contains("preset = 'staging'"));
}

// -- YAML ---------------------------------------------------------------------

TEST_CASE("an empty document gives the defaults", "[breaker_config]") {
  auto x = parse("");
  breaker_config defaults;
  CHECK(x.failure_threshold == defaults.failure_threshold);
  CHECK(x.success_threshold == 2);
  CHECK(x.recovery_timeout == 30s);
  CHECK(x.window == window_kind::none);
  CHECK_FALSE(x.is_failure);
}

TEST_CASE("a full document sets every field", "[breaker_config]") {
  auto x = parse("failure_threshold: 7\n"
                 "success_threshold: 4\n"
                 "recovery_timeout: 12.5\n"
                 "reset_timeout_factor: 1.5\n"
                 "max_reset_timeout: 120\n"
                 "call_timeout: 0.25\n"
                 "half_open_max_calls: 3\n"
                 "window: time_based\n"
                 "window_size: 50\n"
                 "window_duration: 20\n"
                 "minimum_calls: 8\n"
                 "failure_rate_threshold: 40\n"
                 "slow_call_duration: 1.5\n"
                 "slow_call_rate_threshold: 80\n");
  CHECK(x.failure_threshold == 7);
  CHECK(x.success_threshold == 4);
  CHECK(x.recovery_timeout == 12500ms);
  CHECK(x.reset_timeout_factor == 1.5);
  CHECK(x.max_reset_timeout == 120s);
  CHECK(x.call_timeout == 250ms);
  CHECK(x.half_open_max_calls == 3);
  CHECK(x.window == window_kind::time_based);
  CHECK(x.window_size == 50);
  CHECK(x.window_duration == 20s);
  CHECK(x.minimum_calls == 8);
  CHECK(x.failure_rate_threshold == 40.0);
  CHECK(x.slow_call_duration == 1500ms);
  CHECK(x.slow_call_rate_threshold == 80.0);
  CHECK_FALSE(ft::validate(x));
}

TEST_CASE("a preset applies first; explicit fields override it",
          "[breaker_config]") {
  SECTION("preset alone") {
    auto x = parse("preset: aggressive\n");
    CHECK(x.failure_threshold == 2);
    CHECK(x.window == window_kind::count_based);
    CHECK(x.slow_call_duration == 1s);
  }
  SECTION("fields before or after the preset line override it") {
    for (auto doc : {"failure_threshold: 3\npreset: aggressive\n"
                     "window: none\nslow_call_duration: 0\n",
                     "preset: aggressive\nfailure_threshold: 3\n"
                     "window: none\nslow_call_duration: 0\n"}) {
      CAPTURE(doc);
      auto x = parse(doc);
      CHECK(x.failure_threshold == 3);
      CHECK(x.window == window_kind::none);
      CHECK(x.slow_call_duration == caf::timespan{0});
      // The rest comes from the preset.
      CHECK(x.recovery_timeout == 10s);
      CHECK(x.call_timeout == 2s);
      CHECK(x.max_reset_timeout == 10min);
    }
  }
  SECTION("production with a faster recovery") {
    auto x = parse("preset: production\nrecovery_timeout: 5\n");
    CHECK(x.recovery_timeout == 5s);
    CHECK(x.minimum_calls == 20);
    CHECK(x.success_threshold == 3);
  }
}

TEST_CASE("an unknown field is an error naming source, line and field",
          "[breaker_config]") {
  auto msg = parse_error("failure_threshold: 3\n"
                         "recovery_timeout: 5\n"
                         "recovery_timout: 7\n");
  CHECK_THAT(msg, StartsWith("invalid_breaker_config: brk.yaml:3: "));
  CHECK_THAT(msg, Contains("recovery_timout is not a known field"));
}

TEST_CASE("a bad value is an error naming source, line, field and value",
          "[breaker_config]") {
  SECTION("not a number") {
    auto msg = parse_error("success_threshold: 2\nfailure_threshold: many\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: failure_threshold = 'many' is not "
                             "a number"));
  }
  SECTION("not an integer") {
    auto msg = parse_error("\n\nwindow_size: 2.5\n");
    CHECK_THAT(msg, Contains("brk.yaml:3: window_size = '2.5' is not an "
                             "integer"));
  }
  SECTION("negative duration") {
    auto msg = parse_error("call_timeout: -1\n");
    CHECK_THAT(msg, Contains("brk.yaml:1: call_timeout = -1 is out of range"));
  }
  SECTION("unknown window kind") {
    auto msg = parse_error("failure_threshold: 3\nwindow: sliding\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: window = 'sliding' is not none, "
                             "count_based or time_based"));
  }
  SECTION("unknown preset") {
    auto msg = parse_error("preset: staging\n");
    CHECK_THAT(msg, Contains("brk.yaml:1: preset = 'staging'"));
  }
  SECTION("not a scalar") {
    auto msg = parse_error("failure_threshold: [1, 2]\n");
    CHECK_THAT(msg, Contains("brk.yaml:1: failure_threshold must be a scalar"));
  }
  SECTION("out of range, found by validate") {
    auto msg = parse_error("failure_threshold: 3\n"
                           "reset_timeout_factor: 0.5\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: reset_timeout_factor = 0.5 (must "
                             "be >= 1)"));
  }
  SECTION("zero window") {
    auto msg = parse_error("window: time_based\nwindow_duration: 0\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: window_duration = 0s"));
  }
  SECTION("rate outside (0, 100]") {
    auto msg = parse_error("window: count_based\n"
                           "failure_rate_threshold: 150\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: failure_rate_threshold = 150"));
  }
  SECTION("a combination with a defaulted field names that field") {
    // minimum_calls defaults to 10, more than the window holds.
    auto msg = parse_error("window: count_based\nwindow_size: 5\n");
    CHECK_THAT(msg, Contains("brk.yaml: minimum_calls = 10"));
  }
  SECTION("a preset made invalid by an override") {
    auto msg = parse_error("preset: production\nmax_reset_timeout: 10\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: max_reset_timeout = 10s"));
  }
}

TEST_CASE("malformed YAML is an error naming the line", "[breaker_config]") {
  SECTION("syntax") {
    auto msg = parse_error("failure_threshold: 3\nwindow: [count_based\n");
    CHECK_THAT(msg, StartsWith("invalid_breaker_config: brk.yaml:"));
  }
  SECTION("not a mapping") {
    auto msg = parse_error("- failure_threshold\n- 3\n");
    CHECK_THAT(msg, Contains("brk.yaml: expected a mapping"));
  }
  SECTION("a bare scalar") {
    auto msg = parse_error("hello\n");
    CHECK_THAT(msg, Contains("expected a mapping"));
  }
}

TEST_CASE("breaker_config_from_yaml names <config> by default",
          "[breaker_config]") {
  auto res = ft::breaker_config_from_yaml("bogus: 1\n");
  REQUIRE_FALSE(res);
  CHECK_THAT(message(res.error()), Contains("<config>:1: bogus"));
}

// -- adaptive mode ------------------------------------------------------------

TEST_CASE("adaptive mode is off by default with valid bounds",
          "[breaker_config][adaptive]") {
  breaker_config x;
  CHECK_FALSE(x.adaptive.enabled);
  CHECK(x.adaptive.min_failure_threshold == 3);
  CHECK(x.adaptive.max_failure_threshold == 20);
  CHECK(x.adaptive.min_recovery_timeout == 5s);
  CHECK(x.adaptive.max_recovery_timeout == 2min);
  CHECK(x.adaptive.false_trip_probability == 0.001);
  CHECK(x.adaptive.smoothing == 0.2);
  // Enabling it on the defaults is valid: their values lie within bounds.
  x.adaptive.enabled = true;
  CHECK_FALSE(ft::validate(x));
  // An empty document and an empty `adaptive:` give the same.
  for (auto doc : {"", "adaptive:\n"}) {
    CAPTURE(doc);
    auto y = parse(doc);
    CHECK_FALSE(y.adaptive.enabled);
    CHECK(y.adaptive.max_failure_threshold == 20);
    CHECK(y.adaptive.smoothing == 0.2);
  }
}

TEST_CASE("the presets keep adaptive mode off, with bounds around their "
          "values; enabling it is one line",
          "[breaker_config][adaptive]") {
  struct expected_bounds {
    const char* name;
    int min_threshold;
    int max_threshold;
    caf::timespan min_recovery;
    caf::timespan max_recovery;
  };
  for (auto b : {expected_bounds{"production", 3, 20, 10s, 2min},
                 expected_bounds{"development", 5, 30, 1s, 30s},
                 expected_bounds{"aggressive", 2, 8, 5s, 1min}}) {
    CAPTURE(b.name);
    auto x = ft::breaker_preset(b.name);
    REQUIRE(x);
    CHECK_FALSE(x->adaptive.enabled);
    CHECK(x->adaptive.min_failure_threshold == b.min_threshold);
    CHECK(x->adaptive.max_failure_threshold == b.max_threshold);
    CHECK(x->adaptive.min_recovery_timeout == b.min_recovery);
    CHECK(x->adaptive.max_recovery_timeout == b.max_recovery);
    auto y = parse(std::string{"preset: "} + b.name
                   + "\nadaptive:\n  enabled: true\n");
    CHECK(y.adaptive.enabled);
    CHECK(y.failure_threshold == x->failure_threshold);
    CHECK(y.adaptive.max_failure_threshold == b.max_threshold);
  }
}

TEST_CASE("a nested adaptive mapping sets every field",
          "[breaker_config][adaptive]") {
  auto x = parse("failure_threshold: 4\n"
                 "recovery_timeout: 20\n"
                 "adaptive:\n"
                 "  enabled: true\n"
                 "  min_failure_threshold: 2\n"
                 "  max_failure_threshold: 12\n"
                 "  min_recovery_timeout: 2.5\n"
                 "  max_recovery_timeout: 90\n"
                 "  false_trip_probability: 0.0001\n"
                 "  smoothing: 0.5\n");
  CHECK(x.failure_threshold == 4);
  CHECK(x.recovery_timeout == 20s);
  CHECK(x.adaptive.enabled);
  CHECK(x.adaptive.min_failure_threshold == 2);
  CHECK(x.adaptive.max_failure_threshold == 12);
  CHECK(x.adaptive.min_recovery_timeout == 2500ms);
  CHECK(x.adaptive.max_recovery_timeout == 90s);
  CHECK(x.adaptive.false_trip_probability == 0.0001);
  CHECK(x.adaptive.smoothing == 0.5);
  CHECK_FALSE(ft::validate(x));
  SECTION("a preset's bounds are overridden field by field") {
    auto y = parse("preset: aggressive\n"
                   "adaptive:\n"
                   "  max_failure_threshold: 4\n");
    CHECK_FALSE(y.adaptive.enabled);
    CHECK(y.adaptive.min_failure_threshold == 2);
    CHECK(y.adaptive.max_failure_threshold == 4);
    CHECK(y.adaptive.max_recovery_timeout == 1min);
  }
  SECTION("enabled: false keeps it off") {
    auto y = parse("adaptive:\n  enabled: false\n  smoothing: 1\n");
    CHECK_FALSE(y.adaptive.enabled);
    CHECK(y.adaptive.smoothing == 1.0);
  }
}

TEST_CASE("an unknown adaptive field is an error naming source, line and "
          "field",
          "[breaker_config][adaptive]") {
  auto msg = parse_error("failure_threshold: 3\n"
                         "adaptive:\n"
                         "  enabled: true\n"
                         "  smoothnes: 0.3\n");
  CHECK_THAT(msg, StartsWith("invalid_breaker_config: brk.yaml:4: "));
  CHECK_THAT(msg, Contains("adaptive.smoothnes is not a known field"));
  CHECK_THAT(msg, Contains("smoothing"));
}

TEST_CASE("a bad adaptive value is an error naming source, line, field and "
          "value",
          "[breaker_config][adaptive]") {
  SECTION("not a mapping") {
    auto msg = parse_error("failure_threshold: 3\nadaptive: yes\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: adaptive must be a mapping"));
  }
  SECTION("not true or false") {
    auto msg = parse_error("adaptive:\n  enabled: maybe\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: adaptive.enabled = 'maybe' is not "
                             "true or false"));
  }
  SECTION("not a number") {
    auto msg = parse_error("adaptive:\n  enabled: true\n"
                           "  false_trip_probability: rare\n");
    CHECK_THAT(msg, Contains("brk.yaml:3: adaptive.false_trip_probability = "
                             "'rare' is not a number"));
  }
  SECTION("not an integer") {
    auto msg = parse_error("adaptive:\n  max_failure_threshold: 7.5\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: adaptive.max_failure_threshold = "
                             "'7.5' is not an integer"));
  }
  SECTION("negative duration") {
    auto msg = parse_error("adaptive:\n  min_recovery_timeout: -1\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: adaptive.min_recovery_timeout = -1 "
                             "is out of range"));
  }
  SECTION("out of range, found by validate, at the line of the field") {
    struct bad {
      const char* yaml;
      const char* expected;
    };
    for (auto x :
         {bad{"  min_failure_threshold: -1\n",
              "brk.yaml:3: adaptive.min_failure_threshold = -1 (must be "
              ">= 1)"},
          bad{"  max_failure_threshold: 2\n",
              "brk.yaml:3: adaptive.max_failure_threshold = 2 (must be >= "
              "adaptive.min_failure_threshold 3)"},
          bad{"  min_recovery_timeout: 0\n",
              "brk.yaml:3: adaptive.min_recovery_timeout = 0s (must be > 0)"},
          bad{"  max_recovery_timeout: 1\n",
              "brk.yaml:3: adaptive.max_recovery_timeout = 1s (must be >= "
              "adaptive.min_recovery_timeout 5s)"},
          bad{"  false_trip_probability: 1\n",
              "brk.yaml:3: adaptive.false_trip_probability = 1 (must be in "
              "(0, 1))"},
          bad{"  false_trip_probability: 0\n",
              "brk.yaml:3: adaptive.false_trip_probability = 0"},
          bad{"  smoothing: 0\n",
              "brk.yaml:3: adaptive.smoothing = 0 (must be in (0, 1])"},
          bad{"  smoothing: 1.5\n", "brk.yaml:3: adaptive.smoothing = 1.5"}}) {
      CAPTURE(x.yaml);
      // Off or on: bad bounds are errors either way.
      for (auto enabled : {"false", "true"}) {
        CAPTURE(enabled);
        auto msg = parse_error(std::string{"adaptive:\n  enabled: "} + enabled
                               + "\n" + x.yaml);
        CHECK_THAT(msg, Contains(x.expected));
      }
    }
  }
  SECTION("a configured value outside the bounds names that field") {
    auto msg = parse_error("failure_threshold: 30\n"
                           "adaptive:\n"
                           "  enabled: true\n");
    CHECK_THAT(msg, Contains("brk.yaml:1: failure_threshold = 30 (must be "
                             "within the adaptive bounds [3, 20])"));
    // Not set in the document: the line of the bounds it missed.
    msg = parse_error("adaptive:\n"
                      "  enabled: true\n"
                      "  max_recovery_timeout: 10\n");
    CHECK_THAT(msg, Contains("brk.yaml:2: recovery_timeout = 30s (must be "
                             "within the adaptive bounds [5s, 10s])"));
  }
  SECTION("max_recovery_timeout above max_reset_timeout") {
    auto msg = parse_error("max_reset_timeout: 60\n"
                           "adaptive:\n"
                           "  enabled: true\n"
                           "  max_recovery_timeout: 90\n");
    CHECK_THAT(msg, Contains("brk.yaml:4: adaptive.max_recovery_timeout = 90s "
                             "(must be <= max_reset_timeout 60s"));
    // Off: no cross-checks, as before adaptive mode existed.
    auto x = parse("max_reset_timeout: 60\n");
    CHECK_FALSE(x.adaptive.enabled);
  }
}
