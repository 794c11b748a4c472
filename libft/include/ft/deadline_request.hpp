#pragma once

#include <functional>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/response_promise.hpp>
#include <caf/timespan.hpp>

#include "ft/deadline.hpp"

/// Deadline propagation between actors. A request carries its deadline; a
/// request made while handling it gets `min(parent's remaining time, its own
/// timeout)` (`deadline::child`), so the whole chain gives up together when
/// the first caller's time is up, instead of each hop restarting its own
/// clock and working for an answer nobody waits for.
///
/// CAF 0.17 mailbox elements carry no headers, so the deadline travels in the
/// message: a request with a deadline is the envelope
/// `(deadline_atom, ft::deadline, caf::message inner)`. The receiving side
/// unwraps it with `deadline_aware` (or a breaker guard, which forwards it
/// unchanged to its target); every actor that receives envelopes must do
/// one of the two, a plain behaviour answers them `unexpected_message`.
///
/// Within one process deadlines travel as time points (`ft::deadline` in the
/// envelope), so the time a message waits in a mailbox counts against it.
/// Steady time means nothing on another host: across nodes send
/// `deadline::budget(now)` and rebuild with `deadline::from_budget` on
/// arrival (see deadline.hpp); the envelope is for local messages only.
namespace ft {

/// First element of a deadline envelope (see the namespace comment).
using deadline_atom = caf::atom_constant<caf::atom("ftdeadline")>;

/// Wraps `msg` in a deadline envelope. Normally `request_with_deadline`
/// builds it; this is for senders with needs of their own (e.g. a request
/// through `caf::scoped_actor`).
caf::message with_deadline(deadline dl, caf::message msg);

namespace detail {

/// Whether `xs` is a deadline envelope; for the actors that unwrap them
/// (`deadline_aware`, the breaker guard).
bool is_deadline_envelope(const caf::type_erased_tuple& xs) noexcept;

} // namespace detail

// -- the receiving side -------------------------------------------------------

/// The deadline of the request whose handler is running on this thread:
/// that of its envelope, or `never()` outside handlers and for messages
/// without one. An ambient value (thread-local, set only while a handler of
/// a `deadline_aware` behaviour or a response handler of the helpers below
/// runs), so handlers need no extra parameter and the helpers below pick it
/// up on their own. Do not keep it past the handler: read it, use it.
deadline current_deadline() noexcept;

/// Makes `dl` the ambient deadline (`current_deadline()`) for its lifetime
/// and restores the previous one on destruction, so scopes nest. What
/// `deadline_aware` does around each handler; use it where a request chain
/// starts outside such a handler (a top-level caller) to have the helpers
/// below propagate `dl`. Not copyable; keep it on the stack.
class deadline_scope {
public:
  explicit deadline_scope(deadline dl) noexcept;
  ~deadline_scope();

  deadline_scope(const deadline_scope&) = delete;
  deadline_scope& operator=(const deadline_scope&) = delete;

private:
  deadline prev_;
};

/// Wraps `inner` so that `self` understands deadline envelopes:
/// - an envelope whose deadline has expired (on `self`'s clock) is answered
///   `deadline_exceeded` (context: by how much and for which actor) without
///   running any handler: nobody waits for the answer any more. An expired
///   envelope sent without a request is dropped silently (an error sent to a
///   sender that did not ask would trip its error handler);
/// - otherwise its inner message goes to `inner` while `current_deadline()`
///   returns the envelope's deadline; the handler's result (a value, an
///   error, a promise) is the answer, as without the envelope;
/// - any other message goes to `inner` unchanged, with `current_deadline()`
///   left at `never()`.
/// Keeps `inner`'s idle timeout. `or_else` on the result is not supported.
caf::behavior deadline_aware(caf::scheduled_actor* self, caf::behavior inner);

// -- the sending side ---------------------------------------------------------

/// What a request of libft's helpers ends with: the reply (any types, as a
/// message) or an error. `retry_handler` is the same type.
using reply_handler = std::function<void(caf::expected<caf::message>)>;

/// Sends `msg` to `dest` as a request with the deadline
/// `current_deadline().child(now, own_timeout)` (pass `caf::timespan::max()`
/// for no timeout of its own) in an envelope, so `dest` must be
/// `deadline_aware` (or a guard in front of such an actor). Then calls
/// `done` once, in `self`'s context like a response handler, with the reply
/// or error:
/// - no reply by the deadline: `deadline_exceeded` (CAF's own request
///   timeout, set to the remaining time, is mapped to it);
/// - a deadline that has already expired: `deadline_exceeded` without
///   sending anything.
/// While `done` runs, `current_deadline()` is the deadline that was current
/// at the call (the parent's, not the child's), so a handler that goes on
/// to make further requests for the same parent gets the parent's remaining
/// time. `done` never runs inside this call. No helper actor: one request
/// and CAF's request timer, as cheap as a plain request with a timeout.
void request_with_deadline(caf::event_based_actor* self, const caf::actor& dest,
                           caf::timespan own_timeout, caf::message msg,
                           reply_handler done);

/// The hop pattern in one call: a handler that returns the result of
/// `relay_with_deadline(self, next, own_timeout, msg)` answers its caller
/// with `next`'s reply or error (`deadline_exceeded` included), sent by
/// `request_with_deadline`. Only inside a handler of a request (it makes
/// `self`'s response promise).
caf::response_promise relay_with_deadline(caf::event_based_actor* self,
                                          const caf::actor& dest,
                                          caf::timespan own_timeout,
                                          caf::message msg);

} // namespace ft
