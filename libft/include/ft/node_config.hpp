#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "ft/alert.hpp"
#include "ft/breaker_config.hpp"
#include "ft/checkpoint.hpp"
#include "ft/failure_detector.hpp"
#include "ft/placement.hpp"
#include "ft/watchdog.hpp"

/// The configuration of one cluster node (`ft-node`, `ft::node_main`): a YAML
/// file plus command-line overrides. Plain data, parsed and validated here so
/// the node, `ft-launch` and `ftctl doctor` agree on every field.

namespace ft {

/// `host:port` of another node's cluster endpoint.
struct host_port {
  std::string host;
  uint16_t port = 0;

  friend bool operator==(const host_port& x, const host_port& y) {
    return x.host == y.host && x.port == y.port;
  }
};

/// `invalid_config` naming `what` and the text when `text` is not
/// `host:port` with a port in 1..65535 (or 0 when `allow_zero`).
caf::expected<host_port> parse_host_port(const std::string& text,
                                         const std::string& what,
                                         bool allow_zero = false);

std::string to_string(const host_port& x);

/// How snapshots of entities are copied to other nodes.
struct replication_config {
  /// Copies on other nodes (besides the home's own store). 0 turns
  /// replication off (then a node's death loses its entities' state).
  int factor = 2;
  /// Replica commits a write waits for before it counts as acknowledged
  /// (0..factor). Fewer up nodes than `min_acks`: the write fails with
  /// `replication_failed`, so an acknowledged value always survives the
  /// home's death.
  int min_acks = 1;
  /// How long a write waits for its replicas.
  caf::timespan timeout = std::chrono::seconds(2);
};

/// `node:` settings. Every field has a YAML key of the same name, except the
/// `tls_*` files: `tls: {cert_file, key_file, ca_file}`.
struct node_config {
  /// Unique in the cluster; letters, digits, `-`, `_`, `.`; 1..64 chars.
  std::string name;
  /// Address the cluster endpoint binds to and that other nodes dial.
  std::string host = "127.0.0.1";
  /// Cluster (CAF middleman) port; 0 picks a free one (reported when up).
  uint16_t port = 0;
  /// Nodes to join through; empty (or only this node) starts a new cluster.
  std::vector<host_port> seeds;
  /// Address of the HTTP JSON endpoint.
  std::string http_host = "127.0.0.1";
  /// HTTP port; 0 picks a free one.
  uint16_t http_port = 0;
  /// Holds the snapshot store (`<data_dir>/snapshots`).
  std::string data_dir;
  /// Free-form labels placement matches against (`gpu: "true"`).
  std::map<std::string, std::string> labels;
  /// A file holding the cluster secret (trailing whitespace ignored); empty
  /// means no secret, which only a cluster with no secret accepts.
  std::string cluster_secret_file;
  /// Heartbeat interval and failure detector (`failure_detector:` section).
  failure_detector_config failure_detector;
  /// How long a node keeps serving its entities after its last heartbeat
  /// acknowledged by a quorum. Must be shorter than the silence after
  /// which a peer can be declared down (heartbeat_interval +
  /// acceptable_heartbeat_pause), so a paused node stops answering before
  /// its entities are resumed elsewhere.
  caf::timespan lease = std::chrono::milliseconds(300);
  /// How long joining waits for a seed before failing (`join_timeout`).
  caf::timespan join_timeout = std::chrono::seconds(10);
  /// Default placement for spawns that do not name one.
  placement_strategy placement = placement_strategy::least_loaded;
  /// When a node comes up, the leader moves entities (not pinned ones) so
  /// every up node hosts within one of the mean (`rebalance_on_join`).
  bool rebalance_on_join = false;
  replication_config replication;
  /// Checkpointing of entities (`fault_tolerance:` section); entities reply
  /// after their snapshot is committed and replicated by default.
  fault_tolerance_config fault_tolerance = default_entity_fault_tolerance();
  /// `cert_file`, `key_file`, `ca_file`: all three set turns on TLS between
  /// nodes (libcaf_openssl).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  /// The node watchdog (`watchdog:` section, the fields of
  /// `watchdog_config`): it watches the node's pulse and every watchdog
  /// registered with it (`ft::node::watchdog()`), and runs
  /// `operator_hook` (`--operator-hook`) after `max_recoveries` failed
  /// recoveries in a row. Its name defaults to `node`, its `node` to the
  /// node's name.
  watchdog_config watchdog = default_node_watchdog();
  /// Where events at or above a severity are sent (`alerts:` section,
  /// `--alert-command`, `--alert-url`, `--alert-min-severity`).
  alert_config alerts;
  /// The node's breaker registry (`breakers:` section): `default:` holds
  /// the fields of `breaker_config` for circuits of scopes not named, every
  /// other key names a scope (`worker:`, `hardware:`, ...) and holds its
  /// circuits' fields. Absent: the defaults of `breaker_config`.
  breaker_config breaker_defaults;
  std::map<std::string, breaker_config> breaker_scopes;

  static fault_tolerance_config default_entity_fault_tolerance();

  static watchdog_config default_node_watchdog();
};

/// `invalid_config` naming the first bad field and its value (e.g.
/// `lease = 0.6s (must be below failure_detector.heartbeat_interval +
/// failure_detector.acceptable_heartbeat_pause = 0.5s)`); a section's field
/// as `section.field`, a seed as `seeds[N]`.
caf::error validate(const node_config& x);

/// Reads a YAML document whose top level holds the node fields (optionally
/// under a `node:` key) plus `failure_detector:`, `replication:`,
/// `fault_tolerance:` and `watchdog:` sections (with `node:`, beside it or inside it).
/// Durations are seconds (fractions allowed). The `fault_tolerance:` fields
/// it leaves out keep `default_entity_fault_tolerance()`. Unknown keys are
/// errors. The result is validated (a name is required). Errors name
/// `source:line`, the field and value.
caf::expected<node_config> node_config_from_yaml(const std::string& text,
                                                 const std::string& source
                                                 = "<config>");

/// Reads the file at `path` (errors name the path). Relative `data_dir`,
/// `cluster_secret_file` and `tls` files are relative to the file's
/// directory.
caf::expected<node_config> node_config_from_file(const std::string& path);

/// Reads the cluster secret from `x.cluster_secret_file` (empty string when
/// none is configured); `invalid_config` naming the file when it cannot be
/// read or is empty.
caf::expected<std::string> read_cluster_secret(const node_config& x);

} // namespace ft

namespace ft {

/// What `ft-node`'s command line asked for.
struct node_command_line {
  node_config config;
  /// `--ready-file F`: when the node is up it writes
  /// `{"name","pid","port","http_port"}` (JSON) to F, so a launcher or a
  /// test learns the ports a `0` picked without parsing logs.
  std::string ready_file;
  /// `--help` was given: print `help_text` and exit 0.
  bool help = false;
  std::string help_text;
};

/// Parses `ft-node [CONFIG.yaml] [options]` with CLI11: the file first, then
/// the options override it (`--name`, `--host`, `--port`, `--seeds
/// H:P,H:P` (repeatable), `--http-host`, `--http-port`, `--data-dir`,
/// `--label K=V` (repeatable), `--cluster-secret-file`,
/// `--heartbeat-interval`, `--phi-threshold`, `--acceptable-pause`,
/// `--lease`, `--join-timeout`, `--replication-factor`, `--min-acks`, `--placement`,
/// `--operator-hook CMD` (the node watchdog's `watchdog.operator_hook`),
/// `--ready-file`). Durations take `150ms`, `2s` or plain seconds `0.5`.
/// `--seeds` replaces the file's seeds (`--seeds ''` clears them); `--label`
/// adds to its labels. A file used here may leave the name to `--name`.
/// The result is validated. Errors name the option or `file:line`;
/// `--help` never exits the process.
caf::expected<node_command_line> parse_node_command_line(int argc,
                                                         const char* const* argv);

} // namespace ft
