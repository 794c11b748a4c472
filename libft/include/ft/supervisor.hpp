#pragma once

#include <cstddef>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/duration.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/meta/type_name.hpp>

#include "ft/child_spec.hpp"
#include "ft/events.hpp"

/// A supervisor with Erlang/OTP's semantics as a CAF actor. Create one with
/// `spawn_supervisor`; talk to it with the helpers below (or the raw
/// messages they send, documented on each atom).
namespace ft {

// -- message atoms ------------------------------------------------------------

/// `(start_child_atom, child_spec) -> caf::actor`, or for simple_one_for_one
/// `(start_child_atom, caf::message args) -> caf::actor`.
using start_child_atom = caf::atom_constant<caf::atom("ftstartch")>;

/// `(terminate_child_atom, std::string id) -> void`; for simple_one_for_one
/// `(terminate_child_atom, caf::actor child) -> void`.
using terminate_child_atom = caf::atom_constant<caf::atom("ftterminch")>;

/// `(restart_child_atom, std::string id) -> caf::actor`.
using restart_child_atom = caf::atom_constant<caf::atom("ftrestarch")>;

/// `(delete_child_atom, std::string id) -> void`.
using delete_child_atom = caf::atom_constant<caf::atom("ftdeletech")>;

/// `(which_children_atom) -> std::vector<child_info>`.
using which_children_atom = caf::atom_constant<caf::atom("ftwhichch")>;

/// `(count_children_atom) -> child_counts`.
using count_children_atom = caf::atom_constant<caf::atom("ftcountch")>;

/// `(describe_atom) -> supervisor_report`: the supervisor with every child's
/// state, restart count and last exit reason (for `GET /api/tree`).
using describe_atom = caf::atom_constant<caf::atom("ftdescribe")>;

/// `(send_to_child_atom, std::string id, caf::message msg) -> reply of child`.
/// Delivers `msg` to the child with its original sender, so the child's reply
/// goes to the requester. While the child restarts, the message waits in a
/// bounded buffer (see `supervisor_flags::buffer_capacity`).
using send_to_child_atom = caf::atom_constant<caf::atom("fttochild")>;

/// `(subscribe_atom, caf::actor subscriber) -> void`: the subscriber receives
/// every `supervisor_event` from now on; `(subscribe_atom, caf::actor,
/// event_mask)` only the kinds in the mask (e.g. a router that needs only
/// `child_restarted`). `(unsubscribe_atom, caf::actor)`.
using subscribe_atom = caf::atom_constant<caf::atom("ftsubscr")>;
using unsubscribe_atom = caf::atom_constant<caf::atom("ftunsubscr")>;

// -- introspection types ------------------------------------------------------

/// A child's state as `which_children` reports it: `running`, `restarting`
/// (a restart is pending or failed and will be retried), or `undefined`
/// (terminated, spec kept).
enum class child_state : uint8_t { running, restarting, undefined };

const char* to_string(child_state x) noexcept;

/// One row of `which_children`, as OTP's `{Id, Child, Type, Modules}`.
struct child_info {
  /// Empty for the dynamic children of simple_one_for_one (OTP: undefined).
  std::string id;
  /// Invalid unless `state == running`.
  caf::actor actor;
  child_state state = child_state::undefined;
  child_type type = child_type::worker;
};

/// As OTP's `count_children`: specs, running children, and how many of the
/// specs are supervisors and workers.
struct child_counts {
  size_t specs = 0;
  size_t active = 0;
  size_t supervisors = 0;
  size_t workers = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_counts& x) {
  return f(caf::meta::type_name("ft.child_counts"), x.specs, x.active,
           x.supervisors, x.workers);
}

/// One child as `describe` reports it: `child_info` plus its history, so an
/// operator sees which child keeps failing and why.
struct child_report {
  /// Empty for dynamic children (they have no ids; `actor` names them).
  std::string id;
  child_type type = child_type::worker;
  child_state state = child_state::undefined;
  caf::actor actor;
  /// Restarts of this child since its spec was added.
  uint64_t restarts = 0;
  /// The reason of its latest exit, rendered; empty before the first.
  std::string last_exit;
};

/// What `(describe_atom)` answers: enough to draw the tree one level at a
/// time (children of type supervisor are described by asking them).
struct supervisor_report {
  std::string name;
  supervision_strategy strategy = supervision_strategy::one_for_one;
  int intensity = 0;
  caf::timespan period{0};
  /// Restarts now inside the intensity window.
  size_t restarts_in_window = 0;
  /// All dynamic children (simple_one_for_one), of which at most
  /// `max_described_children` are listed in `children`.
  size_t dynamic_children = 0;
  /// Whether `children` leaves some out.
  bool truncated = false;
  std::vector<child_report> children;
};

/// A simple_one_for_one supervisor may run a million children: `describe`
/// lists this many and counts the rest.
constexpr size_t max_described_children = 100;

/// One supervisor and, below it, every running sub-supervisor.
struct supervision_tree {
  supervisor_report report;
  /// Parallel to `report.children`: the sub-tree of a running child of
  /// type supervisor, else empty.
  std::vector<std::unique_ptr<supervision_tree>> subtrees;
};

/// Describes `root` and every running sub-supervisor below it, depth first,
/// each answer waited for up to `timeout`. Blocks the calling thread (it
/// uses a scoped actor): call it from outside actors, e.g. an HTTP thread.
/// A sub-supervisor that does not answer in time (or is gone) is left out;
/// the root's failure is the result.
caf::expected<supervision_tree>
describe_tree(caf::actor_system& sys, const caf::actor& root,
              caf::timespan timeout = std::chrono::seconds(2));

// -- spawning -----------------------------------------------------------------

/// Validates `flags` and `children`, starts the children in order and
/// returns the running supervisor. A child whose start fails aborts the
/// start: the children already started are stopped in reverse order and the
/// result is `start_failed` naming the child. The supervisor monitors its
/// children; however it ends (orderly, crashed or killed) it stops its tree.
/// Stop it with `caf::anon_send_exit(sup, caf::exit_reason::user_shutdown)`.
caf::expected<caf::actor> spawn_supervisor(caf::actor_system& sys,
                                           supervisor_flags flags,
                                           std::vector<child_spec> children
                                           = {});

/// A child spec that runs a whole supervisor as a child (type supervisor,
/// shutdown infinity): the building block of supervision trees.
child_spec supervisor_child(std::string id, supervisor_flags flags,
                            std::vector<child_spec> children,
                            restart_type restart = restart_type::permanent);

/// Spawns an actor that writes every event it receives (supervisor, breaker
/// and recovery events) as one line to `out` (through CAF's `aout` when
/// `out` is `std::cout`). Subscribe it with `supervisor_flags::subscribers`,
/// `subscribe_atom`, `guard_options::subscribers` or
/// `recovery_options::subscribers`. `out` must outlive the logger.
caf::actor spawn_event_logger(caf::actor_system& sys,
                              std::ostream& out = std::cerr);

// -- typed request helpers ----------------------------------------------------

// Each helper sends one request and returns CAF's response handle, so the
// caller chooses how to wait: `.then(...)` or `.await(...)` in an
// event-based actor, `.receive(...)` in a scoped/blocking actor. `Self` is a
// pointer to (or `caf::scoped_actor` of) the requesting actor; `timeout` is
// `caf::infinite` or a `std::chrono` duration.

template <class Self, class Timeout = caf::infinite_t>
auto start_child(Self& self, const caf::actor& sup, child_spec spec,
                 Timeout timeout = caf::infinite) {
  return self->request(sup, timeout, start_child_atom::value,
                       std::move(spec));
}

template <class Self, class Timeout = caf::infinite_t>
auto start_dynamic_child(Self& self, const caf::actor& sup, caf::message args,
                         Timeout timeout = caf::infinite) {
  return self->request(sup, timeout, start_child_atom::value,
                       std::move(args));
}

template <class Self, class Timeout = caf::infinite_t>
auto terminate_child(Self& self, const caf::actor& sup, std::string id,
                     Timeout timeout = caf::infinite) {
  return self->request(sup, timeout, terminate_child_atom::value,
                       std::move(id));
}

template <class Self, class Timeout = caf::infinite_t>
auto terminate_dynamic_child(Self& self, const caf::actor& sup,
                             caf::actor child,
                             Timeout timeout = caf::infinite) {
  return self->request(sup, timeout, terminate_child_atom::value,
                       std::move(child));
}

template <class Self, class Timeout = caf::infinite_t>
auto restart_child(Self& self, const caf::actor& sup, std::string id,
                   Timeout timeout = caf::infinite) {
  return self->request(sup, timeout, restart_child_atom::value,
                       std::move(id));
}

template <class Self, class Timeout = caf::infinite_t>
auto delete_child(Self& self, const caf::actor& sup, std::string id,
                  Timeout timeout = caf::infinite) {
  return self->request(sup, timeout, delete_child_atom::value, std::move(id));
}

template <class Self, class Timeout = caf::infinite_t>
auto which_children(Self& self, const caf::actor& sup,
                    Timeout timeout = caf::infinite) {
  return self->request(sup, timeout, which_children_atom::value);
}

template <class Self, class Timeout = caf::infinite_t>
auto count_children(Self& self, const caf::actor& sup,
                    Timeout timeout = caf::infinite) {
  return self->request(sup, timeout, count_children_atom::value);
}

/// Sends `xs...` to child `id` through the supervisor (buffered while it
/// restarts); the child's reply comes back to `self`.
template <class Self, class Timeout, class... Ts>
auto request_child(Self& self, const caf::actor& sup, std::string id,
                   Timeout timeout, Ts&&... xs) {
  return self->request(sup, timeout, send_to_child_atom::value, std::move(id),
                       caf::make_message(std::forward<Ts>(xs)...));
}

} // namespace ft

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ft::child_spec)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ft::child_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<ft::child_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ft::supervisor_report)
