#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "ft/snapshot.hpp"

/// The snapshot store: snapshot envelopes in an LMDB environment, keyed by
/// (key, sequence). Plain C++ without actors, so tests and `ftctl` use it
/// directly; on a node, one snapshot writer actor owns the store and
/// serialises its writers (LMDB allows one write transaction at a time).
namespace ft {

/// How commits reach the disk.
enum class durability : uint8_t {
  /// Each commit is synced (fsync) before the write returns. Default.
  durable,
  /// Commits are synced, but the snapshot writer actor puts the writes that
  /// arrive within its window into one transaction (`write_batch`), so one
  /// fsync serves many snapshots; each caller is answered after the commit.
  group_commit,
  /// Commits are not synced (`MDB_NOSYNC`): a crash of the OS or machine
  /// (not of the process) may lose the last commits or, with some file
  /// systems, corrupt the store. Closing the store syncs once. For tests and
  /// caches only.
  nosync,
};

const char* to_string(durability x) noexcept;

std::optional<durability> parse_durability(const std::string& x);

struct snapshot_store_options {
  durability mode = durability::durable;

  /// The map size to start with. LMDB needs a maximum size up front; the
  /// store doubles it on `MDB_MAP_FULL` (and adopts another process's
  /// growth) up to `max_map_size`.
  size_t initial_map_size = size_t{64} << 20;

  /// The cap of the map size; beyond it writes fail with `store_full`.
  /// `prune` and `remove` may briefly use a headroom past it (1/32 of it,
  /// at least 1 MiB), because LMDB copies pages even to delete: a full
  /// store can always be pruned to make room.
  size_t max_map_size = size_t{64} << 30;

  /// Create the directory if it does not exist.
  bool create = true;

  /// Open read-only (e.g. `ftctl snapshot ls` on a live node's store).
  bool read_only = false;
};

/// What a listing shows of one stored snapshot (no payload).
struct snapshot_info {
  std::string key;
  uint64_t sequence = 0;
  std::string actor_type;
  uint32_t schema_version = 0;
  int64_t timestamp_ms = 0;
  std::string node_id;
  /// Bytes of the encoded envelope as stored.
  size_t stored_size = 0;
  /// Bytes of the payload.
  size_t payload_size = 0;
};

/// One bad record found by `verify`.
struct snapshot_problem {
  std::string key;
  uint64_t sequence = 0;
  /// `checksum_mismatch` or `corrupt_snapshot`, with context.
  caf::error reason;
};

/// A handle to one open store. Move-only; closing happens in the
/// destructor; a moved-from store may only be assigned to or destroyed.
/// Not thread-safe: one owner (the writer actor, or a tool) uses it at a
/// time, from any thread (every call begins and ends its own transaction).
/// Several processes may open the same directory: LMDB's lock file
/// serialises their writers, and readers never block writers. One process
/// must not open the same directory twice at once (LMDB's locks are per
/// process): close the first handle before reopening.
///
/// Keys are at most 502 bytes (LMDB's key limit minus the 9 bytes the
/// store appends); longer ones are rejected as `corrupt_snapshot`. The
/// on-disk layout is described in `snapshot_store.cpp`.
class snapshot_store {
public:
  /// Opens (or creates) the store in directory `dir`, clearing reader slots
  /// left by dead processes. An existing store keeps the map size it grew
  /// to. Errors: `store_unavailable` naming the directory and the cause
  /// (missing and not created, not a directory, permission denied, not an
  /// LMDB store, or nothing to open read-only); `store_error` for invalid
  /// map sizes and other LMDB failures.
  static caf::expected<snapshot_store> open(const std::string& dir,
                                            snapshot_store_options opts = {});

  snapshot_store(snapshot_store&&) noexcept;
  snapshot_store& operator=(snapshot_store&&) noexcept;
  ~snapshot_store();

  // -- writing ----------------------------------------------------------------

  /// Stores `x` (its checksum is computed here) in one transaction, synced
  /// unless the mode is `nosync`. Sequences start at 1. Errors:
  /// `stale_sequence` if the key already holds a sequence >= `x.sequence`
  /// (or `x.sequence` is 0), and then nothing was written;
  /// `corrupt_snapshot` for an empty, NUL-containing or too long key;
  /// `store_full` (map at `max_map_size`, or the disk full); `store_error`
  /// (also when open read-only).
  caf::error write(const snapshot_envelope& x);

  /// Stores all of `xs` in one transaction (one sync). Returns one result
  /// per input, in order: none, or why that one was rejected
  /// (`stale_sequence` — also against an earlier item of the same batch —
  /// or `corrupt_snapshot`). A failure of the transaction itself (e.g.
  /// `store_full`) is returned as the error of the whole call, and then
  /// nothing was written.
  caf::expected<std::vector<caf::error>>
  write_batch(const std::vector<snapshot_envelope>& xs);

  // -- reading ----------------------------------------------------------------

  /// The snapshot with this key and sequence, checksum verified. Errors:
  /// `snapshot_not_found`, `checksum_mismatch`, `corrupt_snapshot` (also
  /// when the record holds another key or sequence than it is stored
  /// under).
  caf::expected<snapshot_envelope> read(const std::string& key,
                                        uint64_t sequence) const;

  /// The newest snapshot of `key`, checksum verified.
  caf::expected<snapshot_envelope> latest(const std::string& key) const;

  /// The newest snapshot of `key` with a sequence below `sequence`: the
  /// fallback when the newer one cannot be used.
  caf::expected<snapshot_envelope> before(const std::string& key,
                                          uint64_t sequence) const;

  /// The highest stored sequence of `key` (0 if none).
  caf::expected<uint64_t> latest_sequence(const std::string& key) const;

  /// Every stored snapshot (or those of `key` only), ordered by key then
  /// sequence, headers only. A record whose header does not decode is still
  /// listed, with only key, sequence and `stored_size` set: `verify` says
  /// what is wrong with it.
  caf::expected<std::vector<snapshot_info>>
  list(const std::optional<std::string>& key = std::nullopt) const;

  /// Checks every record's structure and checksum; returns exactly the bad
  /// ones (empty when all are fine).
  caf::expected<std::vector<snapshot_problem>> verify() const;

  // -- removing ---------------------------------------------------------------

  /// Keeps the newest `keep` snapshots of `key` and deletes the rest.
  /// Returns how many were deleted (0 for an unknown key). Later writes
  /// still need sequences above the deleted ones only while a newer one
  /// remains: after deleting all, the key starts over.
  caf::expected<size_t> prune(const std::string& key, size_t keep);

  /// As above for each of `keys`, in one transaction (one sync): what a
  /// writer that keeps the last K snapshots per key does periodically.
  caf::expected<size_t> prune(const std::vector<std::string>& keys,
                              size_t keep);

  /// Deletes every snapshot of `key` (`snapshot_not_found` if none).
  caf::expected<size_t> remove(const std::string& key);

  /// Deletes one snapshot (`snapshot_not_found` if absent).
  caf::error remove(const std::string& key, uint64_t sequence);

  // -- properties -------------------------------------------------------------

  const std::string& directory() const noexcept;

  durability mode() const noexcept;

  /// The current map size in bytes.
  size_t map_size() const noexcept;

private:
  struct impl;

  explicit snapshot_store(std::unique_ptr<impl> ptr) noexcept;

  std::unique_ptr<impl> impl_;
};

} // namespace ft
