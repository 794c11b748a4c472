#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>

#include <unistd.h>

#include "ft/config.hpp"
#include "ft/error.hpp"
#include "ft/fault_handler.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

using ft::restart_delay;
using ft::supervisor_flags;

std::string message(const caf::error& err) {
  return ft::render(err);
}

// A handler that counts its instances, so tests can see factories run.
class counting_handler : public ft::fault_handler {
public:
  explicit counting_handler(int tag) : tag(tag) {
    // nop
  }

  void handle_failure(const std::string&, const caf::error&) override {
    ++failures;
  }

  bool can_recover(const std::string&) override {
    return failures < 3;
  }

  ft::directive recover(const std::string&) override {
    return ft::directive::restart;
  }

  int tag;
  int failures = 0;
};

// Reads `text` and requires an error; returns it.
caf::error parse_error(const std::string& text,
                       const std::string& source = "test.yaml") {
  auto res = ft::supervisor_flags_from_yaml(text, source);
  REQUIRE_FALSE(res);
  return res.error();
}

// A file in the temp directory, removed at scope exit.
struct temp_file {
  std::filesystem::path path;

  temp_file(const std::string& name, const std::string& content) {
    path = std::filesystem::temp_directory_path()
           / (name + "-" + std::to_string(::getpid()) + ".yaml");
    std::ofstream out{path};
    out << content;
  }

  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

} // namespace

// -- valid documents ----------------------------------------------------------

TEST_CASE("a full document with exponential delay sets every field",
          "[config]") {
  auto res = ft::supervisor_flags_from_yaml(R"(# pool supervisor
name: pool
strategy: rest_for_one
intensity: 3
period: 2.5
auto_shutdown: any_significant
buffer_capacity: 64
restart_strategy: exponential
initial_delay: 0.1
max_delay: 5
multiplier: 3
jitter: 0.25
max_attempts: 10
)");
  REQUIRE(res);
  auto& f = *res;
  CHECK(f.name == "pool");
  CHECK(f.strategy == ft::supervision_strategy::rest_for_one);
  CHECK(f.intensity == 3);
  CHECK(f.period == 2500ms);
  CHECK(f.auto_shutdown_mode == ft::auto_shutdown::any_significant);
  CHECK(f.buffer_capacity == 64);
  CHECK(f.delay.type == restart_delay::kind::exponential);
  CHECK(f.delay.initial_delay == 100ms);
  CHECK(f.delay.max_delay == 5s);
  CHECK(f.delay.multiplier == 3.0);
  CHECK(f.delay.jitter == 0.25);
  CHECK(f.delay.max_attempts == 10);
  CHECK(f.handler == nullptr);
  CHECK_FALSE(ft::validate(f));
}

TEST_CASE("a document with fixed delay", "[config]") {
  auto res = ft::supervisor_flags_from_yaml("strategy: one_for_all\n"
                                            "restart_strategy: fixed\n"
                                            "delay: 0.5\n"
                                            "max_attempts: 4\n");
  REQUIRE(res);
  CHECK(res->strategy == ft::supervision_strategy::one_for_all);
  CHECK(res->delay.type == restart_delay::kind::fixed);
  CHECK(res->delay.delay == 500ms);
  CHECK(res->delay.max_attempts == 4);
}

TEST_CASE("a document with failure_rate delay", "[config]") {
  auto res = ft::supervisor_flags_from_yaml("strategy: simple_one_for_one\n"
                                            "restart_strategy: failure_rate\n"
                                            "max_failures_per_interval: 5\n"
                                            "interval_seconds: 30\n"
                                            "delay: 2\n");
  REQUIRE(res);
  CHECK(res->strategy == ft::supervision_strategy::simple_one_for_one);
  CHECK(res->delay.type == restart_delay::kind::failure_rate);
  CHECK(res->delay.max_failures_per_interval == 5);
  CHECK(res->delay.interval == 30s);
  CHECK(res->delay.delay == 2s);
}

TEST_CASE("restart_strategy none gives no delay", "[config]") {
  auto res = ft::supervisor_flags_from_yaml("restart_strategy: none\n");
  REQUIRE(res);
  CHECK(res->delay.type == restart_delay::kind::none);
}

TEST_CASE("an empty document gives the default flags", "[config]") {
  for (std::string text : {"", "\n", "# only a comment\n", "---\n"}) {
    CAPTURE(text);
    auto res = ft::supervisor_flags_from_yaml(text);
    REQUIRE(res);
    supervisor_flags def;
    CHECK(res->name == def.name);
    CHECK(res->strategy == def.strategy);
    CHECK(res->intensity == def.intensity);
    CHECK(res->period == def.period);
    CHECK(res->auto_shutdown_mode == def.auto_shutdown_mode);
    CHECK(res->buffer_capacity == def.buffer_capacity);
    CHECK(res->delay.type == restart_delay::kind::none);
    CHECK(res->handler == nullptr);
  }
}

TEST_CASE("a partial document keeps defaults for the other fields",
          "[config]") {
  auto res = ft::supervisor_flags_from_yaml("intensity: 0\n");
  REQUIRE(res);
  CHECK(res->intensity == 0);
  CHECK(res->period == supervisor_flags{}.period);
  CHECK(res->strategy == ft::supervision_strategy::one_for_one);
}

// -- errors -------------------------------------------------------------------

TEST_CASE("an unknown field is invalid_config naming source, line and field",
          "[config]") {
  auto err = parse_error("intensity: 3\n"
                         "period: 5\n"
                         "bogus_field: 1\n",
                         "pool.yaml");
  CHECK(ft::is(err, ft::errc::invalid_config));
  CHECK_THAT(message(err), Contains("pool.yaml:3"));
  CHECK_THAT(message(err), Contains("bogus_field"));
}

TEST_CASE("the default source name is <config>", "[config]") {
  auto res = ft::supervisor_flags_from_yaml("wat: 1\n");
  REQUIRE_FALSE(res);
  CHECK_THAT(message(res.error()), Contains("<config>:1"));
}

TEST_CASE("malformed YAML is invalid_config with a line", "[config]") {
  SECTION("unterminated flow sequence") {
    auto err = parse_error("intensity: 3\nperiod: [1, 2\n", "bad.yaml");
    CHECK(ft::is(err, ft::errc::invalid_config));
    CHECK(std::regex_search(message(err), std::regex{"bad\\.yaml:[0-9]+: "}));
  }
  SECTION("bad indentation") {
    auto err = parse_error("name: a\nintensity: 1\n  period: 2\n", "bad.yaml");
    CHECK(ft::is(err, ft::errc::invalid_config));
    CHECK(std::regex_search(message(err), std::regex{"bad\\.yaml:[0-9]+: "}));
  }
}

TEST_CASE("a document that is not a mapping is invalid_config", "[config]") {
  CHECK(ft::is(parse_error("- a\n- b\n"), ft::errc::invalid_config));
  CHECK(ft::is(parse_error("just a string\n"), ft::errc::invalid_config));
}

TEST_CASE("a non-scalar value is invalid_config naming the field",
          "[config]") {
  auto err = parse_error("name: [a, b]\n");
  CHECK(ft::is(err, ft::errc::invalid_config));
  CHECK_THAT(message(err), Contains("name"));
}

TEST_CASE("intensity: -1 is invalid_intensity naming the line", "[config]") {
  auto err = parse_error("name: x\nintensity: -1\n");
  CHECK(ft::is(err, ft::errc::invalid_intensity));
  CHECK_THAT(message(err), Contains("test.yaml:2"));
  CHECK_THAT(message(err), Contains("intensity"));
  CHECK_THAT(message(err), Contains("-1"));
}

TEST_CASE("a fractional intensity is invalid_intensity", "[config]") {
  auto err = parse_error("intensity: 1.5\n");
  CHECK(ft::is(err, ft::errc::invalid_intensity));
  CHECK_THAT(message(err), Contains("1.5"));
}

TEST_CASE("intensity: abc is an error naming field, value and line",
          "[config]") {
  auto err = parse_error("name: x\nstrategy: one_for_one\nintensity: abc\n");
  CHECK_THAT(message(err), Contains("test.yaml:3"));
  CHECK_THAT(message(err), Contains("intensity"));
  CHECK_THAT(message(err), Contains("abc"));
}

TEST_CASE("numbers with trailing garbage are rejected", "[config]") {
  auto err = parse_error("period: 5s\n");
  CHECK_THAT(message(err), Contains("period"));
  CHECK_THAT(message(err), Contains("5s"));
  CHECK_FALSE(ft::supervisor_flags_from_yaml("intensity: 2x\n"));
  CHECK_FALSE(ft::supervisor_flags_from_yaml("period: .nan\n"));
  CHECK_FALSE(ft::supervisor_flags_from_yaml("period: .inf\n"));
}

TEST_CASE("period: 0 and negative periods are invalid_period", "[config]") {
  auto err = parse_error("intensity: 2\nperiod: 0\n");
  CHECK(ft::is(err, ft::errc::invalid_period));
  CHECK_THAT(message(err), Contains("test.yaml:2"));
  CHECK_THAT(message(err), Contains("period"));
  CHECK(ft::is(parse_error("period: -3\n"), ft::errc::invalid_period));
}

TEST_CASE("strategy: nonsense is invalid_strategy naming the value",
          "[config]") {
  auto err = parse_error("strategy: nonsense\n");
  CHECK(ft::is(err, ft::errc::invalid_strategy));
  CHECK_THAT(message(err), Contains("nonsense"));
  CHECK_THAT(message(err), Contains("test.yaml:1"));
}

TEST_CASE("an unknown auto_shutdown is rejected naming the value",
          "[config]") {
  auto err = parse_error("auto_shutdown: sometimes\n");
  CHECK_THAT(message(err), Contains("sometimes"));
  CHECK_THAT(message(err), Contains("auto_shutdown"));
}

TEST_CASE("buffer_capacity must be >= 1", "[config]") {
  auto err = parse_error("buffer_capacity: 0\n");
  CHECK(ft::is(err, ft::errc::invalid_config));
  CHECK_THAT(message(err), Contains("buffer_capacity"));
}

TEST_CASE("an unknown restart_strategy is invalid_delay", "[config]") {
  auto err = parse_error("restart_strategy: sometimes\n");
  CHECK(ft::is(err, ft::errc::invalid_delay));
  CHECK_THAT(message(err), Contains("sometimes"));
}

TEST_CASE("an invalid delay names the field and its line", "[config]") {
  SECTION("multiplier") {
    auto err = parse_error("restart_strategy: exponential\n"
                           "initial_delay: 1\n"
                           "multiplier: 0.5\n");
    CHECK(ft::is(err, ft::errc::invalid_delay));
    CHECK_THAT(message(err), Contains("test.yaml:3"));
    CHECK_THAT(message(err), Contains("multiplier"));
  }
  SECTION("jitter") {
    auto err = parse_error("restart_strategy: exponential\n"
                           "jitter: 2\n");
    CHECK(ft::is(err, ft::errc::invalid_delay));
    CHECK_THAT(message(err), Contains("test.yaml:2"));
    CHECK_THAT(message(err), Contains("jitter"));
  }
  SECTION("max_failures_per_interval") {
    auto err = parse_error("restart_strategy: failure_rate\n"
                           "delay: 1\n"
                           "max_failures_per_interval: 0\n");
    CHECK(ft::is(err, ft::errc::invalid_delay));
    CHECK_THAT(message(err), Contains("test.yaml:3"));
    CHECK_THAT(message(err), Contains("max_failures_per_interval"));
  }
  SECTION("negative delay") {
    auto err = parse_error("restart_strategy: fixed\ndelay: -1\n");
    CHECK(ft::is(err, ft::errc::invalid_delay));
    CHECK_THAT(message(err), Contains("delay"));
    CHECK_THAT(message(err), Contains("test.yaml:2"));
  }
}

TEST_CASE("simple_one_for_one with auto_shutdown is a bad combination",
          "[config]") {
  auto err = parse_error("strategy: simple_one_for_one\n"
                         "auto_shutdown: any_significant\n");
  CHECK(ft::is(err, ft::errc::bad_combination));
}

// -- fault handlers in configs ------------------------------------------------

TEST_CASE("strategy may name a registered fault handler",
          "[config][fault_handler]") {
  ft::register_fault_handler("config_test_handler", [] {
    return std::make_shared<counting_handler>(7);
  });
  auto res = ft::supervisor_flags_from_yaml("strategy: config_test_handler\n"
                                            "intensity: 2\n");
  REQUIRE(res);
  REQUIRE(res->handler != nullptr);
  auto* h = dynamic_cast<counting_handler*>(res->handler.get());
  REQUIRE(h != nullptr);
  CHECK(h->tag == 7);
  CHECK(res->intensity == 2);
}

TEST_CASE("a built-in strategy name leaves the handler unset",
          "[config][fault_handler]") {
  auto res = ft::supervisor_flags_from_yaml("strategy: one_for_all\n");
  REQUIRE(res);
  CHECK(res->handler == nullptr);
}

// -- files --------------------------------------------------------------------

TEST_CASE("supervisor_flags_from_yaml_file on a missing path", "[config]") {
  std::string path = "/nonexistent-ft-dir/flags.yaml";
  auto res = ft::supervisor_flags_from_yaml_file(path);
  REQUIRE_FALSE(res);
  CHECK(ft::is(res.error(), ft::errc::invalid_config));
  CHECK_THAT(message(res.error()), Contains(path));
}

TEST_CASE("supervisor_flags_from_yaml_file reads a file and names it in errors",
          "[config]") {
  SECTION("valid") {
    temp_file f{"ft-config-ok", "name: from_file\nintensity: 4\n"};
    auto res = ft::supervisor_flags_from_yaml_file(f.path.string());
    REQUIRE(res);
    CHECK(res->name == "from_file");
    CHECK(res->intensity == 4);
  }
  SECTION("invalid") {
    temp_file f{"ft-config-bad", "name: from_file\nintensity: -2\n"};
    auto res = ft::supervisor_flags_from_yaml_file(f.path.string());
    REQUIRE_FALSE(res);
    CHECK(ft::is(res.error(), ft::errc::invalid_intensity));
    CHECK_THAT(message(res.error()), Contains(f.path.string() + ":2"));
  }
}

// -- fault handler registry ---------------------------------------------------

TEST_CASE("fault handler registry: register, has, make, list",
          "[fault_handler]") {
  const std::string name = "registry_test_handler";
  CHECK_FALSE(ft::has_fault_handler("registry_test_never_registered"));
  // The registry outlives this test: share the counter, don't borrow it.
  auto calls = std::make_shared<int>(0);
  ft::register_fault_handler(name, [calls] {
    ++*calls;
    return std::make_shared<counting_handler>(*calls);
  });
  CHECK(ft::has_fault_handler(name));
  auto names = ft::registered_fault_handlers();
  CHECK(std::find(names.begin(), names.end(), name) != names.end());
  CHECK(std::is_sorted(names.begin(), names.end()));
  auto a = ft::make_fault_handler(name);
  REQUIRE(a);
  REQUIRE(*a != nullptr);
  auto b = ft::make_fault_handler(name);
  REQUIRE(b);
  // Each make runs the factory: distinct instances.
  CHECK(*calls == 2);
  CHECK(a->get() != b->get());
  auto* h = dynamic_cast<counting_handler*>(a->get());
  REQUIRE(h != nullptr);
  CHECK(h->tag == 1);
  h->handle_failure("w", ft::make_error(ft::errc::start_failed));
  CHECK(h->can_recover("w"));
}

TEST_CASE("registering a name again replaces the factory", "[fault_handler]") {
  const std::string name = "registry_replace_handler";
  ft::register_fault_handler(name, [] {
    return std::make_shared<counting_handler>(1);
  });
  ft::register_fault_handler(name, [] {
    return std::make_shared<counting_handler>(2);
  });
  auto names = ft::registered_fault_handlers();
  CHECK(std::count(names.begin(), names.end(), name) == 1);
  auto h = ft::make_fault_handler(name);
  REQUIRE(h);
  auto* ch = dynamic_cast<counting_handler*>(h->get());
  REQUIRE(ch != nullptr);
  CHECK(ch->tag == 2);
}

TEST_CASE("make_fault_handler of an unknown name is unknown_fault_handler",
          "[fault_handler]") {
  auto res = ft::make_fault_handler("no_such_handler_anywhere");
  REQUIRE_FALSE(res);
  CHECK(ft::is(res.error(), ft::errc::unknown_fault_handler));
  CHECK_THAT(message(res.error()), Contains("no_such_handler_anywhere"));
}

TEST_CASE("a factory returning null is unknown_fault_handler",
          "[fault_handler]") {
  ft::register_fault_handler("null_factory_handler",
                             [] { return std::shared_ptr<ft::fault_handler>{}; });
  auto res = ft::make_fault_handler("null_factory_handler");
  REQUIRE_FALSE(res);
  CHECK(ft::is(res.error(), ft::errc::unknown_fault_handler));
  // A config naming it fails as well instead of yielding a null handler.
  auto cfg = ft::supervisor_flags_from_yaml("strategy: null_factory_handler\n");
  REQUIRE_FALSE(cfg);
  CHECK(ft::is(cfg.error(), ft::errc::unknown_fault_handler));
}
