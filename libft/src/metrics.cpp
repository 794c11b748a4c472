#include "ft/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace ft {

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

/// 2^53: up to here every integral double is exact and prints as an
/// integer.
constexpr double max_exact_integer = 9007199254740992.0;

/// `fetch_add` for `std::atomic<double>`, which C++17 lacks.
void atomic_add(std::atomic<double>& x, double delta) noexcept {
  auto cur = x.load(std::memory_order_relaxed);
  while (!x.compare_exchange_weak(cur, cur + delta, std::memory_order_relaxed,
                                  std::memory_order_relaxed)) {
    // cur now holds the value another thread wrote; try again
  }
}

bool is_alpha_or_underscore(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

std::string quoted(std::string_view x) {
  std::string result;
  result.reserve(x.size() + 2);
  result += '"';
  result.append(x.data(), x.size());
  result += '"';
  return result;
}

/// Drops a trailing `+Inf` and checks the rest, see `histogram::histogram`.
std::vector<double> normalize_bounds(std::vector<double> xs) {
  if (!xs.empty() && xs.back() == inf)
    xs.pop_back();
  for (size_t i = 0; i < xs.size(); ++i) {
    if (std::isnan(xs[i]))
      throw std::invalid_argument("histogram: bucket bound " + std::to_string(i)
                                  + " is NaN");
    if (i > 0 && !(xs[i] > xs[i - 1]))
      throw std::invalid_argument("histogram: bucket bounds must increase, got "
                                  + render_metric_value(xs[i - 1]) + " then "
                                  + render_metric_value(xs[i]));
  }
  return xs;
}

/// Checks `labels` against the naming rules, itself, the constant labels and
/// (for histograms) `le`, and returns them sorted by name: the key that
/// makes the caller's order irrelevant for identity.
label_set validate_labels(const label_set& labels,
                          const label_set& const_labels, metric_type type) {
  for (auto& [name, value] : labels) {
    if (!is_valid_label_name(name))
      throw std::invalid_argument("metrics: invalid label name "
                                  + quoted(name));
    if (type == metric_type::histogram && name == "le")
      throw std::invalid_argument("metrics: label le is reserved for "
                                  "histogram buckets");
    for (auto& cl : const_labels)
      if (cl.first == name)
        throw std::invalid_argument("metrics: label " + quoted(name)
                                    + " clashes with a constant label");
  }
  auto key = labels;
  std::sort(key.begin(), key.end());
  auto dup = std::adjacent_find(key.begin(), key.end(),
                                [](const auto& x, const auto& y) {
                                  return x.first == y.first;
                                });
  if (dup != key.end())
    throw std::invalid_argument("metrics: duplicate label "
                                + quoted(dup->first));
  return key;
}

void append_escaped(std::string& out, std::string_view x, bool quote) {
  for (auto c : x) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '"':
        if (quote)
          out += "\\\"";
        else
          out += c;
        break;
      default: out += c;
    }
  }
}

void append_pairs(std::string& out, const label_set& xs, bool& first) {
  for (auto& [name, value] : xs) {
    out += first ? '{' : ',';
    first = false;
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
}

/// Appends `{const..., labels..., le="..."}`, or nothing if all are empty.
void append_labels(std::string& out, const label_set& const_labels,
                   const label_set& labels, const char* le = nullptr) {
  auto first = true;
  append_pairs(out, const_labels, first);
  append_pairs(out, labels, first);
  if (le != nullptr) {
    out += first ? '{' : ',';
    first = false;
    out += "le=\"";
    out += le;
    out += '"';
  }
  if (!first)
    out += '}';
}

} // namespace

// -- free functions -----------------------------------------------------------

bool is_valid_metric_name(std::string_view x) noexcept {
  if (x.empty() || !(is_alpha_or_underscore(x[0]) || x[0] == ':'))
    return false;
  return std::all_of(x.begin() + 1, x.end(), [](char c) {
    return is_alpha_or_underscore(c) || is_digit(c) || c == ':';
  });
}

bool is_valid_label_name(std::string_view x) noexcept {
  if (x.empty() || !is_alpha_or_underscore(x[0]))
    return false;
  if (x.size() >= 2 && x[0] == '_' && x[1] == '_')
    return false;
  return std::all_of(x.begin() + 1, x.end(), [](char c) {
    return is_alpha_or_underscore(c) || is_digit(c);
  });
}

std::string render_metric_value(double x) {
  if (std::isnan(x))
    return "NaN";
  if (std::isinf(x))
    return x > 0 ? "+Inf" : "-Inf";
  if (x == std::trunc(x) && std::fabs(x) <= max_exact_integer)
    return std::to_string(static_cast<int64_t>(x));
  // Without a format, to_chars picks the shortest string that reads back
  // exactly (fixed or exponent, whichever is shorter), independent of the
  // C locale's decimal point.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), x);
  if (res.ec != std::errc{})
    return std::to_string(x); // unreachable with 64 bytes
  return std::string(buf, res.ptr);
}

const char* to_string(metric_type x) noexcept {
  switch (x) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
  }
  return "untyped";
}

std::vector<double> exponential_buckets(double start, double factor,
                                        size_t count) {
  if (!(start > 0) || !std::isfinite(start))
    throw std::invalid_argument("exponential_buckets: start = "
                                + render_metric_value(start)
                                + " (must be > 0)");
  if (!(factor > 1) || !std::isfinite(factor))
    throw std::invalid_argument("exponential_buckets: factor = "
                                + render_metric_value(factor)
                                + " (must be > 1)");
  if (count < 1)
    throw std::invalid_argument("exponential_buckets: count = 0 (must be "
                                ">= 1)");
  std::vector<double> result;
  result.reserve(count);
  auto x = start;
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(x))
      throw std::invalid_argument("exponential_buckets: bound "
                                  + std::to_string(i) + " overflows");
    result.push_back(x);
    x *= factor;
  }
  return result;
}

const std::vector<double>& default_latency_buckets() {
  static const std::vector<double> result{
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10,
  };
  return result;
}

// -- series -------------------------------------------------------------------

void counter::inc(double x) {
  if (!(x >= 0))
    throw std::invalid_argument("counter::inc: increment "
                                + render_metric_value(x) + " (must be >= 0)");
  atomic_add(value_, x);
}

void gauge::inc(double x) noexcept {
  atomic_add(value_, x);
}

histogram::histogram(std::vector<double> bounds)
  : bounds_(normalize_bounds(std::move(bounds))),
    counts_(bounds_.size() + 1, 0) {
  // nop
}

void histogram::observe(double x) {
  // The bounds never change, so the search needs no lock. lower_bound finds
  // the first bound >= x, matching the inclusive `le`; NaN compares false
  // with everything and would land in the first bucket, hence the check.
  auto i = std::isnan(x) ? bounds_.size()
                         : static_cast<size_t>(
                           std::lower_bound(bounds_.begin(), bounds_.end(), x)
                           - bounds_.begin());
  std::lock_guard<std::mutex> guard{mtx_};
  ++counts_[i];
  sum_ += x;
  ++count_;
}

histogram_snapshot histogram::snapshot() const {
  histogram_snapshot result;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    result.buckets = counts_;
    result.sum = sum_;
    result.count = count_;
  }
  for (size_t i = 1; i < result.buckets.size(); ++i)
    result.buckets[i] += result.buckets[i - 1];
  return result;
}

// -- registry internals -------------------------------------------------------

struct metrics_registry::series {
  /// In the caller's order, for rendering.
  label_set labels;
  /// Exactly one is set, matching the family's type.
  std::unique_ptr<ft::counter> ctr;
  std::unique_ptr<ft::gauge> gge;
  std::unique_ptr<ft::histogram> hst;
};

struct metrics_registry::family {
  std::string name;
  std::string help;
  metric_type type;
  /// Histograms only: the normalized bucket layout.
  std::vector<double> bounds;
  /// In creation order, for rendering.
  std::vector<std::unique_ptr<series>> live;
  /// Keyed by the labels sorted by name.
  std::map<label_set, series*> index;
};

// -- registry -----------------------------------------------------------------

metrics_registry::metrics_registry(label_set const_labels)
  : const_labels_(std::move(const_labels)) {
  // Same rules as any label set; no type reserves `le` here, but a constant
  // `le` would break every histogram.
  validate_labels(const_labels_, {}, metric_type::histogram);
}

metrics_registry::~metrics_registry() {
  // nop; out of line since series and family are incomplete in the header
}

metrics_registry::family&
metrics_registry::get_family(std::string_view name, std::string_view help,
                             metric_type type,
                             const std::vector<double>* bounds) {
  if (auto i = by_name_.find(name); i != by_name_.end()) {
    auto& fam = *i->second;
    if (fam.type != type)
      throw std::logic_error("metrics: " + fam.name + " is a "
                             + to_string(fam.type) + ", requested as "
                             + to_string(type));
    if (fam.help != help)
      throw std::logic_error("metrics: " + fam.name
                             + " registered with another help text");
    if (bounds != nullptr && fam.bounds != *bounds)
      throw std::logic_error("metrics: " + fam.name
                             + " registered with another bucket layout");
    return fam;
  }
  if (!is_valid_metric_name(name))
    throw std::invalid_argument("metrics: invalid metric name " + quoted(name));
  auto fam = std::make_unique<family>();
  fam->name = std::string{name};
  fam->help = std::string{help};
  fam->type = type;
  if (bounds != nullptr)
    fam->bounds = *bounds;
  auto& result = *fam;
  by_name_.emplace(fam->name, &result);
  families_.push_back(std::move(fam));
  return result;
}

metrics_registry::series&
metrics_registry::get_series(family& fam, const label_set& labels) {
  auto key = validate_labels(labels, const_labels_, fam.type);
  if (auto i = fam.index.find(key); i != fam.index.end())
    return *i->second;
  auto ptr = std::make_unique<series>();
  ptr->labels = labels;
  switch (fam.type) {
    case metric_type::counter:
      ptr->ctr = std::make_unique<ft::counter>();
      break;
    case metric_type::gauge:
      ptr->gge = std::make_unique<ft::gauge>();
      break;
    case metric_type::histogram:
      ptr->hst = std::make_unique<ft::histogram>(fam.bounds);
      break;
  }
  auto& result = *ptr;
  fam.live.push_back(std::move(ptr));
  fam.index.emplace(std::move(key), &result);
  return result;
}

ft::counter& metrics_registry::counter(std::string_view name,
                                       std::string_view help,
                                       const label_set& labels) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& fam = get_family(name, help, metric_type::counter, nullptr);
  return *get_series(fam, labels).ctr;
}

ft::gauge& metrics_registry::gauge(std::string_view name,
                                   std::string_view help,
                                   const label_set& labels) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& fam = get_family(name, help, metric_type::gauge, nullptr);
  return *get_series(fam, labels).gge;
}

ft::histogram&
metrics_registry::histogram(std::string_view name, std::string_view help,
                            const label_set& labels,
                            const std::vector<double>& buckets) {
  // Normalize before comparing, so `{1, 2}` and `{1, 2, +Inf}` agree; this
  // also rejects a bad layout before the family exists.
  auto bounds = normalize_bounds(buckets);
  std::lock_guard<std::mutex> guard{mtx_};
  auto& fam = get_family(name, help, metric_type::histogram, &bounds);
  return *get_series(fam, labels).hst;
}

bool metrics_registry::remove(std::string_view name, const label_set& labels) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = by_name_.find(name);
  if (i == by_name_.end())
    return false;
  auto& fam = *i->second;
  auto key = labels;
  std::sort(key.begin(), key.end());
  auto j = fam.index.find(key);
  if (j == fam.index.end())
    return false;
  auto ptr = j->second;
  fam.index.erase(j);
  auto k = std::find_if(fam.live.begin(), fam.live.end(),
                        [ptr](const auto& x) { return x.get() == ptr; });
  retired_.push_back(std::move(*k));
  fam.live.erase(k);
  return true;
}

std::string metrics_registry::render() const {
  std::string out;
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& fam : families_) {
    if (fam->live.empty())
      continue;
    if (!fam->help.empty()) {
      out += "# HELP ";
      out += fam->name;
      out += ' ';
      append_escaped(out, fam->help, false);
      out += '\n';
    }
    out += "# TYPE ";
    out += fam->name;
    out += ' ';
    out += to_string(fam->type);
    out += '\n';
    for (auto& s : fam->live) {
      auto sample = [&](const char* suffix, const std::string& value,
                        const char* le = nullptr) {
        out += fam->name;
        out += suffix;
        append_labels(out, const_labels_, s->labels, le);
        out += ' ';
        out += value;
        out += '\n';
      };
      switch (fam->type) {
        case metric_type::counter:
          sample("", render_metric_value(s->ctr->value()));
          break;
        case metric_type::gauge:
          sample("", render_metric_value(s->gge->value()));
          break;
        case metric_type::histogram: {
          auto snap = s->hst->snapshot();
          for (size_t b = 0; b < fam->bounds.size(); ++b)
            sample("_bucket", std::to_string(snap.buckets[b]),
                   render_metric_value(fam->bounds[b]).c_str());
          sample("_bucket", std::to_string(snap.buckets.back()), "+Inf");
          sample("_sum", render_metric_value(snap.sum));
          sample("_count", std::to_string(snap.count));
          break;
        }
      }
    }
  }
  return out;
}

} // namespace ft
