#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "ft/snapshot.hpp"
#include "ft/snapshot_store.hpp"

/// The snapshot writer: the one actor per node that owns the LMDB
/// environment. LMDB admits one write transaction at a time, and an
/// environment must be opened once per process, so every snapshot write and
/// read on a node goes through this actor; it serialises the writers and,
/// in `group_commit` mode, puts the writes that arrive together into one
/// transaction (one fsync) and answers each writer after that commit.
namespace ft {

// -- messages -----------------------------------------------------------------

/// `(snapshot_write_atom, snapshot_envelope) -> uint64_t`: stores the
/// snapshot; answers its sequence once the commit is on disk (per the
/// store's durability), or an error (`stale_sequence`, `store_full`, ...).
using snapshot_write_atom = caf::atom_constant<caf::atom("ftsnwrite")>;

/// `(snapshot_latest_atom, std::string key) -> snapshot_envelope`.
using snapshot_latest_atom = caf::atom_constant<caf::atom("ftsnlatest")>;

/// `(snapshot_before_atom, std::string key, uint64_t sequence)
/// -> snapshot_envelope`: the newest snapshot older than `sequence`.
using snapshot_before_atom = caf::atom_constant<caf::atom("ftsnbefore")>;

/// `(snapshot_list_atom) -> std::vector<snapshot_info>`: every snapshot;
/// `(snapshot_list_atom, std::string key) -> std::vector<snapshot_info>`:
/// those of one key (oldest first), including records whose bytes are
/// damaged — a reader that failed on one learns its sequence here.
using snapshot_list_atom = caf::atom_constant<caf::atom("ftsnlist")>;

/// `(snapshot_verify_atom) -> std::vector<snapshot_problem>`.
using snapshot_verify_atom = caf::atom_constant<caf::atom("ftsnverify")>;

/// `(snapshot_prune_atom, std::string key, uint64_t keep) -> uint64_t`
/// (how many were deleted).
using snapshot_prune_atom = caf::atom_constant<caf::atom("ftsnprune")>;

/// `(snapshot_remove_atom, std::string key) -> uint64_t`.
using snapshot_remove_atom = caf::atom_constant<caf::atom("ftsnremove")>;

/// `(snapshot_stats_atom) -> snapshot_writer_stats`.
using snapshot_stats_atom = caf::atom_constant<caf::atom("ftsnstats")>;

/// Counters for monitoring and for the group-commit benchmark.
struct snapshot_writer_stats {
  /// Snapshots stored (acknowledged).
  uint64_t writes = 0;
  /// Writes answered with an error.
  uint64_t rejected = 0;
  /// Write transactions committed (one per batch in `group_commit`).
  uint64_t transactions = 0;
  /// The largest batch committed in one transaction.
  uint64_t largest_batch = 0;
  /// Bytes of payload stored.
  uint64_t payload_bytes = 0;
  /// Old snapshots deleted by `keep_per_key`.
  uint64_t pruned = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        snapshot_writer_stats& x) {
  return f(caf::meta::type_name("ft.snapshot_writer_stats"), x.writes,
           x.rejected, x.transactions, x.largest_batch, x.payload_bytes,
           x.pruned);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_info& x) {
  return f(caf::meta::type_name("ft.snapshot_info"), x.key, x.sequence,
           x.actor_type, x.schema_version, x.timestamp_ms, x.node_id,
           x.stored_size, x.payload_size);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_problem& x) {
  return f(caf::meta::type_name("ft.snapshot_problem"), x.key, x.sequence,
           x.reason);
}

// -- spawning -----------------------------------------------------------------

/// One commit (a single write, or a group-commit batch), for metrics and
/// health: what the writer's `on_commit` observer is told.
struct snapshot_commit_info {
  /// Writes stored by the commit.
  size_t stored = 0;
  /// Writes in it answered with an error.
  size_t failed = 0;
  /// The store call's wall time (encode, put, commit, sync).
  caf::timespan duration{0};
  /// The first error, if any write failed.
  caf::error error;
};

struct snapshot_writer_options {
  /// The store's directory.
  std::string dir;

  /// How the store opens and syncs; `store.mode` selects per-write commits
  /// (`durable`, `nosync`) or batching (`group_commit`).
  snapshot_store_options store;

  /// `group_commit`: how long the first write of a batch waits for others.
  /// 0 (the default) adds no latency: the batch closes when the writer has
  /// taken every write already in its mailbox, so a burst of writers shares
  /// one commit and a lone writer pays one commit.
  caf::timespan group_window{0};

  /// `group_commit`: a batch this large commits at once.
  size_t max_batch = 1024;

  /// Retention: keep the newest `keep_per_key` snapshots of every key the
  /// writer stores (0: keep all). An actor that checkpoints every message
  /// otherwise grows its store without bound. The writer prunes the keys it
  /// stored at most once per `prune_interval`, all in one transaction, so
  /// writes never wait for it. Keep at least 2: restoring falls back to the
  /// snapshot before a poison one.
  size_t keep_per_key = 0;
  caf::timespan prune_interval = std::chrono::seconds(1);
  /// Called in the writer after each commit (keep it cheap and
  /// thread-safe: it runs on the writer's thread).
  std::function<void(const snapshot_commit_info&)> on_commit;
};

/// Opens the store (errors such as `store_unavailable` come back here, not
/// from the actor) and spawns the writer owning it. Reads flush a pending
/// batch first, so a reader sees every write sent before its request (a
/// restarted actor sees its predecessor's last snapshot). The writer
/// commits its pending batch when it terminates.
caf::expected<caf::actor> spawn_snapshot_writer(caf::actor_system& sys,
                                                snapshot_writer_options opts);

// -- process tuning -----------------------------------------------------------

/// What `node_main` passes to `set_heap_headroom`: room for the dirty pages
/// of a few thousand 4 KiB snapshots.
constexpr size_t default_heap_headroom = size_t{32} << 20;

/// Keeps up to `bytes` of freed memory at the top of the C library's heaps
/// instead of returning it to the kernel at once (glibc's `M_TOP_PAD`).
/// Why: LMDB allocates a write transaction's dirty pages with `malloc` and
/// frees them at commit, so a group commit of a few thousand snapshots
/// allocates and frees tens of megabytes per transaction. With glibc's
/// default (128 KiB) each commit hands that memory back and the next one
/// faults it in again: a fifth of the writer's throughput in
/// `ft-bench-snapshot group_commit_4k`, and most of its run-to-run spread.
/// The cost is up to `bytes` more resident memory per heap. Process-wide
/// (it also fixes glibc's mmap threshold at its 128 KiB default), so a
/// program calls it once from `main`; `node_main` does. Returns false
/// where the C library has no such setting.
bool set_heap_headroom(size_t bytes) noexcept;

} // namespace ft
