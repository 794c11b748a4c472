#include "ft/watchdog.hpp"

#include "watchdog_yaml.hpp"
#include "yaml_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/sec.hpp>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"

extern char** environ;

namespace ft {

namespace {

caf::error config_error(std::string context) {
  return make_error(errc::invalid_config, std::move(context));
}

/// `field = 5s (must be > 0)`.
caf::error bad_time(const char* field, caf::timespan x, const char* why) {
  return config_error(std::string{field} + " = " + render_seconds(x) + " ("
                      + why + ")");
}

/// The mapping with the watchdog fields: the root, or its `watchdog:`
/// entry. (Returned by value: assigning a YAML::Node would write into it.)
YAML::Node watchdog_root(const YAML::Node& root) {
  if (root.IsMap() && root.size() == 1 && root["watchdog"])
    return root["watchdog"];
  return root;
}

} // namespace

// -- faults -------------------------------------------------------------------

const char* to_string(watchdog_fault x) noexcept {
  switch (x) {
    case watchdog_fault::stale: return "stale";
    case watchdog_fault::stuck: return "stuck";
    case watchdog_fault::zombie: return "zombie";
  }
  return "invalid";
}

std::optional<watchdog_fault> parse_watchdog_fault(const std::string& x) {
  for (auto k : {watchdog_fault::stale, watchdog_fault::stuck,
                 watchdog_fault::zombie})
    if (x == to_string(k))
      return k;
  return std::nullopt;
}

// -- configuration --------------------------------------------------------------

caf::error validate(const watchdog_config& x) {
  using caf::timespan;
  if (x.name.empty())
    return config_error("name = '' (must not be empty: it names the "
                        "watchdog in events and at its parent)");
  if (x.heartbeat_timeout <= timespan{0})
    return bad_time("heartbeat_timeout", x.heartbeat_timeout, "must be > 0");
  if (x.progress_timeout < timespan{0})
    return bad_time("progress_timeout", x.progress_timeout,
                    "must be >= 0; 0 = off");
  if (x.zombie_timeout <= timespan{0})
    return bad_time("zombie_timeout", x.zombie_timeout, "must be > 0");
  if (x.check_interval < timespan{0})
    return bad_time("check_interval", x.check_interval,
                    "must be >= 0; 0 = exact deadlines");
  if (x.kill_timeout <= timespan{0})
    return bad_time("kill_timeout", x.kill_timeout, "must be > 0");
  if (x.heartbeat_interval <= timespan{0})
    return bad_time("heartbeat_interval", x.heartbeat_interval,
                    "must be > 0");
  if (x.max_recoveries < 1)
    return config_error("max_recoveries = " + std::to_string(x.max_recoveries)
                        + " (must be >= 1)");
  if (x.healthy_period <= x.heartbeat_timeout)
    return config_error("healthy_period = " + render_seconds(x.healthy_period)
                        + " (must be > heartbeat_timeout = "
                        + render_seconds(x.heartbeat_timeout)
                        + ", or a worker that stays stale would count as "
                          "healthy)");
  if (x.healthy_period <= x.progress_timeout)
    return config_error("healthy_period = " + render_seconds(x.healthy_period)
                        + " (must be > progress_timeout = "
                        + render_seconds(x.progress_timeout)
                        + ", or a worker that stays stuck would count as "
                          "healthy)");
  if (x.escalation_severity < 1 || x.escalation_severity > 4)
    return config_error("escalation_severity = "
                        + std::to_string(x.escalation_severity)
                        + " (must be 1 info .. 4 critical)");
  if (x.hook_min_interval < timespan{0})
    return bad_time("hook_min_interval", x.hook_min_interval,
                    "must be >= 0; 0 = no limit");
  if (x.hook_timeout < timespan{0})
    return bad_time("hook_timeout", x.hook_timeout,
                    "must be >= 0; 0 = no limit");
  return caf::none;
}

namespace detail {

caf::error read_watchdog_config(const YAML::Node& root,
                                const std::string& source,
                                watchdog_config& x) {
  if (!root || root.IsNull()) {
    x = watchdog_config{};
    return caf::none;
  }
  detail::yaml_reader in{root, source, errc::invalid_config};
  if (!root.IsMap())
    return in.fail(root, "watchdog", "must be a mapping");
  if (auto err = in.check_known(
        {"name", "node", "heartbeat_timeout", "progress_timeout",
         "zombie_timeout", "check_interval", "kill_timeout",
         "heartbeat_interval", "max_recoveries", "healthy_period",
         "escalation_severity", "operator_hook", "hook_min_interval",
         "hook_timeout", "auto_register"}))
    return err;
  watchdog_config result;
  caf::error err;
  auto read = [&](const char* field, auto& dst) {
    if (!err)
      err = in.read_optional(field, dst);
  };
  read("name", result.name);
  read("node", result.node);
  read("heartbeat_timeout", result.heartbeat_timeout);
  read("progress_timeout", result.progress_timeout);
  read("zombie_timeout", result.zombie_timeout);
  read("check_interval", result.check_interval);
  read("kill_timeout", result.kill_timeout);
  read("heartbeat_interval", result.heartbeat_interval);
  read("max_recoveries", result.max_recoveries);
  read("healthy_period", result.healthy_period);
  read("operator_hook", result.operator_hook);
  read("hook_min_interval", result.hook_min_interval);
  read("hook_timeout", result.hook_timeout);
  read("auto_register", result.auto_register);
  if (err)
    return err;
  if (in.has("escalation_severity")) {
    auto sev = in.integer("escalation_severity");
    if (!sev)
      return sev.error();
    if (*sev < 1 || *sev > 4)
      return in.fail(root["escalation_severity"], "escalation_severity",
                     "= " + std::to_string(*sev)
                       + " is not a severity (1 info, 2 warning, 3 error, "
                         "4 critical)");
    result.escalation_severity = static_cast<uint8_t>(*sev);
  }
  if (auto bad = validate(result)) {
    // healthy_period left at its default loses against a longer timeout
    // the document sets: point at that timeout.
    auto ctx = render(bad);
    auto fallback = ctx.find("progress_timeout =") != std::string::npos
                      ? "progress_timeout"
                      : "heartbeat_timeout";
    return in.locate(bad, fallback);
  }
  x = std::move(result);
  return caf::none;
}

} // namespace detail

caf::expected<watchdog_config>
watchdog_config_from_yaml(const std::string& text, const std::string& source) {
  auto loaded = detail::load_mapping(text, source, errc::invalid_config,
                                     "watchdog fields");
  if (!loaded)
    return loaded.error();
  watchdog_config result;
  try {
    if (auto err = detail::read_watchdog_config(watchdog_root(*loaded), source,
                                                result))
      return err;
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, errc::invalid_config);
  }
  return result;
}

caf::expected<watchdog_config>
watchdog_config_from_yaml_file(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return make_error(errc::invalid_config, path + ": cannot open file");
  std::stringstream buf;
  buf << in.rdbuf();
  return watchdog_config_from_yaml(buf.str(), path);
}

// -- the tracker ----------------------------------------------------------------

watchdog_tracker::watchdog_tracker(watchdog_config cfg)
  : cfg_(std::move(cfg)) {
  // nop
}

caf::expected<watchdog_tracker>
watchdog_tracker::make(watchdog_config cfg) {
  if (auto err = validate(cfg))
    return err;
  return watchdog_tracker{std::move(cfg)};
}

bool watchdog_tracker::add(const std::string& id, const std::string& child_id,
                           time_point now) {
  auto& e = entries_[id];
  e.child_id = child_id.empty() ? id : child_id;
  auto was_recovering = e.recovering;
  e.alive = true;
  ++e.incarnation;
  e.last_heartbeat = e.stale_from = now;
  e.progress.reset();
  e.last_progress = e.stuck_from = now;
  e.healthy_since = now;
  return was_recovering;
}

bool watchdog_tracker::remove(const std::string& id) {
  return entries_.erase(id) > 0;
}

std::optional<std::string>
watchdog_tracker::by_child(const std::string& child_id) const {
  for (auto& kvp : entries_)
    if (kvp.second.child_id == child_id)
      return kvp.first;
  return std::nullopt;
}

std::string watchdog_tracker::child_of(const std::string& id) const {
  auto i = entries_.find(id);
  return i != entries_.end() ? i->second.child_id : std::string{};
}

bool watchdog_tracker::alive(const std::string& id) const {
  auto i = entries_.find(id);
  return i != entries_.end() && i->second.alive;
}

std::optional<watchdog_fault>
watchdog_tracker::last_fault(const std::string& id) const {
  auto i = entries_.find(id);
  return i != entries_.end() ? i->second.last_fault : std::nullopt;
}

bool watchdog_tracker::heartbeat(const std::string& id, time_point now) {
  auto i = entries_.find(id);
  if (i == entries_.end() || !i->second.alive)
    return false;
  auto& e = i->second;
  e.last_heartbeat = std::max(e.last_heartbeat, now);
  e.stale_from = std::max(e.stale_from, now);
  return true;
}

bool watchdog_tracker::progress(const std::string& id, int64_t value,
                                time_point now) {
  if (!heartbeat(id, now))
    return false;
  auto& e = entries_[id];
  if (!e.progress || *e.progress != value) {
    e.progress = value;
    e.last_progress = std::max(e.last_progress, now);
    e.stuck_from = std::max(e.stuck_from, now);
  }
  return true;
}

bool watchdog_tracker::died(const std::string& id, time_point now) {
  auto i = entries_.find(id);
  if (i == entries_.end() || !i->second.alive)
    return false;
  auto& e = i->second;
  e.alive = false;
  e.died_at = e.zombie_from = now;
  return true;
}

std::vector<watchdog_finding> watchdog_tracker::check(time_point now) {
  std::vector<watchdog_finding> result;
  for (auto& kvp : entries_) {
    auto& e = kvp.second;
    std::optional<watchdog_fault> fault;
    caf::timespan silent{0};
    if (e.alive) {
      if (now - e.stale_from >= cfg_.heartbeat_timeout) {
        fault = watchdog_fault::stale;
        silent = now - e.last_heartbeat;
      } else if (cfg_.progress_timeout.count() > 0 && e.progress
                 && now - e.stuck_from >= cfg_.progress_timeout) {
        fault = watchdog_fault::stuck;
        silent = now - e.last_progress;
      }
    } else if (now - e.zombie_from >= cfg_.zombie_timeout) {
      fault = watchdog_fault::zombie;
      silent = now - e.died_at;
    }
    if (!fault) {
      if ((e.recovering || e.failed > 0) && e.alive
          && now - e.healthy_since >= cfg_.healthy_period) {
        e.recovering = false;
        e.failed = 0;
      }
      continue;
    }
    ++e.findings;
    e.last_fault = fault;
    // The recovery started by the previous finding did not help.
    if (e.recovering)
      ++e.failed;
    e.recovering = true;
    watchdog_finding f;
    f.id = kvp.first;
    f.fault = *fault;
    f.silent_for = silent;
    f.failed_recoveries = e.failed;
    if (e.failed >= cfg_.max_recoveries) {
      f.escalate = true;
      e.failed = 0;
    }
    // The recovery gets one full timeout before the next finding.
    e.stale_from = e.stuck_from = e.zombie_from = e.healthy_since = now;
    result.push_back(std::move(f));
  }
  return result;
}

std::optional<watchdog_finding>
watchdog_tracker::recovery_failed(const std::string& id, time_point now) {
  auto i = entries_.find(id);
  if (i == entries_.end())
    return std::nullopt;
  auto& e = i->second;
  // Counted here, so the next finding must not count it again.
  e.recovering = false;
  ++e.failed;
  e.zombie_from = e.healthy_since = now;
  watchdog_finding f;
  f.id = id;
  f.fault = e.last_fault.value_or(watchdog_fault::zombie);
  f.silent_for = now - (e.alive ? e.last_heartbeat : e.died_at);
  f.failed_recoveries = e.failed;
  if (e.failed >= cfg_.max_recoveries) {
    f.escalate = true;
    e.failed = 0;
  }
  return f;
}

watchdog_tracker::time_point
watchdog_tracker::deadline_of(const entry& e) const {
  if (!e.alive)
    return e.zombie_from + cfg_.zombie_timeout;
  auto result = e.stale_from + cfg_.heartbeat_timeout;
  if (cfg_.progress_timeout.count() > 0 && e.progress)
    result = std::min(result, e.stuck_from + cfg_.progress_timeout);
  if (e.recovering || e.failed > 0)
    result = std::min(result, e.healthy_since + cfg_.healthy_period);
  return result;
}

std::optional<watchdog_tracker::time_point>
watchdog_tracker::next_deadline() const {
  std::optional<time_point> result;
  for (auto& kvp : entries_) {
    auto t = deadline_of(kvp.second);
    if (!result || t < *result)
      result = t;
  }
  return result;
}

std::optional<watchdog_tracker::time_point>
watchdog_tracker::next_deadline(const std::string& id) const {
  auto i = entries_.find(id);
  if (i == entries_.end())
    return std::nullopt;
  return deadline_of(i->second);
}

std::vector<watchdog_worker_info>
watchdog_tracker::status(time_point now) const {
  std::vector<watchdog_worker_info> result;
  for (auto& kvp : entries_) {
    auto& e = kvp.second;
    watchdog_worker_info x;
    x.id = kvp.first;
    x.child_id = e.child_id;
    x.alive = e.alive;
    x.incarnation = e.incarnation;
    x.silent_for = now - (e.alive ? e.last_heartbeat : e.died_at);
    x.has_progress = e.progress.has_value();
    x.progress = e.progress.value_or(0);
    x.since_progress = e.progress ? now - e.last_progress : caf::timespan{0};
    x.failed_recoveries = e.failed;
    x.recovering = e.recovering;
    x.findings = e.findings;
    if (e.last_fault)
      x.last_fault = to_string(*e.last_fault);
    result.push_back(std::move(x));
  }
  return result;
}

std::optional<size_t> watchdog_hook_limiter::admit(time_point now) {
  if (last_ && min_interval_.count() > 0 && now - *last_ < min_interval_) {
    ++suppressed_;
    return std::nullopt;
  }
  last_ = now;
  auto result = suppressed_;
  suppressed_ = 0;
  return result;
}

// -- the operator hook ---------------------------------------------------------

std::vector<std::pair<std::string, std::string>>
hook_invocation::environment() const {
  return {
    {"FT_SEVERITY", std::to_string(severity)},
    {"FT_WORKER", worker},
    {"FT_KIND", kind},
    {"FT_DETAIL", detail},
    {"FT_NODE", node},
    {"FT_WATCHDOG", watchdog},
    {"FT_FAILED_RECOVERIES", std::to_string(failed_recoveries)},
    {"FT_SUPPRESSED", std::to_string(suppressed)},
    {"FT_EVENT", event_json},
  };
}

caf::expected<int> run_hook(const hook_invocation& x, caf::timespan timeout) {
  if (x.command.empty())
    return config_error("operator_hook = '' (no command to run)");
  // The environment: ours, with the FT_* variables replaced.
  auto vars = x.environment();
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv{*e};
    auto key = kv.substr(0, kv.find('='));
    if (std::none_of(vars.begin(), vars.end(),
                     [&](const auto& v) { return v.first == key; }))
      env.push_back(std::move(kv));
  }
  for (auto& v : vars)
    env.push_back(v.first + "=" + v.second);
  std::vector<std::string> args{"/bin/sh",
                                "-c",
                                x.command,
                                "ft-hook",
                                std::to_string(x.severity),
                                x.worker,
                                x.kind};
  auto pointers = [](std::vector<std::string>& xs) {
    std::vector<char*> result;
    for (auto& s : xs)
      result.push_back(s.data());
    result.push_back(nullptr);
    return result;
  };
  auto argv = pointers(args);
  auto envp = pointers(env);
  pid_t pid = 0;
  auto rc = posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv.data(),
                        envp.data());
  if (rc != 0)
    return caf::make_error(caf::sec::runtime_error,
                           "operator hook: cannot start /bin/sh: "
                             + std::string{std::strerror(rc)});
  auto status_of = [](int status) {
    if (WIFEXITED(status))
      return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
      return 128 + WTERMSIG(status);
    return -1;
  };
  int status = 0;
  if (timeout.count() <= 0) {
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR)
        return caf::make_error(caf::sec::runtime_error,
                               "operator hook: waitpid failed");
    return status_of(status);
  }
  // Poll so a hung hook can be killed (on this thread, never an actor's).
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    auto r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return status_of(status);
    if (r < 0 && errno != EINTR)
      return caf::make_error(caf::sec::runtime_error,
                             "operator hook: waitpid failed");
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        // retry
      }
      return make_error(errc::call_timeout,
                        "operator hook '" + x.command + "' killed after "
                          + render_seconds(timeout));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

void run_hook_detached(hook_invocation x, caf::timespan timeout) {
  std::thread{[x = std::move(x), timeout] {
    auto res = run_hook(x, timeout);
    if (!res)
      std::fprintf(stderr, "[ft] %s\n", render(res.error()).c_str());
  }}.detach();
}

// -- events -------------------------------------------------------------------

const char* to_string(watchdog_event_kind x) noexcept {
  switch (x) {
    case watchdog_event_kind::stale: return "stale";
    case watchdog_event_kind::stuck: return "stuck";
    case watchdog_event_kind::zombie: return "zombie";
    case watchdog_event_kind::recovered: return "recovered";
    case watchdog_event_kind::recovery_failed: return "recovery_failed";
    case watchdog_event_kind::escalated: return "escalated";
  }
  return "invalid";
}

std::string to_string(const watchdog_event& x) {
  std::string result = "[";
  result += x.watchdog;
  result += "] ";
  result += to_string(x.kind);
  result += " worker=";
  result += x.worker;
  if (std::string{to_string(x.kind)} != to_string(x.fault)) {
    result += " fault=";
    result += to_string(x.fault);
  }
  result += " severity=";
  result += std::to_string(x.severity);
  if (!x.detail.empty()) {
    result += ": ";
    result += x.detail;
  }
  return result;
}

// -- addressing -----------------------------------------------------------------

caf::actor watchdog_ref::resolve(caf::actor_system& sys) const {
  if (handle)
    return handle;
  if (name == caf::atom(""))
    return {};
  return sys.registry().get<caf::actor>(name);
}

} // namespace ft
