#pragma once

// Private to ft_actors: a response handler that takes any reply, whatever its
// types. CAF 0.17 has no catch-all response handler for event-based actors
// (`.then` needs the reply types), yet the supervisor, the breaker guard and
// the retrying request all relay replies they cannot know in advance.

#include <caf/behavior.hpp>
#include <caf/detail/behavior_impl.hpp>
#include <caf/detail/invoke_result_visitor.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>
#include <caf/scheduled_actor.hpp>

namespace ft::detail {

/// A behavior that matches every message and passes it to `Fun`, stored
/// in place (one allocation per response handler, not two).
template <class Fun>
class any_response : public caf::detail::behavior_impl {
public:
  any_response(caf::scheduled_actor* self, Fun fun)
    : self_(self), fun_(std::move(fun)) {
    // nop
  }

  caf::match_case::result invoke(caf::detail::invoke_result_visitor& f,
                                 caf::type_erased_tuple& xs) override {
    // The response is the current mailbox element, which CAF drops after
    // this handler: take its content rather than copy it (a reply that came
    // over the network would be copied element by element).
    auto* el = self_->current_mailbox_element();
    if (el != nullptr && &el->content() == &xs)
      fun_(el->move_content_to_message());
    else
      fun_(caf::message::copy(xs));
    // Report a (void) result: without one, CAF 0.17 takes the response as
    // unmatched and calls the handler a second time with
    // `unexpected_response`.
    f();
    return caf::match_case::match;
  }

private:
  caf::scheduled_actor* self_;
  Fun fun_;
};

/// Installs `fun` (callable with a `caf::message`) as the handler of the
/// response to `id` (a response id, as returned by `request(...).id()`),
/// whatever its types.
template <class Fun>
void on_any_response(caf::scheduled_actor* self, caf::message_id id,
                     Fun fun) {
  caf::behavior::impl_ptr impl
    = caf::make_counted<any_response<Fun>>(self, std::move(fun));
  self->add_multiplexed_response_handler(id, caf::behavior(std::move(impl)));
}

} // namespace ft::detail
