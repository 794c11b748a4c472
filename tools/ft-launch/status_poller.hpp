#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

/// Asks the nodes' HTTP endpoints how they are, one thread per node: a node
/// that hangs (SIGSTOP, a stuck handler) then delays only its own answers,
/// never another node's (so a healthy node is never taken for hung because
/// a hung one held up a shared round), nor ft-launch's signal handling, log
/// forwarding or restarts.
namespace ft::launch {

/// A node worth asking: its process runs.
struct poll_target {
  std::string name;
  std::string host;
  uint16_t http_port = 0;
  pid_t pid = 0;

  friend bool operator==(const poll_target& x, const poll_target& y) {
    return x.name == y.name && x.host == y.host && x.http_port == y.http_port
           && x.pid == y.pid;
  }
};

/// What the newest answers say.
struct poll_result {
  /// The newest `GET /api/status` answer of each target, by name.
  std::map<std::string, nlohmann::json> status;
  /// When each answer in `status` arrived.
  std::map<std::string, std::chrono::steady_clock::time_point> answered_at;
  /// `GET /api/nodes` of the first target (in target order) whose status
  /// said "up".
  std::optional<nlohmann::json> nodes;
  std::string nodes_from;
};

class status_poller {
public:
  /// After each answer (or failed attempt) a thread writes to `notify_fd`
  /// (an eventfd the launcher polls).
  explicit status_poller(int notify_fd);

  ~status_poller();

  status_poller(const status_poller&) = delete;
  status_poller& operator=(const status_poller&) = delete;

  /// Replaces the targets: new ones are asked at once, dropped ones are
  /// forgotten (their threads end after their current request; never
  /// waited for here).
  void set_targets(std::vector<poll_target> targets);

  /// Time between two requests to one target; a change applies at once.
  void set_interval(std::chrono::milliseconds interval);

  /// The newest answers (empty before the first).
  poll_result latest();

  /// Stops and joins the threads (waits for requests under way, at most
  /// their read timeout).
  void stop();

private:
  /// One target's thread.
  struct worker {
    poll_target target;
    std::thread thread;
    bool stop = false;
    bool wake = false;
    bool done = false;
  };

  void run(std::shared_ptr<worker> w);

  /// Whether `name` is the first target whose newest status says up.
  bool nodes_source(const std::string& name) const;

  int notify_fd_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<poll_target> targets_;
  std::map<std::string, std::shared_ptr<worker>> workers_;
  /// Dropped workers whose threads may still run; joined once done.
  std::vector<std::shared_ptr<worker>> retired_;
  std::chrono::milliseconds interval_{200};
  bool stop_ = false;
  poll_result latest_;
};

} // namespace ft::launch
