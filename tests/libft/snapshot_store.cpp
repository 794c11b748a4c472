#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ft/error.hpp"
#include "ft/snapshot.hpp"
#include "ft/snapshot_store.hpp"

using Catch::Matchers::Contains;

namespace fs = std::filesystem;

namespace {

using ft::durability;
using ft::errc;
using ft::snapshot_envelope;
using ft::snapshot_store;
using ft::snapshot_store_options;

constexpr size_t kib = 1024;
constexpr size_t mib = 1024 * kib;

// -- fixtures -----------------------------------------------------------------

/// A fresh directory under the system's temp directory, removed (with
/// permissions restored first) when the test ends, however it ends.
struct temp_dir {
  fs::path base;

  temp_dir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    base = fs::temp_directory_path()
           / ("ft_snapshot_store_" + std::to_string(getpid()) + "_"
              + std::to_string(counter++) + "_" + std::to_string(rd()));
    fs::create_directories(base);
  }

  ~temp_dir() {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(base, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      fs::permissions(it->path(), fs::perms::owner_all, ec);
    fs::permissions(base, fs::perms::owner_all, ec);
    // chmod 000 hides a directory's entries: retry once opened up.
    for (auto it = fs::recursive_directory_iterator(base, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      fs::permissions(it->path(), fs::perms::owner_all, ec);
    fs::remove_all(base, ec);
  }

  /// A store directory inside (not created).
  std::string path(const std::string& name = "store") const {
    return (base / name).string();
  }
};

/// Fast options for tests where durability is not the point.
snapshot_store_options fast() {
  snapshot_store_options opts;
  opts.mode = durability::nosync;
  opts.initial_map_size = 1 * mib;
  return opts;
}

ft::byte_buffer random_payload(size_t size, uint64_t seed) {
  std::mt19937_64 gen{seed};
  ft::byte_buffer result(size);
  for (auto& b : result)
    b = static_cast<uint8_t>(gen());
  return result;
}

snapshot_envelope make_snapshot(const std::string& key, uint64_t sequence,
                                size_t payload_size = 64,
                                uint64_t seed = 0) {
  snapshot_envelope x;
  x.key = key;
  x.actor_type = "counter";
  x.schema_version = 3;
  x.sequence = sequence;
  x.timestamp_ms = 1700000000000 + static_cast<int64_t>(sequence);
  x.node_id = "node-a";
  x.payload = random_payload(payload_size,
                             seed ^ std::hash<std::string>{}(key) ^ sequence);
  return x;
}

/// What a read returns for `x`: the same, with the checksum filled in.
snapshot_envelope stored(snapshot_envelope x) {
  x.checksum = ft::snapshot_checksum(x);
  return x;
}

snapshot_store open_store(const std::string& dir,
                          snapshot_store_options opts = fast()) {
  auto st = snapshot_store::open(dir, opts);
  if (!st)
    FAIL("cannot open " << dir << ": " << ft::render(st.error()));
  return std::move(*st);
}

#define CHECK_ERRC(err, code)                                                  \
  do {                                                                         \
    caf::error err_ = (err);                                                   \
    INFO("error: " << ft::render(err_));                                       \
    CHECK(ft::is(err_, code));                                                 \
  } while (false)

#define REQUIRE_OK(expr)                                                       \
  do {                                                                         \
    auto&& res_ = (expr);                                                      \
    INFO(#expr);                                                               \
    if (!res_)                                                                 \
      FAIL(ft::render(res_.error()));                                          \
  } while (false)

#define REQUIRE_NO_ERROR(expr)                                                 \
  do {                                                                         \
    auto err_ = (expr);                                                        \
    INFO(#expr);                                                               \
    if (err_)                                                                  \
      FAIL(ft::render(err_));                                                  \
  } while (false)

/// The value of `x`, failing the test with the rendered error instead
/// (`caf::expected::value` on an error is undefined).
template <class T>
T value_of(caf::expected<T> x) {
  if (!x)
    FAIL("unexpected error: " << ft::render(x.error()));
  return std::move(*x);
}

/// The error of `x`, failing the test if there is none.
template <class T>
caf::error error_of(const caf::expected<T>& x) {
  if (x)
    FAIL("expected an error, got a value");
  return x.error();
}

std::vector<std::pair<std::string, uint64_t>>
listing(const snapshot_store& st,
        const std::optional<std::string>& key = std::nullopt) {
  auto xs = st.list(key);
  if (!xs)
    FAIL("list: " << ft::render(xs.error()));
  std::vector<std::pair<std::string, uint64_t>> result;
  for (auto& x : *xs)
    result.emplace_back(x.key, x.sequence);
  return result;
}

// -- child processes ----------------------------------------------------------

/// A running snapshot_crash_writer with its stdout on a pipe. Killed (if
/// still running) and reaped when it goes out of scope, however the test
/// ends.
class child_process {
public:
  explicit child_process(const std::vector<std::string>& args) {
    std::vector<std::string> all{FT_CRASH_WRITER};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
    REQUIRE(pid_ > 0);
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait_for_exit();
    }
    if (out_ >= 0)
      close(out_);
  }

  void kill() {
    REQUIRE(::kill(pid_, SIGKILL) == 0);
  }

  /// Reaps the child; returns its wait status.
  int wait_for_exit() {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      // retry
    }
    pid_ = -1;
    return status;
  }

  /// Waits (at most `timeout_ms`) until the output holds `line`.
  bool wait_for_line(const std::string& line, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now()
                    + std::chrono::milliseconds(timeout_ms);
    while (output_.find(line + "\n") == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
      pollfd pfd{out_, POLLIN, 0};
      if (left <= 0 || poll(&pfd, 1, static_cast<int>(left)) <= 0
          || !read_some())
        return false;
    }
    return true;
  }

  /// Reads whatever is available; false at EOF.
  bool read_some() {
    char buf[4096];
    auto n = ::read(out_, buf, sizeof(buf));
    if (n > 0)
      output_.append(buf, static_cast<size_t>(n));
    return n > 0 || (n < 0 && errno == EINTR);
  }

  int fd() const {
    return out_;
  }

  const std::string& output() const {
    return output_;
  }

  /// The complete lines of the output (a line cut by a kill is dropped:
  /// the child had not finished announcing it).
  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    size_t pos = 0;
    for (auto nl = output_.find('\n'); nl != std::string::npos;
         nl = output_.find('\n', pos)) {
      result.push_back(output_.substr(pos, nl - pos));
      pos = nl + 1;
    }
    return result;
  }

private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string output_;
};

/// Reads all children's output until every one closed its stdout.
void drain(const std::vector<child_process*>& children) {
  std::vector<child_process*> open = children;
  while (!open.empty()) {
    std::vector<pollfd> fds;
    for (auto c : open)
      fds.push_back(pollfd{c->fd(), POLLIN, 0});
    auto n = poll(fds.data(), fds.size(), 30000);
    REQUIRE(n > 0);
    std::vector<child_process*> still_open;
    for (size_t i = 0; i < open.size(); ++i)
      if (fds[i].revents == 0 || open[i]->read_some())
        still_open.push_back(open[i]);
    open.swap(still_open);
  }
}

/// Runs `f` (an open attempt) as an unprivileged user when this process is
/// root, so permission bits apply: the child drops to nobody and reports the
/// rendered error through a pipe. Returns {is store_unavailable, rendering}.
template <class F>
std::pair<bool, std::string> as_unprivileged(F f) {
  if (geteuid() != 0) {
    auto err = f();
    return {ft::is(err, errc::store_unavailable), ft::render(err)};
  }
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  auto pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    std::string msg;
    if (setgid(65534) != 0 || setuid(65534) != 0) {
      msg = std::string{"cannot drop privileges: "} + std::strerror(errno);
    } else {
      auto err = f();
      msg = (ft::is(err, errc::store_unavailable) ? "1" : "0")
            + ft::render(err);
    }
    auto n = ::write(fds[1], msg.data(), msg.size());
    _exit(n == static_cast<ssize_t>(msg.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string msg;
  char buf[1024];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) != 0;)
    if (n > 0)
      msg.append(buf, static_cast<size_t>(n));
    else if (errno != EINTR)
      break;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  INFO("child said: " << msg);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(!msg.empty());
  REQUIRE(msg[0] != 'c');
  return {msg[0] == '1', msg.substr(1)};
}

std::string read_file(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

} // namespace

// -- basics -------------------------------------------------------------------

TEST_CASE("durability modes have names", "[snapshot_store]") {
  for (auto m :
       {durability::durable, durability::group_commit, durability::nosync}) {
    auto parsed = ft::parse_durability(ft::to_string(m));
    REQUIRE(parsed);
    CHECK(*parsed == m);
  }
  CHECK(std::string{ft::to_string(durability::group_commit)}
        == "group_commit");
  CHECK_FALSE(ft::parse_durability("sometimes"));
}

TEST_CASE("snapshot store round trip of every API", "[snapshot_store]") {
  temp_dir tmp;
  auto dir = tmp.path();
  auto st = open_store(dir);
  CHECK(st.directory() == dir);
  CHECK(st.mode() == durability::nosync);
  CHECK(st.map_size() >= 1 * mib);
  auto a1 = make_snapshot("counter/1", 1);
  auto a2 = make_snapshot("counter/1", 2, 5000);
  auto b7 = make_snapshot("counter/2", 7, 0);
  REQUIRE_NO_ERROR(st.write(a1));
  REQUIRE_NO_ERROR(st.write(a2));
  REQUIRE_NO_ERROR(st.write(b7));
  // read
  auto r = st.read("counter/1", 1);
  REQUIRE_OK(r);
  CHECK(*r == stored(a1));
  CHECK(r->checksum != 0);
  CHECK_ERRC(error_of(st.read("counter/1", 3)), errc::snapshot_not_found);
  CHECK_ERRC(error_of(st.read("nobody", 1)), errc::snapshot_not_found);
  // latest, latest_sequence, before
  auto l = st.latest("counter/1");
  REQUIRE_OK(l);
  CHECK(*l == stored(a2));
  auto lb = st.latest("counter/2");
  REQUIRE_OK(lb);
  CHECK(*lb == stored(b7));
  CHECK(lb->payload.empty());
  CHECK(value_of(st.latest_sequence("counter/1")) == 2);
  CHECK(value_of(st.latest_sequence("counter/2")) == 7);
  CHECK(value_of(st.latest_sequence("counter/3")) == 0);
  auto bf = st.before("counter/1", 2);
  REQUIRE_OK(bf);
  CHECK(*bf == stored(a1));
  // list, verify
  using entry = std::pair<std::string, uint64_t>;
  CHECK(listing(st) == std::vector<entry>{{"counter/1", 1}, {"counter/1", 2},
                                          {"counter/2", 7}});
  auto problems = st.verify();
  REQUIRE_OK(problems);
  CHECK(problems->empty());
  // write_batch
  auto res = st.write_batch({make_snapshot("counter/3", 1),
                             make_snapshot("counter/1", 3)});
  REQUIRE_OK(res);
  REQUIRE(res->size() == 2);
  CHECK(!(*res)[0]);
  CHECK(!(*res)[1]);
  CHECK(value_of(st.latest_sequence("counter/1")) == 3);
  // prune, remove
  CHECK(value_of(st.prune("counter/1", 1)) == 2);
  REQUIRE_NO_ERROR(st.remove("counter/1", 3));
  CHECK(value_of(st.remove("counter/2")) == 1);
  CHECK(listing(st) == std::vector<entry>{{"counter/3", 1}});
}

TEST_CASE("snapshot store writes in durable and group_commit modes",
          "[snapshot_store]") {
  temp_dir tmp;
  for (auto m : {durability::durable, durability::group_commit}) {
    auto dir = tmp.path(ft::to_string(m));
    snapshot_store_options opts;
    opts.mode = m;
    opts.initial_map_size = 1 * mib;
    {
      auto st = open_store(dir, opts);
      CHECK(st.mode() == m);
      REQUIRE_NO_ERROR(st.write(make_snapshot("k", 1)));
      auto res = st.write_batch({make_snapshot("k", 2), make_snapshot("j", 1)});
      REQUIRE_OK(res);
      CHECK(std::none_of(res->begin(), res->end(),
                         [](const caf::error& e) { return bool{e}; }));
    }
    auto st = open_store(dir, opts);
    CHECK(value_of(st.latest("k")) == stored(make_snapshot("k", 2)));
    CHECK(value_of(st.latest("j")) == stored(make_snapshot("j", 1)));
  }
}

TEST_CASE("snapshot store takes keys up to LMDB's key limit",
          "[snapshot_store]") {
  temp_dir tmp;
  auto st = open_store(tmp.path());
  auto longest = make_snapshot(std::string(502, 'k'), 1);
  REQUIRE_NO_ERROR(st.write(longest));
  CHECK(value_of(st.latest(longest.key)) == stored(longest));
  auto too_long = make_snapshot(std::string(503, 'k'), 1);
  CHECK_ERRC(st.write(too_long), errc::corrupt_snapshot);
  auto res = st.write_batch({too_long, make_snapshot("short", 1)});
  REQUIRE_OK(res);
  CHECK_ERRC((*res)[0], errc::corrupt_snapshot);
  CHECK(!(*res)[1]);
  CHECK_ERRC(error_of(st.latest(too_long.key)), errc::snapshot_not_found);
  CHECK(value_of(st.latest_sequence(too_long.key)) == 0);
  CHECK_ERRC(st.write(make_snapshot("", 1)), errc::corrupt_snapshot);
  CHECK(listing(st).size() == 2);
}

// -- sequences ----------------------------------------------------------------

TEST_CASE("snapshot store rejects stale sequences and stays unchanged",
          "[snapshot_store]") {
  temp_dir tmp;
  auto st = open_store(tmp.path());
  auto x = make_snapshot("acct/9", 5);
  REQUIRE_NO_ERROR(st.write(x));
  auto before_list = value_of(st.list());
  SECTION("the same sequence") {
    auto dup = make_snapshot("acct/9", 5, 100, 42);
    auto err = st.write(dup);
    CHECK_ERRC(err, errc::stale_sequence);
    auto text = ft::render(err);
    CHECK_THAT(text, Contains("acct/9") && Contains("5"));
  }
  SECTION("a lower sequence") {
    auto err = st.write(make_snapshot("acct/9", 3));
    CHECK_ERRC(err, errc::stale_sequence);
    auto text = ft::render(err);
    CHECK_THAT(text, Contains("acct/9") && Contains("3") && Contains("5"));
    CHECK_ERRC(error_of(st.read("acct/9", 3)), errc::snapshot_not_found);
  }
  SECTION("sequence 0, which latest_sequence uses for none") {
    CHECK_ERRC(st.write(make_snapshot("fresh", 0)), errc::stale_sequence);
    CHECK(value_of(st.latest_sequence("fresh")) == 0);
  }
  auto after_list = value_of(st.list());
  REQUIRE(after_list.size() == before_list.size());
  for (size_t i = 0; i < after_list.size(); ++i) {
    CHECK(after_list[i].key == before_list[i].key);
    CHECK(after_list[i].sequence == before_list[i].sequence);
    CHECK(after_list[i].stored_size == before_list[i].stored_size);
  }
  CHECK(value_of(st.latest("acct/9")) == stored(x));
}

TEST_CASE("snapshot store write_batch answers per item", "[snapshot_store]") {
  temp_dir tmp;
  auto st = open_store(tmp.path());
  REQUIRE_NO_ERROR(st.write(make_snapshot("b", 4)));
  auto first_a2 = make_snapshot("a", 2, 64, 1);
  std::vector<snapshot_envelope> batch{
    make_snapshot("a", 1),          // 0: ok
    first_a2,                       // 1: ok
    make_snapshot("b", 5),          // 2: ok, above the stored 4
    make_snapshot("a", 2, 64, 2),   // 3: duplicate of item 1
    make_snapshot("a", 1, 64, 3),   // 4: below item 1
    make_snapshot("b", 4),          // 5: the stored one
    make_snapshot("bad\0key", 1),   // 6: the codec's reject (NUL)
    make_snapshot("a", 3),          // 7: ok
  };
  batch[6].key = std::string{"bad\0key", 7};
  auto res = st.write_batch(batch);
  REQUIRE_OK(res);
  REQUIRE(res->size() == batch.size());
  for (size_t i : {0, 1, 2, 7}) {
    INFO("item " << i << ": " << ft::render((*res)[i]));
    CHECK(!(*res)[i]);
  }
  for (size_t i : {3, 4, 5})
    CHECK_ERRC((*res)[i], errc::stale_sequence);
  CHECK_ERRC((*res)[6], errc::corrupt_snapshot);
  using entry = std::pair<std::string, uint64_t>;
  CHECK(listing(st) == std::vector<entry>{{"a", 1}, {"a", 2}, {"a", 3},
                                          {"b", 4}, {"b", 5}});
  // The first write of a#2 won; the duplicate left no trace.
  CHECK(value_of(st.read("a", 2)) == stored(first_a2));
  SECTION("a batch of only stale items writes nothing") {
    auto again = st.write_batch({make_snapshot("a", 3), make_snapshot("b", 1)});
    REQUIRE_OK(again);
    CHECK_ERRC((*again)[0], errc::stale_sequence);
    CHECK_ERRC((*again)[1], errc::stale_sequence);
    CHECK(listing(st).size() == 5);
  }
  SECTION("an empty batch") {
    auto none = st.write_batch({});
    REQUIRE_OK(none);
    CHECK(none->empty());
  }
}

// -- reading ------------------------------------------------------------------

TEST_CASE("snapshot store before() falls back to older snapshots",
          "[snapshot_store]") {
  temp_dir tmp;
  auto st = open_store(tmp.path());
  // Neighbours on both sides of k's range, including a key with k as prefix.
  for (auto& x : {make_snapshot("j", 5), make_snapshot("k", 1),
                  make_snapshot("k", 3), make_snapshot("k", 7),
                  make_snapshot("k/x", 2), make_snapshot("k0", 9)})
    REQUIRE_NO_ERROR(st.write(x));
  auto seq_before = [&](uint64_t s) -> uint64_t {
    auto x = st.before("k", s);
    if (!x) {
      CHECK_ERRC(x.error(), errc::snapshot_not_found);
      return 0;
    }
    CHECK(x->key == "k");
    CHECK(*x == stored(make_snapshot("k", x->sequence)));
    return x->sequence;
  };
  CHECK(seq_before(100) == 7);
  CHECK(seq_before(8) == 7);
  CHECK(seq_before(7) == 3);
  CHECK(seq_before(4) == 3);
  CHECK(seq_before(3) == 1);
  CHECK(seq_before(1) == 0);
  CHECK(seq_before(0) == 0);
  CHECK(value_of(st.latest("k")).sequence == 7);
  CHECK(value_of(st.latest("k/x")).sequence == 2);
  CHECK(value_of(st.latest_sequence("k0")) == 9);
  CHECK_ERRC(error_of(st.before("i", 10)), errc::snapshot_not_found);
  CHECK_ERRC(error_of(st.before("ka", 10)), errc::snapshot_not_found);
  CHECK_ERRC(error_of(st.latest("ka")), errc::snapshot_not_found);
  CHECK_ERRC(error_of(st.latest("zzz")), errc::snapshot_not_found);
}

TEST_CASE("snapshot store lists by key then sequence with header fields",
          "[snapshot_store]") {
  temp_dir tmp;
  auto st = open_store(tmp.path());
  std::vector<snapshot_envelope> xs;
  for (auto key : {"b", "a/2", "a", "c"})
    for (uint64_t s : {2, 10, 300})
      xs.push_back(make_snapshot(key, s, 10 * s));
  xs.back().actor_type = "other";
  xs.back().node_id = "node-z";
  // Write in a scrambled order (per key rising, as the store demands).
  std::vector<size_t> order(xs.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = (i % 4) * 3 + i / 4;
  for (auto i : order)
    REQUIRE_NO_ERROR(st.write(xs[i]));
  auto all = st.list();
  REQUIRE_OK(all);
  REQUIRE(all->size() == xs.size());
  auto expected = xs;
  std::sort(expected.begin(), expected.end(), [](auto& x, auto& y) {
    return std::tie(x.key, x.sequence) < std::tie(y.key, y.sequence);
  });
  for (size_t i = 0; i < expected.size(); ++i) {
    auto& info = (*all)[i];
    auto& x = expected[i];
    INFO(i << ": " << info.key << " #" << info.sequence);
    CHECK(info.key == x.key);
    CHECK(info.sequence == x.sequence);
    CHECK(info.actor_type == x.actor_type);
    CHECK(info.schema_version == x.schema_version);
    CHECK(info.timestamp_ms == x.timestamp_ms);
    CHECK(info.node_id == x.node_id);
    CHECK(info.payload_size == x.payload.size());
    CHECK(info.stored_size == value_of(ft::encode_snapshot(x)).size());
  }
  CHECK((*all)[0].key == "a");
  CHECK(all->back().actor_type == "other");
  using entry = std::pair<std::string, uint64_t>;
  CHECK(listing(st, std::string{"a"})
        == std::vector<entry>{{"a", 2}, {"a", 10}, {"a", 300}});
  CHECK(listing(st, std::string{"a/"}).empty());
  CHECK(listing(st, std::string{"d"}).empty());
}

// -- removing -----------------------------------------------------------------

TEST_CASE("snapshot store prune keeps exactly the K newest",
          "[snapshot_store]") {
  temp_dir tmp;
  auto st = open_store(tmp.path());
  for (uint64_t s = 1; s <= 10; ++s) {
    REQUIRE_NO_ERROR(st.write(make_snapshot("p", s * 2)));
    REQUIRE_NO_ERROR(st.write(make_snapshot("p/other", s)));
  }
  auto pruned = st.prune("p", 3);
  REQUIRE_OK(pruned);
  CHECK(*pruned == 7);
  using entry = std::pair<std::string, uint64_t>;
  CHECK(listing(st, std::string{"p"})
        == std::vector<entry>{{"p", 16}, {"p", 18}, {"p", 20}});
  CHECK(listing(st, std::string{"p/other"}).size() == 10);
  CHECK(value_of(st.prune("p", 3)) == 0);
  CHECK(value_of(st.prune("p", 50)) == 0);
  CHECK(value_of(st.prune("missing", 1)) == 0);
  CHECK(value_of(st.read("p", 16)) == stored(make_snapshot("p", 16)));
  // The sequence keeps rising after a prune: older ones stay stale.
  CHECK_ERRC(st.write(make_snapshot("p", 4)), errc::stale_sequence);
  CHECK(value_of(st.prune("p", 0)) == 3);
  CHECK_ERRC(error_of(st.latest("p")), errc::snapshot_not_found);
  CHECK(listing(st, std::string{"p/other"}).size() == 10);
}

TEST_CASE("snapshot store removes keys and single snapshots",
          "[snapshot_store]") {
  temp_dir tmp;
  auto st = open_store(tmp.path());
  for (uint64_t s = 1; s <= 4; ++s) {
    REQUIRE_NO_ERROR(st.write(make_snapshot("r", s)));
    REQUIRE_NO_ERROR(st.write(make_snapshot("r2", s)));
  }
  REQUIRE_NO_ERROR(st.remove("r", 2));
  CHECK_ERRC(st.remove("r", 2), errc::snapshot_not_found);
  CHECK_ERRC(error_of(st.read("r", 2)), errc::snapshot_not_found);
  CHECK(value_of(st.before("r", 3)).sequence == 1);
  auto n = st.remove("r");
  REQUIRE_OK(n);
  CHECK(*n == 3);
  CHECK_ERRC(error_of(st.remove("r")), errc::snapshot_not_found);
  CHECK_ERRC(st.remove("r", 4), errc::snapshot_not_found);
  CHECK(value_of(st.latest_sequence("r")) == 0);
  CHECK(listing(st, std::string{"r2"}).size() == 4);
  // With its snapshots gone, a key's sequence starts over (the store must
  // not remember the sequences it wrote before the removal).
  REQUIRE_NO_ERROR(st.write(make_snapshot("r", 1)));
  CHECK(value_of(st.latest("r")).sequence == 1);
  // Pruning keeps the newest, so older sequences stay stale.
  REQUIRE_NO_ERROR(st.write(make_snapshot("r2", 5)));
  REQUIRE_OK(st.prune("r2", 1));
  CHECK_ERRC(st.write(make_snapshot("r2", 4)), errc::stale_sequence);
  REQUIRE_NO_ERROR(st.write(make_snapshot("r2", 6)));
}

// -- growth and limits --------------------------------------------------------

TEST_CASE("snapshot store grows its map from a tiny start",
          "[snapshot_store]") {
  temp_dir tmp;
  auto dir = tmp.path();
  auto opts = fast();
  opts.initial_map_size = 64 * kib;
  size_t grown = 0;
  std::vector<snapshot_envelope> all;
  {
    auto st = open_store(dir, opts);
    CHECK(st.map_size() == 64 * kib);
    uint64_t seq = 0;
    auto next = [&](size_t i) {
      return make_snapshot("grow/" + std::to_string(i % 10), seq / 10 + 1,
                           4 * kib, 77);
    };
    for (size_t i = 0; i < 200; ++i, ++seq) {
      all.push_back(next(i));
      REQUIRE_NO_ERROR(st.write(all.back()));
    }
    for (size_t b = 0; b < 18; ++b) {
      std::vector<snapshot_envelope> batch;
      for (size_t i = 0; i < 100; ++i, ++seq)
        batch.push_back(next(seq));
      auto res = st.write_batch(batch);
      REQUIRE_OK(res);
      for (auto& e : *res)
        REQUIRE_NO_ERROR(e);
      all.insert(all.end(), batch.begin(), batch.end());
    }
    grown = st.map_size();
    CHECK(grown >= 8 * mib);
    for (auto& x : all) {
      auto r = st.read(x.key, x.sequence);
      REQUIRE_OK(r);
      REQUIRE(*r == stored(x));
    }
  }
  // Reopening with the same tiny start keeps the grown size.
  auto st = open_store(dir, opts);
  CHECK(st.map_size() >= grown);
  CHECK(value_of(st.list()).size() == all.size());
  auto problems = st.verify();
  REQUIRE_OK(problems);
  CHECK(problems->empty());
}

TEST_CASE("snapshot store reports store_full at max_map_size and loses "
          "nothing",
          "[snapshot_store]") {
  temp_dir tmp;
  auto dir = tmp.path();
  auto opts = fast();
  opts.initial_map_size = 64 * kib;
  opts.max_map_size = 1 * mib;
  auto st = open_store(dir, opts);
  std::vector<snapshot_envelope> acked;
  caf::error full;
  snapshot_envelope rejected;
  for (uint64_t i = 0; i < 1000 && !full; ++i) {
    auto x = make_snapshot("full/" + std::to_string(i % 4), i / 4 + 1,
                           4 * kib);
    if (auto err = st.write(x)) {
      full = err;
      rejected = x;
    } else {
      acked.push_back(x);
    }
  }
  REQUIRE(full);
  CHECK_ERRC(full, errc::store_full);
  CHECK_THAT(ft::render(full), Contains(rejected.key));
  CHECK(acked.size() > 50);
  CHECK(st.map_size() <= 1 * mib);
  CHECK(st.map_size() > 512 * kib);
  CHECK_ERRC(error_of(st.read(rejected.key, rejected.sequence)),
             errc::snapshot_not_found);
  // A batch that does not fit fails as a whole and writes none of it.
  std::vector<snapshot_envelope> batch;
  for (uint64_t i = 0; i < 4; ++i)
    batch.push_back(make_snapshot("full/" + std::to_string(i), 1000, 4 * kib));
  batch.push_back(make_snapshot("full/new", 1, 10));
  auto res = st.write_batch(batch);
  REQUIRE_FALSE(res);
  CHECK_ERRC(res.error(), errc::store_full);
  CHECK(value_of(st.latest_sequence("full/new")) == 0);
  for (uint64_t i = 0; i < 4; ++i)
    CHECK(value_of(st.latest_sequence("full/" + std::to_string(i))) < 1000);
  auto check_all = [&](const snapshot_store& s) {
    for (auto& x : acked) {
      auto r = s.read(x.key, x.sequence);
      REQUIRE_OK(r);
      REQUIRE(*r == stored(x));
    }
    CHECK(value_of(s.list()).size() == acked.size());
    auto problems = s.verify();
    REQUIRE_OK(problems);
    CHECK(problems->empty());
  };
  check_all(st);
  // Close before reopening: LMDB forbids one process opening an
  // environment twice at once.
  { auto closing = std::move(st); }
  auto again = open_store(dir, opts);
  check_all(again);
  // Deleting makes room again.
  REQUIRE_OK(again.remove("full/0"));
  REQUIRE_NO_ERROR(again.write(rejected));
  CHECK(value_of(again.latest(rejected.key)) == stored(rejected));
}

TEST_CASE("snapshot store reports store_full when the disk is full and "
          "loses nothing",
          "[snapshot_store]") {
  // A full disk, simulated with a file size limit (RLIMIT_FSIZE: writes past
  // it fail with EFBIG, as they would with ENOSPC) in a child process.
  temp_dir tmp;
  auto dir = tmp.path();
  std::vector<snapshot_envelope> before_full;
  {
    auto st = open_store(dir, snapshot_store_options{});
    for (uint64_t s = 1; s <= 5; ++s) {
      before_full.push_back(make_snapshot("disk/" + std::to_string(s), s,
                                          1000 * s));
      REQUIRE_NO_ERROR(st.write(before_full.back()));
    }
  }
  auto limit = fs::file_size(fs::path{dir} / "data.mdb");
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  auto pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{limit, limit};
    std::string msg;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
      msg = "setrlimit failed";
    } else if (auto st = snapshot_store::open(dir, {}); !st) {
      msg = "open: " + ft::render(st.error());
    } else {
      // Large enough to need new pages at the end of the file.
      auto err = st->write(make_snapshot("disk/big", 1, 256 * kib));
      msg = (ft::is(err, errc::store_full) ? "1" : "0") + ft::render(err);
      // The store stays usable: trying again fails the same way.
      auto again = st->write(make_snapshot("disk/big", 1, 256 * kib));
      if (!ft::is(again, errc::store_full))
        msg += " / then: " + ft::render(again);
    }
    auto n = ::write(fds[1], msg.data(), msg.size());
    _exit(n == static_cast<ssize_t>(msg.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string msg;
  char buf[1024];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) != 0;)
    if (n > 0)
      msg.append(buf, static_cast<size_t>(n));
    else if (errno != EINTR)
      break;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  INFO("child said: " << msg);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(!msg.empty());
  CHECK(msg[0] == '1');
  CHECK_THAT(msg, Contains("disk/big") && Contains("File too large"));
  CHECK_THAT(msg, !Contains("then:"));
  // Without the limit, everything from before is there and intact, and the
  // store takes writes again.
  auto st = open_store(dir, snapshot_store_options{});
  for (auto& x : before_full)
    CHECK(value_of(st.read(x.key, x.sequence)) == stored(x));
  CHECK_ERRC(error_of(st.latest("disk/big")), errc::snapshot_not_found);
  CHECK(value_of(st.verify()).empty());
  REQUIRE_NO_ERROR(st.write(make_snapshot("disk/big", 1, 256 * kib)));
}

// -- opening ------------------------------------------------------------------

TEST_CASE("snapshot store persists across reopening", "[snapshot_store]") {
  temp_dir tmp;
  auto dir = tmp.path("nested/deeper/store");
  auto x = make_snapshot("persist", 41, 3000);
  {
    auto st = open_store(dir);
    REQUIRE_NO_ERROR(st.write(make_snapshot("persist", 40)));
    REQUIRE_NO_ERROR(st.write(x));
  }
  CHECK(fs::exists(fs::path{dir} / "data.mdb"));
  CHECK(fs::exists(fs::path{dir} / "lock.mdb"));
  auto opts = fast();
  opts.create = false;
  auto st = open_store(dir, opts);
  CHECK(value_of(st.latest("persist")) == stored(x));
  CHECK(value_of(st.list()).size() == 2);
  CHECK_ERRC(st.write(make_snapshot("persist", 41)), errc::stale_sequence);
  // A moved store keeps working.
  auto moved = std::move(st);
  CHECK(value_of(moved.latest_sequence("persist")) == 41);
}

TEST_CASE("snapshot store opens read-only", "[snapshot_store]") {
  temp_dir tmp;
  auto dir = tmp.path();
  auto x = make_snapshot("ro", 2);
  {
    auto st = open_store(dir);
    REQUIRE_NO_ERROR(st.write(make_snapshot("ro", 1)));
    REQUIRE_NO_ERROR(st.write(x));
  }
  snapshot_store_options opts;
  opts.read_only = true;
  auto st = open_store(dir, opts);
  CHECK(value_of(st.latest("ro")) == stored(x));
  CHECK(value_of(st.before("ro", 2)).sequence == 1);
  CHECK(value_of(st.list()).size() == 2);
  CHECK(value_of(st.verify()).empty());
  auto is_read_only = [](const caf::error& err) {
    INFO(ft::render(err));
    CHECK(ft::is(err, errc::store_error));
    CHECK_THAT(ft::render(err), Contains("read-only"));
  };
  is_read_only(st.write(make_snapshot("ro", 3)));
  is_read_only(error_of(st.write_batch({make_snapshot("ro", 3)})));
  is_read_only(error_of(st.prune("ro", 0)));
  is_read_only(error_of(st.remove("ro")));
  is_read_only(st.remove("ro", 1));
  CHECK(value_of(st.latest_sequence("ro")) == 2);
  SECTION("no store to open read-only") {
    auto empty = tmp.path("empty");
    fs::create_directories(empty);
    auto res = snapshot_store::open(empty, opts);
    REQUIRE_FALSE(res);
    CHECK_ERRC(res.error(), errc::store_unavailable);
    CHECK_THAT(ft::render(res.error()), Contains(empty));
    CHECK_FALSE(fs::exists(fs::path{empty} / "data.mdb"));
  }
}

TEST_CASE("snapshot store is unavailable for bad directories",
          "[snapshot_store]") {
  temp_dir tmp;
  auto expect_unavailable = [](const std::string& dir,
                               snapshot_store_options opts,
                               const std::string& cause) {
    auto res = snapshot_store::open(dir, opts);
    REQUIRE_FALSE(res);
    auto text = ft::render(res.error());
    INFO(text);
    CHECK(ft::is(res.error(), errc::store_unavailable));
    CHECK_THAT(text, Contains(dir) && Contains(cause));
  };
  SECTION("missing directory without create") {
    auto opts = fast();
    opts.create = false;
    auto dir = tmp.path("missing");
    expect_unavailable(dir, opts, "no such directory");
    CHECK_FALSE(fs::exists(dir));
  }
  SECTION("missing directory, read-only") {
    snapshot_store_options opts;
    opts.read_only = true;
    expect_unavailable(tmp.path("missing"), opts, "no such directory");
  }
  SECTION("a file instead of a directory") {
    auto file = tmp.path("file");
    std::ofstream{file} << "not a store";
    expect_unavailable(file, fast(), "not a directory");
    expect_unavailable(file + "/below", fast(), "ot a directory");
  }
  SECTION("a directory holding something that is not an LMDB store") {
    auto dir = tmp.path("garbage");
    fs::create_directories(dir);
    {
      std::ofstream out{dir + "/data.mdb", std::ios::binary};
      for (int i = 0; i < 4096; ++i)
        out << "this is not an LMDB environment. ";
    }
    expect_unavailable(dir, fast(), "MDB_INVALID");
  }
}

TEST_CASE("snapshot store is unavailable in a directory without permissions",
          "[snapshot_store]") {
  // As root, chmod does not stop this process: the open then runs in a
  // child that dropped to user nobody, where it does.
  temp_dir tmp;
  fs::permissions(tmp.base, fs::perms::owner_all | fs::perms::group_exec
                              | fs::perms::others_exec);
  auto expect_denied = [](const std::string& dir) {
    auto [unavailable, text] = as_unprivileged([&] {
      auto res = snapshot_store::open(dir, fast());
      return res ? caf::error{} : res.error();
    });
    INFO(text);
    CHECK(unavailable);
    CHECK_THAT(text, Contains(dir) && Contains("Permission denied"));
  };
  SECTION("an empty directory") {
    auto dir = tmp.path("locked");
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::none);
    expect_denied(dir);
  }
  SECTION("an existing store") {
    auto dir = tmp.path("locked_store");
    {
      auto st = open_store(dir);
      REQUIRE_NO_ERROR(st.write(make_snapshot("x", 1)));
    }
    fs::permissions(dir, fs::perms::none);
    expect_denied(dir);
    // Still intact for whoever may open it.
    fs::permissions(dir, fs::perms::owner_all);
    auto st = open_store(dir);
    CHECK(value_of(st.latest_sequence("x")) == 1);
  }
}

// -- corruption ---------------------------------------------------------------

TEST_CASE("snapshot store detects bytes corrupted on disk",
          "[snapshot_store]") {
  temp_dir tmp;
  auto dir = tmp.path();
  // Larger than a page: LMDB keeps it in overflow pages, written once, so
  // its bytes appear in data.mdb exactly where the live record is.
  auto victim = make_snapshot("victim", 1, 6000, 99);
  auto sibling = make_snapshot("victim", 2, 6000, 100);
  {
    auto st = open_store(dir);
    REQUIRE_NO_ERROR(st.write(make_snapshot("aaa", 1, 300)));
    REQUIRE_NO_ERROR(st.write(victim));
    REQUIRE_NO_ERROR(st.write(sibling));
    REQUIRE_NO_ERROR(st.write(make_snapshot("zzz", 1, 300)));
    REQUIRE_NO_ERROR(st.write(make_snapshot("zzz", 2, 7000)));
  }
  auto file = fs::path{dir} / "data.mdb";
  auto bytes = read_file(file);
  std::string needle(reinterpret_cast<const char*>(victim.payload.data())
                       + 3000,
                     64);
  std::vector<size_t> hits;
  for (auto pos = bytes.find(needle); pos != std::string::npos;
       pos = bytes.find(needle, pos + 1))
    hits.push_back(pos);
  REQUIRE(hits.size() == 1);
  {
    std::fstream f{file, std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(static_cast<std::streamoff>(hits[0] + 10));
    f.put(static_cast<char>(bytes[hits[0] + 10] ^ 0x20));
    REQUIRE(f.good());
  }
  auto st = open_store(dir);
  auto r = st.read("victim", 1);
  REQUIRE_FALSE(r);
  CHECK_ERRC(r.error(), errc::checksum_mismatch);
  CHECK_ERRC(error_of(st.before("victim", 2)), errc::checksum_mismatch);
  CHECK(value_of(st.read("victim", 2)) == stored(sibling));
  CHECK(value_of(st.latest("victim")) == stored(sibling));
  auto problems = st.verify();
  REQUIRE_OK(problems);
  REQUIRE(problems->size() == 1);
  auto& p = problems->front();
  CHECK(p.key == "victim");
  CHECK(p.sequence == 1);
  CHECK_ERRC(p.reason, errc::checksum_mismatch);
  // The listing still shows every record.
  CHECK(value_of(st.list()).size() == 5);
}

// -- processes ----------------------------------------------------------------

TEST_CASE("snapshot store takes concurrent writes from two processes",
          "[snapshot_store]") {
  temp_dir tmp;
  auto dir = tmp.path();
  constexpr int rounds = 150;
  child_process w1{{"concurrent", dir, "w1", std::to_string(rounds)}};
  child_process w2{{"concurrent", dir, "w2", std::to_string(rounds)}};
  drain({&w1, &w2});
  for (auto w : {&w1, &w2}) {
    auto status = w->wait_for_exit();
    INFO("writer output: " << w->output().substr(0, 300));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }
  auto st = open_store(dir);
  std::set<std::pair<std::string, uint64_t>> acked;
  size_t shared = 0;
  for (auto w : {&w1, &w2}) {
    auto lines = w->lines();
    CHECK(lines.size() == size_t{rounds} * 3);
    for (auto& line : lines) {
      std::istringstream in{line};
      std::string key;
      uint64_t seq = 0;
      uint32_t crc = 0;
      REQUIRE((in >> key >> seq >> crc));
      // No (key, sequence) acknowledged twice, not even across processes.
      CHECK(acked.emplace(key, seq).second);
      shared += key.rfind("shared/", 0) == 0 ? 1 : 0;
      auto r = st.read(key, seq);
      INFO(line);
      REQUIRE_OK(r);
      CHECK(r->node_id == (w == &w1 ? "w1" : "w2"));
      CHECK(ft::crc32c(r->payload.data(), r->payload.size()) == crc);
    }
  }
  CHECK(shared == size_t{rounds} * 2);
  CHECK(value_of(st.latest_sequence("shared/0")) == rounds);
  CHECK(value_of(st.latest_sequence("shared/1")) == rounds);
  CHECK(value_of(st.list()).size() == acked.size());
  auto problems = st.verify();
  REQUIRE_OK(problems);
  CHECK(problems->empty());
}

TEST_CASE("snapshot store survives a writer killed at random moments",
          "[snapshot_store]") {
  temp_dir tmp;
  auto dir = tmp.path();
  const std::string key = "crash/counter";
  std::mt19937 gen{std::random_device{}()};
  std::uniform_int_distribution<int> pause_ms{5, 50};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(25);
  uint64_t last_acked = 0;
  int kills_after_acks = 0;
  for (int round = 0; round < 50; ++round) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    child_process writer{{"crash", dir, key}};
    // Time the kill from the end of start-up (tens of ms of loading
    // libraries), so it lands among the writes.
    REQUIRE(writer.wait_for_line("ready", 10000));
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(gen)));
    writer.kill();
    auto status = writer.wait_for_exit();
    while (writer.read_some()) {
      // until EOF
    }
    INFO("round " << round << ", output: " << writer.output().substr(0, 200));
    // Killed by us, not dead of an error of its own.
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);
    auto lines = writer.lines();
    REQUIRE(lines.at(0) == "ready");
    lines.erase(lines.begin());
    if (!lines.empty()) {
      auto seq = std::stoull(lines.back());
      REQUIRE(seq > last_acked);
      last_acked = seq;
      ++kills_after_acks;
    }
    auto st = open_store(dir, snapshot_store_options{});
    auto problems = st.verify();
    REQUIRE_OK(problems);
    CHECK(problems->empty());
    auto latest = st.latest_sequence(key);
    REQUIRE_OK(latest);
    CHECK(*latest >= last_acked);
    if (*latest > 0)
      CHECK(value_of(st.latest(key)).sequence == *latest);
    if (last_acked > 0) {
      auto x = st.read(key, last_acked);
      REQUIRE_OK(x);
      CHECK(x->sequence == last_acked);
    }
  }
  // Many kills must have hit a writer in full swing, or this proved little
  // (a durable write costs 1 to 20 ms, depending on the disk's load).
  CHECK(kills_after_acks >= 10);
}
