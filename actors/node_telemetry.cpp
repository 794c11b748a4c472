#include "node_telemetry.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

#include <caf/all.hpp>

#include <httplib.h>

#include "ft/breaker_guard.hpp"
#include "ft/error.hpp"
#include "ft/events.hpp"
#include "ft/recovery.hpp"
#include "ft/snapshot_writer.hpp"
#include "ft/watchdog.hpp"

#include "wall_clock.hpp"

namespace ft::detail {

namespace {

// One help text per family: the registry insists every call site agrees.
constexpr const char* restarts_help = "Children restarted by a supervisor";
constexpr const char* escalations_help
  = "Times a supervisor gave up (restart intensity exceeded or escalated)";
constexpr const char* transitions_help
  = "Circuit breaker state changes, by the state entered";
constexpr const char* events_help = "Events journaled, by source and severity";
constexpr const char* watchdog_help = "Watchdog findings and recoveries";
constexpr const char* retries_help
  = "Retries made by recovery chains (immediate and delayed)";
constexpr const char* recovery_help = "Recovery chain steps, by outcome";
constexpr const char* writes_help = "Snapshots committed to the local store";
constexpr const char* write_failures_help
  = "Snapshot writes that failed to commit";
constexpr const char* write_seconds_help
  = "Wall time of one snapshot commit (a write or a group-commit batch)";
constexpr const char* replica_seconds_help
  = "Round trip of a snapshot replica write to a peer";
constexpr const char* replica_lag_help
  = "Replica writes sent to a peer and not yet answered";
constexpr const char* replica_failures_help
  = "Replica writes a peer failed or did not answer";
constexpr const char* alerts_help = "Alerts sent or suppressed by the rate limit";

/// Splits a registry circuit name `scope/key` (a guard's plain name has no
/// scope).
std::pair<std::string, std::string> split_circuit(const std::string& name) {
  auto slash = name.find('/');
  if (slash == std::string::npos)
    return {"guard", name};
  return {name.substr(0, slash), name.substr(slash + 1)};
}

uint8_t transition_severity(breaker_state to) {
  switch (to) {
    case breaker_state::open:
    case breaker_state::forced_open:
      return 3;
    case breaker_state::half_open:
    case breaker_state::disabled:
      return 2;
    case breaker_state::closed:
      return 1;
  }
  return 2;
}

double seconds(caf::timespan x) {
  return std::chrono::duration<double>(x).count();
}

} // namespace

node_telemetry::node_telemetry(std::string node, alert_config alerts)
  : node_(std::move(node)),
    alerts_(std::move(alerts)),
    metrics_(label_set{{"node", node_}}),
    limiter_(alerts_.max_alerts, alerts_.interval) {
  metrics_.gauge("ft_up", "1 while the node runs").set(1);
  // The node-wide series exist from the start (at 0), so a dashboard or
  // an alert rule sees "none yet" rather than "no such metric".
  metrics_.counter("ft_snapshot_writes_total", writes_help);
  metrics_.counter("ft_snapshot_write_failures_total", write_failures_help);
  metrics_.histogram("ft_snapshot_write_seconds", write_seconds_help);
  metrics_.counter("ft_retries_total", retries_help);
  metrics_.counter("ft_alerts_total", alerts_help, {{"result", "sent"}});
  metrics_.counter("ft_alerts_total", alerts_help, {{"result", "suppressed"}});
}

// -- recording ----------------------------------------------------------------

void node_telemetry::record(event_record x) {
  if (x.timestamp_ms == 0)
    x.timestamp_ms = wall_clock_ms();
  metrics_
    .counter("ft_events_total", events_help,
             {{"source", to_string(x.source)},
              {"severity", std::to_string(x.severity)}})
    .inc();
  auto id = journal_.append(x);
  x.id = id;
  // An alert about an alert would loop.
  if (x.source != event_source::alert && alerts_.enabled()
      && x.severity >= alerts_.min_severity)
    alert(x);
}

void node_telemetry::cluster(std::string kind, uint8_t severity,
                             std::string subject, std::string message) {
  event_record x;
  x.source = event_source::cluster;
  x.kind = std::move(kind);
  x.severity = severity;
  x.subject = std::move(subject);
  x.message = std::move(message);
  record(std::move(x));
}

void node_telemetry::on(const supervisor_event& ev) {
  auto now = wall_clock_ms();
  switch (ev.kind) {
    case event_kind::child_restarted:
      restarts_.add(now);
      metrics_
        .counter("ft_supervisor_restarts_total", restarts_help,
                 {{"supervisor", ev.supervisor}})
        .inc();
      break;
    case event_kind::intensity_exceeded:
    case event_kind::escalated: {
      metrics_
        .counter("ft_supervisor_escalations_total", escalations_help,
                 {{"supervisor", ev.supervisor}})
        .inc();
      std::lock_guard<std::mutex> guard{mtx_};
      gave_up_[ev.supervisor] = now;
      break;
    }
    default:
      break;
  }
  event_record x;
  x.timestamp_ms = ev.timestamp_ms;
  x.source = event_source::supervisor;
  x.kind = to_string(ev.kind);
  x.severity = ev.severity;
  x.subject = ev.child.empty() ? ev.supervisor : ev.supervisor + "/" + ev.child;
  x.message = to_string(ev);
  record(std::move(x));
}

void node_telemetry::on(const breaker_event& ev) {
  auto [scope, key] = split_circuit(ev.name);
  if (ev.kind != breaker_event_kind::transition)
    return; // calls are counted by the breakers themselves (stats)
  metrics_
    .counter("ft_breaker_transitions_total", transitions_help,
             {{"scope", scope}, {"key", key}, {"to", to_string(ev.to)}})
    .inc();
  event_record x;
  x.timestamp_ms = ev.timestamp_ms;
  x.source = event_source::breaker;
  x.kind = to_string(ev.to);
  x.severity = transition_severity(ev.to);
  x.subject = ev.name;
  x.message = to_string(ev);
  record(std::move(x));
}

void node_telemetry::on(const watchdog_event& ev) {
  metrics_
    .counter("ft_watchdog_events_total", watchdog_help,
             {{"watchdog", ev.watchdog}, {"kind", to_string(ev.kind)}})
    .inc();
  event_record x;
  x.timestamp_ms = ev.timestamp_ms;
  x.source = event_source::watchdog;
  x.kind = to_string(ev.kind);
  x.severity = ev.severity;
  x.subject = ev.watchdog + "/" + ev.worker;
  x.message = to_string(ev);
  record(std::move(x));
}

void node_telemetry::on(const recovery_event& ev) {
  metrics_
    .counter("ft_recovery_steps_total", recovery_help,
             {{"step", to_string(ev.step)}, {"outcome", to_string(ev.outcome)}})
    .inc();
  bool retry = ev.step == recovery_step_kind::immediate_retry
               || ev.step == recovery_step_kind::delayed_retry;
  if (retry && ev.attempt > 0 && ev.outcome != recovery_outcome::skipped)
    metrics_.counter("ft_retries_total", retries_help).inc();
  // Every attempt is counted; the journal keeps what an operator acts on.
  if (ev.severity < 2)
    return;
  event_record x;
  x.timestamp_ms = ev.timestamp_ms;
  x.source = event_source::recovery;
  x.kind = std::string{to_string(ev.step)} + "." + to_string(ev.outcome);
  x.severity = ev.severity;
  x.subject = ev.name;
  x.message = to_string(ev);
  record(std::move(x));
}

void node_telemetry::on(const snapshot_commit_info& info) {
  auto now = wall_clock_ms();
  if (info.stored > 0) {
    snapshot_writes_ += info.stored;
    metrics_.counter("ft_snapshot_writes_total", writes_help)
      .inc(static_cast<double>(info.stored));
  }
  metrics_.histogram("ft_snapshot_write_seconds", write_seconds_help)
    .observe(seconds(info.duration));
  if (info.failed > 0) {
    snapshot_failures_.add(now, info.failed);
    metrics_.counter("ft_snapshot_write_failures_total", write_failures_help)
      .inc(static_cast<double>(info.failed));
  }
  // Journal changes of state only: a store that keeps failing must not
  // push every other event out of the journal.
  bool failed_now = info.stored == 0 && info.failed > 0;
  bool changed = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    changed = failed_now != last_snapshot_failed_;
    last_snapshot_failed_ = failed_now;
    if (failed_now)
      last_snapshot_error_ = render(info.error);
  }
  if (changed) {
    event_record x;
    x.source = event_source::snapshot;
    x.kind = failed_now ? "write_failed" : "write_recovered";
    x.severity = failed_now ? 3 : 1;
    x.subject = "snapshot_store";
    x.message = failed_now ? "snapshot commits fail: " + render(info.error)
                           : "snapshot commits succeed again";
    record(std::move(x));
  }
}

void node_telemetry::replica_sent(const std::string& peer) {
  int64_t n = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    n = ++in_flight_[peer];
  }
  metrics_.gauge("ft_replication_lag_writes", replica_lag_help,
                 {{"peer", peer}})
    .set(static_cast<double>(n));
}

void node_telemetry::replica_answered(const std::string& peer,
                                      caf::timespan rtt, bool ok) {
  int64_t n = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto& x = in_flight_[peer];
    if (x > 0)
      --x;
    n = x;
  }
  metrics_.gauge("ft_replication_lag_writes", replica_lag_help,
                 {{"peer", peer}})
    .set(static_cast<double>(n));
  if (ok)
    metrics_
      .histogram("ft_replication_seconds", replica_seconds_help,
                 {{"peer", peer}})
      .observe(seconds(rtt));
  else
    metrics_
      .counter("ft_replication_failures_total", replica_failures_help,
               {{"peer", peer}})
      .inc();
}

// -- alerts -------------------------------------------------------------------

void node_telemetry::alert(const event_record& x) {
  std::optional<size_t> admitted;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    admitted = limiter_.admit(std::chrono::steady_clock::now());
  }
  if (!admitted) {
    metrics_.counter("ft_alerts_total", alerts_help, {{"result", "suppressed"}})
      .inc();
    return;
  }
  ++alerts_sent_;
  metrics_.counter("ft_alerts_total", alerts_help, {{"result", "sent"}}).inc();
  auto body = alert_json(x, node_, *admitted);
  if (!alerts_.command.empty()) {
    hook_invocation hook;
    hook.command = alerts_.command;
    hook.severity = x.severity;
    hook.worker = x.subject;
    hook.kind = x.kind;
    hook.detail = x.message;
    hook.node = node_;
    hook.watchdog = "alerts";
    hook.suppressed = *admitted;
    hook.event_json = body;
    run_hook_detached(std::move(hook), alerts_.timeout);
  }
  if (!alerts_.url.empty()) {
    auto target = parse_http_url(alerts_.url); // validated at start
    if (!target)
      return;
    auto timeout = alerts_.timeout;
    auto node = node_;
    std::thread{[target = *target, body, timeout, node] {
      httplib::Client cli{target.host, target.port};
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
      auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(
        timeout - secs);
      cli.set_connection_timeout(secs.count(), usecs.count());
      cli.set_read_timeout(secs.count(), usecs.count());
      cli.set_write_timeout(secs.count(), usecs.count());
      auto res = cli.Post(target.path.c_str(), body, "application/json");
      if (!res)
        std::fprintf(stderr, "ft-node %s: alert POST to %s:%u%s failed: %s\n",
                     node.c_str(), target.host.c_str(), target.port,
                     target.path.c_str(),
                     httplib::to_string(res.error()).c_str());
      else if (res->status >= 300)
        std::fprintf(stderr, "ft-node %s: alert POST to %s:%u%s: HTTP %d\n",
                     node.c_str(), target.host.c_str(), target.port,
                     target.path.c_str(), res->status);
    }}.detach();
  }
}

// -- reading ------------------------------------------------------------------

std::vector<uint64_t> node_telemetry::restart_history() const {
  return restarts_.counts(wall_clock_ms());
}

uint64_t node_telemetry::restarts_last_minute() const {
  return restarts_.total(wall_clock_ms());
}

std::vector<std::string> node_telemetry::escalations_last_minute() const {
  auto now = wall_clock_ms();
  std::vector<std::string> result;
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& [name, at] : gave_up_)
    if (now - at < 60'000)
      result.push_back(name);
  return result;
}

uint64_t node_telemetry::snapshot_failures_last_minute() const {
  return snapshot_failures_.total(wall_clock_ms());
}

bool node_telemetry::last_snapshot_failed(std::string* why) const {
  std::lock_guard<std::mutex> guard{mtx_};
  if (why)
    *why = last_snapshot_error_;
  return last_snapshot_failed_;
}

// -- the sink actor -----------------------------------------------------------

caf::actor spawn_telemetry_sink(caf::actor_system& sys,
                                node_telemetry_ptr telemetry) {
  return sys.spawn([telemetry](caf::event_based_actor*) -> caf::behavior {
    return {
      [telemetry](const supervisor_event& x) { telemetry->on(x); },
      [telemetry](const breaker_event& x) { telemetry->on(x); },
      [telemetry](const watchdog_event& x) { telemetry->on(x); },
      [telemetry](const recovery_event& x) { telemetry->on(x); },
    };
  });
}

} // namespace ft::detail
