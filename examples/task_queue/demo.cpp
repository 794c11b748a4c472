// ft-demo -- the flagship demo and the chaos soak.
//
// Starts a 3-node cluster with ft-launch (ft-demo-node processes), runs a
// distributed task queue on it (a coordinator entity, workers with hardware
// labels, a ledger of effects) and injects faults while it runs:
//
//   demo (default)       a worker in a crash loop (its breaker opens, its
//                        tasks go elsewhere, it comes back through
//                        half_open), a worker that hangs (its watchdog
//                        kills it and the supervisor restarts it), the
//                        coordinator's node SIGKILLed (everything on it
//                        resumes elsewhere) and restarted by ft-launch;
//   --chaos-minutes N    the same workload for N minutes under random
//                        faults: crash loops, hangs, node kills and pauses,
//                        snapshot-dir permission flips; the cluster's
//                        actors, RSS and store sizes must level off.
//
// It ends with a summary (submitted, completed, lost, applied twice,
// restarts, breaker trips, failovers, ...) and exits 1 when a task was lost
// or an effect applied twice, 2 on bad input or when the cluster would not
// come up.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// -- options --------------------------------------------------------------------

struct options {
  std::string ft_launch;
  std::string ft_node;
  std::string run_dir;
  int tasks = 300;
  int steps = 5;
  bool faults = true;
  double chaos_minutes = 0;
  double timeout = 110;
  unsigned seed = 0;
  bool quiet = false;
  /// Also fail when a scheduled fault did not show its recovery.
  bool strict = false;
};

volatile std::sig_atomic_t interrupted = 0;

void on_signal(int) {
  interrupted = 1;
}

/// Seconds the demo keeps running after its last scheduled fault.
constexpr double settle_time = 8;

double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// -- the cluster ------------------------------------------------------------------

struct node_info {
  std::string name;
  int pid = 0;
  uint16_t http_port = 0;
  std::string state;
  int restarts = 0;
};

/// ft-launch as a child process, and what its cluster.json says.
class cluster {
public:
  explicit cluster(const options& opts) : opts_(opts) {
  }

  ~cluster() {
    stop();
  }

  /// Writes cluster.yaml and starts ft-launch; false with a message.
  bool start(std::string& err) {
    fs::create_directories(opts_.run_dir);
    auto yaml = fs::path{opts_.run_dir} / "cluster.yaml";
    std::ofstream out{yaml};
    out << cluster_yaml();
    out.close();
    auto log = (fs::path{opts_.run_dir} / "ft-launch.log").string();
    pid_ = ::fork();
    if (pid_ < 0) {
      err = "fork failed";
      return false;
    }
    if (pid_ == 0) {
      ::setpgid(0, 0);
      auto fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      auto run = (fs::path{opts_.run_dir} / "cluster").string();
      ::execl(opts_.ft_launch.c_str(), opts_.ft_launch.c_str(),
              yaml.c_str(), "--ft-node", opts_.ft_node.c_str(), "--run-dir",
              run.c_str(), "--no-status", static_cast<char*>(nullptr));
      std::perror("ft-demo: exec ft-launch");
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
    return true;
  }

  /// Waits until cluster.json says "up" (or ft-launch died).
  bool wait_up(std::chrono::seconds limit, std::string& err) {
    auto t0 = clock_type::now();
    while (clock_type::now() - t0 < limit && !interrupted) {
      if (!launcher_alive()) {
        err = "ft-launch exited (see " + opts_.run_dir + "/ft-launch.log)";
        return false;
      }
      if (refresh() && state_ == "up")
        return true;
      std::this_thread::sleep_for(200ms);
    }
    err = "the cluster did not come up within "
          + std::to_string(limit.count()) + " s (see " + opts_.run_dir
          + "/ft-launch.log)";
    return false;
  }

  /// Re-reads cluster.json; false if unreadable (e.g. being replaced).
  bool refresh() {
    std::ifstream in{fs::path{opts_.run_dir} / "cluster" / "cluster.json"};
    if (!in)
      return false;
    auto doc = json::parse(in, nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
      return false;
    state_ = doc.value("state", "");
    std::vector<node_info> nodes;
    for (auto& n : doc.value("nodes", json::array())) {
      node_info x;
      x.name = n.value("name", "");
      x.pid = n["pid"].is_number() ? n["pid"].get<int>() : 0;
      x.http_port = n.value("http_port", uint16_t{0});
      x.state = n.value("state", "");
      x.restarts = n.value("restarts", 0);
      nodes.push_back(std::move(x));
    }
    nodes_ = std::move(nodes);
    return true;
  }

  const std::vector<node_info>& nodes() const {
    return nodes_;
  }

  const std::string& state() const {
    return state_;
  }

  const node_info* find(const std::string& name) const {
    for (auto& n : nodes_)
      if (n.name == name)
        return &n;
    return nullptr;
  }

  bool launcher_alive() {
    if (pid_ <= 0)
      return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return false;
    }
    return true;
  }

  /// SIGTERM to ft-launch (it stops its nodes), SIGKILL to the group after
  /// 20 s.
  void stop() {
    if (pid_ <= 0)
      return;
    ::kill(pid_, SIGTERM);
    auto t0 = clock_type::now();
    while (clock_type::now() - t0 < 20s) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
    ::kill(-pid_, SIGKILL);
    for (auto& n : nodes_)
      if (n.pid > 0)
        ::kill(n.pid, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

  std::string secret() const {
    std::ifstream in{fs::path{opts_.run_dir} / "cluster" / "cluster.secret"};
    std::string s;
    std::getline(in, s);
    return s;
  }

private:
  /// Two GPU nodes and one without; short watchdog and breaker timings so
  /// every recovery happens within the demo's two minutes.
  static std::string cluster_yaml() {
    return R"(# Written by ft-demo.
cluster:
  seeds: 2              # a restarted n1 rejoins through n2
  startup_timeout: 60
  hang_timeout: 6
  restart:
    initial_delay: 0.5
    max_restarts: 10
node_defaults:
  host: 127.0.0.1
  watchdog:
    heartbeat_timeout: 1.5
    zombie_timeout: 5
    healthy_period: 20
  breakers:
    worker:
      failure_threshold: 3
      success_threshold: 1
      recovery_timeout: 2
      reset_timeout_factor: 1
nodes:
  - name: n1
    labels: {gpu: "true"}
  - name: n2
    labels: {gpu: "true"}
  - name: n3
    labels: {gpu: "false"}
)";
  }

  const options& opts_;
  pid_t pid_ = 0;
  std::string state_;
  std::vector<node_info> nodes_;
};

// -- talking to nodes -------------------------------------------------------------

/// HTTP to whichever node answers (the cluster routes by key).
class api {
public:
  explicit api(cluster& c) : c_(c) {
  }

  std::optional<json> post(const std::string& path, const json& body,
                           std::string* err = nullptr,
                           std::chrono::seconds timeout = 30s,
                           const std::string& token = {}) {
    for (auto& n : c_.nodes()) {
      if (n.state != "up" || n.http_port == 0)
        continue;
      httplib::Client cli{"127.0.0.1", n.http_port};
      cli.set_connection_timeout(1, 0);
      cli.set_read_timeout(static_cast<time_t>(timeout.count()), 0);
      httplib::Headers headers;
      if (!token.empty())
        headers.emplace("Authorization", "Bearer " + token);
      auto res = cli.Post(path.c_str(), headers, body.dump(),
                          "application/json");
      if (!res)
        continue; // down: the next node
      auto doc = json::parse(res->body, nullptr, false);
      if (res->status / 100 == 2 && !doc.is_discarded())
        return doc;
      if (err != nullptr)
        *err = "HTTP " + std::to_string(res->status) + " " + res->body;
      return std::nullopt;
    }
    if (err != nullptr)
      *err = "no node answered";
    return std::nullopt;
  }

  /// `ask KEY CMD ARGS` -> the entity's result.
  std::optional<json> ask(const std::string& key, const std::string& cmd,
                          std::vector<std::string> args = {},
                          std::string* err = nullptr) {
    auto doc = post("/api/entities/" + key + "/ask",
                    json{{"message", cmd}, {"args", args}}, err);
    if (!doc)
      return std::nullopt;
    return (*doc)["result"];
  }

  std::optional<json> get(uint16_t port, const std::string& path) {
    httplib::Client cli{"127.0.0.1", port};
    cli.set_connection_timeout(1, 0);
    cli.set_read_timeout(3, 0);
    auto res = cli.Get(path.c_str());
    if (!res || res->status != 200)
      return std::nullopt;
    auto doc = json::parse(res->body, nullptr, false);
    if (doc.is_discarded())
      return std::nullopt;
    return doc;
  }

  /// The node hosting `key`.
  std::string where(const std::string& key) {
    for (auto& n : c_.nodes()) {
      if (n.state != "up")
        continue;
      if (auto doc = get(n.http_port, "/api/entities/" + key))
        return doc->value("node", "");
    }
    return {};
  }

private:
  cluster& c_;
};

// -- what happened: events from every node ---------------------------------------

struct tally {
  uint64_t restarts = 0;
  uint64_t breaker_trips = 0;
  uint64_t half_open = 0;
  uint64_t breaker_closed = 0;
  uint64_t failovers = 0;
  uint64_t watchdog_findings = 0;
  uint64_t node_restarts = 0;
  std::vector<std::string> highlights;
};

/// Follows each node's `/api/events` with a cursor per node process.
class event_follower {
public:
  void poll(api& a, cluster& c, tally& t) {
    for (auto& n : c.nodes()) {
      if (n.state != "up" || n.pid == 0)
        continue;
      auto& cur = cursors_[n.name];
      if (cur.pid != n.pid)
        cur = cursor{n.pid, 0};
      auto doc = a.get(n.http_port,
                       "/api/events?since=" + std::to_string(cur.next));
      if (!doc)
        continue;
      for (auto& e : (*doc)["events"])
        count(n.name, e, t);
      cur.next = doc->value("next", cur.next);
    }
  }

private:
  struct cursor {
    int pid = 0;
    uint64_t next = 0;
  };

  static void count(const std::string& node, const json& e, tally& t) {
    auto source = e.value("source", "");
    auto kind = e.value("kind", "");
    auto subject = e.value("subject", "");
    auto note = [&](const std::string& what) {
      t.highlights.push_back("[" + node + "] " + what);
    };
    if (source == "supervisor" && kind == "child_restarted") {
      ++t.restarts;
    } else if (source == "breaker") {
      if (kind == "open") {
        ++t.breaker_trips;
        note("breaker " + subject + " opened");
      } else if (kind == "half_open") {
        ++t.half_open;
        note("breaker " + subject + " half_open (trial call)");
      } else if (kind == "closed") {
        ++t.breaker_closed;
        note("breaker " + subject + " closed again");
      }
    } else if (source == "cluster" && kind == "failover") {
      ++t.failovers;
      note(e.value("message", "failover"));
    } else if (source == "watchdog"
               && (kind == "stale" || kind == "stuck")) {
      ++t.watchdog_findings;
      note("watchdog: " + subject + " " + kind + ", restarting it");
    }
  }

  std::map<std::string, cursor> cursors_;
};

// -- the workload -----------------------------------------------------------------

const std::vector<std::pair<std::string, std::string>> workers = {
  {"gpu-1", "gpu"}, {"gpu-2", "gpu"}, {"cpu-1", "cpu"},
  {"cpu-2", "cpu"}, {"cpu-3", "cpu"},
};

bool spawn(api& a, const std::string& type, const std::string& key,
           const json& requires_labels, std::string& err) {
  json body{{"type", type}, {"key", key}};
  if (!requires_labels.is_null())
    body["requires"] = requires_labels;
  auto res = a.post("/api/entities", body, &err, 60s);
  return res.has_value() || err.find("409") != std::string::npos;
}

bool set_up(api& a, std::string& err) {
  if (!spawn(a, "ledger", "ledger", nullptr, err)
      || !spawn(a, "coordinator", "coordinator", nullptr, err))
    return false;
  for (auto& [key, hw] : workers)
    if (!spawn(a, "worker", key,
               hw == "gpu" ? json{{"gpu", "true"}} : json(nullptr), err))
      return false;
  if (!a.ask("coordinator", "configure", {"ledger", "4000"}, &err))
    return false;
  for (auto& [key, hw] : workers)
    if (!a.ask("coordinator", "add_worker", {key, hw}, &err))
      return false;
  return true;
}

/// Submits tasks [first, first + count): every third needs a GPU.
bool submit(api& a, int first, int count, int steps, std::string& err) {
  // In runs of one hardware kind, so each submit is one message.
  for (int n = first; n < first + count;) {
    auto hw = n % 3 == 0 ? "gpu" : "cpu";
    int run = 1;
    while (n + run < first + count && ((n + run) % 3 == 0) == (n % 3 == 0))
      ++run;
    if (!a.ask("coordinator", "submit",
               {hw, std::to_string(steps), std::to_string(n),
                std::to_string(run)},
               &err))
      return false;
    n += run;
  }
  return true;
}

// -- faults -----------------------------------------------------------------------

struct fault_log {
  std::vector<std::string> lines;
  double t0 = 0;
  void add(double t, const std::string& what) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%6.1fs  ", t);
    lines.push_back(buf + what);
  }
};

/// SIGKILLs the node hosting `key` (or `name` if given); returns its name.
std::string kill_node(api& a, cluster& c, const std::string& key) {
  auto home = a.where(key);
  auto* n = c.find(home);
  if (n == nullptr || n->pid <= 0)
    return {};
  ::kill(n->pid, SIGKILL);
  return home;
}

long rss_kb(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::atol(line.c_str() + 6);
  return 0;
}

/// What the whole cluster uses at one moment: RSS, running actors (CAF's
/// count, from /api/status) and the snapshot stores' file sizes.
struct usage {
  long rss_kb = 0;
  long actors = 0;
  long store_kb = 0;
  double at = 0;
};

/// One sample, if every node is up and answered.
std::optional<usage> sample(api& a, cluster& c, const options& opts,
                            double now) {
  usage u;
  u.at = now;
  if (c.state() != "up")
    return std::nullopt;
  for (auto& n : c.nodes()) {
    auto st = a.get(n.http_port, "/api/status");
    auto kb = rss_kb(n.pid);
    if (!st || kb == 0 || !st->contains("actors"))
      return std::nullopt;
    u.rss_kb += kb;
    u.actors += (*st)["actors"].get<long>();
    std::error_code ec;
    auto bytes = fs::file_size(fs::path{opts.run_dir} / "cluster" / n.name
                                 / "snapshots" / "data.mdb",
                               ec);
    if (!ec)
      u.store_kb += static_cast<long>(bytes / 1024);
  }
  return u;
}

// -- progress ---------------------------------------------------------------------

void progress(const options& opts, const json& stats, double t) {
  auto submitted = stats.value("submitted", 0);
  auto done = stats.value("done", 0);
  if (opts.quiet)
    return;
  static double last_line = -10;
  bool tty = ::isatty(2) != 0;
  if (!tty && t - last_line < 5)
    return;
  last_line = t;
  int width = 30;
  int filled = submitted > 0 ? done * width / submitted : 0;
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  std::fprintf(stderr, "%s[%s] %d/%d done, %d running, %d pending  %5.1fs%s",
               tty ? "\r" : "", bar.c_str(), done, submitted,
               stats.value("assigned", 0) + stats.value("completing", 0),
               stats.value("pending", 0), t, tty ? "" : "\n");
  std::fflush(stderr);
}

void say(const options& opts, const std::string& line) {
  if (opts.quiet)
    return;
  if (::isatty(2) != 0)
    std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", line.c_str());
}

// -- the run ----------------------------------------------------------------------

int run(const options& opts) {
  cluster c{opts};
  std::string err;
  auto t_start = clock_type::now();
  say(opts, "ft-demo: starting 3 nodes with ft-launch (run dir "
              + opts.run_dir + ")");
  if (!c.start(err) || !c.wait_up(60s, err)) {
    std::cerr << "ft-demo: " << err << "\n";
    return 2;
  }
  api a{c};
  if (auto* n1 = c.find("n1"))
    say(opts, "ft-demo: cluster up; dashboard: http://127.0.0.1:"
                + std::to_string(n1->http_port) + "/");
  if (!set_up(a, err)) {
    std::cerr << "ft-demo: setting up the task queue failed: " << err << "\n";
    return 2;
  }
  auto chaos = opts.chaos_minutes > 0;
  int submitted = 0;
  int batch = chaos ? 60 : opts.tasks;
  if (!submit(a, 0, batch, opts.steps, err)) {
    std::cerr << "ft-demo: submitting tasks failed: " << err << "\n";
    return 2;
  }
  submitted = batch;
  say(opts, "ft-demo: " + std::to_string(submitted) + " tasks submitted to "
              + a.where("coordinator") + "'s coordinator, "
              + std::to_string(workers.size()) + " workers (gpu-1, gpu-2 on "
                                                  "GPU nodes)");
  tally t;
  event_follower events;
  fault_log faults;
  std::mt19937 rng{opts.seed != 0 ? opts.seed : std::random_device{}()};
  auto t0 = clock_type::now();
  // The demo's schedule: (seconds, what).
  struct planned {
    double at;
    std::string what;
    bool fired = false;
  };
  std::vector<planned> plan;
  if (opts.faults && !chaos)
    plan = {{3, "crash_loop gpu-1"},
            {11, "hang cpu-2"},
            {16, "kill coordinator node"}};
  double next_chaos = 5;
  std::string killed;
  // Chaos: the cluster's usage a third into the run (after warming up)
  // against the end, to tell a leak from a working set.
  std::optional<usage> use_mid;
  std::optional<usage> use_end;
  double mid_at = std::max(20.0, opts.chaos_minutes * 60 / 3);
  double last_sample = 0;
  json stats;
  double deadline = chaos ? opts.chaos_minutes * 60 + 90 : opts.timeout;
  bool complete = false;
  while (!interrupted) {
    auto now = since(t0);
    c.refresh();
    events.poll(a, c, t);
    if (auto s = a.ask("coordinator", "stats"); s && s->is_object())
      stats = *s;
    // Faults due now.
    for (auto& p : plan) {
      if (p.fired || now < p.at)
        continue;
      p.fired = true;
      std::string e;
      if (p.what == "crash_loop gpu-1") {
        if (a.ask("gpu-1", "fault", {"crash_loop", "4000"}, &e))
          faults.add(now, "gpu-1 crashes on every step for 4 s (crash loop)");
        else
          faults.add(now, "could not inject crash loop: " + e);
      } else if (p.what == "hang cpu-2") {
        if (a.ask("cpu-2", "fault", {"hang"}, &e))
          faults.add(now, "cpu-2 hangs (stops heartbeats and work)");
        else
          faults.add(now, "could not inject hang: " + e);
      } else if (p.what == "kill coordinator node") {
        killed = kill_node(a, c, "coordinator");
        faults.add(now, killed.empty()
                          ? std::string{"could not find the coordinator's node"}
                          : "SIGKILL " + killed
                              + " (home of the coordinator)");
      }
      say(opts, "ft-demo: fault: " + faults.lines.back().substr(8));
    }
    if (chaos && now < opts.chaos_minutes * 60) {
      // Keep work flowing: a new batch whenever the queue runs low.
      if (stats.is_object()
          && stats.value("done", 0) + 20 >= stats.value("submitted", 0)
          && submitted + 60 < 99999) {
        if (submit(a, submitted, 60, opts.steps, err))
          submitted += 60;
      }
      if (now >= next_chaos) {
        next_chaos = now + std::uniform_real_distribution<>{6, 14}(rng);
        auto pick = std::uniform_int_distribution<>{0, 4}(rng);
        auto& w = workers[std::uniform_int_distribution<size_t>{
          0, workers.size() - 1}(rng)];
        std::string e;
        c.refresh();
        std::vector<const node_info*> up;
        for (auto& n : c.nodes())
          if (n.state == "up" && n.pid > 0)
            up.push_back(&n);
        if (pick == 0) {
          if (a.ask(w.first, "fault", {"crash_loop", "3000"}, &e))
            faults.add(now, w.first + " crash loop for 3 s");
        } else if (pick == 1) {
          if (a.ask(w.first, "fault", {"hang"}, &e))
            faults.add(now, w.first + " hangs");
        } else if (pick == 2 && up.size() == c.nodes().size()) {
          auto* n = up[std::uniform_int_distribution<size_t>{
            0, up.size() - 1}(rng)];
          ::kill(n->pid, SIGKILL);
          faults.add(now, "SIGKILL " + n->name);
        } else if (pick == 3 && !up.empty()) {
          auto* n = up[std::uniform_int_distribution<size_t>{
            0, up.size() - 1}(rng)];
          auto ms = std::uniform_int_distribution<>{100, 1500}(rng);
          ::kill(n->pid, SIGSTOP);
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
          ::kill(n->pid, SIGCONT);
          faults.add(now, "SIGSTOP " + n->name + " for "
                            + std::to_string(ms) + " ms");
        } else if (!up.empty()) {
          auto* n = up[std::uniform_int_distribution<size_t>{
            0, up.size() - 1}(rng)];
          auto dir = fs::path{opts.run_dir} / "cluster" / n->name
                     / "snapshots";
          std::error_code ec;
          fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec,
                          ec);
          std::this_thread::sleep_for(1s);
          fs::permissions(dir, fs::perms::owner_all, ec);
          faults.add(now, "snapshot dir of " + n->name + " read-only for 1 s"
                            + (ec ? " (" + ec.message() + ")" : ""));
        }
        if (!faults.lines.empty())
          say(opts, "ft-demo: fault: " + faults.lines.back().substr(8));
      }
    }
    if (chaos && now >= mid_at && now - last_sample >= 5) {
      last_sample = now;
      if (auto u = sample(a, c, opts, now)) {
        if (!use_mid)
          use_mid = u;
        use_end = u;
      }
    }
    if (stats.is_object())
      progress(opts, stats, now);
    // The last fault's recovery (a failover, a node restarting and
    // rejoining) takes a few seconds: the run ends no sooner.
    double last_fault = 0;
    for (auto& p : plan)
      last_fault = std::max(last_fault, p.at);
    bool faults_done = std::all_of(plan.begin(), plan.end(),
                                   [](auto& p) { return p.fired; })
                       && (plan.empty() || now >= last_fault + settle_time);
    bool chaos_done = !chaos || now >= opts.chaos_minutes * 60;
    bool nodes_back = c.state() == "up";
    if (stats.is_object() && faults_done && chaos_done && nodes_back
        && stats.value("submitted", 0) == submitted
        && stats.value("done", 0) == submitted) {
      complete = true;
      break;
    }
    if (now > deadline)
      break;
    std::this_thread::sleep_for(250ms);
  }
  if (!opts.quiet && ::isatty(2) != 0)
    std::fprintf(stderr, "\n");
  auto elapsed = since(t0);
  // The ledger's own account: which tasks left an effect, and how often.
  c.refresh();
  events.poll(a, c, t);
  std::optional<json> ledger;
  for (int i = 0; i < 20 && !ledger; ++i) {
    ledger = a.ask("ledger", "summary", {}, &err);
    if (!ledger)
      std::this_thread::sleep_for(500ms);
  }
  std::set<std::string> applied;
  size_t doubled = 0;
  if (ledger && ledger->is_object()) {
    for (auto& r : (*ledger)["applied"])
      for (auto n = r[0].get<int>(); n <= r[1].get<int>(); ++n) {
        char id[16];
        std::snprintf(id, sizeof(id), "t%05d", n);
        applied.insert(id);
      }
    doubled = (*ledger)["doubled"].size();
  }
  size_t lost = 0;
  for (int n = 0; n < submitted; ++n) {
    char id[16];
    std::snprintf(id, sizeof(id), "t%05d", n);
    if (applied.count(id) == 0)
      ++lost;
  }
  for (auto& n : c.nodes())
    t.node_restarts += static_cast<uint64_t>(n.restarts);
  bool all_up = c.state() == "up";
  // -- summary --
  std::ostringstream out;
  out << "\n== ft-demo " << (chaos ? "chaos soak" : "summary") << " ==\n";
  if (!faults.lines.empty()) {
    out << "faults injected:\n";
    for (auto& l : faults.lines)
      out << "  " << l << "\n";
  }
  if (!t.highlights.empty() && !chaos) {
    out << "what the cluster did:\n";
    for (auto& h : t.highlights)
      out << "  " << h << "\n";
  }
  auto row = [&](const std::string& k, const std::string& v) {
    out << "  " << k << std::string(k.size() < 26 ? 26 - k.size() : 1, ' ')
        << v << "\n";
  };
  row("tasks submitted", std::to_string(submitted));
  row("tasks completed", std::to_string(applied.size()));
  row("tasks lost", std::to_string(lost) + (lost == 0 ? " (must be 0)" : "  <-- FAIL"));
  row("effects applied twice",
      std::to_string(doubled) + (doubled == 0 ? " (must be 0)" : "  <-- FAIL"));
  row("tasks reassigned", std::to_string(stats.value("reassigned", 0)));
  row("actor restarts", std::to_string(t.restarts));
  row("breaker trips", std::to_string(t.breaker_trips) + " (half_open "
                         + std::to_string(t.half_open) + ", closed again "
                         + std::to_string(t.breaker_closed) + ")");
  row("watchdog findings", std::to_string(t.watchdog_findings));
  row("failovers", std::to_string(t.failovers));
  row("node restarts (ft-launch)", std::to_string(t.node_restarts));
  row("all nodes up at the end", all_up ? "yes" : "no");
  // Chaos: usage must level off. Each figure at the end may exceed its
  // value a third into the run by half plus a fixed allowance (caches and
  // LMDB's pages filling up to the retention limit); growth beyond that
  // over a soak is a leak.
  std::vector<std::string> leaks;
  if (chaos) {
    if (auto u = sample(a, c, opts, elapsed))
      use_end = u;
    if (use_mid && use_end && use_end->at > use_mid->at) {
      auto judge = [&](const char* what, long mid, long end, long allowance,
                       const char* unit) {
        bool grew = end > mid + mid / 2 + allowance;
        row(what, std::to_string(mid) + unit + " at "
                    + std::to_string(static_cast<int>(use_mid->at)) + " s -> "
                    + std::to_string(end) + unit + " at the end"
                    + (grew ? "  <-- GROWING" : " (stable)"));
        if (grew)
          leaks.push_back(what);
      };
      judge("actors (cluster)", use_mid->actors, use_end->actors, 30, "");
      judge("memory (cluster RSS)", use_mid->rss_kb / 1024,
            use_end->rss_kb / 1024, 32, " MiB");
      judge("snapshot stores", use_mid->store_kb / 1024,
            use_end->store_kb / 1024, 16, " MiB");
    } else {
      row("usage", "not judged: no sample with every node up after "
                     + std::to_string(static_cast<int>(mid_at)) + " s");
      leaks.push_back("usage (no samples)");
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f s (total %.1f s)", elapsed,
                since(t_start));
  row("time", buf);
  auto ok = complete && lost == 0 && doubled == 0 && ledger.has_value()
            && all_up && leaks.empty();
  if (opts.strict && opts.faults && !chaos) {
    std::vector<std::string> missing;
    if (t.breaker_trips == 0 || t.half_open == 0 || t.breaker_closed == 0)
      missing.push_back("breaker open -> half_open -> closed");
    if (t.watchdog_findings == 0)
      missing.push_back("watchdog finding the hung worker");
    if (t.failovers == 0)
      missing.push_back("failover of the killed node's entities");
    if (t.node_restarts == 0)
      missing.push_back("ft-launch restarting the killed node");
    for (auto& m : missing)
      out << "  MISSING RECOVERY: " << m << "\n";
    if (!missing.empty())
      ok = false;
  }
  if (!complete)
    out << "  NOT COMPLETE: " << stats.value("done", 0) << " of " << submitted
        << " tasks done when the run ended\n";
  out << (ok ? "result: OK" : "result: FAILED") << "\n";
  std::cout << out.str() << std::flush;
  c.stop();
  if (interrupted)
    return 130;
  return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  options opts;
  CLI::App app{"ft-demo: a distributed task queue on a 3-node libft cluster, "
               "with faults injected while it runs"};
  app.add_option("--tasks", opts.tasks, "tasks to run (demo mode)")
    ->check(CLI::Range(1, 20000));
  app.add_option("--steps", opts.steps, "work steps per task (100 ms each)")
    ->check(CLI::Range(1, 100));
  app.add_flag("--no-faults", [&](size_t) { opts.faults = false; },
               "inject no faults");
  app.add_option("--chaos-minutes", opts.chaos_minutes,
                 "chaos soak: random faults for this many minutes")
    ->check(CLI::Range(0.0, 24 * 60.0));
  app.add_option("--timeout", opts.timeout,
                 "give up after this many seconds (demo mode)")
    ->check(CLI::Range(10.0, 3600.0));
  app.add_option("--seed", opts.seed, "random seed for the chaos soak");
  app.add_option("--run-dir", opts.run_dir,
                 "where the cluster's files go (default: a new temp dir)");
  app.add_option("--ft-launch", opts.ft_launch,
                 "ft-launch (default: found next to this program)");
  app.add_option("--ft-node", opts.ft_node,
                 "the node program (default: ft-demo-node next to this "
                 "program)");
  app.add_flag("--quiet", opts.quiet, "no progress output, summary only");
  app.add_flag("--strict", opts.strict,
               "also fail when a scheduled fault did not show its recovery "
               "(breaker open, half_open, closed; watchdog finding; "
               "failover; node restart)");
  CLI11_PARSE(app, argc, argv);
  auto self_dir = fs::canonical("/proc/self/exe").parent_path();
  if (opts.ft_node.empty())
    opts.ft_node = (self_dir / "ft-demo-node").string();
  if (opts.ft_launch.empty()) {
    for (auto& p : {self_dir / "ft-launch",
                    self_dir.parent_path() / "tools" / "ft-launch"
                      / "ft-launch"})
      if (fs::exists(p)) {
        opts.ft_launch = p.string();
        break;
      }
  }
  for (auto& [what, path] : {std::pair{"ft-launch", opts.ft_launch},
                             std::pair{"ft-demo-node", opts.ft_node}})
    if (path.empty() || ::access(path.c_str(), X_OK) != 0) {
      std::cerr << "ft-demo: cannot run " << what << " at '" << path
                << "' (pass --" << (what == std::string{"ft-launch"}
                                      ? "ft-launch"
                                      : "ft-node")
                << " PATH)\n";
      return 2;
    }
  bool temp_dir = opts.run_dir.empty();
  if (temp_dir) {
    char tmpl[] = "/tmp/ft-demo-XXXXXX";
    auto* d = ::mkdtemp(tmpl);
    if (d == nullptr) {
      std::cerr << "ft-demo: cannot create a temp dir\n";
      return 2;
    }
    opts.run_dir = d;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  auto rc = run(opts);
  if (temp_dir && rc == 0) {
    std::error_code ec;
    fs::remove_all(opts.run_dir, ec);
  } else {
    std::cerr << "ft-demo: cluster files and logs kept in " << opts.run_dir
              << "\n";
  }
  return rc;
}
