#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

/// Asks the nodes' HTTP endpoints how they are, on a thread of its own: a
/// node that hangs (SIGSTOP, a stuck handler) then delays only the next
/// status, never ft-launch's signal handling, log forwarding or restarts.
namespace ft::launch {

/// A node worth asking: its process runs.
struct poll_target {
  std::string name;
  std::string host;
  uint16_t http_port = 0;
  pid_t pid = 0;
};

/// What the last round learned.
struct poll_result {
  /// `GET /api/status` of each target that answered, by name.
  std::map<std::string, nlohmann::json> status;
  /// `GET /api/nodes` of the first node whose status said "up".
  std::optional<nlohmann::json> nodes;
  std::string nodes_from;
};

class status_poller {
public:
  /// Starts the thread. After each round it writes to `notify_fd` (an
  /// eventfd the launcher polls).
  explicit status_poller(int notify_fd);

  ~status_poller();

  status_poller(const status_poller&) = delete;
  status_poller& operator=(const status_poller&) = delete;

  /// Replaces the targets; the next round starts at once.
  void set_targets(std::vector<poll_target> targets);

  /// Time between rounds.
  void set_interval(std::chrono::milliseconds interval);

  /// The newest round's result (empty before the first round ends).
  poll_result latest();

  /// Stops and joins the thread.
  void stop();

private:
  void run();

  poll_result round(const std::vector<poll_target>& targets);

  int notify_fd_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<poll_target> targets_;
  std::chrono::milliseconds interval_{200};
  bool wake_ = false;
  bool stop_ = false;
  poll_result latest_;
  std::thread thread_;
};

} // namespace ft::launch
