#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include <caf/actor_clock.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "ft/event_journal.hpp"

/// Alerts: events at or above a severity reach an operator outside the
/// node — a command (paging script, `logger`, ...) or an HTTP POST of the
/// event as JSON (a webhook) — at a bounded rate, so a crash loop pages
/// once with a count rather than a thousand times (as Alertmanager groups
/// and throttles notifications).
namespace ft {

/// The `alerts:` section of a node config.
struct alert_config {
  /// Events with at least this severity alert (1 info .. 4 critical).
  int min_severity = 3;
  /// Run with `/bin/sh -c` (as the watchdog's operator hook): `$1 $2 $3`
  /// are severity, subject and kind; the environment carries `FT_SEVERITY`,
  /// `FT_WORKER` (the subject), `FT_KIND`, `FT_DETAIL` (the message),
  /// `FT_NODE`, `FT_SUPPRESSED` and `FT_EVENT` (the event as JSON).
  std::string command;
  /// `http://host:port/path`: receives `POST` with the event as JSON
  /// (`alert_json`).
  std::string url;
  /// At most `max_alerts` alerts per `interval`; the ones over the limit
  /// are counted and reported as `suppressed` with the next alert sent.
  int max_alerts = 5;
  caf::timespan interval = std::chrono::seconds(60);
  /// A command still running, or a POST not answered, after this is given
  /// up (the command is killed).
  caf::timespan timeout = std::chrono::seconds(10);

  /// Whether alerts go anywhere.
  bool enabled() const noexcept {
    return !command.empty() || !url.empty();
  }
};

/// `invalid_config` naming the field and value, e.g. `alerts.min_severity
/// = 7 (must be 1..4)` or `alerts.url = 'ftp://x' (only http://host:port/path)`.
caf::error validate(const alert_config& x);

/// `url` split for an HTTP client.
struct http_target {
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
};

/// Parses `http://host[:port][/path]`; `invalid_config` naming the text.
caf::expected<http_target> parse_http_url(const std::string& url);

/// Which alerts may go out now: a sliding window of `max_alerts` per
/// `interval`. Pure, time passed in.
class alert_limiter {
public:
  using time_point = caf::actor_clock::time_point;

  alert_limiter(int max_alerts, caf::timespan interval);

  /// Whether an alert at `now` may be sent. If so, returns how many were
  /// suppressed since the last one sent (and starts counting again);
  /// otherwise counts this one as suppressed.
  std::optional<size_t> admit(time_point now);

  size_t suppressed() const noexcept {
    return suppressed_;
  }

private:
  size_t max_;
  caf::timespan interval_;
  std::deque<time_point> sent_;
  size_t suppressed_ = 0;
};

/// The event as an alert's JSON body: `{"node", "id", "ts_ms", "source",
/// "kind", "severity", "subject", "message", "suppressed"}`.
std::string alert_json(const event_record& x, const std::string& node,
                       size_t suppressed);

} // namespace ft
