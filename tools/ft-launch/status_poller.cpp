#include "status_poller.hpp"

#include <cstdint>
#include <unistd.h>

#include <httplib.h>

namespace ft::launch {

namespace {

/// GET `path` with short timeouts (loopback nodes answer in milliseconds;
/// a slow one is reported as not answering rather than stalling a round).
std::optional<nlohmann::json> get_json(const std::string& host, uint16_t port,
                                       const char* path) {
  httplib::Client cli{host, port};
  cli.set_connection_timeout(0, 500'000);
  cli.set_read_timeout(2, 0);
  cli.set_write_timeout(2, 0);
  auto res = cli.Get(path);
  if (!res || res->status != 200)
    return std::nullopt;
  auto doc = nlohmann::json::parse(res->body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return std::nullopt;
  return doc;
}

} // namespace

status_poller::status_poller(int notify_fd) : notify_fd_(notify_fd) {
  thread_ = std::thread{[this] { run(); }};
}

status_poller::~status_poller() {
  stop();
}

void status_poller::set_targets(std::vector<poll_target> targets) {
  std::lock_guard<std::mutex> guard{mtx_};
  targets_ = std::move(targets);
  wake_ = true;
  cv_.notify_all();
}

void status_poller::set_interval(std::chrono::milliseconds interval) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (interval_ != interval) {
    interval_ = interval;
    cv_.notify_all();
  }
}

poll_result status_poller::latest() {
  std::lock_guard<std::mutex> guard{mtx_};
  return latest_;
}

void status_poller::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable())
    thread_.join();
}

void status_poller::run() {
  std::unique_lock<std::mutex> guard{mtx_};
  while (!stop_) {
    auto targets = targets_;
    wake_ = false;
    guard.unlock();
    auto result = round(targets);
    guard.lock();
    if (stop_)
      break;
    latest_ = std::move(result);
    uint64_t one = 1;
    // An eventfd write only fails when the counter would overflow.
    [[maybe_unused]] auto n = ::write(notify_fd_, &one, sizeof(one));
    cv_.wait_for(guard, interval_, [this] { return stop_ || wake_; });
  }
}

poll_result status_poller::round(const std::vector<poll_target>& targets) {
  poll_result result;
  const poll_target* up = nullptr;
  for (auto& t : targets) {
    if (auto doc = get_json(t.host, t.http_port, "/api/status")) {
      if (!up && doc->value("state", "") == "up")
        up = &t;
      result.status.emplace(t.name, std::move(*doc));
    }
  }
  if (up) {
    result.nodes = get_json(up->host, up->http_port, "/api/nodes");
    result.nodes_from = up->name;
  }
  return result;
}

} // namespace ft::launch
