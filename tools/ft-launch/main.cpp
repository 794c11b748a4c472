// ft-launch -- starts a local libft cluster and supervises its nodes.
//
//   ft-launch                       three nodes n1..n3 on 127.0.0.1
//   ft-launch cluster.yaml          the nodes the file describes
//   ft-launch --nodes 5             n1..n5
//
// Options: --ft-node PATH, --run-dir DIR (default ./ft-cluster), --base-port
// P, --secret-file F, --no-status, --status-interval D, --startup-timeout D,
// --hang-timeout D, --stop-timeout D (durations: 500ms, 2s or plain seconds),
// --print-default-config.
//
// ft-launch writes each node's config into the run dir, starts one ft-node
// per node (seeds first), prints `cluster up: n1 http://... ...` once all
// are up, then a status table; node logs go to stderr as `[n1] ...` and to
// <run-dir>/<name>.log. A crashed node restarts with exponential backoff; a
// node that crashes more than cluster.restart.max_restarts times within
// cluster.restart.period is given up (an escalation) while the others keep
// running. SIGINT/SIGTERM stop every node (SIGTERM, SIGKILL after the stop
// timeout). A node that is up but whose /api/status has not answered (or
// reported its node watchdog stale) for the hang timeout is killed and
// restarted the same way. <run-dir>/cluster.json always lists the nodes,
// pids and states.
//
// Exit codes: 0 stopped by a signal; 1 bad input or the cluster did not
// come up (a node failed at start, or the startup timeout passed); 2 every
// node was given up.

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "cluster_config.hpp"
#include "launcher.hpp"

namespace fs = std::filesystem;

namespace {

using namespace ft::launch;

/// Durations on the command line: `500ms`, `2s` or plain seconds.
CLI::AsNumberWithUnit seconds_with_unit() {
  return CLI::AsNumberWithUnit(std::map<std::string, double>{{"ms", 0.001},
                                                             {"s", 1.0}},
                               CLI::AsNumberWithUnit::CASE_SENSITIVE,
                               "DURATION");
}

millis to_millis(double seconds) {
  return millis{static_cast<int64_t>(std::llround(seconds * 1000))};
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ft-launch: start a local libft cluster of ft-node processes "
               "and restart crashed nodes"};
  std::string file;
  std::optional<int> nodes;
  std::string ft_node;
  std::optional<std::string> run_dir;
  std::optional<int> base_port;
  std::optional<std::string> secret_file;
  bool no_status = false;
  double status_interval = 1.0;
  std::optional<double> startup_timeout;
  std::optional<double> hang_timeout;
  double stop_timeout = 10.0;
  bool print_default = false;

  auto* file_opt = app.add_option("config", file,
                                  "cluster file (default: 3 local nodes)");
  app.add_option("--nodes", nodes, "start N nodes n1..nN instead")
    ->check(CLI::Range(1, 100))
    ->excludes(file_opt);
  app.add_option("--ft-node", ft_node,
                 "the ft-node executable (default: next to ft-launch)");
  app.add_option("--run-dir", run_dir,
                 "node data, configs, logs, cluster.json (default: "
                 "./ft-cluster or cluster.run_dir)");
  app.add_option("--base-port", base_port,
                 "node i listens on P+i, its HTTP endpoint on P+100+i "
                 "(0: free ports)")
    ->check(CLI::Range(0, 65535 - 200));
  app.add_option("--secret-file", secret_file,
                 "cluster secret (default: generated in the run dir, 0600)");
  app.add_flag("--no-status", no_status, "no live status table");
  app.add_option("--status-interval", status_interval,
                 "how often the status table refreshes")
    ->transform(seconds_with_unit())
    ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--startup-timeout", startup_timeout,
                 "how long all nodes may take to come up (default 30s)")
    ->transform(seconds_with_unit())
    ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--hang-timeout", hang_timeout,
                 "kill and restart an up node whose /api/status has not "
                 "answered (or reported its watchdog stale) this long "
                 "(default 5s or cluster.hang_timeout; 0 = off)")
    ->transform(seconds_with_unit())
    ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--stop-timeout", stop_timeout,
                 "how long nodes get to leave before SIGKILL")
    ->transform(seconds_with_unit())
    ->check(CLI::Range(0.0, 3600.0));
  app.add_flag("--print-default-config", print_default,
               "print the embedded default cluster file and exit");
  app.footer(
    "A crashed node restarts after an exponential backoff (cluster.restart:\n"
    "initial_delay, max_delay; reset once it stayed up for `period`). A node\n"
    "that crashes more than max_restarts times within period is given up\n"
    "(an escalation, logged); the others keep running. ft-launch itself\n"
    "exits only when every node was given up.\n"
    "Exit codes: 0 stopped by SIGINT/SIGTERM; 1 bad input or the cluster did\n"
    "not come up (a node failed before it was up, or the startup timeout\n"
    "passed); 2 every node was given up.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e);
    return rc == 0 ? 0 : exit_startup_failed;
  }
  if (print_default) {
    std::cout << default_cluster_yaml();
    return 0;
  }
  try {
    auto cfg = file.empty() ? default_cluster_config(nodes.value_or(0))
                            : load_cluster_config(file);
    if (run_dir)
      cfg.run_dir = *run_dir;
    if (base_port)
      cfg.base_port = *base_port;
    if (secret_file)
      cfg.secret_file = *secret_file;
    if (startup_timeout)
      cfg.startup_timeout = to_millis(*startup_timeout);
    if (hang_timeout)
      cfg.hang_timeout = to_millis(*hang_timeout);
    launch_options opts;
    opts.ft_node = ft_node.empty() ? find_ft_node_next_to_self() : ft_node;
    if (opts.ft_node.empty()) {
      std::cerr << "ft-launch: cannot find ft-node next to ft-launch (tried "
                   "ft-node and ../ft-node/ft-node); pass --ft-node PATH\n";
      return exit_startup_failed;
    }
    std::error_code ec;
    if (!fs::is_regular_file(opts.ft_node, ec)
        || ::access(opts.ft_node.c_str(), X_OK) != 0) {
      std::cerr << "ft-launch: ft-node binary " << opts.ft_node
                << " is missing or not executable\n";
      return exit_startup_failed;
    }
    opts.ft_node = fs::absolute(opts.ft_node).string();
    opts.run_dir = fs::absolute(cfg.run_dir);
    opts.status = !no_status;
    opts.status_interval = to_millis(status_interval);
    opts.stop_timeout = to_millis(stop_timeout);
    launcher l{std::move(cfg), std::move(opts)};
    return l.run();
  } catch (const config_error& e) {
    std::cerr << "ft-launch: " << e.what() << '\n';
    return exit_startup_failed;
  }
}
