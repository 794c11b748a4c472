// Retrying requests: a short-lived helper actor per request makes the
// attempts, so the caller's behavior stays untouched (CAF 0.17 has no way to
// add handlers for private timer messages to an arbitrary actor) and every
// wait is a timer on the actor clock instead of a blocked thread.

#include "ft/retry_request.hpp"

#include <algorithm>
#include <chrono>
#include <random>

#include <caf/all.hpp>

#include "ft/breaker_registry.hpp"
#include "ft/deadline_request.hpp"
#include "ft/error.hpp"

#include "any_response.hpp"

namespace ft {

// -- retry_budget -------------------------------------------------------------

bool retry_budget::try_acquire() noexcept {
  auto cur = in_flight_.load();
  do {
    if (max_ != 0 && cur >= max_)
      return false;
  } while (!in_flight_.compare_exchange_weak(cur, cur + 1));
  return true;
}

void retry_budget::release() noexcept {
  auto cur = in_flight_.load();
  // Never wraps below zero, even on a stray release.
  while (cur > 0 && !in_flight_.compare_exchange_weak(cur, cur - 1)) {
    // retry
  }
}

namespace {

// -- private messages ---------------------------------------------------------

/// `(retry_start_atom) -> <reply of dest>`: the caller asks for the result.
using retry_start_atom = caf::atom_constant<caf::atom("ftrrstart")>;

/// `(retry_attempt_atom)`: a pause ended, make the next attempt (or probe).
using retry_attempt_atom = caf::atom_constant<caf::atom("ftrrtry")>;

/// `(retry_deadline_atom)`: `retry_options::until` has expired.
using retry_deadline_atom = caf::atom_constant<caf::atom("ftrrdl")>;

/// The smallest probe interval while waiting for a breaker, so that a policy
/// with `initial_delay` 0 cannot spin on the registry.
constexpr caf::timespan min_probe_interval = std::chrono::milliseconds(1);

// -- the helper actor ---------------------------------------------------------

/// Makes the attempts of one retrying request and answers the caller's
/// `retry_start_atom` request with the outcome, then quits.
class retrier : public caf::event_based_actor {
public:
  retrier(caf::actor_config& cfg, caf::actor dest, caf::message msg,
          retry_options opts, caf::actor_addr caller, caf::error refused,
          bool holds_slot, bool envelope)
    : caf::event_based_actor(cfg),
      dest_(std::move(dest)),
      // Wrapped once: every attempt carries the same deadline (`until`).
      msg_(envelope ? with_deadline(opts.until, std::move(msg))
                    : std::move(msg)),
      opts_(std::move(opts)),
      caller_(std::move(caller)),
      refused_(std::move(refused)),
      holds_slot_(holds_slot),
      rng_(std::random_device{}()) {
    // nop
  }

  const char* name() const override {
    return "ft.retrier";
  }

  caf::behavior make_behavior() override {
    // The request belongs to the caller: once it is gone, nobody waits for
    // the outcome and further attempts would only load the target.
    if (caller_) {
      monitor(caller_);
      set_down_handler([this](caf::down_msg& dm) {
        if (dm.source == caller_)
          cancel();
      });
    }
    return {
      [this](retry_start_atom) -> caf::response_promise {
        rp_ = make_response_promise();
        if (refused_) {
          finish(refused_);
          return rp_;
        }
        auto now = clock().now();
        state_.start(now);
        if (opts_.until.expired(now)) {
          finish(deadline_error());
          return rp_;
        }
        if (!opts_.until.is_never())
          delayed_send(this, opts_.until.remaining(now),
                       retry_deadline_atom::value);
        begin_attempt();
        return rp_;
      },
      [this](retry_attempt_atom) {
        if (!finished_)
          begin_attempt();
      },
      [this](retry_deadline_atom) {
        if (!finished_)
          finish(deadline_error());
      },
    };
  }

  void on_exit() override {
    // Killed or cancelled before `finish`: still give the slot back.
    give_back_slot();
    // Members live until our last handle goes, not until we terminate: the
    // caller's promise points back at us.
    rp_ = caf::response_promise{};
    dest_ = nullptr;
    opts_.registry = nullptr;
  }

private:
  // -- attempts ---------------------------------------------------------------

  /// Asks the breaker for a ticket (if any) and then calls the target.
  void begin_attempt() {
    if (opts_.until.expired(clock().now())) {
      finish(deadline_error());
      return;
    }
    if (!opts_.registry) {
      call();
      return;
    }
    acquiring_ = true;
    auto self = this;
    registry_acquire(self, opts_.registry, opts_.scope, opts_.key)
      .then(
        [this](uint64_t ticket) {
          acquiring_ = false;
          if (finished_) {
            // Answered meanwhile (deadline): the call will never be made.
            anon_send(opts_.registry, registry_release_atom::value, ticket);
            quit();
            return;
          }
          ticket_ = ticket;
          has_ticket_ = true;
          call();
        },
        [this](caf::error& err) {
          acquiring_ = false;
          if (finished_) {
            quit();
            return;
          }
          rejected(std::move(err));
        });
  }

  /// Sends one attempt to the target.
  void call() {
    ++attempts_;
    auto rh = opts_.call_timeout.count() > 0
                ? request(dest_, caf::duration{opts_.call_timeout}, msg_)
                : request(dest_, caf::infinite, msg_);
    detail::on_any_response(this, rh.id(), [this](caf::message reply) {
      if (finished_)
        return;
      if (!reply.match_elements<caf::error>()) {
        report({});
        finish(std::move(reply));
        return;
      }
      auto err = reply.get_as<caf::error>(0);
      if (err == caf::sec::request_timeout) {
        err = make_error(errc::call_timeout,
                         "attempt " + std::to_string(attempts_)
                           + ": no reply within "
                           + render_seconds(opts_.call_timeout));
        report_timeout();
      } else {
        report(err);
      }
      failed(std::move(err));
    });
  }

  /// The attempt failed with `err`: pause and retry, or give up.
  void failed(caf::error err) {
    last_error_ = err;
    auto pause = state_.next(opts_.policy, clock().now(), err, draw(),
                             opts_.until);
    if (!pause) {
      finish(std::move(pause.error()));
      return;
    }
    schedule(*pause);
  }

  /// The breaker refused the ticket with `err`.
  void rejected(caf::error err) {
    auto breaker_said_no = is(err, errc::circuit_open)
                           || is(err, errc::half_open_limit);
    if (!breaker_said_no || !opts_.policy.wait_for_half_open) {
      // Not retried: the breaker sheds load on purpose (see
      // `default_retryable`); any other error means the registry itself
      // failed, which another probe would not fix.
      finish(std::move(err));
      return;
    }
    auto now = clock().now();
    auto pause = std::max(opts_.policy.initial_delay, min_probe_interval);
    auto what = "circuit " + opts_.scope + "/" + opts_.key
                + " still rejects calls after " + std::to_string(attempts_)
                + " attempts; last error: " + render(err);
    if (!retry_fits(opts_.until, now, pause)) {
      finish(make_error(errc::deadline_exceeded, std::move(what)));
      return;
    }
    if (!state_.within_elapsed(opts_.policy, now, pause)) {
      finish(make_error(errc::retries_exhausted,
                        "max_elapsed = "
                          + render_seconds(opts_.policy.max_elapsed) + ": "
                          + what));
      return;
    }
    last_error_ = std::move(err);
    schedule(pause);
  }

  void schedule(caf::timespan pause) {
    if (pause.count() <= 0)
      send(this, retry_attempt_atom::value);
    else
      delayed_send(this, pause, retry_attempt_atom::value);
  }

  // -- breaker reports ----------------------------------------------------------

  // Reports go out anonymously: the registry's answer (nothing, or
  // `not_found` for an expired ticket) needs no handling, and an error
  // message arriving unrequested would trip this actor's error handler.

  void report(caf::error outcome) {
    if (!has_ticket_)
      return;
    has_ticket_ = false;
    anon_send(opts_.registry, registry_complete_atom::value, ticket_,
              std::move(outcome));
  }

  void report_timeout() {
    if (!has_ticket_)
      return;
    has_ticket_ = false;
    anon_send(opts_.registry, registry_timeout_atom::value, ticket_);
  }

  /// The call still in flight gets no outcome (deadline, cancellation): the
  /// target is not to blame, but a half-open trial slot must be freed.
  void release_ticket() {
    if (!has_ticket_)
      return;
    has_ticket_ = false;
    anon_send(opts_.registry, registry_release_atom::value, ticket_);
  }

  // -- ending -------------------------------------------------------------------

  caf::error deadline_error() const {
    std::string ctx = "deadline passed after " + std::to_string(attempts_)
                      + " attempts";
    if (last_error_)
      ctx += "; last error: " + render(last_error_);
    return make_error(errc::deadline_exceeded, std::move(ctx));
  }

  void give_back_slot() {
    if (holds_slot_ && opts_.budget) {
      holds_slot_ = false;
      opts_.budget->release();
    }
  }

  template <class T>
  void finish(T&& result) {
    if (finished_)
      return;
    finished_ = true;
    release_ticket();
    // Before delivering, so the caller's handler may start a new request.
    give_back_slot();
    rp_.deliver(std::forward<T>(result));
    // A pending ticket request must be answered first, so its ticket can be
    // released (see `begin_attempt`); pending timers simply die with us.
    if (!acquiring_)
      quit();
  }

  void cancel() {
    finished_ = true;
    release_ticket();
    give_back_slot();
    // Nobody waits for the answer any more. Drop the promise: an undelivered
    // promise holds a strong reference to this actor, and the cycle would
    // keep every cancelled retrier alive forever.
    rp_ = caf::response_promise{};
    if (!acquiring_)
      quit();
  }

  double draw() {
    if (opts_.random01)
      return opts_.random01();
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }

  caf::actor dest_;
  caf::message msg_;
  retry_options opts_;
  caf::actor_addr caller_;
  caf::error refused_;
  bool holds_slot_;
  std::minstd_rand rng_;
  caf::response_promise rp_;
  retry_state state_;
  caf::error last_error_;
  int attempts_ = 0;
  uint64_t ticket_ = 0;
  bool has_ticket_ = false;
  bool acquiring_ = false;
  bool finished_ = false;
};

} // namespace

void retry_request(caf::event_based_actor* self, const caf::actor& dest,
                   caf::message msg, retry_options opts, retry_handler done) {
  // A request made while handling one with a deadline inherits it. Read
  // here: the ambient deadline exists only while the caller's handler runs.
  auto ambient = current_deadline();
  opts.until = min(opts.until, ambient);
  auto envelope = opts.propagate_deadline && !ambient.is_never();
  // Refusals still go through the helper, so `done` always runs later and
  // in the same way, never inside this call.
  caf::error refused;
  bool holds_slot = false;
  if (auto err = validate(opts.policy)) {
    refused = std::move(err);
  } else if (!dest) {
    refused = make_error(caf::sec::invalid_argument,
                         "retry_request: no destination");
  } else if (opts.budget) {
    if (opts.budget->try_acquire())
      holds_slot = true;
    else
      refused = make_error(errc::too_many_retries,
                           "retry_request: "
                             + std::to_string(opts.budget->max_in_flight())
                             + " retrying requests already in flight");
  }
  auto helper = self->spawn<retrier>(dest, std::move(msg), std::move(opts),
                                     self->address(), std::move(refused),
                                     holds_slot, envelope);
  auto rh = self->request(helper, caf::infinite, retry_start_atom::value);
  detail::on_any_response(self, rh.id(),
                  [ambient, done = std::move(done)](caf::message reply) {
                    // `done` continues the caller's request: give it the
                    // caller's deadline back.
                    deadline_scope scope{ambient};
                    if (reply.match_elements<caf::error>())
                      done(reply.get_as<caf::error>(0));
                    else
                      done(std::move(reply));
                  });
}

} // namespace ft
