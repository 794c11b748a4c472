#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_message.hpp>
#include <caf/sec.hpp>

#include "ft/error.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

constexpr auto first_errc = static_cast<uint8_t>(ft::errc::none);
constexpr auto last_errc = static_cast<uint8_t>(ft::errc::invalid_argument);

} // namespace

TEST_CASE("make_error puts the code into category ft", "[error]") {
  for (auto code = static_cast<uint8_t>(first_errc + 1); code <= last_errc;
       ++code) {
    auto x = static_cast<ft::errc>(code);
    CAPTURE(ft::to_string(x));
    auto err = ft::make_error(x);
    REQUIRE(err);
    CHECK(err.category() == ft::error_category);
    CHECK(err.category() == caf::atom("ft"));
    CHECK(err.code() == code);
    CHECK(err.context().empty());
  }
}

TEST_CASE("make_error with context stores the context string", "[error]") {
  auto err = ft::make_error(ft::errc::invalid_intensity, "intensity = -1");
  REQUIRE(err);
  CHECK(err.category() == ft::error_category);
  CHECK(err.code() == static_cast<uint8_t>(ft::errc::invalid_intensity));
  REQUIRE(err.context().size() == 1);
  REQUIRE(err.context().match_element<std::string>(0));
  CHECK(err.context().get_as<std::string>(0) == "intensity = -1");
}

TEST_CASE("make_error(errc::none) is no error", "[error]") {
  CHECK_FALSE(ft::make_error(ft::errc::none));
  CHECK(ft::is(ft::make_error(ft::errc::none), ft::errc::none));
}

TEST_CASE("is matches exactly the libft error with that code", "[error]") {
  auto err = ft::make_error(ft::errc::duplicate_child_name, "id = a");
  CHECK(ft::is(err, ft::errc::duplicate_child_name));
  CHECK_FALSE(ft::is(err, ft::errc::bad_combination));
  CHECK_FALSE(ft::is(err, ft::errc::none));
  // Every error code matches itself and no other code.
  for (auto a = static_cast<uint8_t>(first_errc + 1); a <= last_errc; ++a)
    for (auto b = first_errc; b <= last_errc; ++b) {
      auto x = ft::make_error(static_cast<ft::errc>(a));
      CAPTURE(static_cast<int>(a), static_cast<int>(b));
      CHECK(ft::is(x, static_cast<ft::errc>(b)) == (a == b));
    }
}

TEST_CASE("is ignores errors of other categories with the same code",
          "[error]") {
  // exit_reason::user_shutdown and errc::restarting share the code 4.
  REQUIRE(static_cast<uint8_t>(caf::exit_reason::user_shutdown)
          == static_cast<uint8_t>(ft::errc::restarting));
  CHECK_FALSE(ft::is(caf::make_error(caf::exit_reason::user_shutdown),
                     ft::errc::restarting));
  auto sys = caf::error{static_cast<uint8_t>(ft::errc::already_started),
                        caf::atom("system")};
  CHECK_FALSE(ft::is(sys, ft::errc::already_started));
  CHECK(ft::is(caf::error{}, ft::errc::none));
  CHECK_FALSE(ft::is(caf::make_error(caf::exit_reason::kill), ft::errc::none));
}

TEST_CASE("to_string gives every errc a distinct OTP-style name", "[error]") {
  std::set<std::string> names;
  for (auto code = first_errc; code <= last_errc; ++code) {
    std::string name = ft::to_string(static_cast<ft::errc>(code));
    CAPTURE(static_cast<int>(code), name);
    CHECK_FALSE(name.empty());
    // Not the fallback for values outside the enum.
    CHECK(name != ft::to_string(static_cast<ft::errc>(last_errc + 1)));
    CHECK(names.insert(name).second);
  }
  CHECK(names.size() == static_cast<size_t>(last_errc - first_errc + 1));
  CHECK(std::string{ft::to_string(ft::errc::none)} == "none");
  CHECK(std::string{ft::to_string(ft::errc::already_present)}
        == "already_present");
  CHECK(std::string{ft::to_string(ft::errc::restart_intensity_exceeded)}
        == "restart_intensity_exceeded");
  CHECK(std::string{ft::to_string(ft::errc::child_stopped)}
        == "child_stopped");
}

TEST_CASE("to_string of a value outside the enum says so", "[error]") {
  std::string bogus = ft::to_string(static_cast<ft::errc>(last_errc + 1));
  CHECK_THAT(bogus, Contains("unknown"));
  for (auto code = first_errc; code <= last_errc; ++code)
    CHECK(bogus != ft::to_string(static_cast<ft::errc>(code)));
}

TEST_CASE("render shows the OTP name and the context of libft errors",
          "[error]") {
  CHECK(ft::render(ft::make_error(ft::errc::invalid_intensity,
                                  "intensity = -1"))
        == "invalid_intensity: intensity = -1");
  CHECK(ft::render(ft::make_error(ft::errc::buffer_full)) == "buffer_full");
  CHECK(ft::render(ft::make_error(ft::errc::duplicate_child_name, "id = w1"))
        == "duplicate_child_name: id = w1");
  CHECK(ft::render(caf::error{}) == "none");
}

TEST_CASE("render of a libft error with non-string context prints it",
          "[error]") {
  auto err = caf::error{static_cast<uint8_t>(ft::errc::not_found),
                        ft::error_category, caf::make_message(42, "w7")};
  auto str = ft::render(err);
  CHECK_THAT(str, StartsWith("not_found: "));
  CHECK_THAT(str, Contains("42"));
  CHECK_THAT(str, Contains("w7"));
}

TEST_CASE("render_ft_error matches render for category ft", "[error]") {
  auto err = ft::make_error(ft::errc::invalid_period, "period = 0s");
  CHECK(ft::render_ft_error(err.code(), err.category(), err.context())
        == ft::render(err));
  CHECK(ft::render_ft_error(static_cast<uint8_t>(ft::errc::escalated),
                            ft::error_category, caf::message{})
        == "escalated");
}

TEST_CASE("render names CAF exit reasons and system errors", "[error]") {
  CHECK(ft::render(caf::make_error(caf::exit_reason::kill)) == "kill");
  CHECK(ft::render(caf::make_error(caf::exit_reason::user_shutdown))
        == "user_shutdown");
  CHECK(ft::render(caf::make_error(caf::exit_reason::unhandled_exception))
        == "unhandled_exception");
  CHECK(ft::render(caf::make_error(caf::sec::request_timeout))
        == "request_timeout");
  // exit_reason::normal has code 0, i.e. it is no error at all.
  CHECK(ft::render(caf::make_error(caf::exit_reason::normal)) == "none");
}

TEST_CASE("render falls back to CAF's rendering for other categories",
          "[error]") {
  auto err = caf::error{7, caf::atom("custom")};
  auto str = ft::render(err);
  CHECK_FALSE(str.empty());
  CHECK(str != "none");
  CHECK_THAT(str, Contains("custom"));
  CHECK_THAT(str, Contains("7"));
}

TEST_CASE("is on no error matches only errc::none", "[error]") {
  // A normal exit reason is an empty caf::error; asking whether it is some
  // libft error must answer false (CAF 0.17's error::category() and code()
  // require a non-empty error).
  CHECK(ft::is(caf::error{}, ft::errc::none));
  for (auto code = static_cast<uint8_t>(first_errc + 1); code <= last_errc;
       ++code) {
    CAPTURE(ft::to_string(static_cast<ft::errc>(code)));
    CHECK_FALSE(ft::is(caf::error{}, static_cast<ft::errc>(code)));
    CHECK_FALSE(ft::is(caf::make_error(caf::exit_reason::normal),
                       static_cast<ft::errc>(code)));
  }
}
