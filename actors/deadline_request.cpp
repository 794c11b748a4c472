// Deadline propagation: the envelope, the ambient deadline of the running
// handler and the two ends that use them. No helper actor anywhere: the
// receiving end is a behaviour hook (hooked_behavior.hpp), the sending end a
// plain request whose CAF timeout is the remaining time.

#include "ft/deadline_request.hpp"

#include <string>
#include <utility>

#include <caf/all.hpp>

#include "ft/error.hpp"

#include "any_response.hpp"
#include "hooked_behavior.hpp"

namespace ft {

namespace {

/// The deadline of the handler running on this thread (see
/// `current_deadline`). `deadline` is constexpr-constructible, so this needs
/// no dynamic initialisation guard.
thread_local deadline ambient_deadline;

} // namespace

// -- the envelope -------------------------------------------------------------

caf::message with_deadline(deadline dl, caf::message msg) {
  return caf::make_message(deadline_atom::value, dl, std::move(msg));
}

namespace detail {

bool is_deadline_envelope(const caf::type_erased_tuple& xs) noexcept {
  // The size test first: it rejects every other message without looking at
  // type information.
  return xs.size() == 3
         && xs.match_elements<deadline_atom, deadline, caf::message>();
}

} // namespace detail

// -- the ambient deadline -----------------------------------------------------

deadline current_deadline() noexcept {
  return ambient_deadline;
}

deadline_scope::deadline_scope(deadline dl) noexcept : prev_(ambient_deadline) {
  ambient_deadline = dl;
}

deadline_scope::~deadline_scope() {
  ambient_deadline = prev_;
}

// -- the receiving side -------------------------------------------------------

caf::behavior deadline_aware(caf::scheduled_actor* self, caf::behavior inner) {
  auto hook = [self](caf::detail::invoke_result_visitor& f,
                     caf::type_erased_tuple& xs,
                     caf::behavior& bhvr) -> caf::match_case::result {
    // Not an envelope: as if there were no wrapper. The ambient deadline is
    // left alone (it is `never` between handlers), so wrapping twice is
    // harmless.
    if (!detail::is_deadline_envelope(xs))
      return bhvr(f, xs);
    auto dl = xs.get_as<deadline>(1);
    auto now = self->clock().now();
    if (dl.expired(now)) {
      auto el = self->current_mailbox_element();
      if (el != nullptr && el->mid.is_request()) {
        caf::error err = make_error(
          errc::deadline_exceeded,
          "deadline passed " + render_seconds(now - dl.when())
            + " before " + self->name() + " (actor "
            + std::to_string(self->id()) + ") could handle the request");
        f(err);
      } else {
        // Nobody asked: nothing to answer (an error sent to a plain sender
        // would trip its error handler).
        f();
      }
      return caf::match_case::match;
    }
    // A copy of the inner message only if someone else still holds the
    // envelope, so a handler taking its arguments by reference does not
    // detach the envelope's shared data.
    auto msg = xs.move_if_unshared<caf::message>(2);
    deadline_scope scope{dl};
    return bhvr(f, msg);
  };
  return detail::hook_behavior(std::move(inner), std::move(hook));
}

// -- the sending side ---------------------------------------------------------

void request_with_deadline(caf::event_based_actor* self, const caf::actor& dest,
                           caf::timespan own_timeout, caf::message msg,
                           reply_handler done) {
  auto parent = current_deadline();
  auto now = self->clock().now();
  auto dl = parent.child(now, own_timeout);
  auto budget = dl.remaining(now);
  auto on_reply = [parent, budget,
                   done = std::move(done)](caf::message reply) {
    // The handler continues the parent's request: give it the parent's
    // deadline, not the child's.
    deadline_scope scope{parent};
    if (!reply.match_elements<caf::error>()) {
      done(std::move(reply));
      return;
    }
    auto err = reply.get_as<caf::error>(0);
    if (err == caf::sec::request_timeout)
      err = make_error(errc::deadline_exceeded,
                       "no reply within the deadline ("
                         + render_seconds(budget) + ")");
    done(std::move(err));
  };
  if (dl.expired(now)) {
    // Nothing to send: the answer would come too late for anyone. Answer
    // through our own mailbox, as CAF does for a request timeout, so `done`
    // runs later, like any response handler.
    auto id = self->new_request_id(caf::message_priority::normal);
    detail::on_any_response(self, id.response_id(), std::move(on_reply));
    self->eq_impl(id.response_id(), self->ctrl(), self->context(),
                  make_error(errc::deadline_exceeded,
                             "deadline passed " + render_seconds(now - dl.when())
                               + " ago: request not sent"));
    return;
  }
  auto timeout = dl.is_never() ? caf::duration{caf::infinite}
                               : caf::duration{budget};
  auto rh = self->request(dest, timeout, with_deadline(dl, std::move(msg)));
  detail::on_any_response(self, rh.id(), std::move(on_reply));
}

caf::response_promise relay_with_deadline(caf::event_based_actor* self,
                                          const caf::actor& dest,
                                          caf::timespan own_timeout,
                                          caf::message msg) {
  auto rp = self->make_response_promise();
  request_with_deadline(self, dest, own_timeout, std::move(msg),
                        [rp](caf::expected<caf::message> x) mutable {
                          if (x)
                            rp.deliver(std::move(*x));
                          else
                            rp.deliver(std::move(x.error()));
                        });
  return rp;
}

} // namespace ft
