#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

/// The node's recent events, whatever produced them (supervisors, breakers,
/// watchdogs, the cluster agent, recovery chains, alerts), in one numbered
/// sequence: `GET /api/events?since=ID` and the dashboard poll it with a
/// cursor, so a slow reader never gets an event twice and sees when it fell
/// behind (the first id it gets is above its cursor + 1). Plain C++ behind
/// one mutex: actors append, the HTTP thread reads.
namespace ft {

/// Where an event came from.
enum class event_source : uint8_t {
  supervisor,
  breaker,
  watchdog,
  cluster,
  recovery,
  snapshot,
  alert,
};

const char* to_string(event_source x) noexcept;

/// One event as operators see it: the typed events (`supervisor_event`,
/// `breaker_event`, `watchdog_event`, `recovery_event`) flattened to text
/// fields with the shared severity scale (1 info, 2 warning, 3 error,
/// 4 critical).
struct event_record {
  /// Assigned by the journal: 1, 2, 3, ... in append order.
  uint64_t id = 0;
  /// Wall-clock milliseconds since the Unix epoch.
  int64_t timestamp_ms = 0;
  event_source source = event_source::supervisor;
  /// The producer's own kind, e.g. `child_restarted`, `opened`, `stale`.
  std::string kind;
  uint8_t severity = 1;
  /// What it is about, e.g. `entities@n1/c1` or `worker/w3`.
  std::string subject;
  /// One human line.
  std::string message;
};

/// A bounded, numbered ring of events.
class event_journal {
public:
  /// Keeps the newest `capacity` events (at least 1).
  explicit event_journal(size_t capacity = 1000);

  /// Numbers `x` and keeps it, dropping the oldest event when full.
  /// Returns the id it got.
  uint64_t append(event_record x);

  /// Events with an id above `after` and a severity of at least
  /// `min_severity`, oldest first, at most `limit` of them (the oldest
  /// ones, so a reader paging with the last id it got misses nothing the
  /// journal still holds). `cursor`, when given, receives the id to pass
  /// as `after` next time: the last event examined, filtered out or not
  /// (`after` when there was none), so a filtering reader moves on.
  std::vector<event_record>
  since(uint64_t after, size_t limit = std::numeric_limits<size_t>::max(),
        uint8_t min_severity = 1, uint64_t* cursor = nullptr) const;

  /// The id of the newest event (0 before the first).
  uint64_t last_id() const;

  size_t size() const;

  size_t capacity() const noexcept {
    return capacity_;
  }

private:
  mutable std::mutex mtx_;
  size_t capacity_;
  std::deque<event_record> events_;
  uint64_t last_id_ = 0;
};

/// Counts occurrences (e.g. restarts) in fixed time buckets over a sliding
/// span, for rates ("3 restarts in the last minute") and the dashboard's
/// sparkline. Time is passed in (milliseconds on any monotonic or wall
/// scale, used consistently), so tests replay it exactly.
class event_rate {
public:
  /// `buckets` buckets of `interval_ms` each (both at least 1).
  explicit event_rate(size_t buckets = 60, int64_t interval_ms = 1000);

  /// One occurrence at `now_ms`. Occurrences older than the span are
  /// forgotten; one older than the newest bucket seen so far still counts
  /// in its own bucket while that is in the span.
  void add(int64_t now_ms, uint64_t n = 1);

  /// The counts per bucket ending with the bucket of `now_ms`, oldest
  /// first (`buckets` of them).
  std::vector<uint64_t> counts(int64_t now_ms) const;

  /// Occurrences within the whole span ending at `now_ms`.
  uint64_t total(int64_t now_ms) const;

  int64_t interval_ms() const noexcept {
    return interval_ms_;
  }

private:
  void advance(int64_t bucket) const;

  mutable std::mutex mtx_;
  int64_t interval_ms_;
  /// Ring of counts; `head_` is the absolute bucket number of the newest.
  mutable std::vector<uint64_t> ring_;
  mutable int64_t head_ = std::numeric_limits<int64_t>::min();
};

} // namespace ft
