// ftctl's client of a node's HTTP JSON endpoint (ft-node, cpp-httplib) and
// the JSON helpers every command's output uses.

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>

#include <httplib.h>

#include "ftctl.hpp"

namespace ftctl {

// -- output -------------------------------------------------------------------

void print_json(const json& x) {
  std::cout << x.dump(2) << '\n';
}

std::string cell(const json& x) {
  if (x.is_null())
    return "-";
  if (x.is_string())
    return x.get<std::string>();
  return x.dump();
}

std::string field(const json& obj, const char* name) {
  if (!obj.is_object())
    return "-";
  auto i = obj.find(name);
  return i == obj.end() ? "-" : cell(*i);
}

// -- node endpoints -----------------------------------------------------------

std::optional<endpoint> parse_endpoint(std::string text) {
  constexpr std::string_view scheme = "http://";
  if (text.compare(0, scheme.size(), scheme) == 0)
    text.erase(0, scheme.size());
  while (!text.empty() && text.back() == '/')
    text.pop_back();
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return std::nullopt;
  endpoint result;
  result.host = text.substr(0, colon);
  auto first = text.data() + colon + 1;
  auto last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, result.port);
  if (ec != std::errc{} || ptr != last || first == last || result.port < 1
      || result.port > 65535)
    return std::nullopt;
  return result;
}

std::string default_node() {
  if (auto* env = std::getenv("FT_NODE"); env && *env)
    return env;
  return "127.0.0.1:8101";
}

std::string url_encode(const std::string& text) {
  return httplib::detail::encode_query_param(text);
}

namespace {

/// `2 s`, `0.5 s`.
std::string seconds_text(std::chrono::milliseconds x) {
  auto ms = x.count();
  if (ms % 1000 == 0)
    return std::to_string(ms / 1000) + " s";
  return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100)
         + " s";
}

/// What went wrong in words an operator acts on (httplib's names are terse).
std::string describe(httplib::Error err, std::chrono::milliseconds connect,
                     std::chrono::milliseconds read) {
  switch (err) {
    case httplib::Error::Connection:
      return "connection refused or failed (is the node running?)";
    case httplib::Error::ConnectionTimeout:
      return "no connection within " + seconds_text(connect);
    case httplib::Error::Read:
      return "no complete reply within " + seconds_text(read)
             + " (or the node closed the connection)";
    case httplib::Error::Write:
      return "sending the request failed";
    default:
      return httplib::to_string(err);
  }
}

} // namespace

node_api::node_api(std::string address) : address_(std::move(address)) {
  // nop
}

void node_api::set_token(std::string token, std::string source) {
  token_ = std::move(token);
  token_source_ = std::move(source);
}

void node_api::set_timeouts(std::chrono::milliseconds connect,
                            std::chrono::milliseconds read) {
  connect_timeout_ = connect;
  read_timeout_ = read;
}

void node_api::failed(int rc, std::string what) {
  rc_ = rc;
  error_ = std::move(what);
  if (!quiet_)
    std::cerr << "ftctl: " << error_ << '\n';
}

std::optional<json> node_api::call(const std::string& path, const json* body,
                                   int also_ok) {
  rc_ = 0;
  status_ = 0;
  error_.clear();
  auto ep = parse_endpoint(address_);
  if (!ep) {
    failed(exit_error,
           "error: invalid --node " + address_ + " (expected HOST:PORT)");
    return std::nullopt;
  }
  httplib::Client cli{ep->host, ep->port};
  cli.set_connection_timeout(connect_timeout_);
  cli.set_read_timeout(read_timeout_);
  // Paths are built with url_encode; no second encoding.
  cli.set_url_encode(false);
  httplib::Headers headers;
  if (!token_.empty())
    headers.emplace("Authorization", "Bearer " + token_);
  auto res = body ? cli.Post(path.c_str(), headers, body->dump(),
                             "application/json")
                  : cli.Get(path.c_str(), headers);
  if (!res) {
    failed(exit_error, "cannot reach node " + address_ + ": "
                         + describe(res.error(), connect_timeout_,
                                    read_timeout_));
    return std::nullopt;
  }
  status_ = res->status;
  auto doc = json::parse(res->body, nullptr, false);
  auto ok = (res->status >= 200 && res->status < 300)
            || (also_ok != 0 && res->status == also_ok);
  if (ok && !doc.is_discarded())
    return doc;
  if (ok) {
    failed(exit_error, "error: node " + address_
                         + " sent a reply that is not JSON (HTTP "
                         + std::to_string(res->status) + ")");
    return std::nullopt;
  }
  // Errors are {"error": "<errc name>", "message": "human text"}.
  std::string error = "http_" + std::to_string(res->status);
  std::string message = res->body;
  if (doc.is_object()) {
    error = field(doc, "error");
    message = field(doc, "message");
    // A message rendered from the error may start with its name already.
    if (message.compare(0, error.size() + 2, error + ": ") == 0)
      message.erase(0, error.size() + 2);
  }
  auto what = "error: " + error + ": " + message;
  if (res->status == 401) {
    // Say which token the node refused and where the right one lives.
    if (token_.empty())
      what += " (no cluster token was sent: pass --secret-file FILE or set "
              "FT_CLUSTER_SECRET_FILE)";
    else
      what += " (the node rejected the cluster token from " + token_source_
              + ": it must hold the node's cluster_secret_file)";
  }
  failed(res->status == 404 || error == "unknown_entity" ? exit_not_found
                                                         : exit_error,
         std::move(what));
  return std::nullopt;
}

} // namespace ftctl
