// Progressive recovery: a short-lived helper actor per request makes the
// first call and walks the recovery chain (the pure `recovery_plan` decides,
// the helper acts), so the caller's behavior stays untouched and every pause
// is a timer on the actor clock instead of a blocked thread. Modelled on
// retry_request.cpp.

#include "ft/recovery_request.hpp"

#include <chrono>
#include <optional>
#include <random>

#include <caf/all.hpp>

#include "ft/error.hpp"
#include "ft/supervisor.hpp"

#include "any_response.hpp"
#include "wall_clock.hpp"

namespace ft {

namespace {

// -- private messages ---------------------------------------------------------

/// `(recovery_start_atom) -> recovery_result`: the caller asks for the
/// outcome.
using recovery_start_atom = caf::atom_constant<caf::atom("ftrcstart")>;

/// `(recovery_step_atom)`: a step's pause ended, make the pending attempt.
using recovery_step_atom = caf::atom_constant<caf::atom("ftrcstep")>;

using detail::wall_clock_ms;

std::string plural(int n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

/// What the plan can work with, after leaving out the primary and invalid
/// handles.
recovery_targets targets_of(const std::vector<caf::actor>& pool,
                            const std::vector<recovery_resource>& resources,
                            const recovery_options& opts) {
  recovery_targets result;
  result.workers = pool.size();
  result.resources = resources.size();
  result.restartable = opts.supervisor && !opts.child_id.empty();
  result.fallback = static_cast<bool>(opts.fallback);
  return result;
}

// -- the helper actor ---------------------------------------------------------

/// Makes the first call and the chain's attempts of one recovery request,
/// answers the caller's `recovery_start_atom` request with the outcome, then
/// quits.
class recoverer : public caf::event_based_actor {
public:
  recoverer(caf::actor_config& cfg, caf::message msg, recovery_options opts,
            caf::actor_addr caller, caf::error refused)
    : caf::event_based_actor(cfg),
      msg_(std::move(msg)),
      opts_(std::move(opts)),
      caller_(std::move(caller)),
      refused_(std::move(refused)),
      primary_(opts_.worker),
      rng_(std::random_device{}()) {
    for (auto& x : opts_.pool)
      if (x && x != primary_)
        pool_.push_back(x);
    for (auto& x : opts_.resources)
      if (x.worker && x.worker != primary_)
        resources_.push_back(x);
    plan_.emplace(opts_.chain, targets_of(pool_, resources_, opts_));
  }

  const char* name() const override {
    return "ft.recoverer";
  }

  /// Members live until our last handle goes, not until we terminate: the
  /// caller's promise points back at us, the workers may too.
  void on_exit() override {
    rp_ = caf::response_promise{};
    primary_ = nullptr;
    pool_.clear();
    opts_.worker = nullptr;
    opts_.pool.clear();
    opts_.supervisor = nullptr;
  }

  caf::behavior make_behavior() override {
    // The request belongs to the caller: once it is gone, nobody waits for
    // the outcome and further steps would only load the workers.
    if (caller_) {
      monitor(caller_);
      set_down_handler([this](caf::down_msg& dm) {
        if (dm.source == caller_)
          cancel();
      });
    }
    return {
      [this](recovery_start_atom) -> caf::response_promise {
        rp_ = make_response_promise();
        if (refused_)
          fail(refused_);
        else
          call(primary_, "primary", std::nullopt);
        return rp_;
      },
      [this](recovery_step_atom) {
        if (!finished_)
          perform();
      },
    };
  }

private:
  // -- walking the chain ------------------------------------------------------

  /// The latest call failed (see `last_error_`): ask the plan what next,
  /// recording skipped steps, until an attempt is due or the chain ends.
  void advance() {
    while (!finished_) {
      auto act = plan_->next(last_error_, draw());
      switch (act.decision) {
        case recovery_decision::exhausted: {
          auto summary = "chain exhausted after " + plural(attempts_, "call")
                         + "; last error: " + render(last_error_);
          emit(act, "", caf::actor{}, recovery_outcome::exhausted,
               last_error_, summary);
          fail(make_error(errc::recovery_exhausted,
                          opts_.name + ": " + summary));
          return;
        }
        case recovery_decision::skip:
          emit(act, "", caf::actor{}, recovery_outcome::skipped, last_error_,
               act.reason);
          continue;
        case recovery_decision::attempt:
          pending_ = act;
          if (act.delay.count() > 0)
            delayed_send(this, act.delay, recovery_step_atom::value);
          else
            perform();
          return;
      }
    }
  }

  /// Makes the pending attempt.
  void perform() {
    auto act = pending_;
    switch (act.step) {
      case recovery_step_kind::immediate_retry:
      case recovery_step_kind::delayed_retry:
        call(primary_, "primary", act);
        return;
      case recovery_step_kind::switch_worker:
        call(pool_[act.target], "pool[" + std::to_string(act.target) + "]",
             act);
        return;
      case recovery_step_kind::switch_resource: {
        auto& res = resources_[act.target];
        call(res.worker, res.label, act);
        return;
      }
      case recovery_step_kind::restart:
        restart(act);
        return;
      case recovery_step_kind::degrade:
        degrade(act);
        return;
      case recovery_step_kind::escalate:
        escalate(act);
        return;
    }
  }

  /// Sends the request to `dest`; `act` is none for the first call.
  void call(const caf::actor& dest, std::string label,
            std::optional<recovery_action> act) {
    ++attempts_;
    auto timeout = opts_.chain.call_timeout;
    auto rh = timeout.count() > 0
                ? request(dest, caf::duration{timeout}, msg_)
                : request(dest, caf::infinite, msg_);
    detail::on_any_response(
      this, rh.id(),
      [this, dest, label = std::move(label), act](caf::message reply) {
        if (finished_)
          return;
        if (!reply.match_elements<caf::error>()) {
          if (act)
            emit(*act, label, dest, recovery_outcome::succeeded, {});
          succeed(std::move(reply), act, dest);
          return;
        }
        auto err = reply.get_as<caf::error>(0);
        if (err == caf::sec::request_timeout)
          err = make_error(errc::call_timeout,
                           label + ": no reply within "
                             + render_seconds(opts_.chain.call_timeout));
        if (act)
          emit(*act, label, dest, recovery_outcome::failed, err);
        failed(std::move(err));
      });
  }

  /// Asks the supervisor to stop and start the primary again (OTP's
  /// terminate_child + restart_child), then calls the new incarnation.
  void restart(const recovery_action& act) {
    auto self = this;
    auto label = "restart:" + opts_.child_id;
    auto sup = opts_.supervisor;
    auto id = opts_.child_id;
    auto restart_failed = [this, act, label](caf::error& err) {
      if (finished_)
        return;
      emit(act, label, primary_, recovery_outcome::failed, err);
      failed(std::move(err));
    };
    terminate_child(self, sup, id)
      .then(
        [this, self, sup, id, act, label, restart_failed]() {
          if (finished_)
            return;
          restart_child(self, sup, id)
            .then(
              [this, act, label](caf::actor& fresh) {
                if (finished_)
                  return;
                // The new incarnation also takes the later retries.
                primary_ = std::move(fresh);
                call(primary_, label, act);
              },
              restart_failed);
        },
        restart_failed);
  }

  /// Answers from the user's fallback.
  void degrade(const recovery_action& act) {
    ++attempts_;
    auto res = opts_.fallback(msg_, last_error_);
    if (res) {
      emit(act, "fallback", caf::actor{}, recovery_outcome::succeeded, {});
      succeed(std::move(*res), act, caf::actor{});
      return;
    }
    emit(act, "fallback", caf::actor{}, recovery_outcome::failed,
         res.error());
    failed(std::move(res.error()));
  }

  /// Tells the operator (and, if asked to, the supervisor) and gives up.
  void escalate(const recovery_action& act) {
    auto summary = "escalated after " + plural(attempts_, "call")
                   + "; last error: " + render(last_error_);
    auto ev = emit(act, "operator", primary_, recovery_outcome::escalated,
                   last_error_, summary);
    if (opts_.on_escalate)
      opts_.on_escalate(ev);
    if (opts_.escalate_to_supervisor && primary_)
      send_exit(primary_,
                make_error(errc::escalated, opts_.name + ": " + summary));
    fail(make_error(errc::recovery_exhausted, opts_.name + ": " + summary));
  }

  void failed(caf::error err) {
    last_error_ = std::move(err);
    advance();
  }

  // -- events -------------------------------------------------------------------

  recovery_event emit(const recovery_action& act, std::string target,
                      caf::actor actor, recovery_outcome outcome,
                      caf::error err, std::string detail = {}) {
    recovery_event ev;
    ev.name = opts_.name;
    ev.step = act.step;
    ev.attempt = act.attempt;
    ev.target = std::move(target);
    ev.actor = std::move(actor);
    ev.outcome = outcome;
    ev.error = std::move(err);
    ev.detail = std::move(detail);
    ev.delay = act.delay;
    ev.severity = severity_of(act.step, outcome);
    ev.timestamp_ms = wall_clock_ms();
    if (opts_.on_event)
      opts_.on_event(ev);
    // Anonymous: subscribers owe the helper no answer.
    for (auto& sub : opts_.subscribers)
      caf::anon_send(sub, ev);
    return ev;
  }

  // -- ending -------------------------------------------------------------------

  void succeed(caf::message reply, const std::optional<recovery_action>& act,
               caf::actor worker) {
    recovery_result res;
    res.reply = std::move(reply);
    if (act)
      res.step = act->step;
    res.worker = std::move(worker);
    res.attempts = attempts_;
    finish(std::move(res));
  }

  void fail(caf::error err) {
    finish(std::move(err));
  }

  template <class T>
  void finish(T&& result) {
    if (finished_)
      return;
    finished_ = true;
    rp_.deliver(std::forward<T>(result));
    // Pending timers and replies simply die with us.
    quit();
  }

  void cancel() {
    finished_ = true;
    // Nobody waits for the answer any more. Drop the promise: an undelivered
    // promise holds a strong reference to this actor (see retry_request).
    rp_ = caf::response_promise{};
    quit();
  }

  double draw() {
    if (opts_.random01)
      return opts_.random01();
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }

  caf::message msg_;
  recovery_options opts_;
  caf::actor_addr caller_;
  caf::error refused_;
  caf::actor primary_;
  std::vector<caf::actor> pool_;
  std::vector<recovery_resource> resources_;
  std::optional<recovery_plan> plan_;
  recovery_action pending_;
  std::minstd_rand rng_;
  caf::response_promise rp_;
  caf::error last_error_;
  int attempts_ = 0;
  bool finished_ = false;
};

} // namespace

void recovery_request(caf::event_based_actor* self, caf::message msg,
                      recovery_options opts, recovery_handler done) {
  // Refusals still go through the helper, so `done` always runs later and
  // in the same way, never inside this call.
  caf::error refused;
  if (auto err = validate(opts.chain))
    refused = std::move(err);
  else if (!opts.worker)
    refused = make_error(caf::sec::invalid_argument,
                         "recovery_request: no worker");
  auto helper = self->spawn<recoverer>(std::move(msg), std::move(opts),
                                       self->address(), std::move(refused));
  auto shared = std::make_shared<recovery_handler>(std::move(done));
  self->request(helper, caf::infinite, recovery_start_atom::value)
    .then([shared](recovery_result& res) { (*shared)(std::move(res)); },
          [shared](caf::error& err) { (*shared)(std::move(err)); });
}

} // namespace ft
