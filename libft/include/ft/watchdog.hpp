#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message_handler.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

/// Node-level watchdogs (layered monitors), as Erlang's `heart`, systemd's
/// `WatchdogSec` and Akka's failure detectors: workers send heartbeats (and
/// optionally progress) to a watchdog; a worker that goes silent (stale),
/// stops making progress (stuck) or dies without a replacement (zombie) is
/// found within its configured timeout and recovered through its
/// supervisor. Failed recoveries in a row escalate to an operator hook.
/// Watchdogs heartbeat to a parent watchdog (the node watchdog), which
/// watches them the same way.
///
/// The first half of this header is the pure part (config, YAML, the
/// tracker with time passed in, the hook runner); the second half is the
/// actor (`spawn_watchdog`) and the helpers workers use.
namespace ft {

// -- faults -------------------------------------------------------------------

/// What a watchdog finds wrong with a worker.
enum class watchdog_fault : uint8_t {
  /// No heartbeat (nor progress report) for `heartbeat_timeout`.
  stale,
  /// Heartbeats arrive but the progress value did not change for
  /// `progress_timeout`.
  stuck,
  /// The worker died while registered and no replacement registered within
  /// `zombie_timeout`.
  zombie,
};

const char* to_string(watchdog_fault x) noexcept;

std::optional<watchdog_fault> parse_watchdog_fault(const std::string& x);

// -- configuration --------------------------------------------------------------

/// Parameters of one watchdog. Times run on the actor clock.
struct watchdog_config {
  /// Names the watchdog in events, in the hook's environment and at its
  /// parent (its worker id there, so also its child id in the supervisor
  /// that runs it).
  std::string name = "watchdog";

  /// The node, for the hook (`FT_NODE`); empty = the host name.
  std::string node;

  /// Silence (no heartbeat, no progress report) after which a worker is
  /// stale. Detection happens exactly at this timeout (see check_interval).
  caf::timespan heartbeat_timeout = std::chrono::seconds(5);

  /// Time without a change of the progress value after which a worker is
  /// stuck; 0 = off. Applies only to workers that reported progress once.
  caf::timespan progress_timeout{0};

  /// Time a registered worker may stay dead (no replacement registered)
  /// before it counts as a zombie and the watchdog asks its supervisor to
  /// `restart_child` it.
  caf::timespan zombie_timeout = std::chrono::seconds(10);

  /// 0: the watchdog wakes up exactly at the next deadline. > 0: it wakes
  /// up at most once per interval, so thousands of workers with scattered
  /// deadlines cost one check per interval; findings are then up to this
  /// much late.
  caf::timespan check_interval{0};

  /// A stale or stuck worker is asked to exit with `watchdog_timeout`; one
  /// that has not exited after this time (it traps exits) is killed.
  caf::timespan kill_timeout = std::chrono::seconds(1);

  /// How often this watchdog heartbeats to its parent (if it has one).
  caf::timespan heartbeat_interval = std::chrono::seconds(1);

  /// Failed recoveries in a row (a recovery fails when restart_child fails
  /// or the worker is found faulty again before `healthy_period` passed)
  /// after which the watchdog escalates (event + operator hook). The count
  /// starts again after each escalation.
  int max_recoveries = 3;

  /// A worker that stays free of findings this long after its last finding
  /// or registration has its failed-recovery count reset. Must exceed
  /// heartbeat_timeout and progress_timeout, so that a worker that stays
  /// faulty is found again before it could count as healthy.
  caf::timespan healthy_period = std::chrono::seconds(60);

  /// Severity (1 info, 2 warning, 3 error, 4 critical) of escalations.
  uint8_t escalation_severity = 4;

  /// Shell command run (`/bin/sh -c`) on escalation, on a detached thread;
  /// empty = none. It gets `FT_SEVERITY`, `FT_WORKER`, `FT_KIND`,
  /// `FT_DETAIL`, `FT_NODE`, `FT_WATCHDOG`, `FT_FAILED_RECOVERIES` and
  /// `FT_SUPPRESSED` in its environment and severity, worker and kind as
  /// `$1 $2 $3`.
  std::string operator_hook;

  /// At most one hook run per interval (per watchdog); escalations in
  /// between only produce events, and the next run reports how many were
  /// suppressed (`FT_SUPPRESSED`). 0 = no limit.
  caf::timespan hook_min_interval = std::chrono::seconds(60);

  /// A hook still running after this time is killed; 0 = no limit.
  caf::timespan hook_timeout = std::chrono::seconds(30);

  /// Whether a heartbeat for an unknown id from an actor registers that
  /// actor under that id (so a restarted watchdog re-learns its workers
  /// from their next heartbeats).
  bool auto_register = true;
};

/// `invalid_config` naming the first bad field and its value, e.g.
/// `heartbeat_timeout = 0s (must be > 0)`.
caf::error validate(const watchdog_config& x);

/// Reads a watchdog config from YAML: the fields of `watchdog_config`
/// (times in seconds, `escalation_severity` 1–4), optionally wrapped in a
/// top-level `watchdog:` mapping:
///
/// ```yaml
/// watchdog:
///   name: pool-wd
///   heartbeat_timeout: 2       # seconds
///   progress_timeout: 30       # 0 = off
///   zombie_timeout: 5
///   max_recoveries: 3
///   escalation_severity: 4
///   operator_hook: "/usr/local/bin/page-oncall"
///   hook_min_interval: 300
/// ```
///
/// An empty document is the defaults. Every failure is `invalid_config`
/// with context `source:line: field ...` naming the value.
caf::expected<watchdog_config>
watchdog_config_from_yaml(const std::string& text,
                          const std::string& source = "<config>");

caf::expected<watchdog_config>
watchdog_config_from_yaml_file(const std::string& path);

// -- the tracker (pure) ---------------------------------------------------------

/// One thing a check found.
struct watchdog_finding {
  std::string id;
  watchdog_fault fault = watchdog_fault::stale;
  /// stale: since the last heartbeat; stuck: since the progress value last
  /// changed; zombie: since the worker died.
  caf::timespan silent_for{0};
  /// Failed recoveries in a row, this finding's count included.
  int failed_recoveries = 0;
  /// The count reached `max_recoveries`: escalate (the count starts again).
  bool escalate = false;
};

/// A worker's state as the status query reports it (e.g. for an HTTP
/// endpoint). `actor` is filled in by the watchdog actor.
struct watchdog_worker_info {
  std::string id;
  /// Its child id in the watchdog's supervisor.
  std::string child_id;
  caf::actor actor;
  bool alive = true;
  /// Registrations so far (1 + replacements adopted).
  uint64_t incarnation = 0;
  /// Alive: since the last heartbeat; dead: since it died.
  caf::timespan silent_for{0};
  bool has_progress = false;
  int64_t progress = 0;
  /// Since the progress value last changed (0 without progress).
  caf::timespan since_progress{0};
  int failed_recoveries = 0;
  /// A recovery is under way (not yet confirmed by a healthy period).
  bool recovering = false;
  /// Findings so far.
  uint64_t findings = 0;
  /// The latest finding's fault name, empty before the first.
  std::string last_fault;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, watchdog_worker_info& x) {
  return f(caf::meta::type_name("ft.watchdog_worker_info"), x.id, x.child_id,
           x.actor, x.alive, x.incarnation, x.silent_for, x.has_progress,
           x.progress, x.since_progress, x.failed_recoveries, x.recovering,
           x.findings, x.last_fault);
}

/// The watchdog's bookkeeping with time passed in, so tests replay
/// schedules exactly and the actor stays the only owner of time. Rules:
/// - a finding re-arms the worker's timers: the same worker is found again
///   at the earliest one full timeout later, which is the time its recovery
///   gets;
/// - a finding while the previous recovery is unconfirmed counts that
///   recovery as failed, as does `recovery_failed`; `max_recoveries`
///   failures in a row make a finding (or failure) escalate;
/// - `healthy_period` free of findings since the last finding or
///   registration, alive, resets the count.
/// Not thread-safe: one actor owns it.
class watchdog_tracker {
public:
  using time_point = caf::actor_clock::time_point;

  /// Requires `validate(cfg)` to pass; `make` checks it for you.
  explicit watchdog_tracker(watchdog_config cfg);

  static caf::expected<watchdog_tracker> make(watchdog_config cfg);

  /// Registers worker `id` (child `child_id` of the supervisor; `id` if
  /// empty) at `now`, counting as its first heartbeat. Registering a known
  /// id is a new incarnation (a replacement): it is alive again and its
  /// timers start over, but its recovery count stays. Returns whether it
  /// was recovering (the replacement ends a recovery).
  bool add(const std::string& id, const std::string& child_id,
           time_point now);

  /// Forgets `id` (it ends on purpose); false if unknown.
  bool remove(const std::string& id);

  bool contains(const std::string& id) const {
    return entries_.count(id) > 0;
  }

  size_t size() const noexcept {
    return entries_.size();
  }

  /// The id of the worker registered as child `child_id`, if any.
  std::optional<std::string> by_child(const std::string& child_id) const;

  /// The child id of `id` (empty if unknown).
  std::string child_of(const std::string& id) const;

  /// Whether `id` is registered and alive.
  bool alive(const std::string& id) const;

  /// The fault of the latest finding of `id`, if any.
  std::optional<watchdog_fault> last_fault(const std::string& id) const;

  /// A heartbeat of `id`; false if unknown or dead (heartbeats of dead
  /// workers are ignored).
  bool heartbeat(const std::string& id, time_point now);

  /// A progress report of `id`: counts as a heartbeat, and a value
  /// different from the last one (or the first report) is progress. False
  /// if unknown or dead.
  bool progress(const std::string& id, int64_t value, time_point now);

  /// `id` died; its zombie timer starts. False if unknown or dead already.
  bool died(const std::string& id, time_point now);

  /// What is wrong at `now`, in id order, at most one finding per worker;
  /// also resets the counts of workers that stayed healthy.
  std::vector<watchdog_finding> check(time_point now);

  /// The recovery of `id` failed outright (e.g. restart_child answered an
  /// error): counts it, restarts the zombie timer, and returns the count
  /// (escalate set when it reached `max_recoveries`). None if unknown.
  std::optional<watchdog_finding> recovery_failed(const std::string& id,
                                                  time_point now);

  /// When `check` may next find something or reset a count (for the
  /// actor's timer); none without workers.
  std::optional<time_point> next_deadline() const;

  /// As above for worker `id` only (none if unknown): what a heartbeat,
  /// progress report or registration of one worker may have moved.
  std::optional<time_point> next_deadline(const std::string& id) const;

  /// Every worker at `now`, in id order (without actor handles).
  std::vector<watchdog_worker_info> status(time_point now) const;

  const watchdog_config& config() const noexcept {
    return cfg_;
  }

private:
  struct entry {
    std::string child_id;
    bool alive = true;
    uint64_t incarnation = 0;
    time_point last_heartbeat;
    /// The stale timer counts from here (last heartbeat or finding).
    time_point stale_from;
    std::optional<int64_t> progress;
    time_point last_progress;
    time_point stuck_from;
    time_point died_at;
    time_point zombie_from;
    time_point healthy_since;
    bool recovering = false;
    int failed = 0;
    uint64_t findings = 0;
    std::optional<watchdog_fault> last_fault;
  };

  /// When `check` may next find something about `e`.
  time_point deadline_of(const entry& e) const;

  watchdog_config cfg_;
  std::map<std::string, entry> entries_;
};

/// Limits how often the operator hook runs: at most once per
/// `min_interval` (0 = no limit). Pure, time passed in.
class watchdog_hook_limiter {
public:
  using time_point = caf::actor_clock::time_point;

  explicit watchdog_hook_limiter(caf::timespan min_interval)
    : min_interval_(min_interval) {
    // nop
  }

  /// Whether a run at `now` is allowed; if so, returns how many were
  /// suppressed since the previous run (and starts counting again).
  std::optional<size_t> admit(time_point now);

  size_t suppressed() const noexcept {
    return suppressed_;
  }

private:
  caf::timespan min_interval_;
  std::optional<time_point> last_;
  size_t suppressed_ = 0;
};

// -- the operator hook ---------------------------------------------------------

/// One run of the operator hook: the command and what it is told.
struct hook_invocation {
  std::string command;
  uint8_t severity = 4;
  std::string worker;
  /// The fault's name (stale, stuck, zombie).
  std::string kind;
  std::string detail;
  std::string node;
  std::string watchdog;
  int failed_recoveries = 0;
  /// Escalations whose hook runs the rate limit suppressed before this one.
  size_t suppressed = 0;
  /// The whole event as JSON (alerts set it; empty for the watchdog).
  std::string event_json;

  /// `FT_SEVERITY`, `FT_WORKER`, `FT_KIND`, `FT_DETAIL`, `FT_NODE`,
  /// `FT_WATCHDOG`, `FT_FAILED_RECOVERIES`, `FT_SUPPRESSED`, `FT_EVENT`
  /// with values.
  std::vector<std::pair<std::string, std::string>> environment() const;
};

/// Runs a hook; must not block (the watchdog calls it in its handler).
using hook_runner = std::function<void(const hook_invocation&)>;

/// Runs `x.command` with `/bin/sh -c` (posix_spawn; the environment of
/// this process plus `x.environment()`; `$1 $2 $3` = severity, worker,
/// kind) and waits for it: its exit status, or an error naming the
/// command. Kills it after `timeout` (0 = no limit). Blocks: for tools and
/// tests; the watchdog uses `run_hook_detached`.
caf::expected<int> run_hook(const hook_invocation& x,
                            caf::timespan timeout = caf::timespan{0});

/// `run_hook` on a detached thread: returns at once.
void run_hook_detached(hook_invocation x,
                       caf::timespan timeout = caf::timespan{0});

// -- events -------------------------------------------------------------------

/// What a watchdog tells its subscribers.
enum class watchdog_event_kind : uint8_t {
  /// A worker was found stale, stuck or a zombie (recovery started).
  stale,
  stuck,
  zombie,
  /// A replacement of a recovering worker registered.
  recovered,
  /// A recovery failed outright (restart_child refused, no supervisor).
  recovery_failed,
  /// `max_recoveries` failed in a row: the operator hook runs.
  escalated,
};

const char* to_string(watchdog_event_kind x) noexcept;

/// One structured watchdog event.
struct watchdog_event {
  watchdog_event_kind kind = watchdog_event_kind::stale;
  /// The watchdog's name.
  std::string watchdog;
  /// The worker's id.
  std::string worker;
  /// The fault behind the event (for recovered, the one recovered from).
  watchdog_fault fault = watchdog_fault::stale;
  /// For humans: what was found and what the watchdog does about it.
  std::string detail;
  /// 1 info, 2 warning, 3 error, 4 critical (as ft/events.hpp): findings 2,
  /// recovered 1, recovery_failed 3, escalated `escalation_severity`.
  uint8_t severity = 2;
  /// Wall-clock time in milliseconds since the epoch.
  int64_t timestamp_ms = 0;
};

/// A one-line rendering, e.g.
/// `[pool-wd] stale worker=w1 fault=stale severity=2 w1 stale for 2s; ...`.
std::string to_string(const watchdog_event& x);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, watchdog_event& x) {
  return f(caf::meta::type_name("ft.watchdog_event"), x.kind, x.watchdog,
           x.worker, x.fault, x.detail, x.severity, x.timestamp_ms);
}

// -- addressing a watchdog -------------------------------------------------------

/// A watchdog by handle or by registered name (see
/// `watchdog_options::registered_name`). A name survives the watchdog's
/// restarts: each incarnation registers itself under it.
struct watchdog_ref {
  watchdog_ref() = default;

  watchdog_ref(caf::actor x) : handle(std::move(x)) {
    // nop
  }

  watchdog_ref(caf::atom_value x) : name(x) {
    // nop
  }

  caf::actor handle;
  caf::atom_value name = caf::atom("");

  /// The handle, or the actor registered under `name` now (invalid if
  /// none).
  caf::actor resolve(caf::actor_system& sys) const;

  explicit operator bool() const noexcept {
    return handle || name != caf::atom("");
  }
};

// -- message atoms --------------------------------------------------------------

/// `(watchdog_register_atom, std::string id, caf::actor worker) -> void`,
/// or `(..., std::string child_id)` when the worker's child id in the
/// supervisor differs from `id`. The watchdog monitors the worker; a known
/// id takes the new handle as its replacement.
using watchdog_register_atom = caf::atom_constant<caf::atom("ftwdreg")>;

/// `(watchdog_unregister_atom, std::string id) -> void` (`not_found` if
/// unknown): the worker ends on purpose and is no longer watched.
using watchdog_unregister_atom = caf::atom_constant<caf::atom("ftwdunreg")>;

/// `(watchdog_heartbeat_atom, std::string id)`, no reply. Accepted from the
/// registered worker or anonymously; from another actor for an unknown id
/// it registers that actor (see `auto_register`).
using watchdog_heartbeat_atom = caf::atom_constant<caf::atom("ftwdbeat")>;

/// `(watchdog_progress_atom, std::string id, int64_t value)`, no reply: a
/// heartbeat, and progress when `value` changed.
using watchdog_progress_atom = caf::atom_constant<caf::atom("ftwdprog")>;

/// `(watchdog_status_atom) -> std::vector<watchdog_worker_info>`.
using watchdog_status_atom = caf::atom_constant<caf::atom("ftwdstatus")>;

/// `(watchdog_subscribe_atom, caf::actor)`: the subscriber receives every
/// `watchdog_event`; `(watchdog_unsubscribe_atom, caf::actor)`.
using watchdog_subscribe_atom = caf::atom_constant<caf::atom("ftwdsub")>;
using watchdog_unsubscribe_atom = caf::atom_constant<caf::atom("ftwdunsub")>;

/// A worker's own timer message for `heartbeat_loop`.
using watchdog_tick_atom = caf::atom_constant<caf::atom("ftwdwtick")>;

// -- the actor ----------------------------------------------------------------

/// What a watchdog works with besides its config.
struct watchdog_options {
  /// The parent watchdog (the node watchdog): this watchdog heartbeats to
  /// it every `heartbeat_interval` under its `name`, so a hung watchdog is
  /// found like any worker.
  watchdog_ref parent;

  /// Registers the watchdog under this name in the actor system's registry
  /// (each incarnation replaces the previous one), so workers and child
  /// watchdogs reach it with a `watchdog_ref` of the name.
  caf::atom_value registered_name = caf::atom("");

  /// Receive every `watchdog_event` from the start.
  std::vector<caf::actor> subscribers;

  /// Runs the operator hook; `run_hook_detached` with `hook_timeout` if
  /// empty. Tests inject a function.
  hook_runner run_hook;
};

/// Spawns a watchdog for workers of `supervisor` (may be invalid: then
/// zombies cannot be restarted and count as failed recoveries at once).
/// Recovery:
/// - stale or stuck: the worker is asked to exit with `watchdog_timeout`
///   (context `"<id> stale for 1.2s"`), so its supervisor restarts it per
///   its restart type; after `kill_timeout` it is killed if still alive;
/// - zombie: the watchdog asks the supervisor to `restart_child`;
///   `restarting` waits for the supervisor, `running` adopts the running
///   child, other errors count as failed recoveries.
/// The watchdog subscribes to the supervisor's `child_started` and
/// `child_restarted` events and adopts replacements of registered workers
/// by their child id, so replacements need not register themselves. It
/// monitors the supervisor and ends with it (same reason).
/// Fails with `invalid_config` for an invalid config.
caf::expected<caf::actor> spawn_watchdog(caf::actor_system& sys,
                                         watchdog_config cfg,
                                         caf::actor supervisor,
                                         watchdog_options opts = {});

// -- helpers for workers --------------------------------------------------------

/// Sends one heartbeat for `id` from `self` (a pointer to, or
/// `caf::scoped_actor` of, the worker). Does nothing if `wd` resolves to
/// no actor.
template <class Self>
void watchdog_beat(Self& self, const watchdog_ref& wd, const std::string& id) {
  if (auto h = wd.resolve(self->system()))
    self->send(h, watchdog_heartbeat_atom::value, id);
}

/// Reports progress `value` for `id` (also a heartbeat).
template <class Self>
void watchdog_progress(Self& self, const watchdog_ref& wd,
                       const std::string& id, int64_t value) {
  if (auto h = wd.resolve(self->system()))
    self->send(h, watchdog_progress_atom::value, id, value);
}

/// Registers `self` as worker `id` (child id `child_id`, or `id`).
template <class Self>
void watchdog_register(Self& self, const watchdog_ref& wd,
                       const std::string& id, std::string child_id = {}) {
  if (auto h = wd.resolve(self->system()))
    self->send(h, watchdog_register_atom::value, id,
               caf::actor_cast<caf::actor>(self->ctrl()),
               child_id.empty() ? id : std::move(child_id));
}

/// Unregisters `id` before `self` ends on purpose.
template <class Self>
void watchdog_unregister(Self& self, const watchdog_ref& wd,
                         const std::string& id) {
  if (auto h = wd.resolve(self->system()))
    self->send(h, watchdog_unregister_atom::value, id);
}

/// Heartbeats of `self` for `id` every `interval`, from `self`'s own
/// mailbox (a hung worker stops them): sends the first one now and returns
/// the handler of the timer message, to combine with the worker's
/// behaviour, e.g.
/// `return caf::message_handler{...}.or_else(heartbeat_loop(self, wd, id, 1s));`
/// The first heartbeat registers the worker (see `auto_register`). One loop
/// per actor: the timer message carries no id.
caf::message_handler heartbeat_loop(caf::event_based_actor* self,
                                    watchdog_ref wd, std::string id,
                                    caf::timespan interval);

} // namespace ft
