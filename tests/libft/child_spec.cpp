#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>

#include "ft/child_spec.hpp"
#include "ft/error.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using ft::auto_shutdown;
using ft::child_spec;
using ft::child_type;
using ft::restart_type;
using ft::shutdown_spec;
using ft::supervision_strategy;
using ft::supervisor_flags;

// Never called: validation only checks that a start function is set.
ft::start_fn dummy_start() {
  return [](caf::actor_system&, const caf::message&)
           -> caf::expected<caf::actor> {
    return caf::make_error(caf::sec::invalid_argument);
  };
}

child_spec valid_spec(std::string id = "w1") {
  return ft::worker(std::move(id), dummy_start());
}

std::string message(const caf::error& err) {
  return ft::render(err);
}

} // namespace

// -- child spec validation ----------------------------------------------------

TEST_CASE("worker builds a valid spec with defaults", "[child_spec]") {
  auto spec = ft::worker("w1", dummy_start(), restart_type::transient);
  CHECK(spec.id == "w1");
  CHECK(static_cast<bool>(spec.start));
  CHECK(spec.restart == restart_type::transient);
  CHECK(spec.type == child_type::worker);
  CHECK_FALSE(spec.significant);
  CHECK_FALSE(spec.shutdown.has_value());
  CHECK_FALSE(spec.delay.has_value());
  CHECK(ft::worker("w2", dummy_start()).restart == restart_type::permanent);
  CHECK_FALSE(ft::validate(spec, supervisor_flags{}));
}

TEST_CASE("validate rejects a child spec without id", "[child_spec]") {
  auto spec = valid_spec("");
  auto err = ft::validate(spec, supervisor_flags{});
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_child_spec));
}

TEST_CASE("validate rejects a child spec without start function",
          "[child_spec]") {
  auto spec = valid_spec("no_start");
  spec.start = nullptr;
  auto err = ft::validate(spec, supervisor_flags{});
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_child_spec));
  CHECK_THAT(message(err), Contains("no_start"));
  CHECK_THAT(message(err), Contains("start"));
}

TEST_CASE("validate rejects an out-of-range restart type", "[child_spec]") {
  auto spec = valid_spec("bad_restart");
  spec.restart = static_cast<restart_type>(17);
  auto err = ft::validate(spec, supervisor_flags{});
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_restart_type));
  CHECK_THAT(message(err), Contains("bad_restart"));
  CHECK_THAT(message(err), Contains("17"));
}

TEST_CASE("validate rejects an out-of-range child type", "[child_spec]") {
  auto spec = valid_spec("bad_type");
  spec.type = static_cast<child_type>(9);
  auto err = ft::validate(spec, supervisor_flags{});
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_child_type));
  CHECK_THAT(message(err), Contains("bad_type"));
}

TEST_CASE("validate rejects a shutdown timeout <= 0", "[child_spec]") {
  for (auto timeout : {caf::timespan{0}, caf::timespan{-1},
                       caf::timespan{-5s}}) {
    CAPTURE(timeout.count());
    auto spec = valid_spec("slow");
    spec.shutdown = shutdown_spec::after(timeout);
    auto err = ft::validate(spec, supervisor_flags{});
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::invalid_shutdown));
    CHECK_THAT(message(err), Contains("slow"));
  }
}

TEST_CASE("validate rejects an out-of-range shutdown mode", "[child_spec]") {
  auto spec = valid_spec("odd");
  spec.shutdown = shutdown_spec{static_cast<shutdown_spec::kind>(5), 1s};
  auto err = ft::validate(spec, supervisor_flags{});
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_shutdown));
}

TEST_CASE("validate accepts every valid shutdown", "[child_spec]") {
  for (auto sd : {shutdown_spec::brutal_kill(), shutdown_spec::infinity(),
                  shutdown_spec::after(1ns), shutdown_spec::after(30s)}) {
    auto spec = valid_spec();
    spec.shutdown = sd;
    CHECK_FALSE(ft::validate(spec, supervisor_flags{}));
  }
}

TEST_CASE("validate: significant children", "[child_spec]") {
  supervisor_flags any;
  any.auto_shutdown_mode = auto_shutdown::any_significant;
  supervisor_flags all;
  all.auto_shutdown_mode = auto_shutdown::all_significant;
  supervisor_flags never;
  SECTION("significant with permanent is a bad combination") {
    auto spec = valid_spec("sig");
    spec.significant = true;
    spec.restart = restart_type::permanent;
    auto err = ft::validate(spec, any);
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::bad_combination));
    CHECK_THAT(message(err), Contains("sig"));
    CHECK_THAT(message(err), Contains("permanent"));
  }
  SECTION("significant with auto_shutdown never is a bad combination") {
    auto spec = valid_spec("sig");
    spec.significant = true;
    spec.restart = restart_type::transient;
    auto err = ft::validate(spec, never);
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::bad_combination));
    CHECK_THAT(message(err), Contains("sig"));
    CHECK_THAT(message(err), Contains("never"));
  }
  SECTION("significant transient or temporary with auto_shutdown is fine") {
    for (auto rt : {restart_type::transient, restart_type::temporary}) {
      auto spec = valid_spec("sig");
      spec.significant = true;
      spec.restart = rt;
      CHECK_FALSE(ft::validate(spec, any));
      CHECK_FALSE(ft::validate(spec, all));
    }
  }
  SECTION("non-significant permanent with auto_shutdown is fine") {
    auto spec = valid_spec("plain");
    CHECK_FALSE(ft::validate(spec, any));
  }
}

TEST_CASE("validate rejects a child's invalid restart delay", "[child_spec]") {
  auto spec = valid_spec("delayed");
  spec.delay = ft::restart_delay::exponential(1s, 2s, 0.5);
  auto err = ft::validate(spec, supervisor_flags{});
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_delay));
  CHECK_THAT(message(err), Contains("delayed"));
  CHECK_THAT(message(err), Contains("multiplier"));
  spec.delay = ft::restart_delay::exponential(1s, 2s, 1.5);
  CHECK_FALSE(ft::validate(spec, supervisor_flags{}));
}

TEST_CASE("check_childspecs detects duplicate ids", "[child_spec]") {
  std::vector<child_spec> specs{valid_spec("a"), valid_spec("b"),
                                valid_spec("a")};
  auto err = ft::check_childspecs(specs);
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::duplicate_child_name));
  CHECK_THAT(message(err), Contains("a"));
  CHECK(message(err) == "duplicate_child_name: id = a");
}

TEST_CASE("check_childspecs accepts unique valid specs", "[child_spec]") {
  std::vector<child_spec> specs{valid_spec("a"), valid_spec("b"),
                                valid_spec("c")};
  CHECK_FALSE(ft::check_childspecs(specs));
  CHECK_FALSE(ft::check_childspecs({}));
}

TEST_CASE("check_childspecs reports an invalid spec", "[child_spec]") {
  auto bad = valid_spec("bad");
  bad.shutdown = shutdown_spec::after(0s);
  std::vector<child_spec> specs{valid_spec("a"), bad};
  auto err = ft::check_childspecs(specs);
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::invalid_shutdown));
  CHECK_THAT(message(err), Contains("bad"));
}

TEST_CASE("check_childspecs checks specs against the flags", "[child_spec]") {
  auto sig = valid_spec("sig");
  sig.significant = true;
  sig.restart = restart_type::transient;
  std::vector<child_spec> specs{sig};
  CHECK(ft::is(ft::check_childspecs(specs), ft::errc::bad_combination));
  supervisor_flags flags;
  flags.auto_shutdown_mode = auto_shutdown::any_significant;
  CHECK_FALSE(ft::check_childspecs(specs, flags));
}

// -- flag validation ----------------------------------------------------------

TEST_CASE("default supervisor flags are valid", "[child_spec][flags]") {
  supervisor_flags flags;
  CHECK_FALSE(ft::validate(flags));
  CHECK(flags.strategy == supervision_strategy::one_for_one);
  CHECK(flags.intensity == 1);
  CHECK(flags.period == 5s);
  CHECK(flags.auto_shutdown_mode == auto_shutdown::never);
  CHECK(flags.buffer_capacity == 1024);
  CHECK(flags.delay.type == ft::restart_delay::kind::none);
}

TEST_CASE("validate(flags) rejects bad values, naming them",
          "[child_spec][flags]") {
  supervisor_flags flags;
  SECTION("negative intensity") {
    flags.intensity = -1;
    auto err = ft::validate(flags);
    CHECK(ft::is(err, ft::errc::invalid_intensity));
    CHECK(message(err) == "invalid_intensity: intensity = -1");
  }
  SECTION("intensity 0 is valid") {
    flags.intensity = 0;
    CHECK_FALSE(ft::validate(flags));
  }
  SECTION("period zero") {
    flags.period = caf::timespan{0};
    auto err = ft::validate(flags);
    CHECK(ft::is(err, ft::errc::invalid_period));
    CHECK_THAT(message(err), Contains("period"));
  }
  SECTION("negative period") {
    flags.period = -1s;
    CHECK(ft::is(ft::validate(flags), ft::errc::invalid_period));
  }
  SECTION("bad strategy") {
    flags.strategy = static_cast<supervision_strategy>(4);
    auto err = ft::validate(flags);
    CHECK(ft::is(err, ft::errc::invalid_strategy));
    CHECK_THAT(message(err), Contains("strategy = 4"));
  }
  SECTION("bad auto_shutdown") {
    flags.auto_shutdown_mode = static_cast<auto_shutdown>(3);
    CHECK(ft::validate(flags));
  }
  SECTION("simple_one_for_one with auto_shutdown") {
    flags.strategy = supervision_strategy::simple_one_for_one;
    CHECK_FALSE(ft::validate(flags));
    for (auto mode :
         {auto_shutdown::any_significant, auto_shutdown::all_significant}) {
      flags.auto_shutdown_mode = mode;
      auto err = ft::validate(flags);
      CHECK(ft::is(err, ft::errc::bad_combination));
      CHECK_THAT(message(err), Contains("simple_one_for_one"));
      CHECK_THAT(message(err), Contains(ft::to_string(mode)));
    }
  }
  SECTION("other strategies with auto_shutdown are fine") {
    flags.auto_shutdown_mode = auto_shutdown::all_significant;
    for (auto s : {supervision_strategy::one_for_one,
                   supervision_strategy::one_for_all,
                   supervision_strategy::rest_for_one}) {
      flags.strategy = s;
      CHECK_FALSE(ft::validate(flags));
    }
  }
  SECTION("zero buffer capacity") {
    flags.buffer_capacity = 0;
    CHECK(ft::is(ft::validate(flags), ft::errc::invalid_config));
  }
  SECTION("invalid delay") {
    flags.delay = ft::restart_delay::failure_rate(0, 10s, 1s);
    auto err = ft::validate(flags);
    CHECK(ft::is(err, ft::errc::invalid_delay));
    CHECK_THAT(message(err), Contains("max_failures_per_interval"));
  }
}

// -- shutdown -----------------------------------------------------------------

TEST_CASE("effective_shutdown defaults depend on the child type",
          "[child_spec]") {
  auto w = valid_spec();
  auto ws = w.effective_shutdown();
  CHECK(ws.mode == shutdown_spec::kind::timeout);
  CHECK(ws.timeout == 5s);
  auto s = valid_spec();
  s.type = child_type::supervisor;
  CHECK(s.effective_shutdown().mode == shutdown_spec::kind::infinity);
  // An explicit shutdown wins for both.
  w.shutdown = shutdown_spec::brutal_kill();
  CHECK(w.effective_shutdown().mode == shutdown_spec::kind::brutal_kill);
  s.shutdown = shutdown_spec::after(2s);
  CHECK(s.effective_shutdown().mode == shutdown_spec::kind::timeout);
  CHECK(s.effective_shutdown().timeout == 2s);
}

TEST_CASE("to_string(shutdown_spec)", "[child_spec]") {
  CHECK(ft::to_string(shutdown_spec::brutal_kill()) == "brutal_kill");
  CHECK(ft::to_string(shutdown_spec::infinity()) == "infinity");
  auto str = ft::to_string(shutdown_spec::after(1500ms));
  CHECK_THAT(str, StartsWith("1.5"));
  CHECK_THAT(str, Catch::Matchers::EndsWith("s"));
}

// -- restart rules ------------------------------------------------------------

TEST_CASE("is_normal_exit", "[child_spec][should_restart]") {
  CHECK(ft::is_normal_exit(caf::error{}));
  CHECK(ft::is_normal_exit(caf::make_error(caf::exit_reason::normal)));
  CHECK(ft::is_normal_exit(caf::make_error(caf::exit_reason::user_shutdown)));
  CHECK_FALSE(ft::is_normal_exit(caf::make_error(caf::exit_reason::kill)));
  CHECK_FALSE(ft::is_normal_exit(
    caf::make_error(caf::exit_reason::unhandled_exception)));
  CHECK_FALSE(ft::is_normal_exit(caf::make_error(caf::sec::request_timeout)));
  CHECK_FALSE(ft::is_normal_exit(ft::make_error(ft::errc::start_failed)));
  // Same code as user_shutdown (4), other categories: abnormal.
  CHECK_FALSE(ft::is_normal_exit(ft::make_error(ft::errc::restarting)));
  CHECK_FALSE(ft::is_normal_exit(caf::error{4, caf::atom("system")}));
}

TEST_CASE("should_restart follows OTP's restart types",
          "[child_spec][should_restart]") {
  const caf::error normal_reasons[] = {
    caf::error{}, caf::make_error(caf::exit_reason::normal),
    caf::make_error(caf::exit_reason::user_shutdown)};
  const caf::error abnormal_reasons[] = {
    caf::make_error(caf::exit_reason::kill),
    caf::make_error(caf::exit_reason::unhandled_exception),
    caf::make_error(caf::exit_reason::unreachable),
    ft::make_error(ft::errc::start_failed, "boom"),
    ft::make_error(ft::errc::restarting),
    caf::error{42, caf::atom("app")}};
  for (auto& r : normal_reasons) {
    CAPTURE(ft::render(r));
    CHECK(ft::should_restart(restart_type::permanent, r));
    CHECK_FALSE(ft::should_restart(restart_type::transient, r));
    CHECK_FALSE(ft::should_restart(restart_type::temporary, r));
  }
  for (auto& r : abnormal_reasons) {
    CAPTURE(ft::render(r));
    CHECK(ft::should_restart(restart_type::permanent, r));
    CHECK(ft::should_restart(restart_type::transient, r));
    CHECK_FALSE(ft::should_restart(restart_type::temporary, r));
  }
}

TEST_CASE("restart_scope per strategy", "[child_spec][restart_scope]") {
  using v = std::vector<size_t>;
  CHECK(ft::restart_scope(supervision_strategy::one_for_one, 5, 2) == v{2});
  CHECK(ft::restart_scope(supervision_strategy::one_for_one, 1, 0) == v{0});
  CHECK(ft::restart_scope(supervision_strategy::simple_one_for_one, 5, 3)
        == v{3});
  CHECK(ft::restart_scope(supervision_strategy::one_for_all, 5, 2)
        == v{0, 1, 2, 3, 4});
  CHECK(ft::restart_scope(supervision_strategy::one_for_all, 1, 0) == v{0});
  CHECK(ft::restart_scope(supervision_strategy::rest_for_one, 5, 2)
        == v{2, 3, 4});
  CHECK(ft::restart_scope(supervision_strategy::rest_for_one, 5, 0)
        == v{0, 1, 2, 3, 4});
  CHECK(ft::restart_scope(supervision_strategy::rest_for_one, 5, 4) == v{4});
}

// -- names --------------------------------------------------------------------

TEST_CASE("enum names round-trip through parse_*", "[child_spec][parse]") {
  for (auto x : {restart_type::permanent, restart_type::transient,
                 restart_type::temporary}) {
    auto parsed = ft::parse_restart_type(ft::to_string(x));
    REQUIRE(parsed);
    CHECK(*parsed == x);
  }
  for (auto x : {child_type::worker, child_type::supervisor}) {
    auto parsed = ft::parse_child_type(ft::to_string(x));
    REQUIRE(parsed);
    CHECK(*parsed == x);
  }
  for (auto x : {supervision_strategy::one_for_one,
                 supervision_strategy::one_for_all,
                 supervision_strategy::rest_for_one,
                 supervision_strategy::simple_one_for_one}) {
    auto parsed = ft::parse_strategy(ft::to_string(x));
    REQUIRE(parsed);
    CHECK(*parsed == x);
  }
  for (auto x : {auto_shutdown::never, auto_shutdown::any_significant,
                 auto_shutdown::all_significant}) {
    auto parsed = ft::parse_auto_shutdown(ft::to_string(x));
    REQUIRE(parsed);
    CHECK(*parsed == x);
  }
}

TEST_CASE("enum names are the OTP names", "[child_spec][parse]") {
  CHECK(std::string{ft::to_string(restart_type::transient)} == "transient");
  CHECK(std::string{ft::to_string(child_type::supervisor)} == "supervisor");
  CHECK(std::string{ft::to_string(supervision_strategy::rest_for_one)}
        == "rest_for_one");
  CHECK(std::string{ft::to_string(auto_shutdown::any_significant)}
        == "any_significant");
  std::set<std::string> directives;
  for (auto d : {ft::directive::restart, ft::directive::stop,
                 ft::directive::escalate, ft::directive::ignore})
    directives.insert(ft::to_string(d));
  CHECK(directives
        == std::set<std::string>{"restart", "stop", "escalate", "ignore"});
}

TEST_CASE("parse_* rejects unknown names", "[child_spec][parse]") {
  for (std::string bad : {"", "bogus", "Permanent", "permanent ", "invalid"})
    CHECK_FALSE(ft::parse_restart_type(bad));
  for (std::string bad : {"", "Worker", "sup", "invalid"})
    CHECK_FALSE(ft::parse_child_type(bad));
  for (std::string bad : {"", "one-for-one", "ONE_FOR_ONE", "nonsense"})
    CHECK_FALSE(ft::parse_strategy(bad));
  for (std::string bad : {"", "always", "any", "invalid"})
    CHECK_FALSE(ft::parse_auto_shutdown(bad));
}

TEST_CASE("to_string of out-of-range enum values is not a valid name",
          "[child_spec][parse]") {
  auto rt = ft::to_string(static_cast<restart_type>(9));
  CHECK_FALSE(ft::parse_restart_type(rt));
  auto st = ft::to_string(static_cast<supervision_strategy>(9));
  CHECK_FALSE(ft::parse_strategy(st));
}
