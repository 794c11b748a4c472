#include "ft/event_journal.hpp"

#include <algorithm>

namespace ft {

const char* to_string(event_source x) noexcept {
  switch (x) {
    case event_source::supervisor: return "supervisor";
    case event_source::breaker: return "breaker";
    case event_source::watchdog: return "watchdog";
    case event_source::cluster: return "cluster";
    case event_source::recovery: return "recovery";
    case event_source::snapshot: return "snapshot";
    case event_source::alert: return "alert";
  }
  return "invalid";
}

// -- event_journal ------------------------------------------------------------

event_journal::event_journal(size_t capacity)
  : capacity_(std::max<size_t>(capacity, 1)) {
  // nop
}

uint64_t event_journal::append(event_record x) {
  std::lock_guard<std::mutex> guard{mtx_};
  x.id = ++last_id_;
  if (events_.size() == capacity_)
    events_.pop_front();
  events_.push_back(std::move(x));
  return last_id_;
}

std::vector<event_record> event_journal::since(uint64_t after, size_t limit,
                                               uint8_t min_severity,
                                               uint64_t* cursor) const {
  std::vector<event_record> result;
  std::lock_guard<std::mutex> guard{mtx_};
  uint64_t last = after;
  // Ids are consecutive: the first one above `after` is found by offset.
  auto first = events_.empty() ? 0 : events_.front().id;
  size_t start = after < first ? 0 : static_cast<size_t>(after - first + 1);
  for (size_t i = start; i < events_.size() && result.size() < limit; ++i) {
    last = events_[i].id;
    if (events_[i].severity >= min_severity)
      result.push_back(events_[i]);
  }
  if (cursor)
    *cursor = last;
  return result;
}

uint64_t event_journal::last_id() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return last_id_;
}

size_t event_journal::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return events_.size();
}

// -- event_rate ---------------------------------------------------------------

namespace {

int64_t floor_div(int64_t x, int64_t d) {
  auto q = x / d;
  return (x % d != 0 && x < 0) ? q - 1 : q;
}

} // namespace

event_rate::event_rate(size_t buckets, int64_t interval_ms)
  : interval_ms_(std::max<int64_t>(interval_ms, 1)),
    ring_(std::max<size_t>(buckets, 1), 0) {
  // nop
}

void event_rate::advance(int64_t bucket) const {
  auto n = static_cast<int64_t>(ring_.size());
  if (head_ == std::numeric_limits<int64_t>::min() || bucket - head_ >= n) {
    std::fill(ring_.begin(), ring_.end(), 0);
  } else if (bucket > head_) {
    for (auto b = head_ + 1; b <= bucket; ++b)
      ring_[static_cast<size_t>(((b % n) + n) % n)] = 0;
  } else {
    return;
  }
  head_ = bucket;
}

void event_rate::add(int64_t now_ms, uint64_t n) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto b = floor_div(now_ms, interval_ms_);
  advance(b);
  auto size = static_cast<int64_t>(ring_.size());
  if (b <= head_ - size)
    return; // older than the span
  ring_[static_cast<size_t>(((b % size) + size) % size)] += n;
}

std::vector<uint64_t> event_rate::counts(int64_t now_ms) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto b = floor_div(now_ms, interval_ms_);
  advance(b);
  auto size = static_cast<int64_t>(ring_.size());
  std::vector<uint64_t> result;
  result.reserve(ring_.size());
  for (auto k = b - size + 1; k <= b; ++k)
    result.push_back(k > head_ || k <= head_ - size
                       ? 0
                       : ring_[static_cast<size_t>(((k % size) + size) % size)]);
  return result;
}

uint64_t event_rate::total(int64_t now_ms) const {
  uint64_t sum = 0;
  for (auto x : counts(now_ms))
    sum += x;
  return sum;
}

} // namespace ft
