#pragma once

// Helpers for tests that run real processes (ft-node, ft-launch, ftctl):
// free ports, temp dirs, a child process with its output in files that is
// killed and reaped when the test ends (pass or fail), bounded polling, and
// JSON over HTTP. Header-only; link httplib::httplib and
// nlohmann_json::nlohmann_json.
//
//   ft_test::temp_dir dir;
//   ft_test::child_process node{{FT_NODE, "--name", "n1", "--ready-file",
//                                (dir / "ready").string()},
//                               {dir / "n1.out"}};
//   REQUIRE(ft_test::wait_for_file(dir / "ready", 10s));
//   auto st = ft_test::http_get("127.0.0.1", port, "/api/status");
//   CHECK(st.json["state"] == "up");

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <netinet/in.h>
#include <optional>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

extern char** environ;

namespace ft_test {

namespace fs = std::filesystem;
using millis = std::chrono::milliseconds;
using namespace std::chrono_literals;

// -- ports --------------------------------------------------------------------

/// A socket bound to 127.0.0.1:0, closed on destruction. Keep it to hold a
/// port busy (call `listen()` to make binds fail even with SO_REUSEADDR).
class bound_socket {
public:
  bound_socket() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      throw std::runtime_error("socket: " + std::string{std::strerror(errno)});
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      throw std::runtime_error("bind: " + std::string{std::strerror(errno)});
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }

  ~bound_socket() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  bound_socket(const bound_socket&) = delete;
  bound_socket& operator=(const bound_socket&) = delete;

  void listen() {
    ::listen(fd_, 16);
  }

  uint16_t port() const {
    return port_;
  }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

/// A port on 127.0.0.1 that was free a moment ago (the kernel's pick for
/// port 0). Another process may take it before the test binds it; the
/// kernel hands out ports round-robin, so that is rare.
inline uint16_t free_port() {
  return bound_socket{}.port();
}

/// `n` distinct free ports (all held until all are picked).
inline std::vector<uint16_t> free_ports(size_t n) {
  std::vector<std::unique_ptr<bound_socket>> held;
  std::vector<uint16_t> result;
  for (size_t i = 0; i < n; ++i) {
    held.push_back(std::make_unique<bound_socket>());
    result.push_back(held.back()->port());
  }
  return result;
}

// -- files --------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed with its contents
/// on destruction.
class temp_dir {
public:
  explicit temp_dir(const std::string& prefix = "ft-test") {
    static int counter = 0;
    path_ = fs::temp_directory_path()
            / (prefix + "-" + std::to_string(::getpid()) + "-"
               + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const {
    return path_;
  }

  fs::path operator/(const std::string& name) const {
    return path_ / name;
  }

  std::string str() const {
    return path_.string();
  }

private:
  fs::path path_;
};

/// The whole file ("" when it does not exist).
inline std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

inline void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
}

/// The file parsed as JSON; nullopt when missing or not (yet) valid JSON.
inline std::optional<nlohmann::json> read_json_file(const fs::path& path) {
  auto text = read_file(path);
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (text.empty() || doc.is_discarded())
    return std::nullopt;
  return doc;
}

// -- waiting ------------------------------------------------------------------

/// Calls `pred` every `interval` until it returns true or `timeout` passed;
/// returns whether it did. Never sleeps past the deadline.
template <class Predicate>
bool wait_until(Predicate pred, millis timeout, millis interval = 20ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return false;
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(
      interval, deadline - now));
  }
}

inline bool wait_for_file(const fs::path& path, millis timeout) {
  return wait_until([&] { return fs::exists(path); }, timeout);
}

// -- processes ----------------------------------------------------------------

/// Whether `pid` names a live process (zombies count as dead). Works for
/// processes that are not our children, e.g. the nodes of an ft-launch.
inline bool process_alive(pid_t pid) {
  if (pid <= 0)
    return false;
  if (::kill(pid, 0) != 0 && errno != EPERM)
    return false;
  // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size())
    return false;
  auto state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

/// `128 + signal` for a killed process, like a shell's `$?`.
inline int exit_code_of(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

/// A child process whose stdout and stderr go to files. It runs in its own
/// process group (with everything it forks that stays in the group), and
/// the destructor SIGKILLs that group and reaps the child, so nothing
/// outlives a test, even a failed one.
class child_process {
public:
  struct options {
    /// Where stdout goes (required).
    fs::path stdout_path;
    /// Where stderr goes; empty: the stdout file.
    fs::path stderr_path;
    /// Environment changes: a value sets, nullopt unsets.
    std::map<std::string, std::optional<std::string>> env;
    /// Working directory; empty: the test's.
    fs::path cwd;
  };

  child_process(std::vector<std::string> argv, options opts)
    : argv_(std::move(argv)), opts_(std::move(opts)) {
    if (opts_.stderr_path.empty())
      opts_.stderr_path = opts_.stdout_path;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO,
                                     opts_.stdout_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (opts_.stderr_path == opts_.stdout_path)
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    else
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                       opts_.stderr_path.c_str(),
                                       O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (!opts_.cwd.empty())
      posix_spawn_file_actions_addchdir_np(&actions, opts_.cwd.c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Own process group; default signal handling and an empty mask (the
    // test runner may have changed both).
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP
                                      | POSIX_SPAWN_SETSIGMASK
                                      | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&attr, &all);
    std::vector<char*> args;
    for (auto& a : argv_)
      args.push_back(a.data());
    args.push_back(nullptr);
    auto env = make_env();
    std::vector<char*> envp;
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    auto rc = posix_spawn(&pid_, argv_.at(0).c_str(), &actions, &attr,
                          args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
      throw std::runtime_error("cannot spawn " + argv_.at(0) + ": "
                               + std::strerror(rc));
  }

  ~child_process() {
    if (!status_) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        // retry
      }
    } else {
      // The child is gone; whatever it left in its group goes too.
      ::kill(-pid_, SIGKILL);
    }
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const {
    return pid_;
  }

  /// Whether it still runs (reaps it when it exited).
  bool running() {
    poll();
    return !status_;
  }

  /// Its exit code (128 + signal when killed), once it exited.
  std::optional<int> exit_code() {
    poll();
    if (!status_)
      return std::nullopt;
    return exit_code_of(*status_);
  }

  /// Waits up to `timeout` for it to exit; returns its exit code.
  std::optional<int> wait_for(millis timeout) {
    wait_until([this] { return !running(); }, timeout, 10ms);
    return exit_code();
  }

  void signal(int sig) {
    if (running())
      ::kill(pid_, sig);
  }

  /// SIGTERM, then SIGKILL (to its group) after `grace`; its exit code.
  int stop(millis grace = 10s) {
    signal(SIGTERM);
    if (auto rc = wait_for(grace))
      return *rc;
    ::kill(-pid_, SIGKILL);
    return wait_for(10s).value_or(-1);
  }

  std::string out() const {
    return read_file(opts_.stdout_path);
  }

  std::string err() const {
    return read_file(opts_.stderr_path);
  }

  /// Both outputs, for test failure messages.
  std::string output() const {
    if (opts_.stderr_path == opts_.stdout_path)
      return out();
    return "--- stdout ---\n" + out() + "--- stderr ---\n" + err();
  }

private:
  void poll() {
    if (status_)
      return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_)
      status_ = status;
  }

  std::vector<std::string> make_env() const {
    std::map<std::string, std::string> vars;
    for (char** e = environ; e && *e; ++e) {
      std::string kv{*e};
      auto eq = kv.find('=');
      if (eq != std::string::npos)
        vars[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (auto& [k, v] : opts_.env) {
      if (v)
        vars[k] = *v;
      else
        vars.erase(k);
    }
    std::vector<std::string> out;
    for (auto& [k, v] : vars)
      out.push_back(k + "=" + v);
    return out;
  }

  std::vector<std::string> argv_;
  options opts_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// What a finished command printed and returned.
struct run_result {
  /// Exit code (128 + signal when killed; -1 when it timed out).
  int rc = -1;
  std::string out;
  std::string err;
  bool timed_out = false;

  /// Both streams, for failure messages.
  std::string output() const {
    return "--- stdout ---\n" + out + "--- stderr ---\n" + err;
  }
};

/// Runs `argv` to completion, at most `timeout` (then kills it).
inline run_result run(std::vector<std::string> argv, millis timeout = 30s,
                      std::map<std::string, std::optional<std::string>> env
                      = {}) {
  temp_dir dir{"ft-run"};
  run_result res;
  {
    child_process proc{std::move(argv),
                       {dir / "out", dir / "err", std::move(env), {}}};
    if (auto rc = proc.wait_for(timeout))
      res.rc = *rc;
    else
      res.timed_out = true;
  }
  res.out = read_file(dir / "out");
  res.err = read_file(dir / "err");
  return res;
}

// -- HTTP ---------------------------------------------------------------------

/// An HTTP reply, or why there was none.
struct http_reply {
  /// HTTP status; 0 when the request failed (see `error`).
  int status = 0;
  std::string body;
  /// The body parsed; discarded (`is_discarded()`) when it is not JSON.
  nlohmann::json json;
  /// Transport failure (httplib's name), empty on success.
  std::string error;

  explicit operator bool() const {
    return error.empty();
  }
};

namespace detail {

inline http_reply to_reply(httplib::Result res) {
  http_reply reply;
  if (!res) {
    reply.error = httplib::to_string(res.error());
    return reply;
  }
  reply.status = res->status;
  reply.body = res->body;
  reply.json = nlohmann::json::parse(reply.body, nullptr, false);
  return reply;
}

inline httplib::Client client(const std::string& host, uint16_t port,
                              millis timeout) {
  httplib::Client cli{host, port};
  cli.set_connection_timeout(timeout);
  cli.set_read_timeout(timeout);
  cli.set_write_timeout(timeout);
  return cli;
}

} // namespace detail

inline http_reply http_get(const std::string& host, uint16_t port,
                           const std::string& path, millis timeout = 5s) {
  auto cli = detail::client(host, port, timeout);
  return detail::to_reply(cli.Get(path.c_str()));
}

inline http_reply http_post(const std::string& host, uint16_t port,
                            const std::string& path,
                            const nlohmann::json& body, millis timeout = 5s) {
  auto cli = detail::client(host, port, timeout);
  return detail::to_reply(
    cli.Post(path.c_str(), body.dump(), "application/json"));
}

} // namespace ft_test
