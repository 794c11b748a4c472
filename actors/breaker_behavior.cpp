// The circuit-breaker behaviour decorator: one `ft::breaker` (the pure state
// machine in ft_core) inside the actor it protects. The decorated behaviour
// (a `hooked_behavior`) sees every message first: control messages go to a
// small behaviour of their own, every other message is a call the breaker
// must admit before the inner behaviour runs; a recording visitor between
// the inner handler and CAF's visitor sees the handler's result and records
// it before CAF answers the caller.
//
// Handlers that answer later use a `breaker_promise`: the call stays in the
// pending table (call id -> permit, start, promise) until the promise is
// delivered, its call timeout expires, or every copy of the promise is gone
// (abandoned), whichever comes first; each call is recorded exactly once.

#include "ft/breaker_behavior.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <unordered_map>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_clock.hpp>
#include <caf/atom.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/send.hpp>
#include <caf/type_nr.hpp>

#include "ft/error.hpp"

#include "hooked_behavior.hpp"

#include "breaker_events.hpp"

namespace ft {

namespace {

// -- private message atoms ----------------------------------------------------

// Each carries the id of the decorator that sent it (to itself), so that a
// decorator wrapped around another one leaves the inner one's timers alone.

/// `(tick_atom, uint64_t id)`: the earliest deferred-call deadline is due.
using tick_atom = caf::atom_constant<caf::atom("ftbrdtmo")>;

/// `(probe_atom, uint64_t id)`: the open period may have ended; publishes
/// the lazy `open -> half_open` transition on time.
using probe_atom = caf::atom_constant<caf::atom("ftbrdprobe")>;

/// `(gone_atom, uint64_t id, caf::actor_addr)`: a subscriber terminated.
using gone_atom = caf::atom_constant<caf::atom("ftbrdgone")>;

using time_point = caf::actor_clock::time_point;

/// An atom as a switch label.
constexpr uint64_t key(caf::atom_value x) {
  return static_cast<uint64_t>(x);
}

// The type tokens of our messages: (atom), (atom, actor), (atom, id) and
// (atom, id, actor_addr).
constexpr uint32_t control_token = caf::make_type_token<caf::atom_value>();
constexpr uint32_t subscribe_token
  = caf::make_type_token<caf::atom_value, caf::actor>();
constexpr uint32_t timer_token
  = caf::make_type_token<caf::atom_value, uint64_t>();
constexpr uint32_t gone_token
  = caf::make_type_token<caf::atom_value, uint64_t, caf::actor_addr>();
static_assert(caf::type_nr<caf::actor>::value != 0
                && caf::type_nr<caf::actor_addr>::value != 0
                && caf::type_nr<uint64_t>::value != 0,
              "the type tokens need built-in type numbers");

/// The type token of a message that holds just an error.
constexpr uint32_t error_token = caf::make_type_token<caf::error>();

/// Tells the decorators of one process apart (see the atoms above).
std::atomic<uint64_t> last_decorator_id{0};


} // namespace

namespace detail {

/// One admitted call while its handler runs (on the stack of `handle`).
struct call_context {
  breaker_permit permit;
  /// When the call was admitted; valid only if `timed`.
  time_point start;
  /// The clock was read at admission (see decorator_impl::handle()).
  bool timed = false;
  /// The handler made a `breaker_promise`: the call's outcome comes later.
  bool deferred = false;
  /// The outcome is recorded (or the permit released).
  bool settled = false;
};

/// Shared by the copies of one `breaker_promise`: the last copy to go tells
/// the decorator that no one can deliver the call any more.
struct deferred_call {
  std::shared_ptr<decorator_impl> impl;
  uint64_t id;

  deferred_call(std::shared_ptr<decorator_impl> impl, uint64_t id)
    : impl(std::move(impl)), id(id) {
    // nop
  }

  ~deferred_call();
};

// -- the circuit of one actor -------------------------------------------------

class decorator_impl : public std::enable_shared_from_this<decorator_impl> {
public:
  decorator_impl(caf::scheduled_actor* self, breaker_config cfg,
                 decorator_options opts)
    : self_(self),
      breaker_(std::move(cfg), self->clock().now()),
      id_(++last_decorator_id),
      name_(std::move(opts.name)),
      last_now_(self->clock().now()),
      has_window_(breaker_.config().window
                  != breaker_config::window_kind::none),
      slow_calls_(breaker_.config().slow_call_duration.count() > 0) {
    // The listener only queues: it must not call back into the breaker, and
    // a call's outcome event should precede the transition it caused.
    breaker_.on_transition(
      [this](const breaker_transition& t) { transitions_.push_back(t); });
    for (auto& s : opts.subscribers)
      subscribe(std::move(s));
    control_ = caf::behavior{
      [this](breaker_reset_atom) { reset(); },
      [this](breaker_force_open_atom) { force_open(); },
      [this](breaker_disable_atom) { disable(); },
      [this](breaker_stats_atom) { return stats(); },
      [this](breaker_subscribe_atom, caf::actor& s) {
        subscribe(std::move(s));
      },
      [this](breaker_unsubscribe_atom, const caf::actor& s) {
        unsubscribe(s.address());
      },
      [this](tick_atom, uint64_t) { on_tick(); },
      [this](probe_atom, uint64_t) { state(); },
      [this](gone_atom, uint64_t, const caf::actor_addr& x) {
        unsubscribe(x);
      },
    };
  }

  // -- the hook ---------------------------------------------------------------

  /// Sees every message of a decorated behaviour.
  caf::match_case::result handle(caf::detail::invoke_result_visitor& f,
                                 caf::type_erased_tuple& xs,
                                 caf::behavior& inner);

  // -- outcomes of synchronous calls (from the recording visitor) -------------

  void done_value(call_context& c, caf::message& x) {
    if (c.deferred || c.settled)
      return;
    if (x.type_token() == error_token && x.match_elements<caf::error>()) {
      done_error(c, x.get_as<caf::error>(0));
      return;
    }
    c.settled = true;
    if (c.timed) {
      auto now = clock_now();
      breaker_.record_success(c.permit, now, now - c.start);
      if (!subscribers_.empty())
        publish(breaker_event_kind::success, caf::error{}, now - c.start);
    } else if (has_window_ || !admits_freely(breaker_.current_state())) {
      // A success may trip (window rates) or close (a trial) the circuit.
      breaker_.record_success(c.permit, clock_now(), caf::timespan{0});
    } else {
      // The fast path (see handle()): the breaker needs no time here.
      breaker_.record_success(c.permit, last_now_, caf::timespan{0});
    }
    if (!transitions_.empty())
      flush();
  }

  void done_error(call_context& c, const caf::error& err) {
    if (c.deferred || c.settled)
      return;
    c.settled = true;
    // A failure may trip the circuit: the breaker needs the time.
    auto now = clock_now();
    record_error(c.permit, now, c.timed ? now - c.start : caf::timespan{0},
                 err);
  }

  /// The handler produced no result now (it returned a plain promise or
  /// delegated): the breaker cannot see this call's outcome.
  void done_blind(call_context& c) {
    if (c.deferred || c.settled)
      return;
    c.settled = true;
    breaker_.release(c.permit);
  }

  // -- deferred calls (from breaker_promise) ----------------------------------

  breaker_promise make_promise();

  /// Records the outcome `msg` of deferred call `id`; false if the call is
  /// no longer pending (timed out): the caller must not be answered again.
  bool settle(uint64_t id, const caf::message& msg) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return false;
    auto c = std::move(i->second);
    pending_.erase(i);
    auto now = clock_now();
    auto duration = now - c.start;
    if (msg.match_elements<caf::error>()) {
      record_error(c.permit, now, duration, msg.get_as<caf::error>(0));
      return true;
    }
    breaker_.record_success(c.permit, now, duration);
    publish(breaker_event_kind::success, caf::error{}, duration);
    flush();
    return true;
  }

  /// Every copy of the promise of call `id` is gone undelivered. With a call
  /// timeout, the timer answers the caller and records the timeout; without
  /// one, nothing ever will: free the permit (else a half-open circuit
  /// would wait for this trial forever).
  void abandon(uint64_t id) {
    if (breaker_.config().call_timeout.count() > 0)
      return;
    auto i = pending_.find(id);
    if (i == pending_.end())
      return;
    breaker_.release(i->second.permit);
    pending_.erase(i);
  }

  bool is_pending(uint64_t id) const {
    return pending_.count(id) > 0;
  }

  size_t pending_calls() const {
    return pending_.size();
  }

  // -- manual control ---------------------------------------------------------

  void reset() {
    breaker_.reset(clock_now());
    flush();
  }

  void force_open() {
    breaker_.force_open(clock_now());
    flush();
  }

  void disable() {
    breaker_.disable(clock_now());
    flush();
  }

  void subscribe(caf::actor s) {
    if (!s)
      return;
    for (auto& x : subscribers_)
      if (x == s)
        return;
    // Not a monitor: the down_msg would reach the actor's own down handler.
    // The functor runs when the subscriber terminates (in its context) and
    // only sends us a message.
    s->attach_functor([me = self_->address(), id = id_, who = s.address()] {
      if (auto h = caf::actor_cast<caf::actor>(me))
        caf::anon_send(h, gone_atom::value, id, who);
    });
    subscribers_.push_back(std::move(s));
  }

  void unsubscribe(const caf::actor_addr& x) {
    for (auto i = subscribers_.begin(); i != subscribers_.end(); ++i)
      if (i->address() == x) {
        subscribers_.erase(i);
        return;
      }
  }

  // -- observers --------------------------------------------------------------

  breaker_state state() {
    auto st = breaker_.state(clock_now());
    flush();
    return st;
  }

  breaker_stats stats() {
    auto now = clock_now();
    // Publish a due `open -> half_open` before reporting it.
    breaker_.state(now);
    flush();
    return breaker_.stats(now);
  }

  const std::string& name() const {
    return name_;
  }

private:
  struct pending_call {
    breaker_permit permit;
    time_point start;
    /// Answers `call_timeout` (only kept with a call timeout).
    caf::response_promise rp;
  };

  /// `closed` and `disabled` admit every call without looking at the time.
  static bool admits_freely(breaker_state st) {
    return st == breaker_state::closed || st == breaker_state::disabled;
  }

  /// Reads the actor clock (the test clock in tests).
  time_point clock_now() {
    last_now_ = self_->clock().now();
    return last_now_;
  }

  /// Runs the control behaviour if `xs` is one of our messages.
  bool try_control(caf::detail::invoke_result_visitor& f,
                   caf::type_erased_tuple& xs) {
    // One virtual call rules out (nearly) every call: the type token.
    auto tk = xs.type_token();
    if (tk != control_token && tk != subscribe_token && tk != timer_token
        && tk != gone_token)
      return false;
    if (!xs.match_element<caf::atom_value>(0))
      return false;
    switch (static_cast<uint64_t>(xs.get_as<caf::atom_value>(0))) {
      case key(breaker_reset_atom::value):
      case key(breaker_force_open_atom::value):
      case key(breaker_disable_atom::value):
      case key(breaker_stats_atom::value):
      case key(breaker_subscribe_atom::value):
      case key(breaker_unsubscribe_atom::value):
        // Other shapes (e.g. extra arguments) are calls like any message.
        return control_(f, xs) == caf::match_case::match;
      case key(tick_atom::value):
      case key(probe_atom::value):
      case key(gone_atom::value):
        if (xs.size() < 2 || !xs.match_element<uint64_t>(1)
            || xs.get_as<uint64_t>(1) != id_)
          return false; // Another decorator's timer.
        return control_(f, xs) == caf::match_case::match;
      default:
        return false;
    }
  }

  /// Refuses a call: a request gets the breaker's error, an asynchronous
  /// message is dropped (an error "result" would be sent to its sender).
  void reject(caf::detail::invoke_result_visitor& f, caf::error err) {
    auto* me = self_->current_mailbox_element();
    if (!subscribers_.empty())
      publish(breaker_event_kind::rejected, err, caf::timespan{0});
    flush();
    if (me != nullptr && me->mid.is_request())
      f(err);
    else
      f();
  }

  void record_error(const breaker_permit& permit, time_point now,
                    caf::timespan duration, const caf::error& err) {
    breaker_.record_error(permit, now, duration, err);
    if (!subscribers_.empty()) {
      auto& pred = breaker_.config().is_failure;
      auto counts = !pred || pred(err);
      publish(counts ? breaker_event_kind::failure
                     : breaker_event_kind::success,
              err, duration);
    }
    flush();
  }

  /// Expires every deferred call whose deadline passed, then waits for the
  /// next one (one timer per decorator, as in the guard: with one
  /// call_timeout, deadlines come in call order).
  void on_tick() {
    tick_scheduled_ = false;
    auto now = clock_now();
    while (!deadlines_.empty()
           && (deadlines_.front().first <= now
               || pending_.count(deadlines_.front().second) == 0)) {
      auto id = deadlines_.front().second;
      deadlines_.pop_front();
      expire(id, now); // no-op for calls settled in time
    }
    if (!deadlines_.empty()) {
      tick_scheduled_ = true;
      send_self(deadlines_.front().first - now,
                caf::make_message(tick_atom::value, id_));
    }
  }

  void expire(uint64_t id, time_point now) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return;
    auto c = std::move(i->second);
    pending_.erase(i);
    auto timeout = breaker_.config().call_timeout;
    breaker_.record_timeout(c.permit, now);
    auto err = make_error(errc::call_timeout,
                          "no answer within " + render_seconds(timeout));
    publish(breaker_event_kind::timeout, err, now - c.start);
    flush();
    // An asynchronous message's sender expects no answer.
    if (!c.rp.async())
      c.rp.deliver(std::move(err));
  }

  /// `msg` to this actor after `delay` (at once for 0), anonymously.
  void send_self(caf::timespan delay, caf::message msg) {
    auto me = caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                        std::move(msg));
    if (delay.count() <= 0) {
      self_->enqueue(std::move(me), self_->context());
      return;
    }
    auto& clock = self_->clock();
    clock.schedule_message(clock.now() + delay,
                           caf::strong_actor_ptr{self_->ctrl()},
                           std::move(me));
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
      if (!subscribers_.empty())
        send_all(detail::transition_event(name_, t));
      opened = opened || t.to == breaker_state::open;
    }
    if (!opened || breaker_.current_state() != breaker_state::open)
      return;
    auto now = clock_now();
    auto st = breaker_.stats(now);
    if (!st.open_until)
      return;
    send_self(*st.open_until - now, caf::make_message(probe_atom::value, id_));
  }

  void publish(breaker_event_kind kind, caf::error reason,
               caf::timespan duration) {
    if (subscribers_.empty())
      return;
    send_all(detail::outcome_event(name_, kind, breaker_.current_state(),
                                   std::move(reason), duration));
  }

  void send_all(breaker_event ev) {
    // One message shared by all subscribers (copy on write).
    auto msg = caf::make_message(std::move(ev));
    caf::strong_actor_ptr sender{self_->ctrl()};
    for (auto& s : subscribers_)
      s->enqueue(sender, caf::make_message_id(), msg, self_->context());
  }

  // -- member variables -------------------------------------------------------

  caf::scheduled_actor* self_;
  breaker breaker_;
  uint64_t id_;
  std::string name_;
  /// The last clock reading (see handle()).
  time_point last_now_;
  /// The config has a window: its rates may trip on any outcome (and a
  /// time-based one buckets calls by time), so every outcome needs the time.
  bool has_window_;
  /// The config detects slow calls: every call needs its duration.
  bool slow_calls_;
  std::vector<caf::actor> subscribers_;
  std::vector<breaker_transition> transitions_;
  caf::behavior control_;
  /// The admitted call whose handler runs now (see make_promise()).
  call_context* current_ = nullptr;
  std::unordered_map<uint64_t, pending_call> pending_;
  /// Deadlines of pending calls in call order (see on_tick()).
  std::deque<std::pair<time_point, uint64_t>> deadlines_;
  bool tick_scheduled_ = false;
  uint64_t next_call_ = 0;
};

deferred_call::~deferred_call() {
  impl->abandon(id);
}

namespace {

/// Records the inner handler's result, then passes it on to CAF.
class recording_visitor final : public forwarding_visitor {
public:
  recording_visitor(caf::detail::invoke_result_visitor& next,
                    decorator_impl& impl, call_context& c)
    : forwarding_visitor(next), impl_(impl), c_(c) {
    // nop
  }

  using forwarding_visitor::operator();

  void operator()() override {
    impl_.done_blind(c_);
    next_();
  }

  void operator()(caf::error& x) override {
    impl_.done_error(c_, x);
    next_(x);
  }

  void operator()(caf::message& x) override {
    impl_.done_value(c_, x);
    next_(x);
  }

  /// "Nothing" (an empty optional): CAF answers a request with
  /// `unexpected_response`, so that is the outcome.
  void operator()(const caf::none_t& x) override {
    caf::error err = caf::sec::unexpected_response;
    impl_.done_error(c_, err);
    next_(x);
  }

private:
  decorator_impl& impl_;
  call_context& c_;
};

} // namespace

caf::match_case::result decorator_impl::handle(
  caf::detail::invoke_result_visitor& f, caf::type_erased_tuple& xs,
  caf::behavior& inner) {
  if (try_control(f, xs))
    return caf::match_case::match;
  // The clock costs (a read is ~5-15% of a local round trip), so read it
  // only when the time matters. Admitting a call in `closed` or `disabled`
  // uses no time (only `open` ends by time), and recording a success there
  // without a window uses none either (tripping then takes a failure, and
  // a closed circuit has no open period): the breaker gets the last
  // reading. Durations (slow-call detection, events), failures, windows,
  // the other states and deferred calls read it (see done_value()).
  bool timed = slow_calls_ || !subscribers_.empty()
               || !admits_freely(breaker_.current_state());
  auto now = timed ? clock_now() : last_now_;
  auto permit = breaker_.try_acquire(now);
  if (!permit) {
    reject(f, std::move(permit.error()));
    return caf::match_case::match;
  }
  if (!transitions_.empty())
    flush();
  call_context c{*permit, now, timed};
  /// Ends the call however the handler ends (an exception, too): no_match
  /// (the default handler takes it) and skip (it stays in the mailbox) are
  /// no calls, and neither is a match without a result, so their permit is
  /// released.
  struct scope {
    decorator_impl& impl;
    call_context& c;
    call_context* outer;
    ~scope() {
      impl.current_ = outer;
      if (!c.deferred && !c.settled)
        impl.breaker_.release(c.permit);
    }
  };
  scope guard{*this, c, current_};
  current_ = &c;
  recording_visitor rv{f, *this, c};
  return inner(rv, xs);
}

breaker_promise decorator_impl::make_promise() {
  auto rp = self_->make_response_promise();
  auto* c = current_;
  if (c == nullptr || c->deferred || c->settled)
    return breaker_promise{std::move(rp)};
  c->deferred = true;
  if (!c->timed) {
    c->start = clock_now();
    c->timed = true;
  }
  auto id = ++next_call_;
  auto timeout = breaker_.config().call_timeout;
  auto start = c->start;
  if (timeout.count() > 0) {
    pending_.emplace(id, pending_call{c->permit, start, rp});
    deadlines_.emplace_back(start + timeout, id);
    if (!tick_scheduled_) {
      tick_scheduled_ = true;
      send_self(start + timeout - clock_now(),
                caf::make_message(tick_atom::value, id_));
    }
  } else {
    pending_.emplace(id, pending_call{c->permit, start, {}});
  }
  return breaker_promise{std::move(rp), shared_from_this(), id};
}

} // namespace detail

// -- breaker_promise ----------------------------------------------------------

breaker_promise::breaker_promise(caf::response_promise rp,
                                 std::shared_ptr<detail::decorator_impl> impl,
                                 uint64_t id)
  : caf::response_promise(std::move(rp)),
    call_(std::make_shared<detail::deferred_call>(std::move(impl), id)) {
  // nop
}

void breaker_promise::deliver(caf::error x) {
  deliver_message(caf::make_message(std::move(x)));
}

bool breaker_promise::tracked() const {
  return call_ && call_->impl->is_pending(call_->id);
}

void breaker_promise::deliver_message(caf::message msg) {
  if (call_) {
    auto call = std::move(call_);
    if (!call->impl->settle(call->id, msg))
      return; // Timed out: the caller has its answer.
  }
  if (msg.empty())
    caf::response_promise::deliver(caf::unit);
  else
    caf::response_promise::deliver(std::move(msg));
}

// -- breaker_decorator --------------------------------------------------------

caf::expected<breaker_decorator>
breaker_decorator::make(caf::scheduled_actor* self, breaker_config cfg,
                        decorator_options opts) {
  if (self == nullptr)
    return caf::make_error(caf::sec::invalid_argument,
                           "breaker_decorator::make: no actor");
  if (auto err = validate(cfg))
    return err;
  return breaker_decorator{std::make_shared<detail::decorator_impl>(
    self, std::move(cfg), std::move(opts))};
}

caf::behavior breaker_decorator::wrap(caf::behavior inner) const {
  if (!impl_ || !inner)
    return inner;
  return detail::hook_behavior(
    std::move(inner),
    [impl = impl_](caf::detail::invoke_result_visitor& f,
                   caf::type_erased_tuple& xs, caf::behavior& in) {
      return impl->handle(f, xs, in);
    });
}

breaker_promise breaker_decorator::make_response_promise() const {
  if (!impl_)
    return breaker_promise{};
  return impl_->make_promise();
}

void breaker_decorator::reset() const {
  if (impl_)
    impl_->reset();
}

void breaker_decorator::force_open() const {
  if (impl_)
    impl_->force_open();
}

void breaker_decorator::disable() const {
  if (impl_)
    impl_->disable();
}

void breaker_decorator::subscribe(caf::actor subscriber) const {
  if (impl_)
    impl_->subscribe(std::move(subscriber));
}

void breaker_decorator::unsubscribe(const caf::actor& subscriber) const {
  if (impl_)
    impl_->unsubscribe(subscriber.address());
}

breaker_state breaker_decorator::state() const {
  return impl_ ? impl_->state() : breaker_state::closed;
}

breaker_stats breaker_decorator::stats() const {
  return impl_ ? impl_->stats() : breaker_stats{};
}

size_t breaker_decorator::pending_calls() const {
  return impl_ ? impl_->pending_calls() : 0;
}

const std::string& breaker_decorator::name() const {
  static const std::string empty;
  return impl_ ? impl_->name() : empty;
}

} // namespace ft
