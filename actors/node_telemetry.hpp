#pragma once

// Private to ft_cluster: what a node records about itself for operators —
// the event journal (`GET /api/events`), the metrics (`GET /metrics`), the
// figures health is judged by (`GET /health`), the restart rate (the
// dashboard's sparkline) — and the alerts it sends. One object shared by
// the node's actors and its HTTP thread; every member is thread-safe.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "ft/alert.hpp"
#include "ft/event_journal.hpp"
#include "ft/metrics.hpp"

namespace ft {

struct supervisor_event;
struct breaker_event;
struct watchdog_event;
struct recovery_event;
struct snapshot_commit_info;

} // namespace ft

namespace ft::detail {

class node_telemetry {
public:
  node_telemetry(std::string node, alert_config alerts);

  // -- recording --------------------------------------------------------------

  /// Journals `x` (stamping the time if it has none), counts it in
  /// `ft_events_total` and alerts when its severity calls for it.
  void record(event_record x);

  /// A cluster event (the agent's log lines that matter to operators).
  void cluster(std::string kind, uint8_t severity, std::string subject,
               std::string message);

  void on(const supervisor_event& x);
  void on(const breaker_event& x);
  void on(const watchdog_event& x);
  void on(const recovery_event& x);
  void on(const snapshot_commit_info& x);

  /// A replica write to `peer` went out / came back after `rtt` (or
  /// failed).
  void replica_sent(const std::string& peer);
  void replica_answered(const std::string& peer, caf::timespan rtt,
                        bool ok);

  // -- reading ----------------------------------------------------------------

  const std::string& node() const noexcept {
    return node_;
  }

  event_journal& journal() noexcept {
    return journal_;
  }

  metrics_registry& metrics() noexcept {
    return metrics_;
  }

  /// Restarts per second over the last minute, oldest first.
  std::vector<uint64_t> restart_history() const;

  uint64_t restarts_last_minute() const;

  /// Supervisors that gave up within the last minute.
  std::vector<std::string> escalations_last_minute() const;

  uint64_t snapshot_writes() const noexcept {
    return snapshot_writes_.load();
  }

  uint64_t snapshot_failures_last_minute() const;

  /// Whether the latest commit failed, and its error.
  bool last_snapshot_failed(std::string* why) const;

  /// Alerts sent and suppressed so far (tests, `/metrics`).
  uint64_t alerts_sent() const noexcept {
    return alerts_sent_.load();
  }

private:
  void alert(const event_record& x);

  std::string node_;
  alert_config alerts_;
  event_journal journal_{1000};
  metrics_registry metrics_;
  event_rate restarts_{60, 1000};
  event_rate snapshot_failures_{60, 1000};
  std::atomic<uint64_t> snapshot_writes_{0};
  std::atomic<uint64_t> alerts_sent_{0};

  mutable std::mutex mtx_;
  /// Guarded by `mtx_`: supervisor -> wall ms it last gave up.
  std::map<std::string, int64_t> gave_up_;
  bool last_snapshot_failed_ = false;
  std::string last_snapshot_error_;
  std::map<std::string, int64_t> in_flight_;
  alert_limiter limiter_;
};

using node_telemetry_ptr = std::shared_ptr<node_telemetry>;

/// The actor that receives supervisor, breaker, watchdog and recovery
/// events (subscribe it wherever events are published) and records them.
caf::actor spawn_telemetry_sink(caf::actor_system& sys,
                                node_telemetry_ptr telemetry);

} // namespace ft::detail
