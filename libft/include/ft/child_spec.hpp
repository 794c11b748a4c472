#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>
#include <caf/timespan.hpp>

#include "ft/fwd.hpp"
#include "ft/restart_delay.hpp"

namespace ft {

// -- enums (OTP names) --------------------------------------------------------

/// When a child is restarted: `permanent` always, `transient` only after an
/// abnormal exit (neither normal nor shutdown), `temporary` never.
enum class restart_type : uint8_t { permanent, transient, temporary };

enum class child_type : uint8_t { worker, supervisor };

/// Which siblings a failing child takes down with it.
enum class supervision_strategy : uint8_t {
  one_for_one,
  one_for_all,
  rest_for_one,
  simple_one_for_one,
};

/// Whether significant children ending stops their supervisor.
enum class auto_shutdown : uint8_t { never, any_significant, all_significant };

/// What a decider or fault handler asks the supervisor to do with a failure:
/// `restart` per strategy, `stop` (leave it dead and drop its spec), `ignore`
/// (leave it dead, keep the spec for `restart_child`) or `escalate` (stop all
/// children and fail the supervisor so its parent decides).
enum class directive : uint8_t { restart, stop, escalate, ignore };

const char* to_string(restart_type x) noexcept;
const char* to_string(child_type x) noexcept;
const char* to_string(supervision_strategy x) noexcept;
const char* to_string(auto_shutdown x) noexcept;
const char* to_string(directive x) noexcept;

/// Parse OTP names; `std::nullopt` for anything else.
std::optional<restart_type> parse_restart_type(const std::string& x);
std::optional<child_type> parse_child_type(const std::string& x);
std::optional<supervision_strategy> parse_strategy(const std::string& x);
std::optional<auto_shutdown> parse_auto_shutdown(const std::string& x);

// -- shutdown -----------------------------------------------------------------

/// How a child is stopped: killed at once, asked to exit and killed after a
/// timeout, or asked to exit and waited for (the default for supervisors,
/// which need time to stop their own subtree).
struct shutdown_spec {
  enum class kind : uint8_t { brutal_kill, timeout, infinity };

  kind mode = kind::timeout;
  caf::timespan timeout = std::chrono::seconds(5);

  static shutdown_spec brutal_kill() {
    return {kind::brutal_kill, caf::timespan{0}};
  }

  static shutdown_spec after(caf::timespan timeout) {
    return {kind::timeout, timeout};
  }

  static shutdown_spec infinity() {
    return {kind::infinity, caf::timespan{0}};
  }
};

std::string to_string(const shutdown_spec& x);

// -- child specs --------------------------------------------------------------

/// Starts a child: spawns it and returns its handle, or an error that makes
/// the start fail. `args` is empty except for the dynamic children of a
/// `simple_one_for_one` supervisor, where it carries `start_child`'s
/// arguments. Called on the supervisor's thread; must not block.
using start_fn
  = std::function<caf::expected<caf::actor>(caf::actor_system& sys,
                                            const caf::message& args)>;

/// Describes one child, as OTP's child specification.
struct child_spec {
  /// Unique within its supervisor.
  std::string id;

  start_fn start;

  restart_type restart = restart_type::permanent;

  /// Defaults to a 5 s timeout for workers and infinity for supervisors.
  std::optional<shutdown_spec> shutdown;

  child_type type = child_type::worker;

  /// A significant child ending may stop the supervisor (see auto_shutdown).
  bool significant = false;

  /// Overrides the supervisor's restart delay for this child.
  std::optional<restart_delay> delay;

  /// The shutdown in force, resolving the type-dependent default.
  shutdown_spec effective_shutdown() const {
    if (shutdown)
      return *shutdown;
    return type == child_type::supervisor ? shutdown_spec::infinity()
                                          : shutdown_spec{};
  }
};

/// Spawns `fun(xs...)` as a child; for the common case of a function-based
/// actor that needs no start-time checks.
template <class F, class... Ts>
start_fn start_fun(F fun, Ts... xs) {
  return [=](auto& sys, const caf::message&) -> caf::expected<caf::actor> {
    return sys.spawn(fun, xs...);
  };
}

/// Builds a worker child spec.
child_spec worker(std::string id, start_fn start,
                  restart_type restart = restart_type::permanent);

// -- supervisor flags ---------------------------------------------------------

/// Consulted for each abnormal exit of a permanent or transient child.
using decider
  = std::function<directive(const std::string& child_id,
                            const caf::error& reason)>;

/// OTP's supervisor flags plus libft's extensions (restart delays, message
/// buffering, custom deciders and fault handlers).
struct supervisor_flags {
  /// Shown in events and logs.
  std::string name = "supervisor";

  supervision_strategy strategy = supervision_strategy::one_for_one;

  /// More than `intensity` restarts within `period` make the supervisor give
  /// up: it stops its children and exits with `restart_intensity_exceeded`.
  int intensity = 1;
  caf::timespan period = std::chrono::seconds(5);

  auto_shutdown auto_shutdown_mode = auto_shutdown::never;

  /// Default restart delay for all children.
  restart_delay delay;

  /// Messages sent through the supervisor to a restarting child, buffered
  /// per child until its replacement runs. Overflow answers `buffer_full`.
  size_t buffer_capacity = 1024;

  /// Optional: decides what to do with a failure instead of the restart type.
  ft::decider decider;

  /// Optional: a fault handler (see fault_handler.hpp); used if no decider.
  std::shared_ptr<fault_handler> handler;

  /// Subscribers that receive every `supervisor_event` from the start.
  std::vector<caf::actor> subscribers;
};

// -- validation ---------------------------------------------------------------

/// Checks the flags; the error names the field and the value.
caf::error validate(const supervisor_flags& flags);

/// Checks one spec against the flags it will run under.
caf::error validate(const child_spec& spec, const supervisor_flags& flags);

/// Checks a list of specs: each spec, and ids unique (`duplicate_child_name`).
/// As OTP's `supervisor:check_childspecs/1`.
caf::error check_childspecs(const std::vector<child_spec>& specs,
                            const supervisor_flags& flags = {});

// -- pure supervision rules ---------------------------------------------------

/// Whether `reason` counts as a normal end for restart decisions (OTP's
/// `normal` and `shutdown`): CAF's `normal` and `user_shutdown`.
bool is_normal_exit(const caf::error& reason) noexcept;

/// OTP's rule: restart a permanent child always, a transient one only after
/// an abnormal exit, a temporary one never.
bool should_restart(restart_type type, const caf::error& reason) noexcept;

/// Given children in start order and the index of the failed one, returns the
/// indices the strategy restarts, in start order (the failed one included).
std::vector<size_t> restart_scope(supervision_strategy strategy,
                                  size_t num_children, size_t failed);

} // namespace ft
