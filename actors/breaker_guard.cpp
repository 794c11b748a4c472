// The breaker guard: an event-based actor that owns one `ft::breaker` (the
// pure state machine in ft_core) and applies it to the calls of a target
// actor. The breaker decides; this file supplies the time, the call
// timeouts, the relay of replies and the events.
//
// Every message that is not a control message reaches the default handler
// (CAF 0.17's only catch-all for event-based actors) and counts as a call.
// An admitted request goes to the target as a request of our own, so the
// guard sees the outcome: the reply (of any types, through the same
// `any_response` handler the supervisor uses) or an error. The original requester
// gets the answer through a response promise; the pending table (call id ->
// promise, permit, start) makes sure each call is answered and recorded
// exactly once, whichever comes first: the reply, the call timeout, the
// call's deadline or the target's death.
//
// A call in a deadline envelope (deadline_request.hpp) goes to the target
// unchanged; the guard only reads the deadline: expired on arrival, the call
// is refused before the breaker sees it; otherwise whichever of the call
// timeout and the deadline comes first ends the wait. A deadline is the
// caller's impatience, not the target's fault: when it ends a call, the
// permit is released without an outcome.

#include "ft/breaker_guard.hpp"

#include <chrono>
#include <deque>
#include <set>
#include <unordered_map>
#include <utility>

#include <caf/all.hpp>

#include "ft/deadline_request.hpp"
#include "ft/error.hpp"

#include "any_response.hpp"
#include "breaker_events.hpp"

namespace ft {

namespace {

// -- private message atoms ----------------------------------------------------

/// `(call_timeout_atom)`: the earliest pending call deadline is due.
using call_timeout_atom = caf::atom_constant<caf::atom("ftbrtmo")>;

/// `(deadline_tick_atom)`: the earliest envelope deadline of a pending call
/// (see `expiries_`) may be due.
using deadline_tick_atom = caf::atom_constant<caf::atom("ftbrdltick")>;

/// `(probe_atom)`: the open period may have ended; publishes the lazy
/// `open -> half_open` transition on time instead of on the next call.
using probe_atom = caf::atom_constant<caf::atom("ftbrprobe")>;

using time_point = caf::actor_clock::time_point;


// -- the actor ----------------------------------------------------------------

class breaker_guard_actor : public caf::event_based_actor {
public:
  breaker_guard_actor(caf::actor_config& cfg, caf::actor target,
                      breaker_config bcfg, guard_options opts)
    : caf::event_based_actor(cfg),
      target_(std::move(target)),
      breaker_(std::move(bcfg), clock().now()),
      name_(std::move(opts.name)),
      subscribers_(std::move(opts.subscribers)) {
    // The listener only queues: it must not call back into the breaker, and
    // a call's outcome event should precede the transition it caused.
    breaker_.on_transition(
      [this](const breaker_transition& t) { transitions_.push_back(t); });
  }

  const char* name() const override {
    return "ft.breaker_guard";
  }

  /// Answers every call still pending: CAF 0.17 does not break the promises
  /// of a terminated actor, and a requester without timeout would hang.
  void on_exit() override {
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& kvp : pending)
      kvp.second.rp.deliver(caf::make_error(caf::sec::request_receiver_down));
    // Members live until our last handle goes, not until we terminate:
    // release the target and the subscribers, which may point back at us.
    target_ = nullptr;
    subscribers_.clear();
  }

  caf::behavior make_behavior() override {
    monitor(target_);
    for (auto& s : subscribers_)
      monitor(s);
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
    set_default_handler(
      [this](caf::scheduled_actor*,
             caf::message_view& xs) -> caf::result<caf::message> {
        return on_call(xs);
      });
    return {
      [this](breaker_reset_atom) {
        breaker_.reset(clock().now());
        flush();
      },
      [this](breaker_force_open_atom) {
        breaker_.force_open(clock().now());
        flush();
      },
      [this](breaker_disable_atom) {
        breaker_.disable(clock().now());
        flush();
      },
      [this](breaker_stats_atom) {
        auto now = clock().now();
        // Publish a due `open -> half_open` before reporting it.
        breaker_.state(now);
        flush();
        return breaker_.stats(now);
      },
      [this](breaker_subscribe_atom, caf::actor& s) {
        if (!s)
          return;
        for (auto& x : subscribers_)
          if (x == s)
            return;
        monitor(s);
        subscribers_.push_back(std::move(s));
      },
      [this](breaker_unsubscribe_atom, const caf::actor& s) {
        remove_subscriber(s.address());
      },
      [this](call_timeout_atom) { on_tick(); },
      [this](deadline_tick_atom) { on_deadline_tick(); },
      [this](probe_atom) {
        breaker_.state(clock().now());
        flush();
      },
    };
  }

private:
  struct call {
    caf::response_promise rp;
    breaker_permit permit;
    time_point start;
    /// The deadline of the call's envelope (`never` without one).
    deadline dl;
    /// Whether `dl` ends the wait (it comes before the call timeout): the
    /// call is in `expiries_`.
    bool by_deadline;
  };

  // -- calls ------------------------------------------------------------------

  caf::result<caf::message> on_call(caf::message_view& xs) {
    auto now = clock().now();
    if (!current_mailbox_element()->mid.is_request()) {
      forward_async(xs.move_content_to_message(), now);
      return caf::delegated<caf::message>{};
    }
    // A request with a deadline: one size check for all other calls.
    auto dl = deadline::never();
    if (detail::is_deadline_envelope(xs.content())) {
      dl = xs.content().get_as<deadline>(1);
      if (dl.expired(now))
        // Refused before the breaker sees it: the target's health has
        // nothing to do with it, so no permit, no counters, no event.
        return make_error(errc::deadline_exceeded,
                          "deadline passed " + render_seconds(now - dl.when())
                            + " before guard '" + name_
                            + "' could call its target");
    }
    auto permit = breaker_.try_acquire(now);
    if (!permit) {
      auto err = std::move(permit.error());
      publish(breaker_event_kind::rejected, err, caf::timespan{0});
      flush();
      return err;
    }
    flush();
    auto id = ++next_call_;
    auto rp = make_response_promise();
    auto timeout = breaker_.config().call_timeout;
    auto has_timeout = timeout > caf::timespan{0};
    // The deadline ends the wait when it comes first; at a tie the call
    // timeout wins (the target had all its time and did not answer).
    auto by_deadline = !dl.is_never()
                       && (!has_timeout || dl.remaining(now) < timeout);
    pending_.emplace(id, call{rp, *permit, now, dl, by_deadline});
    auto rh = request(target_, caf::infinite, xs.move_content_to_message());
    auto on_reply = [this, id](caf::message reply) { on_result(id, reply); };
    detail::on_any_response(this, rh.id(), std::move(on_reply));
    if (by_deadline) {
      expiries_.emplace(dl.when(), id);
      schedule_deadline_tick(now);
    } else if (has_timeout) {
      // One timer per guard, not one delayed message per call: CAF 0.17's
      // clock takes a lock and a map node per delayed message, which cut
      // throughput to a third. With one call_timeout, deadlines come in
      // order, so the front of the queue is always the next one due.
      deadlines_.emplace_back(now + timeout, id);
      if (!tick_scheduled_) {
        tick_scheduled_ = true;
        delayed_send(this, timeout, call_timeout_atom::value);
      }
    }
    return rp;
  }

  /// A message without a request has no outcome to count: pass it on, with
  /// its original sender, while the circuit lets traffic through without
  /// limits (`closed`, `disabled`); otherwise the target is spared it.
  void forward_async(caf::message msg, time_point now) {
    auto st = breaker_.state(now);
    flush();
    if (st == breaker_state::closed || st == breaker_state::disabled) {
      target_->enqueue(caf::make_mailbox_element(current_sender(),
                                                 caf::make_message_id(), {},
                                                 std::move(msg)),
                       context());
      return;
    }
    publish(breaker_event_kind::rejected,
            make_error(errc::circuit_open,
                       "dropped an asynchronous message in state "
                         + std::string(to_string(st))),
            caf::timespan{0});
  }

  /// The target answered call `id` (or CAF answered for it).
  void on_result(uint64_t id, caf::message& reply) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return; // Timed out or failed with the target's death: already done.
    auto c = std::move(i->second);
    pending_.erase(i);
    if (c.by_deadline)
      expiries_.erase({c.dl.when(), id});
    auto now = clock().now();
    auto duration = now - c.start;
    if (reply.match_elements<caf::error>()) {
      auto err = reply.get_as<caf::error>(0);
      if (is(err, errc::deadline_exceeded) && c.dl.expired(now)) {
        // A deadline-aware target gave up because the caller's deadline
        // passed (e.g. while the call waited in its mailbox): as if our own
        // deadline timer had come first, whichever the clock delivered
        // first.
        breaker_.release(c.permit);
        flush();
        c.rp.deliver(std::move(err));
        return;
      }
      record_error(c, now, duration, err);
      c.rp.deliver(std::move(err));
      return;
    }
    breaker_.record_success(c.permit, now, duration);
    publish(breaker_event_kind::success, caf::error{}, duration);
    flush();
    c.rp.deliver(std::move(reply));
  }

  void record_error(call& c, time_point now, caf::timespan duration,
                    const caf::error& err) {
    breaker_.record_error(c.permit, now, duration, err);
    auto& pred = breaker_.config().is_failure;
    auto counts = !pred || pred(err);
    publish(counts ? breaker_event_kind::failure : breaker_event_kind::success,
            err, duration);
    flush();
  }

  /// Expires every call whose deadline passed, then waits for the next one.
  void on_tick() {
    tick_scheduled_ = false;
    auto now = clock().now();
    while (!deadlines_.empty()
           && (deadlines_.front().first <= now
               || pending_.count(deadlines_.front().second) == 0)) {
      auto id = deadlines_.front().second;
      deadlines_.pop_front();
      on_timeout(id); // no-op for calls answered in time
    }
    if (!deadlines_.empty()) {
      tick_scheduled_ = true;
      delayed_send(this, deadlines_.front().first - now,
                   call_timeout_atom::value);
    }
  }

  void on_timeout(uint64_t id) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return; // Answered in time.
    auto c = std::move(i->second);
    pending_.erase(i);
    auto now = clock().now();
    auto timeout = breaker_.config().call_timeout;
    breaker_.record_timeout(c.permit, now);
    auto err = make_error(errc::call_timeout,
                          "no reply within " + render_seconds(timeout));
    publish(breaker_event_kind::timeout, err, now - c.start);
    flush();
    c.rp.deliver(std::move(err));
  }

  /// Ends every call whose deadline passed, then waits for the next one.
  /// Ticks are not cancelled: one scheduled before an earlier deadline
  /// arrived still fires and finds nothing (or less) to do.
  void on_deadline_tick() {
    auto now = clock().now();
    if (now >= deadline_tick_at_)
      deadline_tick_at_ = time_point::max();
    while (!expiries_.empty() && expiries_.begin()->first <= now) {
      auto id = expiries_.begin()->second;
      expiries_.erase(expiries_.begin());
      on_deadline(id, now);
    }
    schedule_deadline_tick(now);
  }

  /// Makes sure a tick comes no later than the earliest deadline.
  void schedule_deadline_tick(time_point now) {
    if (expiries_.empty())
      return;
    auto next = expiries_.begin()->first;
    if (next >= deadline_tick_at_)
      return;
    deadline_tick_at_ = next;
    delayed_send(this, next - now, deadline_tick_atom::value);
  }

  /// Call `id`'s deadline passed before its call timeout: the caller gets
  /// `deadline_exceeded`; the breaker gets no outcome (the target was not
  /// judged slow by its own standard, the call timeout), but the permit is
  /// released (frees a half-open trial slot). No event either. The late
  /// reply is dropped.
  void on_deadline(uint64_t id, time_point now) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return;
    auto c = std::move(i->second);
    pending_.erase(i);
    breaker_.release(c.permit);
    flush();
    c.rp.deliver(make_error(errc::deadline_exceeded,
                            "no reply from the target of guard '" + name_
                              + "' within the deadline (waited "
                              + render_seconds(now - c.start) + ")"));
  }

  void on_down(const caf::down_msg& dm) {
    if (dm.source != target_.address()) {
      remove_subscriber(dm.source);
      return;
    }
    // Requests still in the target's mailbox bounce on their own, but one
    // it took before dying would never be answered: fail them all now (a
    // later bounce finds nothing pending).
    auto pending = std::move(pending_);
    pending_.clear();
    expiries_.clear();
    auto now = clock().now();
    for (auto& kvp : pending) {
      auto err = caf::make_error(caf::sec::request_receiver_down);
      record_error(kvp.second, now, now - kvp.second.start, err);
      kvp.second.rp.deliver(std::move(err));
    }
  }

  // -- events -----------------------------------------------------------------

  /// Publishes the queued transitions and, when the circuit opened, arranges
  /// to publish its `open -> half_open` when the open period ends.
  void flush() {
    if (transitions_.empty())
      return;
    auto ts = std::move(transitions_);
    transitions_.clear();
    bool opened = false;
    for (auto& t : ts) {
      send_all(detail::transition_event(name_, t));
      opened = opened || t.to == breaker_state::open;
    }
    if (!opened || breaker_.current_state() != breaker_state::open)
      return;
    auto now = clock().now();
    auto st = breaker_.stats(now);
    if (!st.open_until)
      return;
    auto delay = *st.open_until - now;
    if (delay > caf::timespan{0})
      delayed_send(this, delay, probe_atom::value);
    else
      send(this, probe_atom::value);
  }

  void publish(breaker_event_kind kind, caf::error reason,
               caf::timespan duration) {
    if (subscribers_.empty())
      return;
    send_all(detail::outcome_event(name_, kind, breaker_.current_state(),
                                   std::move(reason), duration));
  }

  void send_all(const breaker_event& ev) {
    for (auto& s : subscribers_)
      send(s, ev);
  }

  void remove_subscriber(const caf::actor_addr& x) {
    for (auto i = subscribers_.begin(); i != subscribers_.end(); ++i)
      if (i->address() == x) {
        demonitor(*i);
        subscribers_.erase(i);
        return;
      }
  }

  // -- member variables -------------------------------------------------------

  caf::actor target_;
  breaker breaker_;
  std::string name_;
  std::vector<caf::actor> subscribers_;
  std::vector<breaker_transition> transitions_;
  std::unordered_map<uint64_t, call> pending_;
  /// Deadlines of pending calls in call order (see on_call()).
  std::deque<std::pair<caf::actor_clock::time_point, uint64_t>> deadlines_;
  bool tick_scheduled_ = false;
  /// Pending calls ended by their deadline (see on_call()), earliest first.
  /// Not in call order, unlike `deadlines_`; removed when answered.
  std::set<std::pair<time_point, uint64_t>> expiries_;
  /// When the earliest deadline tick in flight fires (max: none).
  time_point deadline_tick_at_ = time_point::max();
  uint64_t next_call_ = 0;
};

} // namespace

const char* to_string(breaker_event_kind x) noexcept {
  switch (x) {
    case breaker_event_kind::transition:
      return "transition";
    case breaker_event_kind::success:
      return "success";
    case breaker_event_kind::failure:
      return "failure";
    case breaker_event_kind::timeout:
      return "timeout";
    case breaker_event_kind::rejected:
      return "rejected";
  }
  return "unknown";
}

std::string to_string(const breaker_event& x) {
  std::string result = "[" + x.name + "] " + to_string(x.kind);
  if (x.kind == breaker_event_kind::transition) {
    result += ' ';
    result += to_string(x.from);
    result += " -> ";
    result += to_string(x.to);
    if (!x.detail.empty())
      result += " (" + x.detail + ")";
    return result;
  }
  result += " state=";
  result += to_string(x.to);
  if (x.duration > caf::timespan{0})
    result += " duration=" + render_seconds(x.duration);
  if (x.reason)
    result += " reason=" + render(x.reason);
  return result;
}

caf::expected<caf::actor> spawn_breaker_guard(caf::actor_system& sys,
                                              caf::actor target,
                                              breaker_config cfg,
                                              guard_options opts) {
  if (auto err = validate(cfg))
    return err;
  if (!target)
    return caf::make_error(caf::sec::invalid_argument,
                           "spawn_breaker_guard: invalid target actor");
  return sys.spawn<breaker_guard_actor>(std::move(target), std::move(cfg),
                                        std::move(opts));
}

} // namespace ft
