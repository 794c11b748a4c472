// The watchdog actor: a thin shell around `watchdog_tracker` (ft_core). The
// tracker decides what is stale, stuck or a zombie and when to escalate;
// this file owns time (one timer, armed at the tracker's next deadline),
// monitors the workers, talks to the supervisor and runs the operator hook.
//
// Recovery goes through the supervisor, never around it: a stale or stuck
// worker is asked to exit with `watchdog_timeout`, which its supervisor sees
// as a crash and handles per the child's restart type (and counts against
// its restart intensity); a zombie is restarted with `restart_child`.
// Replacements are adopted from the supervisor's `child_started` and
// `child_restarted` events, which carry the new handle.
//
// CAF 0.17 cannot cancel a delayed message: the check timer carries a
// generation, and only the newest one acts. The timer is re-armed only when
// a deadline moves earlier, so heartbeats cost no timer messages.

#include "ft/watchdog.hpp"

#include <algorithm>
#include <exception>
#include <iostream>
#include <unordered_map>

#include <unistd.h>

#include <caf/all.hpp>

#include "ft/error.hpp"
#include "ft/events.hpp"
#include "ft/supervisor.hpp"

#include "wall_clock.hpp"

namespace ft {

namespace {

// -- private message atoms ----------------------------------------------------

/// `(check_atom, uint64_t generation)`: the check timer.
using check_atom = caf::atom_constant<caf::atom("ftwdcheck")>;

/// `(parent_tick_atom)`: time to heartbeat to the parent watchdog.
using parent_tick_atom = caf::atom_constant<caf::atom("ftwdptick")>;

/// `(kill_atom, std::string id, caf::actor_id victim)`: the victim had
/// `kill_timeout` to exit after a `watchdog_timeout` exit.
using kill_atom = caf::atom_constant<caf::atom("ftwdkill")>;

using time_point = caf::actor_clock::time_point;

using detail::wall_clock_ms;

watchdog_event_kind event_kind_of(watchdog_fault x) {
  switch (x) {
    case watchdog_fault::stale: return watchdog_event_kind::stale;
    case watchdog_fault::stuck: return watchdog_event_kind::stuck;
    case watchdog_fault::zombie: return watchdog_event_kind::zombie;
  }
  return watchdog_event_kind::stale;
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0)
    return "localhost";
  return buf;
}

// -- the actor ----------------------------------------------------------------

class watchdog_actor : public caf::event_based_actor {
public:
  watchdog_actor(caf::actor_config& cfg, watchdog_config wcfg,
                 caf::actor supervisor, watchdog_options opts)
    : caf::event_based_actor(cfg),
      cfg_(std::move(wcfg)),
      sup_(std::move(supervisor)),
      opts_(std::move(opts)),
      tracker_(cfg_),
      limiter_(cfg_.hook_min_interval) {
    // nop
  }

  const char* name() const override {
    return "ft.watchdog";
  }

  void on_exit() override {
    // Leave the name to the next incarnation, if it did not take it yet.
    auto name = opts_.registered_name;
    if (name != caf::atom("")) {
      auto& reg = system().registry();
      auto current = reg.get<caf::actor>(name);
      if (current && current.address() == address())
        reg.erase(name);
    }
    // Members live until our last handle goes, not until we terminate: the
    // supervisor and the watched actors hold handles to us in turn.
    sup_ = nullptr;
    handles_.clear();
    by_actor_.clear();
    subscribers_.clear();
    opts_.subscribers.clear();
  }

  caf::behavior make_behavior() override {
    node_ = cfg_.node.empty() ? host_name() : cfg_.node;
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
    if (sup_) {
      monitor(sup_);
      send(sup_, subscribe_atom::value, caf::actor_cast<caf::actor>(this),
           mask_of({event_kind::child_started, event_kind::child_restarted}));
    }
    for (auto& sub : opts_.subscribers)
      add_subscriber(sub);
    if (opts_.registered_name != caf::atom("")) {
      // put() does not replace an existing entry.
      auto& reg = system().registry();
      reg.erase(opts_.registered_name);
      reg.put(opts_.registered_name, caf::actor_cast<caf::actor>(this));
    }
    if (opts_.parent)
      beat_parent();
    return {
      [this](watchdog_register_atom, const std::string& id,
             const caf::actor& worker) -> caf::result<void> {
        return register_worker(id, worker, id);
      },
      [this](watchdog_register_atom, const std::string& id,
             const caf::actor& worker,
             const std::string& child_id) -> caf::result<void> {
        return register_worker(id, worker, child_id);
      },
      [this](watchdog_unregister_atom,
             const std::string& id) -> caf::result<void> {
        return unregister_worker(id);
      },
      [this](watchdog_heartbeat_atom, const std::string& id) {
        on_beat(id, std::nullopt);
      },
      [this](watchdog_progress_atom, const std::string& id, int64_t value) {
        on_beat(id, value);
      },
      [this](watchdog_status_atom) { return status(); },
      [this](watchdog_subscribe_atom, const caf::actor& sub) {
        add_subscriber(sub);
      },
      [this](watchdog_unsubscribe_atom, const caf::actor& sub) {
        subscribers_.erase(std::remove(subscribers_.begin(),
                                       subscribers_.end(), sub),
                           subscribers_.end());
      },
      [this](const supervisor_event& ev) { on_supervisor_event(ev); },
      [this](check_atom, uint64_t generation) { on_check(generation); },
      [this](parent_tick_atom) { beat_parent(); },
      [this](kill_atom, const std::string& id, caf::actor_id victim) {
        auto i = handles_.find(id);
        if (i != handles_.end() && i->second && i->second.id() == victim
            && tracker_.alive(id))
          send_exit(i->second, caf::exit_reason::kill);
      },
    };
  }

private:
  // -- helpers ----------------------------------------------------------------

  time_point now_() const {
    return clock().now();
  }

  void emit(watchdog_event_kind kind, const std::string& worker,
            watchdog_fault fault, std::string detail, uint8_t severity) {
    if (subscribers_.empty())
      return;
    watchdog_event ev;
    ev.kind = kind;
    ev.watchdog = cfg_.name;
    ev.worker = worker;
    ev.fault = fault;
    ev.detail = std::move(detail);
    ev.severity = severity;
    ev.timestamp_ms = wall_clock_ms();
    for (auto& sub : subscribers_)
      send(sub, ev);
  }

  void add_subscriber(const caf::actor& sub) {
    if (!sub || std::find(subscribers_.begin(), subscribers_.end(), sub)
                  != subscribers_.end())
      return;
    monitor(sub);
    subscribers_.push_back(sub);
  }

  /// Makes sure the check timer fires no later than `t` (or, with a
  /// check_interval, no earlier than one interval after the last check).
  void arm(std::optional<time_point> t) {
    if (!t)
      return;
    auto at = *t;
    if (cfg_.check_interval.count() > 0 && last_check_)
      at = std::max(at, *last_check_ + cfg_.check_interval);
    // A check at `at` already ran and left this deadline: checking again at
    // once would spin (the tracker moves every deadline it passes, so this
    // is only a guard).
    if (last_check_ && at <= *last_check_)
      at = *last_check_ + std::chrono::milliseconds(1);
    if (armed_ && *armed_ <= at)
      return;
    armed_ = at;
    ++generation_;
    auto now = now_();
    if (at <= now)
      send(this, check_atom::value, generation_);
    else
      delayed_send(this, at - now, check_atom::value, generation_);
  }

  // -- workers ----------------------------------------------------------------

  /// Takes `handle` as the current incarnation of worker `id`.
  void adopt(const std::string& id, const caf::actor& handle,
             const std::string& child_id) {
    auto& current = handles_[id];
    if (current == handle) {
      // A late event or reply about an incarnation we know: alive, or dead
      // already (its down message overtook the news of its start).
      if (tracker_.alive(id))
        tracker_.heartbeat(id, now_());
      return;
    }
    if (current) {
      demonitor(current);
      by_actor_.erase(current.id());
    }
    current = handle;
    monitor(handle);
    by_actor_[handle.id()] = id;
    auto fault = tracker_.last_fault(id);
    if (tracker_.add(id, child_id, now_()))
      emit(watchdog_event_kind::recovered, id,
           fault.value_or(watchdog_fault::zombie),
           id + " replaced by a new incarnation (actor "
             + std::to_string(handle.id()) + ")",
           1);
    arm(tracker_.next_deadline(id));
  }

  caf::result<void> register_worker(const std::string& id,
                                    const caf::actor& worker,
                                    const std::string& child_id) {
    if (id.empty())
      return make_error(errc::invalid_config,
                        "register: id = '' (must not be empty)");
    if (!worker)
      return make_error(errc::invalid_config,
                        "register: worker " + id + " has no actor handle");
    adopt(id, worker, child_id.empty() ? id : child_id);
    return caf::unit;
  }

  caf::result<void> unregister_worker(const std::string& id) {
    auto i = handles_.find(id);
    if (i == handles_.end())
      return make_error(errc::not_found, "worker = " + id);
    if (i->second) {
      demonitor(i->second);
      by_actor_.erase(i->second.id());
    }
    handles_.erase(i);
    tracker_.remove(id);
    return caf::unit;
  }

  void on_beat(const std::string& id, std::optional<int64_t> value) {
    auto sender = caf::actor_cast<caf::actor>(current_sender());
    auto i = handles_.find(id);
    if (i == handles_.end()) {
      if (!cfg_.auto_register || !sender)
        return;
      adopt(id, sender, id);
    } else if (sender && i->second && sender != i->second) {
      // Not the registered incarnation: a replacement that beats before
      // its supervisor's event arrived, or a leftover of an old one.
      if (tracker_.alive(id) || !cfg_.auto_register)
        return;
      adopt(id, sender, tracker_.child_of(id));
    }
    if (value) {
      tracker_.progress(id, *value, now_());
      arm(tracker_.next_deadline(id));
    } else {
      tracker_.heartbeat(id, now_());
    }
  }

  void on_down(const caf::down_msg& dm) {
    if (sup_ && dm.source == sup_.address()) {
      // Our workers ended with their supervisor.
      quit(dm.reason);
      return;
    }
    subscribers_.erase(std::remove_if(subscribers_.begin(),
                                      subscribers_.end(),
                                      [&](const caf::actor& x) {
                                        return x.address() == dm.source;
                                      }),
                       subscribers_.end());
    auto i = by_actor_.find(dm.source.id());
    if (i == by_actor_.end())
      return;
    auto id = i->second;
    by_actor_.erase(i);
    auto h = handles_.find(id);
    if (h == handles_.end() || h->second.address() != dm.source)
      return;
    tracker_.died(id, now_());
    arm(tracker_.next_deadline(id));
  }

  void on_supervisor_event(const supervisor_event& ev) {
    if (!ev.actor
        || (ev.kind != event_kind::child_started
            && ev.kind != event_kind::child_restarted))
      return;
    if (auto id = tracker_.by_child(ev.child))
      adopt(*id, ev.actor, ev.child);
  }

  std::vector<watchdog_worker_info> status() const {
    auto result = tracker_.status(now_());
    for (auto& x : result) {
      auto i = handles_.find(x.id);
      if (i != handles_.end())
        x.actor = i->second;
    }
    return result;
  }

  // -- checks and recovery ----------------------------------------------------

  void on_check(uint64_t generation) {
    if (generation != generation_)
      return;
    armed_.reset();
    last_check_ = now_();
    for (auto& f : tracker_.check(*last_check_))
      recover(f);
    arm(tracker_.next_deadline());
  }

  void recover(const watchdog_finding& f) {
    auto what = f.id + " " + to_string(f.fault) + " for "
                + render_seconds(f.silent_for);
    auto kind = event_kind_of(f.fault);
    if (f.fault == watchdog_fault::zombie) {
      auto child = tracker_.child_of(f.id);
      emit(kind, f.id, f.fault,
           what + " (dead, no replacement registered); restart_child "
             + child,
           2);
      if (f.escalate)
        escalate(f, what);
      restart_zombie(f.id, child);
      return;
    }
    emit(kind, f.id, f.fault,
         what
           + (f.fault == watchdog_fault::stale ? " (no heartbeat)"
                                               : " (no progress)")
           + "; asking it to exit",
         2);
    if (f.escalate)
      escalate(f, what);
    auto i = handles_.find(f.id);
    if (i == handles_.end() || !i->second)
      return;
    send_exit(i->second, make_error(errc::watchdog_timeout, what));
    delayed_send(this, cfg_.kill_timeout, kill_atom::value, f.id,
                 i->second.id());
  }

  void restart_zombie(const std::string& id, const std::string& child) {
    if (!sup_) {
      fail_recovery(id, "no supervisor to restart " + child);
      return;
    }
    request(sup_, caf::infinite, restart_child_atom::value, child)
      .then(
        [this, id, child](const caf::actor& x) {
          if (tracker_.contains(id) && x)
            adopt(id, x, child);
        },
        [this, id, child](const caf::error& err) {
          // Replaced or unregistered meanwhile: nothing failed.
          if (!tracker_.contains(id) || tracker_.alive(id))
            return;
          if (is(err, errc::restarting))
            return; // The supervisor's own restart is pending.
          if (is(err, errc::running)) {
            adopt_running(id, child);
            return;
          }
          fail_recovery(id, "restart_child " + child + ": " + render(err));
        });
  }

  /// The supervisor runs `child` but we missed its event: ask for it.
  void adopt_running(const std::string& id, const std::string& child) {
    request(sup_, caf::infinite, which_children_atom::value)
      .then(
        [this, id, child](const std::vector<child_info>& xs) {
          for (auto& x : xs)
            if (x.id == child && x.actor && tracker_.contains(id)
                && !tracker_.alive(id))
              adopt(id, x.actor, child);
        },
        [](const caf::error&) {
          // The supervisor is going away; its down message ends us.
        });
  }

  void fail_recovery(const std::string& id, const std::string& why) {
    auto f = tracker_.recovery_failed(id, now_());
    if (!f)
      return;
    emit(watchdog_event_kind::recovery_failed, id, f->fault,
         why + " (" + std::to_string(f->failed_recoveries)
           + " failed recoveries in a row)",
         3);
    if (f->escalate)
      escalate(*f, why);
    arm(tracker_.next_deadline(id));
  }

  void escalate(const watchdog_finding& f, const std::string& what) {
    auto detail = f.id + ": " + std::to_string(f.failed_recoveries)
                  + " failed recoveries in a row; last: " + what;
    emit(watchdog_event_kind::escalated, f.id, f.fault, detail,
         cfg_.escalation_severity);
    if (cfg_.operator_hook.empty())
      return;
    auto suppressed = limiter_.admit(now_());
    if (!suppressed)
      return;
    hook_invocation x;
    x.command = cfg_.operator_hook;
    x.severity = cfg_.escalation_severity;
    x.worker = f.id;
    x.kind = to_string(f.fault);
    x.detail = detail;
    x.node = node_;
    x.watchdog = cfg_.name;
    x.failed_recoveries = f.failed_recoveries;
    x.suppressed = *suppressed;
    try {
      if (opts_.run_hook)
        opts_.run_hook(x);
      else
        run_hook_detached(std::move(x), cfg_.hook_timeout);
    } catch (const std::exception& ex) {
      std::cerr << "[ft] " << cfg_.name
                << ": operator hook failed to start: " << ex.what()
                << std::endl;
    }
  }

  // -- layering ---------------------------------------------------------------

  void beat_parent() {
    if (auto parent = opts_.parent.resolve(system()))
      send(parent, watchdog_heartbeat_atom::value, cfg_.name);
    delayed_send(this, cfg_.heartbeat_interval, parent_tick_atom::value);
  }

  // -- member variables -------------------------------------------------------

  watchdog_config cfg_;
  caf::actor sup_;
  watchdog_options opts_;
  watchdog_tracker tracker_;
  watchdog_hook_limiter limiter_;
  std::string node_;

  /// The current incarnation of each worker (dead ones until replaced).
  std::unordered_map<std::string, caf::actor> handles_;
  std::unordered_map<caf::actor_id, std::string> by_actor_;

  std::vector<caf::actor> subscribers_;

  /// The check timer: when it fires, and which one counts.
  std::optional<time_point> armed_;
  std::optional<time_point> last_check_;
  uint64_t generation_ = 0;
};

} // namespace

// -- free functions -------------------------------------------------------------

caf::expected<caf::actor> spawn_watchdog(caf::actor_system& sys,
                                         watchdog_config cfg,
                                         caf::actor supervisor,
                                         watchdog_options opts) {
  if (auto err = validate(cfg))
    return err;
  return sys.spawn<watchdog_actor>(std::move(cfg), std::move(supervisor),
                                   std::move(opts));
}

caf::message_handler heartbeat_loop(caf::event_based_actor* self,
                                    watchdog_ref wd, std::string id,
                                    caf::timespan interval) {
  watchdog_beat(self, wd, id);
  self->delayed_send(self, interval, watchdog_tick_atom::value);
  return {
    [self, wd, id, interval](watchdog_tick_atom) {
      watchdog_beat(self, wd, id);
      self->delayed_send(self, interval, watchdog_tick_atom::value);
    },
  };
}

} // namespace ft
