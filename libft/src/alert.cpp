#include "ft/alert.hpp"

#include <nlohmann/json.hpp>

#include "ft/error.hpp"

namespace ft {

namespace {

caf::error bad(const std::string& field, const std::string& value,
               const std::string& why) {
  return make_error(errc::invalid_config,
                    "alerts." + field + " = " + value + " (" + why + ")");
}

} // namespace

caf::error validate(const alert_config& x) {
  if (x.min_severity < 1 || x.min_severity > 4)
    return bad("min_severity", std::to_string(x.min_severity), "must be 1..4");
  if (x.max_alerts < 1)
    return bad("max_alerts", std::to_string(x.max_alerts),
               "must be at least 1");
  if (x.interval <= caf::timespan{0})
    return bad("interval", "0", "must be above 0");
  if (x.timeout <= caf::timespan{0})
    return bad("timeout", "0", "must be above 0");
  if (!x.url.empty())
    if (auto target = parse_http_url(x.url); !target)
      return bad("url", "'" + x.url + "'",
                 "expected http://host:port/path");
  return caf::none;
}

caf::expected<http_target> parse_http_url(const std::string& url) {
  const std::string scheme = "http://";
  auto fail = [&] {
    return make_error(errc::invalid_config,
                      "'" + url + "' is not an http://host[:port][/path] URL");
  };
  if (url.compare(0, scheme.size(), scheme) != 0)
    return fail();
  auto rest = url.substr(scheme.size());
  http_target result;
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  if (slash != std::string::npos)
    result.path = rest.substr(slash);
  auto colon = authority.rfind(':');
  if (colon != std::string::npos) {
    auto port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5
        || port.find_first_not_of("0123456789") != std::string::npos)
      return fail();
    auto n = std::stoul(port);
    if (n == 0 || n > 65535)
      return fail();
    result.port = static_cast<uint16_t>(n);
    authority.resize(colon);
  }
  if (authority.empty())
    return fail();
  result.host = authority;
  return result;
}

alert_limiter::alert_limiter(int max_alerts, caf::timespan interval)
  : max_(static_cast<size_t>(std::max(max_alerts, 1))), interval_(interval) {
  // nop
}

std::optional<size_t> alert_limiter::admit(time_point now) {
  while (!sent_.empty() && now - sent_.front() >= interval_)
    sent_.pop_front();
  if (sent_.size() >= max_) {
    ++suppressed_;
    return std::nullopt;
  }
  sent_.push_back(now);
  auto result = suppressed_;
  suppressed_ = 0;
  return result;
}

std::string alert_json(const event_record& x, const std::string& node,
                       size_t suppressed) {
  return nlohmann::json{{"node", node},
                        {"id", x.id},
                        {"ts_ms", x.timestamp_ms},
                        {"source", to_string(x.source)},
                        {"kind", x.kind},
                        {"severity", x.severity},
                        {"subject", x.subject},
                        {"message", x.message},
                        {"suppressed", suppressed}}
    .dump();
}

} // namespace ft
