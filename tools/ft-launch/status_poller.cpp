#include "status_poller.hpp"

#include <algorithm>
#include <cstdint>
#include <unistd.h>

#include <httplib.h>

namespace ft::launch {

namespace {

/// GET `path` with short timeouts (loopback nodes answer in milliseconds;
/// a slow one is reported as not answering rather than stalling its
/// thread).
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
  // nop
}

status_poller::~status_poller() {
  stop();
}

void status_poller::set_targets(std::vector<poll_target> targets) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (stop_)
    return;
  // Join what ended (done: join returns at once).
  retired_.erase(std::remove_if(retired_.begin(), retired_.end(),
                                [](auto& w) {
                                  if (!w->done)
                                    return false;
                                  w->thread.join();
                                  return true;
                                }),
                 retired_.end());
  for (auto i = workers_.begin(); i != workers_.end();) {
    auto keep = std::find(targets.begin(), targets.end(), i->second->target)
                != targets.end();
    if (keep) {
      ++i;
      continue;
    }
    i->second->stop = true;
    latest_.status.erase(i->first);
    latest_.answered_at.erase(i->first);
    if (latest_.nodes_from == i->first) {
      latest_.nodes.reset();
      latest_.nodes_from.clear();
    }
    retired_.push_back(std::move(i->second));
    i = workers_.erase(i);
  }
  for (auto& t : targets) {
    if (workers_.count(t.name) != 0)
      continue;
    auto w = std::make_shared<worker>();
    w->target = t;
    w->thread = std::thread{[this, w] { run(w); }};
    workers_.emplace(t.name, std::move(w));
  }
  targets_ = std::move(targets);
  cv_.notify_all();
}

void status_poller::set_interval(std::chrono::milliseconds interval) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (interval_ != interval) {
    interval_ = interval;
    for (auto& [name, w] : workers_)
      w->wake = true;
    cv_.notify_all();
  }
}

poll_result status_poller::latest() {
  std::lock_guard<std::mutex> guard{mtx_};
  return latest_;
}

void status_poller::stop() {
  std::vector<std::shared_ptr<worker>> all;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stop_ = true;
    for (auto& [name, w] : workers_)
      all.push_back(w);
    for (auto& w : retired_)
      all.push_back(w);
    workers_.clear();
    retired_.clear();
    cv_.notify_all();
  }
  for (auto& w : all)
    if (w->thread.joinable())
      w->thread.join();
}

bool status_poller::nodes_source(const std::string& name) const {
  for (auto& t : targets_) {
    auto i = latest_.status.find(t.name);
    if (i != latest_.status.end() && i->second.value("state", "") == "up")
      return t.name == name;
  }
  return false;
}

void status_poller::run(std::shared_ptr<worker> w) {
  std::unique_lock<std::mutex> guard{mtx_};
  auto& t = w->target;
  while (!stop_ && !w->stop) {
    w->wake = false;
    guard.unlock();
    auto doc = get_json(t.host, t.http_port, "/api/status");
    auto at = std::chrono::steady_clock::now();
    guard.lock();
    if (stop_ || w->stop)
      break;
    if (doc) {
      latest_.status[t.name] = std::move(*doc);
      latest_.answered_at[t.name] = at;
    }
    if (doc && nodes_source(t.name)) {
      guard.unlock();
      auto nodes = get_json(t.host, t.http_port, "/api/nodes");
      guard.lock();
      if (stop_ || w->stop)
        break;
      if (nodes) {
        latest_.nodes = std::move(nodes);
        latest_.nodes_from = t.name;
      }
    }
    uint64_t one = 1;
    // An eventfd write only fails when the counter would overflow.
    [[maybe_unused]] auto n = ::write(notify_fd_, &one, sizeof(one));
    cv_.wait_for(guard, interval_,
                 [this, &w] { return stop_ || w->stop || w->wake; });
  }
  w->done = true;
}

} // namespace ft::launch
