// The supervisor actor: OTP's supervisor.erl expressed as a CAF event-based
// actor. The rules (restart types, the restart window, delays, strategy
// scopes, validation) live in ft_core; this file sequences them.
//
// Children are monitored, not linked: in CAF 0.17 an actor that receives an
// exit message unlinks from its sender (so a linked child stopped by us would
// never report back), and a child killed with `exit_reason::kill` would take
// a linked supervisor with it. Instead, the
// supervisor kills its remaining children in `on_exit`, so a supervisor that
// is killed (or crashes) still takes its subtree down, as an OTP link would.
//
// Two mechanisms replace what OTP does with blocking receives:
// - orderly termination (children stop one after another, in reverse order,
//   each killed at its shutdown timeout) runs as a "termination" state
//   machine; meanwhile the actor is "busy": its behaviour handles only the
//   kill timers and skips every other message, which CAF keeps in the
//   mailbox until the termination ends;
// - a failed restart is retried by a message to self (delayed by the
//   child's restart delay), never by a loop inside a handler.

#include "ft/supervisor.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>

#include "ft/error.hpp"
#include "ft/fault_handler.hpp"
#include "ft/restart_window.hpp"

#include "any_response.hpp"
#include "wall_clock.hpp"

namespace ft {

namespace {

// -- private message atoms ----------------------------------------------------

/// `(restart_atom, tag, generation)`: (re)start one child.
using restart_atom = caf::atom_constant<caf::atom("ftrestart")>;

/// `(group_restart_atom, std::vector<uint64_t> tags)`: restart the members
/// of a one_for_all or rest_for_one group that are still restarting.
using group_restart_atom = caf::atom_constant<caf::atom("ftgrouprs")>;

/// `(kill_timeout_atom, termination, step)`: a shutdown timeout expired.
using kill_timeout_atom = caf::atom_constant<caf::atom("ftkilltmo")>;

using time_point = caf::actor_clock::time_point;

std::string describe(const caf::error& err) {
  return render(err);
}

using detail::wall_clock_ms;

// -- the actor ----------------------------------------------------------------

class supervisor_actor : public caf::event_based_actor {
public:
  supervisor_actor(caf::actor_config& cfg, supervisor_flags flags,
                   std::vector<child_spec> specs,
                   std::vector<caf::actor> started, caf::error init_error)
    : caf::event_based_actor(cfg),
      flags_(std::move(flags)),
      window_(flags_.intensity, flags_.period),
      init_error_(std::move(init_error)),
      started_(std::move(started)),
      rng_(std::random_device{}()) {
    if (is_simple()) {
      template_ = std::make_shared<child_spec>(std::move(specs.front()));
    } else {
      for (auto& spec : specs)
        add_static(std::make_shared<child_spec>(std::move(spec)));
    }
  }

  const char* name() const override {
    return "ft.supervisor";
  }

  /// Runs however the supervisor ends (orderly, crashed or killed): no child
  /// may outlive it.
  void on_exit() override {
    for (auto& c : children_)
      if (c->handle)
        caf::anon_send_exit(c->handle, caf::exit_reason::kill);
    for (auto& kvp : dynamic_)
      if (kvp.second->handle)
        caf::anon_send_exit(kvp.second->handle, caf::exit_reason::kill);
    // Members live until our last handle goes, not until we terminate: the
    // children (whose start functions and buffered requests may point back
    // at us) and the subscribers would form cycles that keep the whole tree
    // in memory.
    children_.clear();
    dynamic_.clear();
    dynamic_by_actor_.clear();
    template_.reset();
    subscribers_.clear();
    flags_.subscribers.clear();
    started_.clear();
    term_.reset();
  }

  caf::behavior make_behavior() override {
    // Exit messages come from our parent (or whoever stops us): as OTP, a
    // normal one is ignored, any other stops the tree and us.
    set_exit_handler([this](caf::exit_msg& msg) {
      if (msg.reason != caf::exit_reason::normal)
        on_stop_request(std::move(msg.reason));
    });
    set_down_handler([this](caf::down_msg& msg) {
      auto i = std::find_if(subscribers_.begin(), subscribers_.end(),
                            [&](const auto& x) {
                              return x.first.address() == msg.source;
                            });
      if (i != subscribers_.end()) {
        unsubscribe(msg.source);
        return;
      }
      on_down(msg);
    });
    // Install the behaviour before anything can enter busy mode: CAF would
    // replace a busy behaviour with the one make_behavior returns.
    become(running_behavior());
    for (auto& sub : flags_.subscribers)
      subscribe(sub);
    // Adopt the children spawn_supervisor started for us.
    for (size_t i = 0; i < started_.size() && i < children_.size(); ++i)
      adopt(*children_[i], std::move(started_[i]), event_kind::child_started);
    started_.clear();
    if (init_error_) {
      // A child failed to start: stop the ones we have (reverse order) and
      // fail. Children after the failing one never ran.
      children_.erase(std::remove_if(children_.begin(), children_.end(),
                                     [](const child_ptr& c) {
                                       return !c->handle;
                                     }),
                      children_.end());
      shutdown(init_error_);
    }
    return {};
  }

private:
  // -- bookkeeping types ------------------------------------------------------

  struct buffered {
    caf::response_promise rp;
    caf::message msg;
  };

  /// One child: a static child (from the spec list or start_child) or a
  /// dynamic child of simple_one_for_one (sharing the template spec).
  struct child {
    std::shared_ptr<const child_spec> spec;
    uint64_t tag = 0;
    caf::actor handle;
    child_state state = child_state::undefined;
    uint64_t generation = 0;
    time_point up_since;
    caf::message args;
    restart_delay_state delays;
    std::vector<buffered> buffer;
    /// For `describe`: restarts so far and the latest exit reason.
    uint64_t restarts = 0;
    std::string last_exit;

    const std::string& id() const {
      return spec->id;
    }
  };

  using child_ptr = std::unique_ptr<child>;

  /// One step of an orderly termination: these actors are asked to stop
  /// together and the termination waits for all of them.
  struct termination_step {
    std::vector<caf::actor> victims;
    shutdown_spec shutdown;
  };

  /// At most this many exit messages are in flight at once. CAF 0.17 stalls
  /// when one handler sends exits to hundreds of thousands of actors (a
  /// quarter of a million simple_one_for_one children never stopped); a
  /// window that refills as children go down stops a million in seconds.
  static constexpr size_t exit_window = 8192;

  struct termination {
    uint64_t id = 0;
    std::vector<termination_step> steps;
    size_t next_step = 0;
    /// Current step: next victim to send an exit to, exits in flight.
    size_t next_victim = 0;
    size_t in_flight = 0;
    /// Victims of all steps that have not exited yet.
    std::unordered_set<caf::actor_id> pending;
    /// Victims of the current step that have not exited yet.
    std::unordered_set<caf::actor_id> waiting;
    std::function<void()> then;
  };

  // -- helpers ----------------------------------------------------------------

  bool is_simple() const {
    return flags_.strategy == supervision_strategy::simple_one_for_one;
  }

  time_point now_() const {
    return clock().now();
  }

  child& add_static(std::shared_ptr<const child_spec> spec) {
    auto c = std::make_unique<child>();
    c->spec = std::move(spec);
    c->tag = ++next_tag_;
    children_.emplace_back(std::move(c));
    return *children_.back();
  }

  child* find_static(const std::string& id) {
    for (auto& c : children_)
      if (c->id() == id)
        return c.get();
    return nullptr;
  }

  child* find_by_tag(uint64_t tag) {
    if (is_simple()) {
      auto i = dynamic_.find(tag);
      return i != dynamic_.end() ? i->second.get() : nullptr;
    }
    for (auto& c : children_)
      if (c->tag == tag)
        return c.get();
    return nullptr;
  }

  size_t index_of(const child& c) const {
    for (size_t i = 0; i < children_.size(); ++i)
      if (children_[i].get() == &c)
        return i;
    return children_.size();
  }

  std::string label(const child& c) const {
    if (!c.spec->id.empty() && !is_simple())
      return c.spec->id;
    if (c.handle)
      return c.spec->id + "#" + std::to_string(c.handle.id());
    return c.spec->id + "#tag" + std::to_string(c.tag);
  }

  const restart_delay& delay_policy(const child& c) const {
    return c.spec->delay ? *c.spec->delay : flags_.delay;
  }

  void publish(event_kind kind, const std::string& child_id,
               caf::error reason = caf::none,
               caf::timespan delay = caf::timespan{0},
               caf::actor actor = caf::actor{}) {
    if (!wanted(kind))
      return;
    supervisor_event ev;
    ev.kind = kind;
    ev.supervisor = flags_.name;
    ev.child = child_id;
    ev.actor = std::move(actor);
    ev.reason = std::move(reason);
    ev.delay = delay;
    ev.severity = severity_of(kind, ev.reason);
    ev.timestamp_ms = wall_clock_ms();
    for (auto& sub : subscribers_)
      if (contains(sub.second, kind))
        send(sub.first, ev);
  }

  /// Whether any subscriber wants events of `kind`.
  bool wanted(event_kind kind) const {
    return contains(wanted_, kind);
  }

  /// Publishes an event about `c`; builds no strings without subscribers.
  void publish(event_kind kind, const child& c, caf::error reason = caf::none,
               caf::timespan delay = caf::timespan{0}) {
    if (wanted(kind))
      publish(kind, label(c), std::move(reason), delay, c.handle);
  }

  void subscribe(const caf::actor& sub, event_mask mask = all_events) {
    if (!sub)
      return;
    auto i = std::find_if(subscribers_.begin(), subscribers_.end(),
                          [&](const auto& x) { return x.first == sub; });
    if (i != subscribers_.end())
      i->second = mask;
    else {
      monitor(sub);
      subscribers_.emplace_back(sub, mask);
    }
    update_wanted();
  }

  void unsubscribe(const caf::actor_addr& sub) {
    subscribers_.erase(std::remove_if(subscribers_.begin(),
                                      subscribers_.end(),
                                      [&](const auto& x) {
                                        return x.first.address() == sub;
                                      }),
                       subscribers_.end());
    update_wanted();
  }

  void update_wanted() {
    wanted_ = 0;
    for (auto& sub : subscribers_)
      wanted_ |= sub.second;
  }

  /// Starts `c` through its start function.
  caf::expected<caf::actor> start(child& c) {
    caf::expected<caf::actor> res{caf::actor{}};
    try {
      res = c.spec->start(system(), c.args);
    } catch (std::exception& ex) {
      return make_error(errc::start_failed,
                        "child " + c.spec->id + ": exception: " + ex.what());
    }
    if (!res)
      return make_error(errc::start_failed,
                        "child " + c.spec->id + ": "
                          + describe(res.error()));
    if (!*res)
      return make_error(errc::start_failed,
                        "child " + c.spec->id
                          + ": start returned an invalid actor handle");
    return res;
  }

  /// Takes `handle` as the running incarnation of `c`.
  void adopt(child& c, caf::actor handle, event_kind kind) {
    monitor(handle);
    c.handle = std::move(handle);
    c.state = child_state::running;
    c.up_since = now_();
    ++c.generation;
    if (kind == event_kind::child_restarted)
      ++c.restarts;
    if (is_simple())
      dynamic_by_actor_[c.handle.id()] = c.tag;
    publish(kind, c);
    // Deliver what waited for this child, in arrival order.
    auto pending = std::move(c.buffer);
    c.buffer.clear();
    for (auto& x : pending)
      forward(c, std::move(x.rp), std::move(x.msg));
  }

  /// Sends `msg` to the running incarnation of `c` and relays its reply to
  /// `rp`. A plain delegate would lose messages in the gap between a child's
  /// death and its down message reaching us: CAF bounces them to the
  /// requester. A request lets us see the bounce (`request_receiver_down`:
  /// the child never took the message) and buffer the message for the
  /// replacement instead. A message the child took before dying is not sent
  /// again, so a poison message cannot crash-loop the child.
  void forward(child& c, caf::response_promise rp, caf::message msg) {
    auto target = c.handle;
    auto tag = c.tag;
    auto rh = request(target, caf::infinite, msg);
    auto on_reply = [this, rp, msg, target, tag](caf::message reply) mutable {
      if (!reply.match_elements<caf::error>()) {
        rp.deliver(std::move(reply));
        return;
      }
      auto err = reply.get_as<caf::error>(0);
      auto c = find_by_tag(tag);
      if (err != caf::sec::request_receiver_down || !c) {
        rp.deliver(c ? std::move(err)
                     : make_error(errc::child_stopped, "the child is gone"));
        return;
      }
      if (c->handle == target) {
        // Its down message is still on the way: wait for the restart.
        enqueue_for_restart(*c, std::move(rp), std::move(msg));
        return;
      }
      route(*c, std::move(rp), std::move(msg));
    };
    detail::on_any_response(this, rh.id(), std::move(on_reply));
  }

  void enqueue_for_restart(child& c, caf::response_promise rp,
                           caf::message msg) {
    if (c.buffer.size() >= flags_.buffer_capacity)
      rp.deliver(make_error(errc::buffer_full,
                            "child " + label(c) + ": "
                              + std::to_string(flags_.buffer_capacity)
                              + " messages already wait for its restart"));
    else
      c.buffer.push_back({std::move(rp), std::move(msg)});
  }

  /// Delivers, buffers or refuses `msg` according to the state of `c`.
  void route(child& c, caf::response_promise rp, caf::message msg) {
    switch (c.state) {
      case child_state::running:
        forward(c, std::move(rp), std::move(msg));
        return;
      case child_state::restarting:
        enqueue_for_restart(c, std::move(rp), std::move(msg));
        return;
      case child_state::undefined:
        rp.deliver(make_error(errc::child_stopped,
                              "child " + label(c) + " is not running"));
        return;
    }
  }

  /// Answers everything buffered for `c` with `child_stopped`.
  void drop_buffer(child& c) {
    auto pending = std::move(c.buffer);
    c.buffer.clear();
    for (auto& x : pending)
      x.rp.deliver(make_error(errc::child_stopped,
                              "child " + label(c) + " is not running"));
  }

  /// Forgets the running incarnation of `c` (it exited or was stopped).
  void detach(child& c) {
    if (c.handle && is_simple())
      dynamic_by_actor_.erase(c.handle.id());
    c.handle = nullptr;
  }

  void remove_child(child& c) {
    drop_buffer(c);
    detach(c);
    if (is_simple()) {
      dynamic_.erase(c.tag);
      return;
    }
    children_.erase(std::remove_if(children_.begin(), children_.end(),
                                   [&](const child_ptr& x) {
                                     return x.get() == &c;
                                   }),
                    children_.end());
  }

  // -- orderly termination ----------------------------------------------------

  bool busy() const {
    return static_cast<bool>(term_);
  }

  /// Stops `steps` one after another, then runs `then`. While this runs, the
  /// actor handles only exits and kill timers; other messages wait.
  void terminate(std::vector<termination_step> steps,
                 std::function<void()> then) {
    termination t;
    t.id = ++next_termination_;
    for (auto& step : steps)
      for (auto& v : step.victims)
        if (v)
          t.pending.insert(v.id());
    t.steps = std::move(steps);
    t.then = std::move(then);
    term_ = std::move(t);
    become(caf::keep_behavior, busy_behavior());
    set_default_handler(caf::skip);
    advance_termination();
  }

  void advance_termination() {
    auto& t = *term_;
    while (t.next_step < t.steps.size()) {
      auto step_no = t.next_step++;
      auto& step = t.steps[step_no];
      t.waiting.clear();
      for (auto& v : step.victims)
        if (v && t.pending.count(v.id()) > 0)
          t.waiting.insert(v.id());
      if (t.waiting.empty())
        continue;
      t.next_victim = 0;
      t.in_flight = 0;
      send_exits();
      if (step.shutdown.mode == shutdown_spec::kind::timeout)
        delayed_send(this, step.shutdown.timeout, kill_timeout_atom::value,
                     t.id, static_cast<uint64_t>(step_no));
      return;
    }
    // All steps done: leave busy mode, continue, then replay exits that
    // arrived meanwhile from actors that were not being stopped.
    auto then = std::move(t.then);
    term_.reset();
    unbecome();
    set_default_handler(caf::print_and_drop);
    then();
    replay_deferred();
    if (stop_request_ && !busy()) {
      auto reason = std::move(*stop_request_);
      stop_request_.reset();
      shutdown(std::move(reason));
    }
  }

  /// Sends exits to the current step's victims until the window is full.
  void send_exits() {
    auto& t = *term_;
    auto& step = t.steps[t.next_step - 1];
    auto reason = step.shutdown.mode == shutdown_spec::kind::brutal_kill
                    ? caf::exit_reason::kill
                    : caf::exit_reason::user_shutdown;
    while (t.in_flight < exit_window && t.next_victim < step.victims.size()) {
      auto& v = step.victims[t.next_victim++];
      if (!v || t.waiting.count(v.id()) == 0)
        continue;
      // From self, not anon_send_exit: this enqueues through our worker
      // instead of CAF's central queue, whose lock contention made stopping
      // a million children crawl.
      send_exit(v, reason);
      ++t.in_flight;
    }
  }

  void replay_deferred() {
    while (!deferred_.empty() && !busy() && !terminated_) {
      auto msg = std::move(deferred_.front());
      deferred_.erase(deferred_.begin());
      on_down(msg);
    }
  }

  caf::behavior busy_behavior() {
    return {
      [this](kill_timeout_atom, uint64_t id, uint64_t step) {
        if (!term_ || term_->id != id || term_->next_step != step + 1)
          return;
        // Kill everyone still waiting, sent an exit or not.
        for (auto& v : term_->steps[step].victims)
          if (v && term_->waiting.count(v.id()) > 0)
            send_exit(v, caf::exit_reason::kill);
        term_->next_victim = term_->steps[step].victims.size();
      },
    };
  }

  /// Termination steps for the given static children in reverse order.
  std::vector<termination_step> reverse_steps(std::vector<child*> xs) {
    std::vector<termination_step> steps;
    for (auto i = xs.rbegin(); i != xs.rend(); ++i)
      if ((*i)->handle)
        steps.push_back({{(*i)->handle}, (*i)->spec->effective_shutdown()});
    return steps;
  }

  // -- exits ------------------------------------------------------------------

  void on_stop_request(caf::error reason) {
    if (busy()) {
      // Finish the running termination first; its continuation may start
      // children, which the shutdown then stops again.
      stop_request_ = std::move(reason);
      return;
    }
    shutdown(std::move(reason));
  }

  void on_down(caf::down_msg& msg) {
    if (terminated_)
      return;
    if (busy()) {
      if (term_->pending.erase(msg.source.id()) > 0) {
        if (term_->waiting.erase(msg.source.id()) > 0) {
          // (A victim that went down before its exit was sent makes the
          // window one larger for a moment; harmless.)
          if (term_->in_flight > 0)
            --term_->in_flight;
          send_exits();
        }
        if (term_->waiting.empty())
          advance_termination();
        return;
      }
      deferred_.push_back(std::move(msg));
      return;
    }
    if (auto c = child_of(msg.source))
      child_exited(*c, msg.reason);
  }

  child* child_of(const caf::actor_addr& source) {
    if (is_simple()) {
      auto i = dynamic_by_actor_.find(source.id());
      if (i == dynamic_by_actor_.end())
        return nullptr;
      return find_by_tag(i->second);
    }
    for (auto& c : children_)
      if (c->handle && c->handle.address() == source)
        return c.get();
    return nullptr;
  }

  enum class outcome { restart, keep, remove, escalate };

  outcome decide(child& c, const caf::error& reason) {
    if (c.spec->restart == restart_type::temporary)
      return outcome::remove;
    if (is_normal_exit(reason))
      return should_restart(c.spec->restart, reason) ? outcome::restart
                                                     : outcome::keep;
    auto d = directive::restart;
    if (flags_.decider) {
      d = flags_.decider(c.spec->id, reason);
    } else if (flags_.handler) {
      flags_.handler->handle_failure(c.spec->id, reason);
      d = flags_.handler->can_recover(c.spec->id)
            ? flags_.handler->recover(c.spec->id)
            : directive::escalate;
    }
    switch (d) {
      case directive::restart: return outcome::restart;
      case directive::stop: return outcome::remove;
      case directive::ignore: return outcome::keep;
      case directive::escalate: return outcome::escalate;
    }
    return outcome::escalate;
  }

  void child_exited(child& c, const caf::error& reason) {
    auto up_since = c.up_since;
    detach(c);
    c.last_exit = describe(reason);
    publish(event_kind::child_exited, c, reason);
    switch (decide(c, reason)) {
      case outcome::keep:
        c.state = child_state::undefined;
        drop_buffer(c);
        check_auto_shutdown(*c.spec);
        return;
      case outcome::remove: {
        auto spec = c.spec;
        remove_child(c);
        check_auto_shutdown(*spec);
        return;
      }
      case outcome::escalate: {
        auto err = make_error(errc::escalated, "child " + label(c) + ": "
                                                 + describe(reason));
        publish(event_kind::escalated, c, err);
        shutdown(std::move(err));
        return;
      }
      case outcome::restart:
        break;
    }
    auto delay = admit_restart(c, up_since);
    if (!delay)
      return;
    switch (flags_.strategy) {
      case supervision_strategy::one_for_all:
      case supervision_strategy::rest_for_one:
        restart_group_after(c, *delay);
        return;
      default:
        if (delay->count() == 0) {
          c.state = child_state::restarting;
          restart_one(c);
        } else {
          schedule(c, *delay);
        }
    }
  }

  /// Counts a restart of `c` against the intensity and asks the delay
  /// policy for the pause. Shuts the supervisor down (and returns nothing)
  /// when either gives up.
  std::optional<caf::timespan> admit_restart(child& c, time_point up_since) {
    auto now = now_();
    if (!window_.add(now)) {
      auto err = make_error(
        errc::restart_intensity_exceeded,
        flags_.name + ": more than " + std::to_string(flags_.intensity)
          + " restarts within " + render_seconds(flags_.period)
          + " (last failing child: " + label(c) + ")");
      publish(event_kind::intensity_exceeded, c, err);
      shutdown(std::move(err));
      return std::nullopt;
    }
    std::uniform_real_distribution<double> dist{0.0, 1.0};
    auto delay = c.delays.next(delay_policy(c), now, up_since, flags_.period,
                               dist(rng_));
    if (!delay) {
      auto err = make_error(errc::max_attempts_exceeded,
                            "child " + label(c) + ": "
                              + describe(delay.error()));
      publish(event_kind::escalated, c, err);
      shutdown(std::move(err));
      return std::nullopt;
    }
    return *delay;
  }

  /// Marks `c` restarting and sends the restart to self after `delay`.
  void schedule(child& c, caf::timespan delay) {
    c.state = child_state::restarting;
    ++c.generation;
    if (delay.count() > 0) {
      publish(event_kind::restart_scheduled, c, caf::none, delay);
      delayed_send(this, delay, restart_atom::value, c.tag, c.generation);
    } else {
      send(this, restart_atom::value, c.tag, c.generation);
    }
  }

  /// Starts a restarting child now; a failure is retried through `schedule`.
  void restart_one(child& c) {
    auto res = start(c);
    if (res) {
      adopt(c, std::move(*res), event_kind::child_restarted);
      return;
    }
    publish(event_kind::restart_failed, c, res.error());
    c.state = child_state::restarting;
    if (auto delay = admit_restart(c, now_()))
      schedule(c, *delay);
  }

  // -- group restarts (one_for_all, rest_for_one) ----------------------------

  /// The children a restart anchored at `c` covers, in start order.
  std::vector<child*> group_of(const child& c) {
    std::vector<child*> result;
    auto idx = index_of(c);
    for (auto i : restart_scope(flags_.strategy, children_.size(), idx))
      result.push_back(children_[i].get());
    return result;
  }

  /// Stops the rest of `c`'s group (reverse order), then restarts the group
  /// after `delay`.
  void restart_group_after(child& c, caf::timespan delay) {
    c.state = child_state::restarting;
    std::vector<child*> others;
    std::vector<uint64_t> tags;
    for (auto x : group_of(c)) {
      tags.push_back(x->tag);
      if (x != &c && x->handle)
        others.push_back(x);
    }
    auto anchor = c.tag;
    terminate(reverse_steps(others), [this, anchor, tags, delay] {
      // Temporary bystanders are not restarted and do not count.
      std::vector<uint64_t> members;
      for (auto t : tags) {
        auto x = find_by_tag(t);
        if (!x)
          continue;
        if (t != anchor) {
          detach(*x);
          if (x->spec->restart == restart_type::temporary) {
            remove_child(*x);
            continue;
          }
          x->state = child_state::restarting;
        }
        members.push_back(t);
      }
      if (delay.count() > 0) {
        if (auto a = find_by_tag(anchor))
          publish(event_kind::restart_scheduled, *a, caf::none, delay);
        delayed_send(this, delay, group_restart_atom::value, members);
      } else {
        restart_group(members);
      }
    });
  }

  /// Starts the group's members that are still restarting, in order. The
  /// group travels as a list of tags, so a member terminated or deleted
  /// meanwhile simply drops out. If one start fails, the ones started now are
  /// stopped again and the group is retried after the failed child's delay.
  void restart_group(const std::vector<uint64_t>& members) {
    std::vector<child*> started;
    for (auto t : members) {
      auto x = find_by_tag(t);
      if (!x || x->state != child_state::restarting)
        continue;
      auto res = start(*x);
      if (res) {
        adopt(*x, std::move(*res), event_kind::child_restarted);
        started.push_back(x);
        continue;
      }
      publish(event_kind::restart_failed, *x, res.error());
      std::vector<uint64_t> started_tags;
      for (auto y : started)
        started_tags.push_back(y->tag);
      terminate(reverse_steps(started),
                [this, members, started_tags, failed_tag = t] {
                  for (auto st : started_tags)
                    if (auto y = find_by_tag(st)) {
                      detach(*y);
                      y->state = child_state::restarting;
                    }
                  auto failed = find_by_tag(failed_tag);
                  if (!failed)
                    return;
                  auto delay = admit_restart(*failed, now_());
                  if (!delay)
                    return;
                  if (delay->count() > 0) {
                    publish(event_kind::restart_scheduled, *failed,
                            caf::none, *delay);
                    delayed_send(this, *delay, group_restart_atom::value,
                                 members);
                  } else {
                    send(this, group_restart_atom::value, members);
                  }
                });
      return;
    }
  }

  // -- auto shutdown ----------------------------------------------------------

  void check_auto_shutdown(const child_spec& ended) {
    if (!ended.significant)
      return;
    switch (flags_.auto_shutdown_mode) {
      case auto_shutdown::never:
        return;
      case auto_shutdown::any_significant:
        shutdown(caf::exit_reason::user_shutdown);
        return;
      case auto_shutdown::all_significant:
        for (auto& c : children_)
          if (c->spec->significant && c->state != child_state::undefined)
            return;
        shutdown(caf::exit_reason::user_shutdown);
        return;
    }
  }

  // -- shutdown ---------------------------------------------------------------

  /// Stops all children (static: reverse start order, one by one; dynamic:
  /// all at once, as OTP) and exits with `reason`.
  void shutdown(caf::error reason) {
    if (shutting_down_)
      return;
    shutting_down_ = true;
    std::vector<termination_step> steps;
    if (is_simple()) {
      termination_step step{{}, template_->effective_shutdown()};
      for (auto& kvp : dynamic_)
        if (kvp.second->handle)
          step.victims.push_back(kvp.second->handle);
      steps.push_back(std::move(step));
    } else {
      std::vector<child*> all;
      for (auto& c : children_)
        all.push_back(c.get());
      steps = reverse_steps(std::move(all));
    }
    terminate(std::move(steps), [this, reason] {
      for (auto& c : children_)
        drop_buffer(*c);
      for (auto& kvp : dynamic_)
        drop_buffer(*kvp.second);
      publish(event_kind::shutdown, "", reason);
      terminated_ = true;
      quit(reason);
    });
  }

  // -- runtime API ------------------------------------------------------------

  caf::result<caf::actor> start_static(child_spec spec) {
    if (is_simple())
      return make_error(errc::not_supported,
                        "start_child with a child_spec on "
                        "simple_one_for_one; pass the arguments instead");
    if (auto err = validate(spec, flags_))
      return err;
    if (auto c = find_static(spec.id))
      return make_error(c->handle ? errc::already_started
                                  : errc::already_present,
                        "id = " + spec.id);
    auto& c = add_static(std::make_shared<child_spec>(std::move(spec)));
    auto res = start(c);
    if (!res) {
      auto err = res.error();
      remove_child(c);
      return err;
    }
    adopt(c, *res, event_kind::child_started);
    return c.handle;
  }

  caf::result<caf::actor> start_dynamic(caf::message args) {
    if (!is_simple())
      return make_error(errc::not_supported,
                        "start_child with arguments needs "
                        "simple_one_for_one");
    auto c = std::make_unique<child>();
    c->spec = template_;
    c->tag = ++next_tag_;
    c->args = std::move(args);
    auto res = start(*c);
    if (!res)
      return res.error();
    auto& ref = *c;
    dynamic_.emplace(c->tag, std::move(c));
    adopt(ref, *res, event_kind::child_started);
    return ref.handle;
  }

  /// Stops `c` (if running) and then runs `then`; cancels a pending restart.
  void stop_child(child& c, std::function<void(child&)> then) {
    ++c.generation; // cancels pending restart timers
    if (!c.handle) {
      c.state = child_state::undefined;
      drop_buffer(c);
      then(c);
      return;
    }
    auto tag = c.tag;
    terminate(reverse_steps({&c}), [this, tag, then] {
      if (auto x = find_by_tag(tag)) {
        detach(*x);
        x->state = child_state::undefined;
        drop_buffer(*x);
        then(*x);
      }
    });
  }

  caf::result<void> terminate_static(const std::string& id) {
    if (is_simple())
      return make_error(errc::not_supported,
                        "terminate_child by id on simple_one_for_one; pass "
                        "the child's actor handle");
    auto c = find_static(id);
    if (!c)
      return make_error(errc::not_found, "id = " + id);
    auto rp = make_response_promise();
    stop_child(*c, [this, rp](child& x) mutable {
      if (x.spec->restart == restart_type::temporary)
        remove_child(x);
      rp.deliver(caf::unit);
    });
    return rp;
  }

  caf::result<void> terminate_dynamic(const caf::actor& handle) {
    if (!is_simple())
      return make_error(errc::not_supported,
                        "terminate_child by handle needs simple_one_for_one");
    auto c = handle ? child_of(handle.address()) : nullptr;
    if (!c)
      return make_error(errc::not_found, "no such dynamic child");
    auto rp = make_response_promise();
    stop_child(*c, [this, rp](child& x) mutable {
      remove_child(x);
      rp.deliver(caf::unit);
    });
    return rp;
  }

  caf::result<caf::actor> restart_static(const std::string& id) {
    if (is_simple())
      return make_error(errc::not_supported,
                        "restart_child on simple_one_for_one");
    auto c = find_static(id);
    if (!c)
      return make_error(errc::not_found, "id = " + id);
    if (c->state == child_state::running)
      return make_error(errc::running, "id = " + id);
    if (c->state == child_state::restarting)
      return make_error(errc::restarting, "id = " + id);
    auto res = start(*c);
    if (!res)
      return res.error();
    c->delays.reset();
    adopt(*c, *res, event_kind::child_started);
    return c->handle;
  }

  caf::result<void> delete_static(const std::string& id) {
    if (is_simple())
      return make_error(errc::not_supported,
                        "delete_child on simple_one_for_one");
    auto c = find_static(id);
    if (!c)
      return make_error(errc::not_found, "id = " + id);
    if (c->state == child_state::running)
      return make_error(errc::running, "id = " + id);
    if (c->state == child_state::restarting)
      return make_error(errc::restarting, "id = " + id);
    remove_child(*c);
    return caf::unit;
  }

  std::vector<child_info> which() const {
    std::vector<child_info> result;
    auto row = [](const child& c, std::string id) {
      return child_info{std::move(id), c.handle, c.state, c.spec->type};
    };
    for (auto& c : children_)
      result.push_back(row(*c, c->id()));
    for (auto& kvp : dynamic_)
      result.push_back(row(*kvp.second, std::string{}));
    return result;
  }

  supervisor_report report() const {
    supervisor_report result;
    result.name = flags_.name;
    result.strategy = flags_.strategy;
    result.intensity = flags_.intensity;
    result.period = flags_.period;
    result.restarts_in_window = window_.size();
    result.dynamic_children = dynamic_.size();
    auto row = [](const child& c, std::string id) {
      return child_report{std::move(id), c.spec->type, c.state, c.handle,
                          c.restarts, c.last_exit};
    };
    for (auto& c : children_)
      result.children.push_back(row(*c, c->id()));
    for (auto& kvp : dynamic_) {
      if (result.children.size() >= max_described_children) {
        result.truncated = true;
        break;
      }
      result.children.push_back(row(*kvp.second, std::string{}));
    }
    return result;
  }

  child_counts counts() const {
    child_counts result;
    auto count = [&](const child& c) {
      ++result.specs;
      if (c.handle)
        ++result.active;
      if (c.spec->type == child_type::supervisor)
        ++result.supervisors;
      else
        ++result.workers;
    };
    for (auto& c : children_)
      count(*c);
    for (auto& kvp : dynamic_)
      count(*kvp.second);
    return result;
  }

  caf::result<caf::message> to_child(const std::string& id,
                                     caf::message& msg) {
    auto rp = make_response_promise();
    if (auto c = find_static(id))
      route(*c, rp, std::move(msg));
    else
      rp.deliver(make_error(errc::not_found, "id = " + id));
    return rp;
  }

  caf::behavior running_behavior() {
    return {
      [this](start_child_atom, child_spec& spec) {
        return start_static(std::move(spec));
      },
      [this](start_child_atom, caf::message& args) {
        return start_dynamic(std::move(args));
      },
      [this](terminate_child_atom, const std::string& id) {
        return terminate_static(id);
      },
      [this](terminate_child_atom, const caf::actor& handle) {
        return terminate_dynamic(handle);
      },
      [this](restart_child_atom, const std::string& id) {
        return restart_static(id);
      },
      [this](delete_child_atom, const std::string& id) {
        return delete_static(id);
      },
      [this](which_children_atom) { return which(); },
      [this](count_children_atom) { return counts(); },
      [this](describe_atom) { return report(); },
      [this](send_to_child_atom, const std::string& id, caf::message& msg) {
        return to_child(id, msg);
      },
      [this](subscribe_atom, const caf::actor& sub) { subscribe(sub); },
      [this](subscribe_atom, const caf::actor& sub, event_mask mask) {
        subscribe(sub, mask);
      },
      [this](unsubscribe_atom, const caf::actor& sub) {
        unsubscribe(sub.address());
      },
      [this](restart_atom, uint64_t tag, uint64_t generation) {
        auto c = find_by_tag(tag);
        if (c && c->generation == generation
            && c->state == child_state::restarting)
          restart_one(*c);
      },
      [this](group_restart_atom, const std::vector<uint64_t>& members) {
        restart_group(members);
      },
      [](kill_timeout_atom, uint64_t, uint64_t) {
        // A timer of a termination that already finished.
      },
    };
  }

  // -- member variables -------------------------------------------------------

  supervisor_flags flags_;
  restart_window window_;
  caf::error init_error_;
  std::vector<caf::actor> started_;
  std::mt19937_64 rng_;

  /// Static children in start order.
  std::vector<child_ptr> children_;

  /// simple_one_for_one: the template and the dynamic children by tag.
  std::shared_ptr<const child_spec> template_;
  std::unordered_map<uint64_t, child_ptr> dynamic_;
  std::unordered_map<caf::actor_id, uint64_t> dynamic_by_actor_;

  /// Subscribers and the event kinds each wants; `wanted_` is their union.
  std::vector<std::pair<caf::actor, event_mask>> subscribers_;
  event_mask wanted_ = 0;

  std::optional<termination> term_;
  /// Downs of children that were not being stopped, seen while busy.
  std::vector<caf::down_msg> deferred_;
  /// A stop request that arrived while busy.
  std::optional<caf::error> stop_request_;
  uint64_t next_tag_ = 0;
  uint64_t next_termination_ = 0;
  bool shutting_down_ = false;
  bool terminated_ = false;
};

} // namespace

// -- free functions -------------------------------------------------------------

caf::expected<caf::actor> spawn_supervisor(caf::actor_system& sys,
                                           supervisor_flags flags,
                                           std::vector<child_spec> children) {
  if (auto err = validate(flags))
    return err;
  if (flags.strategy == supervision_strategy::simple_one_for_one) {
    if (children.size() != 1)
      return make_error(errc::bad_combination,
                        "simple_one_for_one needs exactly one child spec, got "
                          + std::to_string(children.size()));
  }
  if (auto err = check_childspecs(children, flags))
    return err;
  std::vector<caf::actor> started;
  caf::error init_error;
  if (flags.strategy != supervision_strategy::simple_one_for_one) {
    // Start in spec order, as OTP's init; the first failure aborts.
    for (auto& spec : children) {
      caf::expected<caf::actor> res{caf::actor{}};
      try {
        res = spec.start(sys, caf::message{});
      } catch (std::exception& ex) {
        res = make_error(errc::start_failed, std::string{"exception: "}
                                               + ex.what());
      }
      if (res && *res) {
        started.push_back(std::move(*res));
        continue;
      }
      init_error = make_error(errc::start_failed,
                              "child " + spec.id + ": "
                                + (res ? std::string{"invalid actor handle"}
                                       : render(res.error())));
      break;
    }
  }
  auto sup = sys.spawn<supervisor_actor>(std::move(flags), std::move(children),
                                         std::move(started), init_error);
  if (init_error)
    return init_error;
  return sup;
}

caf::expected<supervision_tree>
describe_tree(caf::actor_system& sys, const caf::actor& root,
              caf::timespan timeout) {
  caf::scoped_actor self{sys};
  // Depth first; each level asks its supervisor children in turn (a tree
  // of a node has a handful of supervisors, so sequential is enough).
  std::function<caf::expected<supervision_tree>(const caf::actor&)> walk;
  walk = [&](const caf::actor& sup) -> caf::expected<supervision_tree> {
    caf::expected<supervision_tree> result{supervision_tree{}};
    self->request(sup, timeout, describe_atom::value)
      .receive(
        [&](supervisor_report& rep) { result->report = std::move(rep); },
        [&](caf::error& err) { result = std::move(err); });
    if (!result)
      return result;
    for (auto& c : result->report.children) {
      std::unique_ptr<supervision_tree> sub;
      if (c.type == child_type::supervisor && c.actor
          && c.state == child_state::running)
        if (auto x = walk(c.actor))
          sub = std::make_unique<supervision_tree>(std::move(*x));
      result->subtrees.push_back(std::move(sub));
    }
    return result;
  };
  return walk(root);
}

child_spec supervisor_child(std::string id, supervisor_flags flags,
                            std::vector<child_spec> children,
                            restart_type restart) {
  child_spec result;
  result.id = std::move(id);
  result.type = child_type::supervisor;
  result.restart = restart;
  result.start = [flags, children](caf::actor_system& sys,
                                   const caf::message&) {
    return spawn_supervisor(sys, flags, children);
  };
  return result;
}

const char* to_string(child_state x) noexcept {
  switch (x) {
    case child_state::running: return "running";
    case child_state::restarting: return "restarting";
    case child_state::undefined: return "undefined";
  }
  return "invalid";
}

} // namespace ft
