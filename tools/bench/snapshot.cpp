// ft-bench-snapshot: the snapshot store and writer against raw LMDB, each
// measured in the same run. Prints one JSON object per line (stdout);
// progress goes to stderr.
//
// - snapshot.store_vs_raw (256 B, 4 KiB, 64 KiB; nosync, and durable at
//   4 KiB): snapshots/s through `snapshot_store::write`, one transaction per
//   write, vs `mdb_put` of the same stored bytes (the encoded envelope)
//   under the same LMDB key (the entity key, a NUL, the big-endian
//   sequence), one transaction per put, with the same environment flags:
//   the ratio is the store's own cost (encoding, checksum, sequence check).
//   Raw puts of the bare payload are reported as `raw_bare_payload`.
//   nosync shows that cost; durable is dominated by fsync.
// - snapshot.group_commit_4k: durable snapshots/s through the writer actor
//   in group_commit mode, many writers in flight, vs raw LMDB with 1,000
//   puts of the same stored bytes under the same key layout (256 entity
//   keys round robin) per durable transaction. The writer
//   and the raw loop each get a warm-up pass first (half as many writes,
//   other keys), so both are measured in a steady state, and the process
//   keeps a node's heap headroom (`ft::set_heap_headroom`).
// - snapshot.restore_4k_p99: the restore path of an actor — read
//   transaction, latest(key), checksum and envelope decode, state decode —
//   p99 in microseconds. The environment is opened once per process (LMDB's
//   rule), so its cost is reported separately (`open_us`), not in the p99.

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <random>
#include <string>
#include <vector>

#include <lmdb.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "ft/checkpoint.hpp"
#include "ft/error.hpp"
#include "ft/snapshot.hpp"
#include "ft/snapshot_store.hpp"
#include "ft/snapshot_writer.hpp"

#include "bench_json.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ft::bench::emit;
using ft::bench::result_line;
using ft::bench::seconds_since;

namespace {

void progress(const std::string& what) {
  std::fprintf(stderr, "[bench] %s\n", what.c_str());
  std::fflush(stderr);
}

/// A fresh directory, removed at the end.
struct scratch_dir {
  fs::path path;

  explicit scratch_dir(const std::string& name) {
    path = fs::temp_directory_path()
           / ("ft-bench-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }

  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

ft::byte_buffer payload_of(size_t size) {
  ft::byte_buffer x(size);
  std::mt19937 rng{42};
  for (auto& b : x)
    b = static_cast<uint8_t>(rng());
  return x;
}

ft::snapshot_envelope envelope(const std::string& key, uint64_t seq,
                               const ft::byte_buffer& payload) {
  ft::snapshot_envelope x;
  x.key = key;
  x.actor_type = "bench";
  x.sequence = seq;
  x.timestamp_ms = 1'700'000'000'000;
  x.payload = payload;
  return x;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "[bench] fatal: %s\n", what.c_str());
  std::exit(1);
}

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS)
    die(std::string{what} + ": " + mdb_strerror(rc));
}

// -- raw LMDB baseline --------------------------------------------------------

/// Raw puts of `payload` under 8-byte keys, `per_txn` puts per transaction,
/// with the flags the store uses. Returns puts per second.
/// `keys` = 0: 8-byte sequential keys. Otherwise the store's own key
/// layout for that many entity keys written round robin (`bench/<k>`, a NUL,
/// the big-endian sequence), so both sides touch the same B-tree shape.
double raw_lmdb_rate(const fs::path& dir, const ft::byte_buffer& payload,
                     bool nosync, size_t total, size_t per_txn,
                     size_t warmup = 0, size_t keys = 0) {
  MDB_env* env = nullptr;
  check(mdb_env_create(&env), "mdb_env_create");
  check(mdb_env_set_mapsize(env, size_t{4} << 30), "mdb_env_set_mapsize");
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (nosync ? MDB_NOSYNC : 0);
  check(mdb_env_open(env, dir.c_str(), flags, 0644), "mdb_env_open");
  MDB_dbi dbi;
  {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, nullptr, 0, &dbi), "mdb_dbi_open");
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  }
  // Puts keys [first, last), `per_txn` per transaction.
  auto key_of = [keys](uint64_t n, const char* prefix) {
    std::string k = prefix + std::to_string(n % keys);
    k += '\0';
    uint64_t seq = __builtin_bswap64(n / keys + 1);
    k.append(reinterpret_cast<const char*>(&seq), sizeof(seq));
    return k;
  };
  std::vector<std::string> named;
  if (keys > 0)
    for (uint64_t n = 0; n < total; ++n)
      named.push_back(key_of(n, "bench/"));
  auto put_range = [&](uint64_t first, uint64_t last) {
    uint64_t n = first;
    while (n < last) {
      MDB_txn* txn = nullptr;
      check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
      for (size_t i = 0; i < per_txn && n < last; ++i, ++n) {
        uint64_t k = __builtin_bswap64(n);
        MDB_val key{sizeof(k), &k};
        std::string warm;
        if (keys > 0 && n < total) {
          key = MDB_val{named[n].size(), named[n].data()};
        } else if (keys > 0) {
          warm = key_of(n - total, "warmup/");
          key = MDB_val{warm.size(), warm.data()};
        }
        MDB_val val{payload.size(), const_cast<uint8_t*>(payload.data())};
        check(mdb_put(txn, dbi, &key, &val, 0), "mdb_put");
      }
      check(mdb_txn_commit(txn), "mdb_txn_commit");
    }
  };
  // The same warm-up the writer gets: the file and the map grown first.
  put_range(total, total + warmup);
  auto t0 = std::chrono::steady_clock::now();
  put_range(0, total);
  auto rate = static_cast<double>(total) / seconds_since(t0);
  mdb_env_close(env);
  return rate;
}

// -- store_vs_raw -------------------------------------------------------------

/// The entity key of store_vs_raw: what raw_lmdb_rate names its only key
/// (`keys` = 1), so both sides store the record under one LMDB key.
constexpr const char* single_key = "bench/0";

double store_rate(const fs::path& dir, const ft::byte_buffer& payload,
                  ft::durability mode, size_t total) {
  ft::snapshot_store_options opts;
  opts.mode = mode;
  opts.initial_map_size = size_t{4} << 30;
  auto store = ft::snapshot_store::open(dir.string(), opts);
  if (!store)
    die(ft::render(store.error()));
  auto x = envelope(single_key, 0, payload);
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t seq = 1; seq <= total; ++seq) {
    x.sequence = seq;
    if (auto err = store->write(x))
      die(ft::render(err));
  }
  return static_cast<double>(total) / seconds_since(t0);
}

void bench_store_vs_raw(size_t size, ft::durability mode, size_t total) {
  auto nosync = mode == ft::durability::nosync;
  auto label = std::to_string(size) + " B, " + ft::to_string(mode);
  progress("store_vs_raw: " + label);
  auto payload = payload_of(size);
  // The baseline stores the same bytes the store stores (the encoded
  // envelope), so the ratio is the store's own cost: encoding, checksum,
  // sequence check. Raw puts of the bare payload are reported alongside.
  auto encoded = ft::encode_snapshot(envelope(single_key, 1, payload));
  if (!encoded)
    die(ft::render(encoded.error()));
  // Keep the best of four rounds each: the disk and the machine are
  // shared, so single runs are noisy.
  double best_store = 0;
  double best_raw = 0;
  double best_bare = 0;
  // Each run starts with the page cache flushed (`sync`, not timed): a
  // nosync run leaves its pages dirty, and their writeback would otherwise
  // slow down whichever run comes next.
  auto run_raw = [&] {
    ::sync();
    scratch_dir dir{"raw"};
    best_raw = std::max(best_raw,
                        raw_lmdb_rate(dir.path, *encoded, nosync, total, 1,
                                      0, 1));
  };
  auto run_store = [&] {
    ::sync();
    scratch_dir dir{"store"};
    best_store = std::max(best_store,
                          store_rate(dir.path, payload, mode, total));
  };
  // The order alternates as well, so what remains of that effect does not
  // always hit one side.
  for (int round = 0; round < 4; ++round) {
    if (round % 2 == 0) {
      run_raw();
      run_store();
    } else {
      run_store();
      run_raw();
    }
    if (round == 0) {
      ::sync();
      scratch_dir dir{"bare"};
      best_bare = raw_lmdb_rate(dir.path, payload, nosync, total, 1);
    }
  }
  auto ratio = best_store / best_raw;
  auto line = result_line("snapshot.store_vs_raw", "1/s", best_store,
                          "lmdb.put_per_txn", best_raw, 0.9, ratio >= 0.9, 1);
  line["size"] = size;
  line["mode"] = ft::to_string(mode);
  line["stored_size"] = encoded->size();
  line["raw_bare_payload"] = ft::bench::round_to(best_bare, 1);
  emit(line);
}

// -- group_commit_4k ----------------------------------------------------------

/// Keeps `in_flight` writes outstanding against the writer until `total`
/// are acknowledged, then reports the elapsed seconds.
class group_driver : public ft::bench::result_driver<double> {
public:
  group_driver(caf::actor_config& cfg, promise_ptr done, caf::actor writer,
               std::string prefix, ft::byte_buffer payload, size_t writers,
               size_t in_flight, uint64_t total)
    : result_driver(cfg, std::move(done)),
      writer_(std::move(writer)),
      prefix_(std::move(prefix)),
      payload_(std::move(payload)),
      writers_(writers),
      in_flight_(in_flight),
      total_(total),
      next_seq_(writers, 0) {
    // nop
  }

  caf::behavior make_behavior() override {
    t0_ = std::chrono::steady_clock::now();
    for (size_t i = 0; i < in_flight_; ++i)
      send_one(i % writers_);
    return {[](int) {}};
  }

private:
  void send_one(size_t w) {
    if (sent_ >= total_)
      return;
    ++sent_;
    auto x = envelope(prefix_ + std::to_string(w), ++next_seq_[w], payload_);
    request(writer_, caf::infinite, ft::snapshot_write_atom::value,
            std::move(x))
      .then(
        [this, w](uint64_t) {
          if (++acked_ == total_)
            deliver(seconds_since(t0_));
          else
            send_one(w);
        },
        [this](caf::error& err) {
          die("group commit write failed: " + ft::render(err));
        });
  }

  caf::actor writer_;
  std::string prefix_;
  ft::byte_buffer payload_;
  size_t writers_;
  size_t in_flight_;
  uint64_t total_;
  std::vector<uint64_t> next_seq_;
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

void bench_group_commit() {
  progress("group_commit_4k");
  constexpr size_t size = 4096;
  constexpr uint64_t total = 40'000;
  constexpr size_t writers = 256; // keys; pipelined writes per key are FIFO
  constexpr size_t in_flight = 4096;
  auto payload = payload_of(size);
  // The baseline puts the bytes the writer stores (see store_vs_raw).
  auto encoded_env = ft::encode_snapshot(envelope("bench/0", 1, payload));
  if (!encoded_env)
    die(ft::render(encoded_env.error()));
  const auto& encoded = *encoded_env;
  double raw = 0;
  double actor = 0;
  ft::snapshot_writer_stats stats;
  double raw_sequential = 0;
  for (int round = 0; round < 3; ++round) {
    {
      scratch_dir dir{"raw-group"};
      raw = std::max(raw, raw_lmdb_rate(dir.path, encoded, false, total, 1000,
                                        total / 2, writers));
    }
    if (round == 0) {
      // For reference: 8-byte sequential keys, LMDB's best case (appends).
      scratch_dir dir{"raw-seq"};
      raw_sequential = raw_lmdb_rate(dir.path, encoded, false, total, 1000,
                                     total / 2);
    }
    scratch_dir dir{"writer"};
    caf::actor_system_config cfg;
    cfg.set("logger.verbosity", caf::atom("quiet"));
    caf::actor_system sys{cfg};
    ft::snapshot_writer_options opts;
    opts.dir = dir.path.string();
    opts.store.mode = ft::durability::group_commit;
    opts.store.initial_map_size = size_t{4} << 30;
    opts.max_batch = 4096;
    auto writer = ft::spawn_snapshot_writer(sys, opts);
    if (!writer)
      die(ft::render(writer.error()));
    // A warm-up pass first (other keys), so the measured pass sees the
    // steady state of a running node: heap grown, pages mapped.
    auto pass = [&](const std::string& prefix, uint64_t n) {
      auto done = std::make_shared<std::promise<double>>();
      auto fut = done->get_future();
      sys.spawn<group_driver>(done, *writer, prefix, payload, writers,
                              in_flight, n);
      return fut.get();
    };
    pass("warmup/", total / 2);
    auto secs = pass("bench/", total);
    actor = std::max(actor, static_cast<double>(total) / secs);
    caf::scoped_actor self{sys};
    self->request(*writer, 10s, ft::snapshot_stats_atom::value)
      .receive([&](ft::snapshot_writer_stats& x) { stats = x; },
               [](caf::error& err) { die(ft::render(err)); });
    self->send_exit(*writer, caf::exit_reason::user_shutdown);
  }
  auto ratio = actor / raw;
  auto line = result_line("snapshot.group_commit_4k", "1/s", actor,
                          "lmdb.1000_puts_per_txn", raw, 0.8, ratio >= 0.8,
                          1);
  line["transactions"] = stats.transactions;
  line["largest_batch"] = stats.largest_batch;
  line["in_flight"] = in_flight;
  line["raw_sequential_keys"] = ft::bench::round_to(raw_sequential, 1);
  emit(line);
}

// -- restore_4k_p99 -----------------------------------------------------------

/// A 4 KiB state with CAF's `inspect`, as a user's actor would keep it.
struct bench_state {
  uint64_t counter = 0;
  std::vector<uint8_t> blob;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bench_state& x) {
  return f(x.counter, x.blob);
}

void bench_restore() {
  progress("restore_4k_p99");
  scratch_dir dir{"restore"};
  constexpr int keys = 1000;
  bench_state st;
  st.blob = payload_of(4096 - 16);
  {
    ft::snapshot_store_options opts;
    opts.mode = ft::durability::nosync;
    auto store = ft::snapshot_store::open(dir.path.string(), opts);
    if (!store)
      die(ft::render(store.error()));
    std::vector<ft::snapshot_envelope> batch;
    for (int k = 0; k < keys; ++k) {
      st.counter = static_cast<uint64_t>(k);
      auto bytes = ft::state_codec<bench_state>::encode(st);
      if (!bytes)
        die(ft::render(bytes.error()));
      for (uint64_t seq = 1; seq <= 3; ++seq)
        batch.push_back(envelope("actor/" + std::to_string(k), seq, *bytes));
    }
    auto res = store->write_batch(batch);
    if (!res)
      die(ft::render(res.error()));
  }
  auto t_open = std::chrono::steady_clock::now();
  ft::snapshot_store_options opts;
  opts.create = false;
  auto store = ft::snapshot_store::open(dir.path.string(), opts);
  auto open_us = seconds_since(t_open) * 1e6;
  if (!store)
    die(ft::render(store.error()));
  std::vector<double> samples;
  std::mt19937 rng{7};
  constexpr int rounds = 20'000;
  samples.reserve(rounds);
  for (int i = 0; i < rounds; ++i) {
    auto key = "actor/" + std::to_string(rng() % keys);
    auto t0 = std::chrono::steady_clock::now();
    auto x = store->latest(key);
    if (!x)
      die(ft::render(x.error()));
    bench_state restored;
    if (auto err = ft::state_codec<bench_state>::decode(x->payload, restored))
      die(ft::render(err));
    samples.push_back(seconds_since(t0) * 1e6);
    if (restored.blob.size() != st.blob.size())
      die("restored state has the wrong size");
  }
  auto p99 = ft::bench::quantile(samples, 0.99);
  auto line = result_line("snapshot.restore_4k_p99", "us", p99, "", 0, 50.0,
                          p99 <= 50.0, 2);
  line["p50"] = ft::bench::round_to(ft::bench::median(samples), 2);
  line["open_us"] = ft::bench::round_to(open_us, 1);
  emit(line);
}

} // namespace

int main(int argc, char** argv) {
  ft::bench::start_watchdog(std::chrono::seconds(600), "snapshot");
  // As in a node (`node_main` does the same), for the raw loops and the
  // store alike: the process runs under the same allocator settings.
  if (!ft::set_heap_headroom(ft::default_heap_headroom))
    progress("no heap headroom setting in this C library: glibc defaults");
  std::string only = argc > 1 ? argv[1] : "";
  auto want = [&](const char* name) { return only.empty() || only == name; };
  if (want("store_vs_raw")) {
    for (size_t size : {size_t{256}, size_t{4096}, size_t{65536}})
      bench_store_vs_raw(size, ft::durability::nosync,
                         size == 65536 ? 5'000 : 20'000);
    bench_store_vs_raw(4096, ft::durability::durable, 300);
  }
  if (want("group_commit_4k"))
    bench_group_commit();
  if (want("restore_4k_p99"))
    bench_restore();
  return 0;
}
