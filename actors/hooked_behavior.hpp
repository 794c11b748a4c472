// Private to ft_actors: wrapping a `caf::behavior` so that code runs around
// every message it handles. Behaviour decorators (the breaker decorator, the
// deadline-aware wrapper) are built on this.
//
// CAF 0.17 has no public hook for this. A behaviour is an intrusive pointer
// to a `caf::detail::behavior_impl` whose virtual `invoke(visitor, tuple)`
// the actor calls for each message (`invoke_empty` and the `message&`
// overload both end up there). We subclass it, keep the inner behaviour and
// hand each message to a hook that decides whether and how to call it. The
// hook may pass its own visitor to see what the inner handler returned (the
// visitor is how CAF learns a handler's result and sends the response).
//
// `or_else` on a hooked behaviour is not supported (CAF's combinator reads
// the match-case table, which a hooked behaviour does not have).

#pragma once

#include <utility>

#include <caf/behavior.hpp>
#include <caf/detail/behavior_impl.hpp>
#include <caf/detail/invoke_result_visitor.hpp>
#include <caf/make_counted.hpp>
#include <caf/match_case.hpp>
#include <caf/type_erased_tuple.hpp>

namespace ft::detail {

/// `Hook` is callable as
/// `caf::match_case::result(caf::detail::invoke_result_visitor& f,
///                          caf::type_erased_tuple& xs, caf::behavior& inner)`
/// and normally ends with `return inner(f_or_its_own_visitor, xs);`.
template <class Hook>
class hooked_behavior_impl final : public caf::detail::behavior_impl {
public:
  hooked_behavior_impl(caf::behavior inner, Hook hook)
    : caf::detail::behavior_impl(inner.timeout()),
      inner_(std::move(inner)),
      hook_(std::move(hook)) {
    // nop
  }

  caf::match_case::result invoke(caf::detail::invoke_result_visitor& f,
                                 caf::type_erased_tuple& xs) override {
    return hook_(f, xs, inner_);
  }

  void handle_timeout() override {
    inner_.handle_timeout();
  }

private:
  caf::behavior inner_;
  Hook hook_;
};

/// Returns a behaviour that passes every message through `hook` (see
/// `hooked_behavior_impl`). Keeps the inner behaviour's idle timeout.
template <class Hook>
caf::behavior hook_behavior(caf::behavior inner, Hook hook) {
  caf::behavior::impl_ptr ptr
    = caf::make_counted<hooked_behavior_impl<Hook>>(std::move(inner),
                                                    std::move(hook));
  return caf::behavior{std::move(ptr)};
}

/// A visitor that passes every result on to `next` unchanged. Subclass it
/// and override what you want to observe (call the base to pass it on).
class forwarding_visitor : public caf::detail::invoke_result_visitor {
public:
  explicit forwarding_visitor(caf::detail::invoke_result_visitor& next)
    : next_(next) {
    // nop
  }

  using caf::detail::invoke_result_visitor::operator();

  /// No result now: the handler returned a promise or delegated.
  void operator()() override {
    next_();
  }

  void operator()(caf::error& x) override {
    next_(x);
  }

  void operator()(caf::message& x) override {
    next_(x);
  }

  void operator()(const caf::none_t& x) override {
    next_(x);
  }

protected:
  caf::detail::invoke_result_visitor& next_;
};

} // namespace ft::detail
