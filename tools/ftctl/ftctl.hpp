#pragma once

// What ftctl's command files share: exit codes, output helpers (main.cpp),
// one node's HTTP API (node_api.cpp), the snapshot store check (main.cpp),
// and the functions that add each file's commands to the command line.

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include "ft/snapshot_store.hpp"

namespace CLI {
class App;
} // namespace CLI

namespace ftctl {

using json = nlohmann::json;

// -- exit codes ---------------------------------------------------------------

/// Usage or runtime error; the message on stderr names the cause.
constexpr int exit_error = 1;

/// `snapshot verify` found bad records.
constexpr int exit_bad_records = 2;

/// The key, snapshot, entity, component or actor does not exist.
constexpr int exit_not_found = 3;

/// `health`: the node reports itself (or the component) unhealthy.
constexpr int exit_unhealthy = 4;

// -- output -------------------------------------------------------------------

/// Prints rows as aligned columns under a header.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

/// Pretty-prints `x` (2 spaces), as `--format json` does everywhere.
void print_json(const json& x);

/// Renders any JSON value for a table cell: strings without quotes, null as
/// `-`.
std::string cell(const json& x);

/// Field `name` of `obj` as a cell (`-` when absent).
std::string field(const json& obj, const char* name);

/// `2026-11-23T14:57:00.123Z`.
std::string iso_time(int64_t ms);

// -- node endpoints -----------------------------------------------------------

/// `HOST:PORT` (an `http://` prefix is accepted, as `ft-launch` prints
/// URLs).
struct endpoint {
  std::string host;
  int port = 0;
};

std::optional<endpoint> parse_endpoint(std::string text);

/// What `--node` means when not given: $FT_NODE, else 127.0.0.1:8101.
std::string default_node();

/// One node's HTTP API with the timeouts an operator expects (connect 2 s,
/// read 30 s: a migration or an ask may wait for a failover). Reports every
/// failure on stderr (unless quiet) and remembers the exit code it maps to
/// and the reason in words.
class node_api {
public:
  /// `address` is `HOST:PORT`, as `--node` takes it.
  explicit node_api(std::string address);

  /// Sends `Authorization: Bearer <token>` with every request; `source`
  /// (e.g. the file it came from) is named when the node rejects it.
  void set_token(std::string token, std::string source);

  void set_timeouts(std::chrono::milliseconds connect,
                    std::chrono::milliseconds read);

  /// Keeps failures to `error()` instead of printing them (`doctor` reports
  /// them in its own lines).
  void set_quiet(bool value) noexcept {
    quiet_ = value;
  }

  /// The body of a 2xx reply, or nullopt after reporting the failure.
  std::optional<json> get(const std::string& path) {
    return call(path, nullptr, 0);
  }

  /// Like `get`, but a reply with status `also_ok` and a JSON body counts
  /// as an answer too (`/health` answers 503 with its report).
  std::optional<json> get(const std::string& path, int also_ok) {
    return call(path, nullptr, also_ok);
  }

  std::optional<json> post(const std::string& path, const json& body) {
    return call(path, &body, 0);
  }

  /// The exit code the last failure maps to (0 after a success): 3 for 404,
  /// else 1.
  int rc() const noexcept {
    return rc_;
  }

  /// The HTTP status of the last reply; 0 when there was none.
  int status() const noexcept {
    return status_;
  }

  /// The last failure in words (empty after a success).
  const std::string& error() const noexcept {
    return error_;
  }

  const std::string& address() const noexcept {
    return address_;
  }

private:
  std::optional<json> call(const std::string& path, const json* body,
                           int also_ok);

  void failed(int rc, std::string what);

  std::string address_;
  std::string token_;
  std::string token_source_;
  std::chrono::milliseconds connect_timeout_{2000};
  std::chrono::milliseconds read_timeout_{30000};
  bool quiet_ = false;
  int rc_ = 0;
  int status_ = 0;
  std::string error_;
};

/// Percent-encodes everything but unreserved characters (`/` included), for
/// a path segment or a query value.
std::string url_encode(const std::string& text);

// -- snapshot stores ----------------------------------------------------------

/// What `verify_store` found.
struct store_report {
  /// Records checked.
  size_t records = 0;
  /// Exactly the bad ones.
  std::vector<ft::snapshot_problem> bad;
};

/// Opens the store in `dir` read-only (never creating it) and checks every
/// record's structure and checksum; `snapshot verify` and `doctor` share it.
caf::expected<store_report> verify_store(const std::string& dir);

// -- commands -----------------------------------------------------------------

/// Each adds its commands to `app`; the returned function runs the command
/// the parsed command line selected, or returns -1 when it selected none of
/// them.

/// `nodes` and `entity ...` (cluster.cpp).
std::function<int()> add_cluster_commands(CLI::App& app);

/// `health`, `tree`, `circuits`, `events`, `kill` and `doctor` (ops.cpp).
std::function<int()> add_ops_commands(CLI::App& app);

} // namespace ftctl
