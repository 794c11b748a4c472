#include "launcher.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <random>
#include <sstream>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "ft/error.hpp"
#include "ft/restart_delay.hpp"
#include "ft/restart_window.hpp"

#include "status_poller.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ft::launch {

const char* to_string(node_phase x) {
  switch (x) {
    case node_phase::starting: return "starting";
    case node_phase::up: return "up";
    case node_phase::restarting: return "restarting";
    case node_phase::stopping: return "stopping";
    case node_phase::stopped: return "stopped";
    case node_phase::failed: return "failed";
  }
  return "unknown";
}

namespace {

/// Lines of a node's output kept for reports when it fails to come up.
constexpr size_t tail_lines = 20;

/// A line longer than this is forwarded in pieces.
constexpr size_t max_line = 16 * 1024;

std::string errno_text(int err = errno) {
  return std::strerror(err);
}

/// Writes all of `text` to `fd`, retrying short writes and EINTR.
void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    auto n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return; // stderr or a log file gone: nothing better to do
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
}

/// Replaces `path` with `text` atomically (temp file + rename), so readers
/// (tests, ftctl) never see half a file.
bool atomic_write(const fs::path& path, const std::string& text,
                  mode_t mode = 0644) {
  auto tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return false;
  write_all(fd, text);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    auto sig = WTERMSIG(status);
    auto* abbrev = sigabbrev_np(sig);
    return std::string{"was killed by "}
           + (abbrev ? std::string{"SIG"} + abbrev : std::to_string(sig));
  }
  return "ended (status " + std::to_string(status) + ")";
}

/// `0.5s`, `2s`.
std::string seconds_text(std::chrono::nanoseconds x) {
  std::ostringstream os;
  os << std::chrono::duration<double>(x).count() << "s";
  return os.str();
}

/// Ports a kernel handed out for `host`; the sockets stay bound until all
/// are picked, so no port comes twice.
class port_picker {
public:
  ~port_picker() {
    for (auto fd : fds_)
      ::close(fd);
  }

  uint16_t pick(const std::string& host) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      throw config_error("cannot pick a free port: " + errno_text());
    fds_.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
      throw config_error("cannot pick a free port on " + host
                         + ": not an IPv4 address (set the ports or "
                           "cluster.base_port)");
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      throw config_error("cannot pick a free port on " + host + ": "
                         + errno_text());
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }

private:
  std::vector<int> fds_;
};

} // namespace

std::string find_ft_node_next_to_self() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec)
    return {};
  auto dir = self.parent_path();
  for (auto& candidate :
       {dir / "ft-node", dir.parent_path() / "ft-node" / "ft-node",
        dir / "ft-node" / "ft-node"}) {
    if (fs::is_regular_file(candidate, ec)
        && ::access(candidate.c_str(), X_OK) == 0)
      return candidate.string();
  }
  return {};
}

// -- launcher::impl -----------------------------------------------------------

class launcher::impl {
public:
  impl(cluster_config cfg, launch_options opts)
    : cfg_(std::move(cfg)),
      opts_(std::move(opts)),
      rng_(std::random_device{}()) {
    // nop
  }

  ~impl() {
    // run() stops everything; this is the last line of defence after an
    // exception: no node outlives ft-launch.
    for (auto& n : nodes_)
      if (n.pid > 0) {
        ::kill(n.pid, SIGKILL);
        ::waitpid(n.pid, nullptr, 0);
      }
    if (poller_)
      poller_->stop();
    for (auto& n : nodes_) {
      if (n.out_fd >= 0)
        ::close(n.out_fd);
      if (n.log_fd >= 0)
        ::close(n.log_fd);
    }
    for (int fd : {signal_fd_, event_fd_, lock_fd_})
      if (fd >= 0)
        ::close(fd);
  }

  int run();

private:
  /// One supervised ft-node.
  struct node_proc {
    node_proc(node_spec s, const restart_config& rc)
      : spec(std::move(s)), window(rc.max_restarts, rc.period) {
      // nop
    }

    node_spec spec;
    node_plan plan;
    fs::path config_file;
    fs::path ready_file;
    fs::path log_file;
    bool seed = false;
    pid_t pid = 0;
    /// Read end of the child's stdout and stderr (one pipe).
    int out_fd = -1;
    /// `<run_dir>/<name>.log`, appended across restarts.
    int log_fd = -1;
    std::string partial;
    std::deque<std::string> tail;
    node_phase phase = node_phase::stopped;
    /// Spawned at least once.
    bool spawned = false;
    /// This incarnation reached `up`.
    bool came_up = false;
    int restarts = 0;
    steady_clock::time_point started_at;
    steady_clock::time_point up_since;
    steady_clock::time_point restart_at;
    /// While up: when `/api/status` last answered with the node watchdog
    /// not stale (or when it came up); `hang_timeout` past it, it is hung.
    steady_clock::time_point healthy_at;
    /// When the newest answer seen arrived (stale ones included).
    steady_clock::time_point answered_at;
    /// Its node watchdog reported stale in the newest answer.
    bool watchdog_stale = false;
    /// Killed because it hung (until it is reaped).
    bool hung = false;
    ft::restart_delay_state delays;
    ft::restart_window window;
    /// Its entry in the newest `/api/nodes` (null when absent).
    json view;

    std::string url() const {
      return "http://" + plan.http_host + ":" + std::to_string(plan.http_port);
    }

    bool running() const {
      return pid > 0;
    }
  };

  enum class cluster_phase { starting, running, stopping };

  // -- setup ------------------------------------------------------------------

  void prepare();

  std::string prepare_secret();

  void setup_signals();

  // -- processes --------------------------------------------------------------

  void spawn(node_proc& n);

  void on_signal();

  void reap();

  void on_exit(node_proc& n, int status);

  void begin_stop(int code);

  void kill_all();

  // -- output -----------------------------------------------------------------

  void read_output(node_proc& n, bool drain);

  void forward_line(node_proc& n, std::string line);

  void say(const std::string& text);

  void say(node_proc& n, const std::string& text);

  // -- status -----------------------------------------------------------------

  void on_status();

  bool ready_file_ok(const node_proc& n) const;

  void mark_up(node_proc& n);

  void update_targets();

  /// Takes a fresh `/api/status` answer of an up node.
  void on_answer(node_proc& n, const json& st, steady_clock::time_point at);

  /// Kills up nodes that did not answer healthily for `hang_timeout`.
  void check_hung(steady_clock::time_point now);

  void timers();

  void write_cluster_json();

  void draw_table();

  void erase_table();

  std::vector<std::vector<std::string>> table_rows() const;

  // -- helpers ----------------------------------------------------------------

  node_proc* find(pid_t pid) {
    for (auto& n : nodes_)
      if (n.pid == pid)
        return &n;
    return nullptr;
  }

  bool any_running() const {
    return std::any_of(nodes_.begin(), nodes_.end(),
                       [](auto& n) { return n.running(); });
  }

  void report_tail(const node_proc& n);

  cluster_config cfg_;
  launch_options opts_;
  std::vector<node_proc> nodes_;
  std::string secret_file_;
  int signal_fd_ = -1;
  int event_fd_ = -1;
  int lock_fd_ = -1;
  std::unique_ptr<status_poller> poller_;
  cluster_phase phase_ = cluster_phase::starting;
  int exit_code_ = exit_ok;
  steady_clock::time_point startup_deadline_;
  steady_clock::time_point stop_deadline_;
  bool killed_ = false;
  /// stdout is a terminal: the table is redrawn in place.
  bool tty_ = false;
  /// stderr is a terminal too (the same screen, presumably): log lines
  /// erase the table first and it is redrawn below them.
  bool stderr_tty_ = false;
  size_t drawn_lines_ = 0;
  std::string last_table_;
  bool table_dirty_ = false;
  std::string last_cluster_json_;
  poll_result latest_;
  std::mt19937 rng_;
};

void launcher::impl::prepare() {
  std::error_code ec;
  fs::create_directories(opts_.run_dir, ec);
  if (ec)
    throw config_error("cannot create run dir " + opts_.run_dir.string() + ": "
                       + ec.message());
  // One ft-launch per run dir: two would fight over ports and data dirs.
  auto lock_path = opts_.run_dir / ".ft-launch.lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0)
    throw config_error("cannot open " + lock_path.string() + ": "
                       + errno_text());
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    throw config_error("run dir " + opts_.run_dir.string()
                       + " is in use by another ft-launch");
  secret_file_ = prepare_secret();
  // Ports: explicit, base_port + i, or free ones.
  port_picker picker;
  for (size_t i = 0; i < cfg_.nodes.size(); ++i) {
    auto& spec = cfg_.nodes[i];
    node_proc n{spec, cfg_.restart};
    n.plan.host = field_or(spec.fields, "host", "127.0.0.1");
    n.plan.http_host = field_or(spec.fields, "http_host", "127.0.0.1");
    auto offset = static_cast<int>(i) + 1;
    n.plan.port = spec.port != 0 ? spec.port
                  : cfg_.base_port != 0
                    ? static_cast<uint16_t>(cfg_.base_port + offset)
                    : picker.pick(n.plan.host);
    n.plan.http_port = spec.http_port != 0 ? spec.http_port
                       : cfg_.base_port != 0
                         ? static_cast<uint16_t>(cfg_.base_port + 100 + offset)
                         : picker.pick(n.plan.http_host);
    auto data_dir = field_or(spec.fields, "data_dir", "");
    n.plan.data_dir = data_dir.empty()
                        ? (opts_.run_dir / spec.name).string()
                        : fs::absolute(data_dir).string();
    n.seed = static_cast<int>(i) < cfg_.seeds;
    n.config_file = opts_.run_dir / (spec.name + ".yaml");
    n.ready_file = opts_.run_dir / (spec.name + ".ready");
    n.log_file = opts_.run_dir / (spec.name + ".log");
    nodes_.push_back(std::move(n));
  }
  std::vector<std::string> seeds;
  for (auto& n : nodes_)
    if (n.seed)
      seeds.push_back(n.plan.host + ":" + std::to_string(n.plan.port));
  // Validate every node before starting any: a typo in n3 must not leave
  // n1 and n2 running.
  for (auto& n : nodes_) {
    auto doc = node_config_yaml(n.spec, n.plan, seeds, secret_file_);
    YAML::Emitter out;
    out << doc;
    auto text = "# Written by ft-launch from " + cfg_.source
                + "; rewritten at every start.\n" + out.c_str() + "\n";
    // Written first, so an error can point into it.
    if (!atomic_write(n.config_file, text))
      throw config_error("cannot write " + n.config_file.string() + ": "
                         + errno_text());
    check_node_config(cfg_, n.spec, doc, text, n.config_file.string());
    fs::create_directories(n.plan.data_dir, ec);
    if (ec)
      throw config_error("cannot create " + n.plan.data_dir + ": "
                         + ec.message());
    n.log_fd = ::open(n.log_file.c_str(),
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (n.log_fd < 0)
      throw config_error("cannot open " + n.log_file.string() + ": "
                         + errno_text());
  }
}

std::string launcher::impl::prepare_secret() {
  std::error_code ec;
  if (!cfg_.secret_file.empty()) {
    auto path = fs::absolute(cfg_.secret_file);
    if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) == 0)
      throw config_error("secret file " + path.string()
                         + " is missing or empty");
    return path.string();
  }
  // Generated once per run dir and kept, so restarts of ft-launch over the
  // same data keep the same secret.
  auto path = opts_.run_dir / "cluster.secret";
  if (fs::is_regular_file(path, ec) && fs::file_size(path, ec) > 0)
    return path.string();
  std::random_device rd;
  std::string secret;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 64; ++i)
    secret += hex[rd() % 16];
  secret += '\n';
  if (!atomic_write(path, secret, 0600))
    throw config_error("cannot write " + path.string() + ": " + errno_text());
  ::chmod(path.c_str(), 0600);
  return path.string();
}

void launcher::impl::setup_signals() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD})
    sigaddset(&mask, sig);
  // Blocked before the poller thread exists, so it inherits the mask and
  // every signal reaches the signalfd.
  if (::pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0)
    throw config_error("cannot block signals");
  signal_fd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0)
    throw config_error("signalfd: " + errno_text());
  // A vanished reader of our stderr must not kill the supervisor.
  ::signal(SIGPIPE, SIG_IGN);
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0)
    throw config_error("eventfd: " + errno_text());
}

void launcher::impl::spawn(node_proc& n) {
  std::error_code ec;
  fs::remove(n.ready_file, ec);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    say(n, "cannot start: pipe: " + errno_text());
    return;
  }
  // Everything the child needs is built before fork: after fork, only
  // async-signal-safe calls (another thread may hold the malloc lock).
  std::vector<std::string> args = {opts_.ft_node, n.config_file.string(),
                                   "--ready-file", n.ready_file.string()};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  auto exec_failed = "ft-launch: cannot execute " + opts_.ft_node + "\n";
  auto parent = ::getpid();
  sigset_t empty;
  sigemptyset(&empty);
  auto pid = ::fork();
  if (pid < 0) {
    say(n, "cannot start: fork: " + errno_text());
    ::close(fds[0]);
    ::close(fds[1]);
    return;
  }
  if (pid == 0) {
    // Dies with ft-launch, even after a SIGKILL of ft-launch.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent)
      ::_exit(1);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0)
      ::dup2(null_fd, STDIN_FILENO);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close_range(3, ~0u, 0);
    ::execv(argv[0], argv.data());
    [[maybe_unused]] auto w = ::write(STDERR_FILENO, exec_failed.data(),
                                      exec_failed.size());
    ::_exit(127);
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  n.out_fd = fds[0];
  n.pid = pid;
  n.partial.clear();
  n.phase = node_phase::starting;
  n.came_up = false;
  n.hung = false;
  n.watchdog_stale = false;
  n.spawned = true;
  n.view = nullptr;
  n.started_at = steady_clock::now();
  auto marker = "--- ft-launch: started " + n.spec.name + " (pid "
                + std::to_string(pid) + ", restart "
                + std::to_string(n.restarts) + ") ---\n";
  write_all(n.log_fd, marker);
  say(n, "started (pid " + std::to_string(pid) + ", port "
           + std::to_string(n.plan.port) + ", " + n.url() + ")");
  update_targets();
}

void launcher::impl::on_signal() {
  signalfd_siginfo info;
  while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    auto sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGCHLD)
      continue; // reaped below, once for all
    if (phase_ == cluster_phase::stopping) {
      say("second SIG" + std::string{sigabbrev_np(sig)}
          + ": killing all nodes now");
      kill_all();
    } else {
      say("SIG" + std::string{sigabbrev_np(sig)} + ": stopping the cluster");
      begin_stop(exit_ok);
    }
  }
  reap();
}

void launcher::impl::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
    if (auto* n = find(pid))
      on_exit(*n, status);
}

void launcher::impl::on_exit(node_proc& n, int status) {
  read_output(n, true);
  if (n.out_fd >= 0) {
    ::close(n.out_fd);
    n.out_fd = -1;
  }
  auto old_pid = n.pid;
  n.pid = 0;
  n.view = nullptr;
  auto now = steady_clock::now();
  auto what = "pid " + std::to_string(old_pid) + " " + describe_status(status);
  if (n.hung)
    what += " (hung)";
  n.hung = false;
  write_all(n.log_fd, "--- ft-launch: " + n.spec.name + " " + what + " ---\n");
  update_targets();
  if (n.phase == node_phase::stopping || phase_ == cluster_phase::stopping) {
    n.phase = node_phase::stopped;
    say(n, what);
    return;
  }
  // A node that cannot come up at all during startup (port in use, bad
  // secret, missing library) would fail the same way forever: report it and
  // stop instead of restarting.
  if (phase_ == cluster_phase::starting && !n.came_up && n.restarts == 0) {
    n.phase = node_phase::stopped;
    std::cerr << "ft-launch: " << n.spec.name << " " << what
              << " before it came up\n";
    report_tail(n);
    begin_stop(exit_startup_failed);
    return;
  }
  // A crash: restart with backoff unless the node exceeded its intensity.
  if (!n.window.add(now)) {
    n.phase = node_phase::failed;
    say(n, what + "; escalation: more than "
             + std::to_string(cfg_.restart.max_restarts) + " restarts within "
             + seconds_text(cfg_.restart.period) + ", giving up on "
             + n.spec.name);
    report_tail(n);
    if (std::all_of(nodes_.begin(), nodes_.end(), [](auto& x) {
          return x.phase == node_phase::failed
                 || x.phase == node_phase::stopped;
        })) {
      say("escalation: every node failed; nothing left to supervise");
      begin_stop(exit_all_failed);
    }
    return;
  }
  auto& rc = cfg_.restart;
  auto policy = rc.initial_delay.count() == 0
                  ? ft::restart_delay::none()
                  : ft::restart_delay::exponential(rc.initial_delay,
                                                   rc.max_delay);
  auto up_since = n.came_up ? n.up_since : n.started_at;
  std::uniform_real_distribution<double> u01{0.0, 1.0};
  auto delay = n.delays.next(policy, now, up_since, rc.period, u01(rng_));
  auto pause = delay ? *delay : caf::timespan{rc.max_delay};
  n.phase = node_phase::restarting;
  n.restart_at = now
                 + std::chrono::duration_cast<steady_clock::duration>(pause);
  say(n, what + "; restarting in " + seconds_text(pause));
}

void launcher::impl::begin_stop(int code) {
  if (phase_ == cluster_phase::stopping)
    return;
  phase_ = cluster_phase::stopping;
  exit_code_ = code;
  stop_deadline_ = steady_clock::now() + opts_.stop_timeout;
  for (auto& n : nodes_) {
    if (n.running()) {
      n.phase = node_phase::stopping;
      ::kill(n.pid, SIGTERM);
    } else if (n.phase == node_phase::restarting
               || n.phase == node_phase::starting) {
      n.phase = node_phase::stopped;
    }
  }
}

void launcher::impl::kill_all() {
  killed_ = true;
  for (auto& n : nodes_)
    if (n.running()) {
      say(n, "killing pid " + std::to_string(n.pid) + " (SIGKILL)");
      ::kill(n.pid, SIGKILL);
    }
}

void launcher::impl::read_output(node_proc& n, bool drain) {
  if (n.out_fd < 0)
    return;
  std::array<char, 8192> buf;
  for (;;) {
    auto got = ::read(n.out_fd, buf.data(), buf.size());
    if (got < 0 && errno == EINTR)
      continue;
    if (got == 0) {
      // The child closed its output (it exited or will soon): stop polling
      // the pipe, or poll would report the hang-up forever.
      ::close(n.out_fd);
      n.out_fd = -1;
      drain = true;
      break;
    }
    if (got < 0)
      break; // EAGAIN: all read for now
    n.partial.append(buf.data(), static_cast<size_t>(got));
    size_t pos;
    while ((pos = n.partial.find('\n')) != std::string::npos) {
      forward_line(n, n.partial.substr(0, pos));
      n.partial.erase(0, pos + 1);
    }
    if (n.partial.size() > max_line) {
      forward_line(n, n.partial);
      n.partial.clear();
    }
    if (!drain)
      break;
  }
  if (drain && !n.partial.empty()) {
    forward_line(n, n.partial);
    n.partial.clear();
  }
}

void launcher::impl::forward_line(node_proc& n, std::string line) {
  if (stderr_tty_)
    erase_table();
  write_all(STDERR_FILENO, "[" + n.spec.name + "] " + line + "\n");
  write_all(n.log_fd, line + "\n");
  n.tail.push_back(std::move(line));
  if (n.tail.size() > tail_lines)
    n.tail.pop_front();
}

void launcher::impl::say(const std::string& text) {
  if (stderr_tty_)
    erase_table();
  write_all(STDERR_FILENO, "[ft-launch] " + text + "\n");
}

void launcher::impl::say(node_proc& n, const std::string& text) {
  say(n.spec.name + ": " + text);
}

void launcher::impl::report_tail(const node_proc& n) {
  if (stderr_tty_)
    erase_table();
  std::string text = "ft-launch: last lines of " + n.spec.name + " ("
                     + n.log_file.string() + "):\n";
  if (n.tail.empty())
    text += "  (no output)\n";
  for (auto& line : n.tail)
    text += "  " + line + "\n";
  write_all(STDERR_FILENO, text);
}

bool launcher::impl::ready_file_ok(const node_proc& n) const {
  std::ifstream in{n.ready_file};
  if (!in)
    return false;
  auto doc = json::parse(in, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return false;
  auto pid = doc.find("pid");
  return pid == doc.end() || !pid->is_number_integer()
         || pid->get<int64_t>() == n.pid;
}

void launcher::impl::mark_up(node_proc& n) {
  n.phase = node_phase::up;
  n.came_up = true;
  n.up_since = steady_clock::now();
  n.healthy_at = n.up_since;
  say(n, "up (pid " + std::to_string(n.pid) + ", " + n.url() + ")");
  table_dirty_ = true;
  if (phase_ != cluster_phase::starting)
    return;
  // The seeds first; the rest join once a seed answers.
  auto seeds_up = std::all_of(nodes_.begin(), nodes_.end(), [](auto& x) {
    return !x.seed || x.phase == node_phase::up;
  });
  if (seeds_up)
    for (auto& x : nodes_)
      if (!x.spawned)
        spawn(x);
  auto all_up = std::all_of(nodes_.begin(), nodes_.end(), [](auto& x) {
    return x.phase == node_phase::up;
  });
  if (!all_up)
    return;
  phase_ = cluster_phase::running;
  std::string line = "cluster up:";
  for (auto& x : nodes_)
    line += " " + x.spec.name + " " + x.url();
  erase_table();
  write_all(STDOUT_FILENO, line + "\n");
  update_targets();
}

void launcher::impl::on_status() {
  uint64_t count;
  [[maybe_unused]] auto r = ::read(event_fd_, &count, sizeof(count));
  latest_ = poller_->latest();
  for (auto& n : nodes_) {
    if (!n.running())
      continue;
    auto i = latest_.status.find(n.spec.name);
    if (i == latest_.status.end())
      continue;
    auto& st = i->second;
    // A status from another process on that port does not count.
    if (auto pid = st.find("pid");
        pid != st.end() && pid->is_number_integer()
        && pid->get<int64_t>() != n.pid)
      continue;
    if (n.phase == node_phase::starting && st.value("state", "") == "up"
        && ready_file_ok(n))
      mark_up(n);
    else if (n.phase == node_phase::up)
      on_answer(n, st, latest_.answered_at[n.spec.name]);
  }
  for (auto& n : nodes_) {
    n.view = nullptr;
    if (!latest_.nodes || !n.running())
      continue;
    for (auto& x : latest_.nodes->value("nodes", json::array()))
      if (x.is_object() && x.value("name", "") == n.spec.name)
        n.view = x;
  }
  table_dirty_ = true;
}

void launcher::impl::on_answer(node_proc& n, const json& st,
                               steady_clock::time_point at) {
  if (at <= n.answered_at)
    return; // seen already
  n.answered_at = at;
  // An answer saying the node watchdog is stale means the node's actor
  // system hangs while its HTTP thread still runs: not healthy.
  auto wd = st.find("watchdog");
  bool stale = wd != st.end() && wd->is_object()
               && wd->value("state", "") == "stale";
  if (stale && !n.watchdog_stale)
    say(n, "node watchdog stale (no pulse for "
             + std::to_string(wd->value("last_beat_ms", int64_t{0}))
             + "ms)");
  else if (!stale && n.watchdog_stale)
    say(n, "node watchdog ok again");
  n.watchdog_stale = stale;
  if (!stale)
    n.healthy_at = std::max(n.healthy_at, at);
}

void launcher::impl::check_hung(steady_clock::time_point now) {
  if (cfg_.hang_timeout.count() <= 0 || phase_ == cluster_phase::stopping)
    return;
  for (auto& n : nodes_) {
    // Only nodes that came up: one still starting is the startup
    // timeout's business.
    if (n.phase != node_phase::up || !n.running() || n.hung
        || now - n.healthy_at < cfg_.hang_timeout)
      continue;
    auto silent = seconds_text(now - n.healthy_at);
    auto why = n.watchdog_stale && n.answered_at > n.healthy_at
                 ? "its node watchdog has been stale for " + silent
                 : "/api/status has not answered for " + silent;
    say(n, "hung: " + why + " (hang_timeout "
             + seconds_text(cfg_.hang_timeout) + "); killing pid "
             + std::to_string(n.pid) + " (SIGKILL)");
    n.hung = true;
    ::kill(n.pid, SIGKILL);
  }
}

void launcher::impl::update_targets() {
  if (!poller_)
    return;
  std::vector<poll_target> targets;
  bool starting = false;
  for (auto& n : nodes_) {
    if (!n.running() || n.phase == node_phase::stopping)
      continue;
    starting = starting || n.phase == node_phase::starting;
    targets.push_back({n.spec.name, n.plan.http_host, n.plan.http_port, n.pid});
  }
  // Fast rounds while a node comes up, so `up` is noticed within 100 ms;
  // at least four per hang_timeout, so one slow answer is no hang.
  auto interval = starting ? std::chrono::milliseconds{100}
                           : opts_.status_interval;
  if (cfg_.hang_timeout.count() > 0)
    interval = std::min(interval, std::max(cfg_.hang_timeout / 4,
                                           std::chrono::milliseconds{50}));
  poller_->set_interval(interval);
  poller_->set_targets(std::move(targets));
}

void launcher::impl::timers() {
  auto now = steady_clock::now();
  if (phase_ == cluster_phase::stopping) {
    if (!killed_ && now >= stop_deadline_) {
      say("nodes still running " + seconds_text(opts_.stop_timeout)
          + " after SIGTERM");
      kill_all();
    }
    return;
  }
  check_hung(now);
  for (auto& n : nodes_)
    if (n.phase == node_phase::restarting && now >= n.restart_at) {
      ++n.restarts;
      spawn(n);
      if (!n.running())
        n.phase = node_phase::failed;
    }
  if (phase_ == cluster_phase::starting && now >= startup_deadline_) {
    std::string late;
    for (auto& n : nodes_)
      if (n.phase != node_phase::up)
        late += (late.empty() ? "" : ", ") + n.spec.name;
    std::cerr << "ft-launch: " << late << " did not come up within "
              << seconds_text(cfg_.startup_timeout) << '\n';
    for (auto& n : nodes_)
      if (n.phase != node_phase::up && n.spawned)
        report_tail(n);
    begin_stop(exit_startup_failed);
  }
}

void launcher::impl::write_cluster_json() {
  const char* state = "up";
  if (phase_ == cluster_phase::starting)
    state = "starting";
  else if (phase_ == cluster_phase::stopping)
    state = any_running() ? "stopping" : "stopped";
  else if (std::any_of(nodes_.begin(), nodes_.end(),
                       [](auto& n) { return n.phase != node_phase::up; }))
    state = "degraded";
  auto nodes = json::array();
  for (auto& n : nodes_) {
    json cluster_state = nullptr;
    if (n.view.is_object())
      cluster_state = n.view.value("state", json{});
    nodes.push_back({{"name", n.spec.name},
                     {"pid", n.running() ? json(n.pid) : json(nullptr)},
                     {"host", n.plan.host},
                     {"port", n.plan.port},
                     {"http_port", n.plan.http_port},
                     {"state", to_string(n.phase)},
                     {"cluster_state", cluster_state},
                     {"restarts", n.restarts},
                     {"seed", n.seed},
                     {"log", n.log_file.string()}});
  }
  json doc = {{"launcher_pid", ::getpid()},
              {"state", state},
              {"run_dir", opts_.run_dir.string()},
              {"nodes", std::move(nodes)}};
  auto text = doc.dump(2) + "\n";
  if (text == last_cluster_json_)
    return;
  if (atomic_write(opts_.run_dir / "cluster.json", text))
    last_cluster_json_ = std::move(text);
}

std::vector<std::vector<std::string>> launcher::impl::table_rows() const {
  std::vector<std::vector<std::string>> rows;
  for (auto& n : nodes_) {
    std::string state = to_string(n.phase);
    std::string entities = "-";
    std::string heartbeat = "-";
    if (n.view.is_object()) {
      if (n.phase == node_phase::up)
        state = n.view.value("state", state);
      if (auto e = n.view.find("entities"); e != n.view.end() && !e->is_null())
        entities = e->dump();
      if (auto h = n.view.find("last_heartbeat_ms");
          h != n.view.end() && h->is_number())
        heartbeat = std::to_string(h->get<int64_t>()) + "ms ago";
      else if (n.spec.name == latest_.nodes_from)
        heartbeat = "(self)";
    }
    rows.push_back({n.spec.name, n.running() ? std::to_string(n.pid) : "-",
                    state, entities, std::to_string(n.restarts), heartbeat,
                    n.url()});
  }
  return rows;
}

void launcher::impl::erase_table() {
  if (!tty_ || drawn_lines_ == 0)
    return;
  // Up to the table's first line, then clear to the end of the screen.
  write_all(STDOUT_FILENO,
            "\x1b[" + std::to_string(drawn_lines_) + "F\x1b[J");
  drawn_lines_ = 0;
  table_dirty_ = true;
}

void launcher::impl::draw_table() {
  if (!opts_.status || phase_ != cluster_phase::running || !table_dirty_)
    return;
  table_dirty_ = false;
  auto rows = table_rows();
  std::vector<std::string> header = {"NODE",     "PID",       "STATE",
                                     "ENTITIES", "RESTARTS",  "HEARTBEAT",
                                     "HTTP"};
  std::string leader = "-";
  if (latest_.nodes) {
    auto l = latest_.nodes->value("leader", json{});
    if (l.is_string())
      leader = l.get<std::string>();
  }
  // Without a terminal, print only real changes (not heartbeat ages).
  if (!tty_) {
    std::string key = leader;
    for (auto& r : rows)
      key += "|" + r[0] + "," + r[1] + "," + r[2] + "," + r[3] + "," + r[4];
    if (key == last_table_)
      return;
    last_table_ = key;
  }
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i)
    width[i] = header[i].size();
  for (auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  std::string out;
  auto add_row = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size())
        out += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += "\n";
  };
  out += "leader: " + leader
         + (latest_.nodes_from.empty() ? "" : " (as seen by "
                                                + latest_.nodes_from + ")")
         + "\n";
  add_row(header);
  for (auto& r : rows)
    add_row(r);
  if (tty_) {
    erase_table();
    table_dirty_ = false;
    drawn_lines_ = rows.size() + 2;
  } else {
    out += "\n";
  }
  write_all(STDOUT_FILENO, out);
}

int launcher::impl::run() {
  prepare();
  setup_signals();
  tty_ = ::isatty(STDOUT_FILENO) != 0;
  stderr_tty_ = tty_ && ::isatty(STDERR_FILENO) != 0;
  poller_ = std::make_unique<status_poller>(event_fd_);
  startup_deadline_ = steady_clock::now() + cfg_.startup_timeout;
  for (auto& n : nodes_)
    if (n.seed)
      spawn(n);
  write_cluster_json();
  for (;;) {
    if (phase_ == cluster_phase::stopping && !any_running())
      break;
    // Sleep until the next fd event or timer.
    auto now = steady_clock::now();
    auto wake = now + std::chrono::seconds{1};
    if (phase_ == cluster_phase::stopping && !killed_)
      wake = std::min(wake, stop_deadline_);
    if (phase_ == cluster_phase::starting)
      wake = std::min(wake, startup_deadline_);
    for (auto& n : nodes_) {
      if (n.phase == node_phase::restarting)
        wake = std::min(wake, n.restart_at);
      if (n.phase == node_phase::up && !n.hung
          && cfg_.hang_timeout.count() > 0)
        wake = std::min(wake, n.healthy_at + cfg_.hang_timeout);
    }
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
                     wake - now)
                     .count();
    std::vector<pollfd> fds = {{signal_fd_, POLLIN, 0}, {event_fd_, POLLIN, 0}};
    std::vector<node_proc*> owners = {nullptr, nullptr};
    for (auto& n : nodes_)
      if (n.out_fd >= 0) {
        fds.push_back({n.out_fd, POLLIN, 0});
        owners.push_back(&n);
      }
    auto ready = ::poll(fds.data(), fds.size(),
                        static_cast<int>(std::clamp<int64_t>(timeout + 1, 0,
                                                             1000)));
    if (ready < 0 && errno != EINTR)
      throw config_error("poll: " + errno_text());
    if (ready > 0) {
      for (size_t i = 2; i < fds.size(); ++i)
        if (fds[i].revents != 0)
          read_output(*owners[i], false);
      if (fds[1].revents & POLLIN)
        on_status();
      if (fds[0].revents & POLLIN)
        on_signal();
    }
    timers();
    write_cluster_json();
    draw_table();
  }
  poller_->stop();
  write_cluster_json();
  say(exit_code_ == exit_ok ? "cluster stopped" : "cluster stopped (failure)");
  return exit_code_;
}

// -- launcher -----------------------------------------------------------------

launcher::launcher(cluster_config cfg, launch_options opts)
  : impl_(std::make_unique<impl>(std::move(cfg), std::move(opts))) {
  // nop
}

launcher::~launcher() = default;

int launcher::run() {
  return impl_->run();
}

} // namespace ft::launch
