#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "cluster_config.hpp"

/// The process supervisor at the root of a local cluster's supervision tree:
/// one ft-node process per configured node, restarted with backoff when it
/// crashes, all stopped together. One thread runs everything through
/// poll(2) (signals arrive through a signalfd, never in a handler); HTTP
/// status queries run on the status poller's thread.
namespace ft::launch {

using steady_clock = std::chrono::steady_clock;

/// Process exit codes of ft-launch.
enum exit_code : int {
  /// Stopped by SIGINT/SIGTERM.
  exit_ok = 0,
  /// Bad input or the cluster never came up.
  exit_startup_failed = 1,
  /// Every node exceeded its restart intensity: nothing left to supervise.
  exit_all_failed = 2,
};

/// Settings from ft-launch's command line (the cluster file has the rest).
struct launch_options {
  /// The ft-node executable.
  std::string ft_node;
  /// Absolute.
  std::filesystem::path run_dir;
  /// Draw the live status table on stdout.
  bool status = true;
  std::chrono::milliseconds status_interval{1000};
  /// How long nodes get to leave after SIGTERM before SIGKILL.
  std::chrono::milliseconds stop_timeout{10'000};
};

/// Where one node is in its life, as ft-launch sees it.
enum class node_phase {
  /// Spawned; not yet `up` (ready file plus `/api/status`).
  starting,
  up,
  /// Crashed; waiting for its restart delay.
  restarting,
  /// Asked to stop (SIGTERM sent).
  stopping,
  stopped,
  /// Exceeded max_restarts within period: ft-launch gave up on it.
  failed,
};

const char* to_string(node_phase x);

class launcher {
public:
  launcher(cluster_config cfg, launch_options opts);

  ~launcher();

  launcher(const launcher&) = delete;
  launcher& operator=(const launcher&) = delete;

  /// Prepares the run dir, starts every node and supervises them until a
  /// signal asks to stop; returns the process exit code.
  int run();

private:
  class impl;
  std::unique_ptr<impl> impl_;
};

/// Picks the ft-node binary next to ft-launch's own executable: `ft-node`
/// in the same directory (installed) or `../ft-node/ft-node` (build tree).
/// Empty when neither exists.
std::string find_ft_node_next_to_self();

} // namespace ft::launch
