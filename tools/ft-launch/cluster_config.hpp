#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

/// What `ft-launch` starts: `cluster.yaml` (or the embedded default) parsed
/// into plain data. The ft-node fields of each node (`node_defaults` merged
/// with the node's entry) stay YAML: ft_core's `node_config_from_yaml` owns
/// their schema, so ft-launch and ft-node never disagree about a field.
namespace ft::launch {

using millis = std::chrono::milliseconds;

/// A cluster.yaml problem; `what()` reads `file:line: field: problem`, so a
/// user finds the spot without counting entries.
class config_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// `cluster.restart`: how ft-launch restarts a crashed node. Exponential
/// backoff from `initial_delay` up to `max_delay`; the backoff resets once a
/// node stayed up for `period`; more than `max_restarts` restarts of one node
/// within `period` make ft-launch give up on it (an escalation, like an OTP
/// supervisor's restart intensity).
struct restart_config {
  millis initial_delay{500};
  millis max_delay{10'000};
  int max_restarts = 5;
  millis period{60'000};
};

/// Where a value came from, for errors found after merging (e.g. the node
/// config's cross-field checks): `nodes[1].lease` at line 14.
struct field_origin {
  /// Keys from the node's top level down, e.g. {"failure_detector",
  /// "threshold"}.
  std::vector<std::string> path;
  /// `nodes[1] (n2)` or `node_defaults`.
  std::string section;
  /// 1-based; 0 when unknown (the embedded default config).
  int line = 0;
};

/// One `nodes:` entry.
struct node_spec {
  std::string name;
  /// 0: ft-launch chooses (base_port + i, or a free port).
  uint16_t port = 0;
  uint16_t http_port = 0;
  /// node_defaults merged with the entry (a YAML map of ft-node fields)
  /// without name, port and http_port, which ft-launch sets.
  YAML::Node fields;
  /// Line of the entry (1-based; 0 when unknown).
  int line = 0;
  /// Every leaf value of the entry, then of node_defaults, for blaming.
  std::vector<field_origin> origins;
};

/// The whole file.
struct cluster_config {
  /// File name or `<default>`, for errors.
  std::string source = "<default>";
  std::string run_dir = "ft-cluster";
  /// Empty: generate `<run_dir>/cluster.secret` (mode 0600) unless present.
  std::string secret_file;
  /// 0: free ports; otherwise node i gets base_port + i and HTTP port
  /// base_port + 100 + i (i from 1).
  int base_port = 0;
  /// The first `seeds` nodes are every node's seeds.
  int seeds = 1;
  /// How long all nodes may take to come up before ft-launch gives up.
  millis startup_timeout{30'000};
  /// A node that is up but whose `/api/status` has not answered (or has
  /// reported its node watchdog `stale`) for this long is declared hung:
  /// killed (SIGKILL) and restarted like a crashed node. 0 = off.
  millis hang_timeout{5'000};
  restart_config restart;
  std::vector<node_spec> nodes;
};

/// Parses a cluster file; throws `config_error` naming `source:line` and
/// the field. Unknown keys are errors.
cluster_config parse_cluster_config(const std::string& text,
                                    const std::string& source);

/// Reads and parses the file at `path`.
cluster_config load_cluster_config(const std::string& path);

/// The embedded default (3 nodes, n1..n3); with `nodes > 0` the node list is
/// n1..n<nodes> instead.
cluster_config default_cluster_config(int nodes = 0);

/// The embedded default's text (`ft-launch --print-default-config`).
const std::string& default_cluster_yaml();

/// What ft-launch decided for one node before starting it.
struct node_plan {
  std::string host;
  uint16_t port = 0;
  std::string http_host;
  uint16_t http_port = 0;
  std::string data_dir;
};

/// The node's complete ft-node config: its fields plus name, ports, seeds,
/// data dir and secret file.
YAML::Node node_config_yaml(const node_spec& node, const node_plan& plan,
                            const std::vector<std::string>& seeds,
                            const std::string& secret_file);

/// Validates `full` (from `node_config_yaml`) with ft_core's node config
/// parser; throws `config_error` that blames the entry's field (with its
/// line in the cluster file) whose removal changes the problem, else the
/// node's entry. `text` is `full` as written to `file`, whose line the
/// message also names.
void check_node_config(const cluster_config& cfg, const node_spec& node,
                       const YAML::Node& full, const std::string& text,
                       const std::string& file);

/// `host` and `http_host` of a node's fields (default 127.0.0.1).
std::string field_or(const YAML::Node& fields, const char* key,
                     const std::string& fallback);

} // namespace ft::launch
