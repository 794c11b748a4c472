#pragma once

// Small helpers shared by the ft-bench-* programs: the JSON result line,
// rounding, RSS and a watchdog that bounds a run.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/event_based_actor.hpp>

#include <nlohmann/json.hpp>

namespace ft::bench {

/// Keeps the keys in the order they were set (bench, unit, value, ...).
using json = nlohmann::ordered_json;

/// Writes one result object as one line on stdout.
inline void emit(const json& j) {
  std::cout << j.dump() << '\n' << std::flush;
}

/// Rounds to `digits` decimals, for readable JSON.
inline double round_to(double x, int digits) {
  auto f = std::pow(10.0, digits);
  return std::round(x * f) / f;
}

/// The standard result object, keys in the documented order:
/// `{"bench","unit","value","baseline","baseline_value","ratio","goal",
/// "met"}`. `ratio` is value / baseline_value (null without a baseline or
/// when it is 0); `met` is the caller's verdict against `goal`, both null
/// when no goal is set. Callers add extra fields (e.g. "size", "note")
/// before `emit`.
inline json result_line(const std::string& bench, const std::string& unit,
                        double value, const std::string& baseline,
                        double baseline_value, std::optional<double> goal,
                        std::optional<bool> met, int digits = 3,
                        int ratio_digits = 3) {
  json line;
  line["bench"] = bench;
  line["unit"] = unit;
  line["value"] = round_to(value, digits);
  line["baseline"] = baseline.empty() ? json(nullptr) : json(baseline);
  line["baseline_value"] = baseline.empty() ? json(nullptr)
                                            : json(round_to(baseline_value,
                                                            digits));
  line["ratio"] = baseline.empty() || baseline_value == 0
                    ? json(nullptr)
                    : json(round_to(value / baseline_value, ratio_digits));
  line["goal"] = goal ? json(*goal) : json(nullptr);
  line["met"] = met ? json(*met) : json(nullptr);
  return line;
}

/// The `q`-quantile (0..1) of `xs` (nearest rank); 0 for no samples.
inline double quantile(std::vector<double> xs, double q) {
  if (xs.empty())
    return 0;
  auto k = static_cast<size_t>(std::ceil(q * xs.size()));
  k = k == 0 ? 0 : k - 1;
  k = std::min(k, xs.size() - 1);
  std::nth_element(xs.begin(), xs.begin() + k, xs.end());
  return xs[k];
}

inline double median(std::vector<double> xs) {
  return quantile(std::move(xs), 0.5);
}

/// The resident set size of this process in bytes (/proc/self/statm).
inline int64_t rss_bytes() {
  std::ifstream in{"/proc/self/statm"};
  int64_t size = 0;
  int64_t resident = 0;
  in >> size >> resident;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
    .count();
}

/// Ends the process with status 3 if it is still running after `limit`:
/// a benchmark that hangs must not hang the caller.
inline void start_watchdog(std::chrono::seconds limit, std::string what) {
  std::thread([limit, what] {
    std::this_thread::sleep_for(limit);
    std::fprintf(stderr, "[bench] %s: watchdog fired after %llds, aborting\n",
                 what.c_str(), static_cast<long long>(limit.count()));
    std::fflush(stderr);
    _exit(3);
  }).detach();
}

/// Base of the benchmark drivers: an event-based actor that runs its loop
/// without blocking and hands its result to the waiting main thread exactly
/// once, then quits.
template <class Result>
class result_driver : public caf::event_based_actor {
public:
  using promise_ptr = std::shared_ptr<std::promise<Result>>;

  result_driver(caf::actor_config& cfg, promise_ptr done)
    : caf::event_based_actor(cfg), done_(std::move(done)) {
    // nop
  }

protected:
  /// Delivers `x` (the first call wins) and quits.
  void deliver(Result x) {
    if (done_) {
      done_->set_value(std::move(x));
      done_ = nullptr;
    }
    quit();
  }

private:
  promise_ptr done_;
};

} // namespace ft::bench
