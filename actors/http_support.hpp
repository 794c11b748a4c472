#pragma once

// Private to ft_cluster: the node endpoint's JSON replies and error mapping,
// shared by the cluster routes (node.cpp) and the operator routes
// (operator_api.cpp) so both answer errors alike.

#include <optional>
#include <string>

#include <caf/error.hpp>
#include <caf/sec.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "ft/error.hpp"

namespace ft::detail {

using json = nlohmann::json;

/// HTTP status for an error, per the contract in the README.
inline int http_status(const caf::error& err) {
  if (err.category() != error_category)
    return 500;
  switch (static_cast<errc>(err.code())) {
    case errc::invalid_argument:
    case errc::invalid_config:
      return 400;
    case errc::unknown_entity:
    case errc::unknown_entity_type:
      return 404;
    case errc::entity_exists:
      return 409;
    case errc::not_found:
      return 404;
    case errc::auth_failed:
      return 401;
    case errc::entity_unavailable:
    case errc::placement_failed:
    case errc::node_down:
    case errc::replication_failed:
      return 503;
    default:
      return 500;
  }
}

inline std::string error_name(const caf::error& err) {
  if (err.category() == error_category)
    return to_string(static_cast<errc>(err.code()));
  if (err.category() == caf::atom("system"))
    return caf::to_string(static_cast<caf::sec>(err.code()));
  return caf::to_string(err.category());
}

inline void reply_error(httplib::Response& res, const caf::error& err) {
  res.status = http_status(err);
  res.set_content(json{{"error", error_name(err)}, {"message", render(err)}}
                    .dump(),
                  "application/json");
}

inline void reply_json(httplib::Response& res, const json& body,
                       int status = 200) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

/// Parses a request body as a JSON object, or answers 400.
inline std::optional<json> body_object(const httplib::Request& req,
                                httplib::Response& res) {
  auto body = json::parse(req.body.empty() ? std::string{"{}"} : req.body,
                          nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    reply_error(res, make_error(errc::invalid_argument,
                                "request body is not a JSON object"));
    return std::nullopt;
  }
  return body;
}

} // namespace ft::detail
