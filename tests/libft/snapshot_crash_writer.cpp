// A child process for the snapshot store's tests ("[snapshot_store]"): it
// writes snapshots in a loop and prints every acknowledged write on stdout,
// flushed, so the test knows what the store promised before it killed this
// process (crash safety) or what two concurrent writers stored.
//
// Usage:
//   snapshot_crash_writer crash <dir> <key>
//     Durable writes of <key> with rising sequences (continuing after the
//     stored latest) until killed (or 20 s pass); prints `ready` once
//     open, then `<sequence>` per acknowledged write.
//   snapshot_crash_writer concurrent <dir> <writer> <count>
//     <count> rounds, each a write_batch of two snapshots of this writer's
//     own keys and a write of a shared key (sequence = stored latest + 1,
//     retried when the other writer got there first); prints
//     `<key> <sequence> <crc32c of the payload>` per acknowledged snapshot.
// Exits 0 on success, 1 with a message on stderr on any store error.

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "ft/error.hpp"
#include "ft/snapshot.hpp"
#include "ft/snapshot_store.hpp"

namespace {

/// A payload whose size and bytes vary with the seed, from a few bytes to
/// more than a page, so records land both in leaf and in overflow pages.
ft::byte_buffer make_payload(uint64_t seed, size_t max_size) {
  std::mt19937_64 gen{seed};
  ft::byte_buffer result(16 + gen() % max_size);
  for (auto& b : result)
    b = static_cast<uint8_t>(gen());
  return result;
}

ft::snapshot_envelope make_envelope(const std::string& key, uint64_t sequence,
                                    const std::string& node,
                                    size_t max_size) {
  ft::snapshot_envelope x;
  x.key = key;
  x.actor_type = "crash_writer";
  x.sequence = sequence;
  x.timestamp_ms = static_cast<int64_t>(sequence);
  x.node_id = node;
  x.payload = make_payload(std::hash<std::string>{}(key + node) ^ sequence,
                           max_size);
  return x;
}

[[noreturn]] void die(const std::string& what, const caf::error& err) {
  std::fprintf(stderr, "snapshot_crash_writer: %s: %s\n", what.c_str(),
               ft::render(err).c_str());
  std::exit(1);
}

int crash(const std::string& dir, const std::string& key) {
  ft::snapshot_store_options opts;
  opts.mode = ft::durability::durable;
  // Small, so the map grows (and maybe gets killed while growing).
  opts.initial_map_size = size_t{256} << 10;
  auto store = ft::snapshot_store::open(dir, opts);
  if (!store)
    die("open", store.error());
  auto seq = store->latest_sequence(key);
  if (!seq)
    die("latest_sequence", seq.error());
  // The test times its kill from here, past the process's start-up.
  std::printf("ready\n");
  std::fflush(stdout);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (uint64_t n = *seq + 1; std::chrono::steady_clock::now() < deadline;
       ++n) {
    if (auto err = store->write(make_envelope(key, n, "crash", 12000)))
      die("write", err);
    std::printf("%" PRIu64 "\n", n);
    std::fflush(stdout);
    // Deletes too, so a kill may also hit a transaction freeing pages.
    if (n % 16 == 0)
      if (auto pruned = store->prune(key, 24); !pruned)
        die("prune", pruned.error());
  }
  return 0;
}

int concurrent(const std::string& dir, const std::string& writer, int count) {
  ft::snapshot_store_options opts;
  opts.mode = ft::durability::nosync;
  // Both writers grow the map, so each also sees the other's growth.
  opts.initial_map_size = size_t{128} << 10;
  auto store = ft::snapshot_store::open(dir, opts);
  if (!store)
    die("open", store.error());
  auto ack = [](const ft::snapshot_envelope& x) {
    std::printf("%s %" PRIu64 " %" PRIu32 "\n", x.key.c_str(), x.sequence,
                ft::crc32c(x.payload.data(), x.payload.size()));
  };
  for (int i = 1; i <= count; ++i) {
    auto seq = static_cast<uint64_t>(i);
    std::vector<ft::snapshot_envelope> batch{
      make_envelope(writer + "/a", seq, writer, 9000),
      make_envelope(writer + "/b" + std::to_string(i % 3), seq, writer, 900),
    };
    auto results = store->write_batch(batch);
    if (!results)
      die("write_batch", results.error());
    for (size_t j = 0; j < batch.size(); ++j)
      if ((*results)[j])
        die("write_batch item " + batch[j].key, (*results)[j]);
      else
        ack(batch[j]);
    auto shared = "shared/" + std::to_string(i % 2);
    for (;;) {
      auto latest = store->latest_sequence(shared);
      if (!latest)
        die("latest_sequence", latest.error());
      auto x = make_envelope(shared, *latest + 1, writer, 3000);
      auto err = store->write(x);
      if (!err) {
        ack(x);
        break;
      }
      if (!ft::is(err, ft::errc::stale_sequence))
        die("write " + shared, err);
    }
    std::fflush(stdout);
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 3 && args[0] == "crash")
    return crash(args[1], args[2]);
  if (args.size() == 4 && args[0] == "concurrent")
    return concurrent(args[1], args[2], std::atoi(args[3].c_str()));
  std::fprintf(stderr, "usage: snapshot_crash_writer crash <dir> <key>\n"
                       "       snapshot_crash_writer concurrent <dir> "
                       "<writer> <count>\n");
  return 2;
}
