#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/// Metrics for scraping by Prometheus: a registry of counters, gauges and
/// histograms that actor threads update and an HTTP thread renders in the
/// text exposition format 0.0.4. Plain C++ without CAF, so any thread (and
/// any test) can use it without an actor system.
namespace ft {

// -- labels -------------------------------------------------------------------

/// Label names and values of one series, e.g. `{{"scope", "worker"},
/// {"key", "worker-17"}}`. The order is the caller's and kept in the output;
/// two sets with the same pairs in another order name the same series.
using label_set = std::vector<std::pair<std::string, std::string>>;

/// The Content-Type of `metrics_registry::render`'s output.
constexpr const char* prometheus_content_type
  = "text/plain; version=0.0.4; charset=utf-8";

/// Whether `x` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
bool is_valid_metric_name(std::string_view x) noexcept;

/// Whether `x` matches `[a-zA-Z_][a-zA-Z0-9_]*` and does not start with `__`
/// (reserved for Prometheus' internal labels).
bool is_valid_label_name(std::string_view x) noexcept;

/// A sample value as Prometheus writes it: integral values below 2^53 in
/// magnitude without a decimal point (`3`, `-2`), others in the shortest
/// form that reads back to the same double (`0.1`, `5e-05`, `1e+300`), and
/// `+Inf`, `-Inf`, `NaN`. Used for `le` bounds too.
std::string render_metric_value(double x);

// -- metric types -------------------------------------------------------------

enum class metric_type : uint8_t {
  counter,
  gauge,
  histogram,
};

/// The `# TYPE` spelling: `counter`, `gauge` or `histogram`.
const char* to_string(metric_type x) noexcept;

// -- bucket layouts -----------------------------------------------------------

/// `count` upper bounds `start, start * factor, start * factor^2, ...`.
/// Throws `std::invalid_argument` unless `start > 0`, `factor > 1` and
/// `count >= 1`.
std::vector<double> exponential_buckets(double start, double factor,
                                        size_t count);

/// Upper bounds in seconds for call latencies, from 50 µs (a local actor
/// round trip) to 10 s (beyond every call timeout we configure), in 1-2.5-5
/// steps so the `le` labels stay readable: 5e-05, 0.0001, 0.00025, ..., 5,
/// 10.
const std::vector<double>& default_latency_buckets();

// -- series -------------------------------------------------------------------

/// A value that only goes up (calls made, failures seen). Lock-free; any
/// thread may update it.
class counter {
public:
  counter() = default;

  counter(const counter&) = delete;

  counter& operator=(const counter&) = delete;

  /// Adds `x`. A negative (or NaN) `x` would make the series look like a
  /// counter reset to Prometheus, so it throws `std::invalid_argument`.
  void inc(double x = 1);

  double value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<double> value_{0};
};

/// A value that goes up and down (open circuits, queue length). Lock-free;
/// any thread may update it.
class gauge {
public:
  gauge() = default;

  gauge(const gauge&) = delete;

  gauge& operator=(const gauge&) = delete;

  void set(double x) noexcept {
    value_.store(x, std::memory_order_relaxed);
  }

  void inc(double x = 1) noexcept;

  void dec(double x = 1) noexcept {
    inc(-x);
  }

  double value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<double> value_{0};
};

/// A consistent view of a histogram: `buckets[i]` counts the observations
/// `<= bounds()[i]` (cumulative, as Prometheus wants them), and the last
/// entry, for `+Inf`, equals `count`.
struct histogram_snapshot {
  std::vector<uint64_t> buckets;
  double sum = 0;
  uint64_t count = 0;
};

/// Counts observations (e.g. latencies in seconds) in buckets with fixed
/// upper bounds. A small mutex guards the counts, so a render never sees
/// the `+Inf` bucket disagree with `_count`.
class histogram {
public:
  /// `bounds` must be strictly increasing and free of NaN; a trailing
  /// `+Inf` is dropped since that bucket is always implicit. Throws
  /// `std::invalid_argument` otherwise.
  explicit histogram(std::vector<double> bounds);

  histogram(const histogram&) = delete;

  histogram& operator=(const histogram&) = delete;

  /// Counts `x` in the first bucket whose bound is `>= x` (`le` is
  /// inclusive). NaN lands in `+Inf` only and makes `_sum` NaN, as in the
  /// Go client.
  void observe(double x);

  /// The upper bounds without the implicit `+Inf`.
  const std::vector<double>& bounds() const noexcept {
    return bounds_;
  }

  histogram_snapshot snapshot() const;

private:
  const std::vector<double> bounds_;
  mutable std::mutex mtx_;
  /// Per bucket, not cumulative; one more entry than `bounds_` for `+Inf`.
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

// -- registry -----------------------------------------------------------------

/// Owns metric families (one name, help text and type each) and their
/// series (one per label set). The accessors create on first use and
/// return the same object for the same name and labels, so call sites may
/// either cache the reference (cheapest) or look it up each time (one map
/// lookup under the registry's mutex).
///
/// Every reference stays valid for the registry's lifetime, even past
/// `remove`: a removed series is no longer rendered but kept alive, so an
/// actor still holding it cannot write into freed memory.
///
/// Misuse throws: a malformed name, a duplicate label or one that clashes
/// with the constant labels (or `le` on a histogram) gives
/// `std::invalid_argument`; reusing a name with another type, help text or
/// bucket layout gives `std::logic_error`, as two call sites disagreeing on
/// what a metric is is a bug rather than a runtime condition.
class metrics_registry {
public:
  // -- constructors, destructors, and assignment operators --------------------

  /// `const_labels` come first in every sample, so scrapes of several
  /// nodes merge without relabeling. Write `metrics_registry reg{{{"node",
  /// "n1"}}}` or `metrics_registry reg(label_set{{"node", "n1"}})`: with
  /// parentheses, a bare `{{"node", "n1"}}` is ambiguous with the (deleted)
  /// copy constructor. Throws `std::invalid_argument` for a bad or
  /// duplicate label name, or `le`.
  explicit metrics_registry(label_set const_labels = {});

  ~metrics_registry();

  metrics_registry(const metrics_registry&) = delete;

  metrics_registry& operator=(const metrics_registry&) = delete;

  // -- series access ----------------------------------------------------------

  ft::counter& counter(std::string_view name, std::string_view help,
                       const label_set& labels = {});

  ft::gauge& gauge(std::string_view name, std::string_view help,
                   const label_set& labels = {});

  /// `buckets` as for `histogram::histogram`; every call for `name` must
  /// pass the same layout.
  ft::histogram& histogram(std::string_view name, std::string_view help,
                           const label_set& labels = {},
                           const std::vector<double>& buckets
                           = default_latency_buckets());

  /// Stops rendering the series `name{labels}` (e.g. a circuit that no
  /// longer exists). References to it stay valid but are detached: a later
  /// lookup of the same labels creates a fresh series starting at 0. Each
  /// removed series thus costs its memory until the registry dies. Returns
  /// whether the series existed.
  bool remove(std::string_view name, const label_set& labels);

  // -- exposition -------------------------------------------------------------

  /// All families in registration order, in the text format 0.0.4: `# HELP`
  /// (omitted for an empty help text), `# TYPE`, then the series in
  /// creation order. Families without series (all removed) are left out.
  std::string render() const;

  const label_set& const_labels() const noexcept {
    return const_labels_;
  }

private:
  struct series;

  struct family;

  family& get_family(std::string_view name, std::string_view help,
                     metric_type type, const std::vector<double>* bounds);

  series& get_series(family& fam, const label_set& labels);

  const label_set const_labels_;
  mutable std::mutex mtx_;
  /// In registration order.
  std::vector<std::unique_ptr<family>> families_;
  std::map<std::string, family*, std::less<>> by_name_;
  /// Removed series, alive for references handed out before.
  std::vector<std::unique_ptr<series>> retired_;
};

} // namespace ft
