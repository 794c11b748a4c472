#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#if defined(__GLIBC__)
#  include <malloc.h>
#endif

#include "actors/fixture.hpp"

using namespace std::chrono_literals;

namespace ft::test {

namespace {

namespace fs = std::filesystem;

/// A fresh directory under the system temp dir, removed at the end.
struct temp_dir {
  fs::path path;

  temp_dir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path()
           / ("ft-writer-" + std::to_string(::getpid()) + "-"
              + std::to_string(n++));
    fs::remove_all(path);
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }

  std::string str() const {
    return path.string();
  }
};

snapshot_envelope envelope(const std::string& key, uint64_t seq,
                           std::string payload = "state") {
  snapshot_envelope x;
  x.key = key;
  x.actor_type = "counter";
  x.sequence = seq;
  x.timestamp_ms = 1700000000000 + static_cast<int64_t>(seq);
  x.payload.assign(payload.begin(), payload.end());
  return x;
}

struct writer_fixture : fixture {
  temp_dir dir;

  caf::actor spawn_writer(durability mode, caf::timespan window = {},
                          size_t max_batch = 1024, size_t keep = 0) {
    snapshot_writer_options opts;
    opts.keep_per_key = keep;
    opts.prune_interval = 100ms;
    opts.dir = dir.str();
    opts.store.mode = mode;
    opts.group_window = window;
    opts.max_batch = max_batch;
    auto res = spawn_snapshot_writer(*sys, opts);
    REQUIRE(res);
    keep_alive.push_back(*res);
    return *res;
  }

  /// Sends a write from a fresh actor without running; the result lands in
  /// the returned slot once the test runs the system.
  std::shared_ptr<std::optional<caf::expected<uint64_t>>>
  write_async(const caf::actor& writer, snapshot_envelope x) {
    auto res = std::make_shared<std::optional<caf::expected<uint64_t>>>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(writer, caf::infinite, snapshot_write_atom::value, x)
        .then([=](uint64_t seq) { *res = seq; },
              [=](caf::error& err) { *res = std::move(err); });
    });
    return res;
  }

  snapshot_writer_stats stats(const caf::actor& writer) {
    auto res = ask<snapshot_writer_stats>(writer, snapshot_stats_atom::value);
    REQUIRE(res);
    REQUIRE(*res);
    return **res;
  }
};

} // namespace

TEST_CASE_METHOD(writer_fixture,
                 "group commit puts concurrent writes into one transaction",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::group_commit);
  std::vector<std::shared_ptr<std::optional<caf::expected<uint64_t>>>> slots;
  for (uint64_t i = 1; i <= 5; ++i)
    slots.push_back(write_async(writer, envelope("k" + std::to_string(i), i)));
  run();
  for (uint64_t i = 1; i <= 5; ++i) {
    auto& slot = *slots[i - 1];
    REQUIRE(slot);
    REQUIRE(*slot);
    CHECK(**slot == i);
  }
  auto st = stats(writer);
  CHECK(st.writes == 5);
  CHECK(st.transactions == 1);
  CHECK(st.largest_batch == 5);
  CHECK(st.rejected == 0);
}

TEST_CASE_METHOD(writer_fixture,
                 "a group window holds the answer until the commit",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::group_commit, 10ms);
  auto a = write_async(writer, envelope("a", 1));
  run();
  CHECK_FALSE(*a); // waiting for the window
  auto b = write_async(writer, envelope("b", 1));
  run();
  CHECK_FALSE(*b);
  advance(10ms);
  REQUIRE(*a);
  REQUIRE(*b);
  CHECK(**a == 1u);
  CHECK(**b == 1u);
  CHECK(stats(writer).transactions == 1);
}

TEST_CASE_METHOD(writer_fixture,
                 "a stale write in a batch fails alone",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::group_commit);
  auto first = write_async(writer, envelope("acct", 5));
  run();
  REQUIRE(*first);
  REQUIRE(**first);
  auto stale = write_async(writer, envelope("acct", 5));
  auto other = write_async(writer, envelope("other", 1));
  auto newer = write_async(writer, envelope("acct", 6));
  run();
  REQUIRE(*stale);
  REQUIRE_FALSE(**stale);
  CHECK(is((*stale)->error(), errc::stale_sequence));
  REQUIRE(*other);
  CHECK(**other == 1u);
  REQUIRE(*newer);
  CHECK(**newer == 6u);
  auto st = stats(writer);
  CHECK(st.writes == 3);
  CHECK(st.rejected == 1);
  CHECK(st.transactions == 2);
}

TEST_CASE_METHOD(writer_fixture,
                 "durable mode commits each write on its own",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::durable);
  auto a = write_async(writer, envelope("a", 1));
  auto b = write_async(writer, envelope("b", 1));
  run();
  REQUIRE(*a);
  REQUIRE(*b);
  CHECK(**a == 1u);
  CHECK(**b == 1u);
  auto st = stats(writer);
  CHECK(st.transactions == 2);
  CHECK(st.largest_batch == 1);
}

TEST_CASE_METHOD(writer_fixture, "max_batch caps a transaction",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::group_commit, 1s, 2);
  std::vector<std::shared_ptr<std::optional<caf::expected<uint64_t>>>> slots;
  for (uint64_t i = 1; i <= 5; ++i)
    slots.push_back(write_async(writer, envelope("k", i)));
  run();
  // Two full batches committed at once; the fifth waits for the window.
  CHECK(*slots[3]);
  CHECK_FALSE(*slots[4]);
  advance(1s);
  REQUIRE(*slots[4]);
  CHECK(**slots[4] == 5u);
  auto st = stats(writer);
  CHECK(st.transactions == 3);
  CHECK(st.largest_batch == 2);
}

TEST_CASE_METHOD(writer_fixture,
                 "a read sees writes still waiting in the batch",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::group_commit, 1s);
  auto a = write_async(writer, envelope("acct", 3, "balance=42"));
  run();
  CHECK_FALSE(*a);
  auto latest = ask<snapshot_envelope>(writer, snapshot_latest_atom::value,
                                       std::string{"acct"});
  REQUIRE(latest);
  REQUIRE(*latest);
  CHECK((*latest)->sequence == 3u);
  CHECK((*latest)->payload == envelope("acct", 3, "balance=42").payload);
  REQUIRE(*a); // the read committed the batch and answered the writer
  CHECK(**a == 3u);
}

TEST_CASE_METHOD(writer_fixture,
                 "keep_per_key prunes the keys written since the last round, "
                 "once per prune_interval, in one transaction",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::group_commit, {}, 1024, 3);
  for (uint64_t i = 1; i <= 6; ++i)
    write_async(writer, envelope("a", i));
  for (uint64_t i = 1; i <= 2; ++i)
    write_async(writer, envelope("b", i));
  run();
  auto count = [&](const std::string& key) {
    auto xs = ask<std::vector<snapshot_info>>(writer, snapshot_list_atom::value,
                                              key);
    REQUIRE(xs);
    REQUIRE(*xs);
    return (*xs)->size();
  };
  // Nothing is pruned before the interval: writes never wait for it.
  CHECK(count("a") == 6);
  auto transactions = stats(writer).transactions;
  advance(100ms);
  CHECK(count("a") == 3);
  CHECK(count("b") == 2);
  auto st = stats(writer);
  CHECK(st.pruned == 3);
  CHECK(st.transactions == transactions); // prunes are not write batches
  auto latest = ask<snapshot_envelope>(writer, snapshot_latest_atom::value,
                                       std::string{"a"});
  REQUIRE(latest);
  REQUIRE(*latest);
  CHECK((*latest)->sequence == 6u);
  // Later writes are pruned in a later round; without writes no timer.
  write_async(writer, envelope("a", 7));
  run();
  CHECK(count("a") == 4);
  advance(100ms);
  CHECK(count("a") == 3);
  CHECK_FALSE(sched->has_pending_timeout());
}

TEST_CASE_METHOD(writer_fixture, "reads, listing, pruning and removal",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::nosync);
  for (uint64_t i = 1; i <= 4; ++i)
    write_async(writer, envelope("acct", i));
  write_async(writer, envelope("other", 7));
  run();
  auto before = ask<snapshot_envelope>(writer, snapshot_before_atom::value,
                                       std::string{"acct"}, uint64_t{4});
  REQUIRE(before);
  REQUIRE(*before);
  CHECK((*before)->sequence == 3u);
  auto missing = ask<snapshot_envelope>(writer, snapshot_latest_atom::value,
                                        std::string{"nobody"});
  REQUIRE(missing);
  REQUIRE_FALSE(*missing);
  CHECK(is(missing->error(), errc::snapshot_not_found));
  auto listed = ask<std::vector<snapshot_info>>(writer,
                                                snapshot_list_atom::value);
  REQUIRE(listed);
  REQUIRE(*listed);
  REQUIRE((*listed)->size() == 5);
  CHECK((*listed)->front().key == "acct");
  CHECK((*listed)->back().key == "other");
  auto pruned = ask<uint64_t>(writer, snapshot_prune_atom::value,
                              std::string{"acct"}, uint64_t{2});
  REQUIRE(pruned);
  REQUIRE(*pruned);
  CHECK(**pruned == 2u);
  auto removed = ask<uint64_t>(writer, snapshot_remove_atom::value,
                               std::string{"other"});
  REQUIRE(removed);
  REQUIRE(*removed);
  CHECK(**removed == 1u);
  auto problems = ask<std::vector<snapshot_problem>>(
    writer, snapshot_verify_atom::value);
  REQUIRE(problems);
  REQUIRE(*problems);
  CHECK((*problems)->empty());
  listed = ask<std::vector<snapshot_info>>(writer, snapshot_list_atom::value);
  REQUIRE(listed);
  REQUIRE(*listed);
  REQUIRE((*listed)->size() == 2);
  CHECK((*listed)->at(0).sequence == 3u);
  CHECK((*listed)->at(1).sequence == 4u);
}

TEST_CASE_METHOD(writer_fixture,
                 "the writer commits its pending batch when it stops",
                 "[snapshot_writer]") {
  auto writer = spawn_writer(durability::group_commit, 1h);
  auto a = write_async(writer, envelope("acct", 9));
  run();
  CHECK_FALSE(*a);
  caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
  run();
  REQUIRE(*a);
  CHECK(**a == 9u);
  keep_alive.clear();
  run();
  auto store = snapshot_store::open(dir.str());
  REQUIRE(store);
  auto latest = store->latest("acct");
  REQUIRE(latest);
  CHECK(latest->sequence == 9u);
}

TEST_CASE_METHOD(fixture,
                 "spawning a writer on an unusable directory names it",
                 "[snapshot_writer]") {
  snapshot_writer_options opts;
  opts.dir = "/proc/ft-no-such-dir/store";
  opts.store.create = false;
  auto res = spawn_snapshot_writer(*sys, opts);
  REQUIRE_FALSE(res);
  CHECK(is(res.error(), errc::store_unavailable));
  CHECK_THAT(render(res.error()),
             Catch::Matchers::Contains("/proc/ft-no-such-dir/store"));
}

#if defined(__GLIBC__)

TEST_CASE("set_heap_headroom keeps what a commit frees at the heap's top",
          "[snapshot_writer]") {
  // A group commit's pattern: many page-sized blocks (LMDB's dirty pages),
  // all freed at once. Returns what the heap keeps on top afterwards.
  auto allocate_and_free = [] {
    std::vector<void*> blocks;
    for (int i = 0; i < 2048; ++i) { // 16 MiB
      auto p = std::malloc(8192);
      REQUIRE(p != nullptr);
      static_cast<volatile char*>(p)[0] = 1; // not elided
      blocks.push_back(p);
    }
    for (auto i = blocks.rbegin(); i != blocks.rend(); ++i)
      std::free(*i);
    return mallinfo2().keepcost;
  };
  constexpr size_t headroom = size_t{8} << 20;
  // Trims past 1 MiB whatever this process did before (a freed large block
  // raises glibc's trim threshold): without headroom the heap shrinks back.
  if (mallopt(M_TRIM_THRESHOLD, 1 << 20) != 1) {
    // glibc's malloc is not the one in use (a sanitizer's allocator
    // replaces it): the setting cannot take effect, and says so.
    CHECK_FALSE(set_heap_headroom(headroom));
    return;
  }
  CHECK(allocate_and_free() < headroom);
  REQUIRE(set_heap_headroom(headroom));
  CHECK(allocate_and_free() >= headroom);
}

#endif

} // namespace ft::test
