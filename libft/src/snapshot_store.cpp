#include "ft/snapshot_store.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <unistd.h>

#include <lmdb.h>

#include "ft/error.hpp"

// -- on-disk layout -------------------------------------------------------------
//
// The store is an LMDB environment in a directory: `data.mdb` (the B+tree)
// and `lock.mdb` (the reader table and writer mutex shared by every process
// that opens the directory). It uses LMDB's one unnamed database:
//
//   LMDB key   = entity key bytes | 0x00 | sequence (8 bytes, big endian)
//   LMDB value = the envelope exactly as `encode_snapshot` returns it (an
//                unpacked Cap'n Proto flat array carrying its CRC-32C)
//
// Entity keys contain no NUL, so the 0x00 separator ends the entity key:
// all snapshots of one key are adjacent, ordered by sequence (LMDB compares
// keys bytewise), and no other key's records fall between them. A key's
// range starts at `key 0x00` and ends before `key 0x01`; its latest record
// is the last one before `key 0x01`. Nothing else is stored, so the format
// is self-describing: `mdb_dump` and `ftctl` can read it without this code.

namespace ft {

namespace {

// -- constants and small helpers ------------------------------------------------

/// Bytes the store adds to an entity key: the separator and the sequence.
constexpr size_t key_suffix = 9;

/// Returned by a write transaction's body to abort without an LMDB error:
/// it rejected the operation and stored why in its own result. LMDB's codes
/// are either positive errno values or in [-30799, -30780].
constexpr int rollback = -1;

/// Bounds retries of one operation (map growth, another process's resize),
/// so a misbehaving environment cannot spin forever.
constexpr int max_attempts = 64;

std::string lmdb_key(const std::string& key, uint64_t sequence) {
  std::string result;
  result.reserve(key.size() + key_suffix);
  result += key;
  result += '\0';
  for (int shift = 56; shift >= 0; shift -= 8)
    result += static_cast<char>((sequence >> shift) & 0xFF);
  return result;
}

/// The first LMDB key past every record of `key`.
std::string range_end(const std::string& key) {
  std::string result = key;
  result += '\x01';
  return result;
}

MDB_val to_val(const std::string& x) {
  return MDB_val{x.size(), const_cast<char*>(x.data())};
}

/// Splits an LMDB key into entity key and sequence; false if it is not one
/// the store wrote.
bool parse_lmdb_key(const MDB_val& k, std::string& key, uint64_t& sequence) {
  auto p = static_cast<const char*>(k.mv_data);
  auto nul = static_cast<const char*>(std::memchr(p, 0, k.mv_size));
  if (nul == nullptr || nul == p
      || static_cast<size_t>(nul - p) + key_suffix != k.mv_size)
    return false;
  key.assign(p, nul);
  sequence = 0;
  for (size_t i = 1; i < key_suffix; ++i)
    sequence = (sequence << 8) | static_cast<uint8_t>(nul[i]);
  return true;
}

/// Whether LMDB key `k` is a record of `key` (any sequence).
bool belongs_to(const MDB_val& k, const std::string& key) {
  return k.mv_size == key.size() + key_suffix
         && std::memcmp(k.mv_data, key.data(), key.size()) == 0
         && static_cast<const char*>(k.mv_data)[key.size()] == '\0';
}

uint64_t sequence_of(const MDB_val& k) {
  auto p = static_cast<const uint8_t*>(k.mv_data) + k.mv_size - 8;
  uint64_t result = 0;
  for (int i = 0; i < 8; ++i)
    result = (result << 8) | p[i];
  return result;
}

/// Names one snapshot in error messages, as `decode_snapshot` expects.
std::string describe(const std::string& key, uint64_t sequence) {
  return key + " #" + std::to_string(sequence);
}

std::string render_bytes(size_t n) {
  return std::to_string(n) + " bytes";
}

/// Whether `key` can name a stored snapshot: readers answer "not found"
/// for keys that cannot (a NUL would also break the range scans).
bool valid_key(const std::string& key, size_t max_key) {
  return !key.empty() && key.size() <= max_key
         && key.find('\0') == std::string::npos;
}

/// Whether `rc` says the file cannot grow: no space, over quota, or over
/// the process's file size limit (RLIMIT_FSIZE).
bool disk_full(int rc) {
  return rc == ENOSPC || rc == EDQUOT || rc == EFBIG;
}

/// Aborts a transaction unless it was committed: every error path leaves
/// LMDB clean without a line of its own.
struct txn_guard {
  MDB_txn* txn = nullptr;

  txn_guard() = default;
  txn_guard(const txn_guard&) = delete;
  txn_guard& operator=(const txn_guard&) = delete;

  ~txn_guard() {
    if (txn != nullptr)
      mdb_txn_abort(txn);
  }

  /// Commits; LMDB frees the handle whether or not the commit succeeds.
  int commit() {
    auto t = std::exchange(txn, nullptr);
    return mdb_txn_commit(t);
  }
};

/// Closes a cursor. Must be destroyed before its transaction ends (LMDB
/// frees write transactions' cursors itself, but not read ones').
struct cursor_guard {
  MDB_cursor* cursor = nullptr;

  cursor_guard() = default;
  cursor_guard(const cursor_guard&) = delete;
  cursor_guard& operator=(const cursor_guard&) = delete;

  ~cursor_guard() {
    if (cursor != nullptr)
      mdb_cursor_close(cursor);
  }
};

} // namespace

// -- enums --------------------------------------------------------------------

const char* to_string(durability x) noexcept {
  switch (x) {
    case durability::durable: return "durable";
    case durability::group_commit: return "group_commit";
    case durability::nosync: return "nosync";
  }
  return "invalid";
}

std::optional<durability> parse_durability(const std::string& x) {
  for (auto k :
       {durability::durable, durability::group_commit, durability::nosync})
    if (x == to_string(k))
      return k;
  return std::nullopt;
}

// -- impl -----------------------------------------------------------------------

struct snapshot_store::impl {
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  std::string dir_;
  snapshot_store_options opts_;
  /// The longest entity key LMDB's key size limit leaves room for.
  size_t max_key_ = 0;
  /// Set when a transaction found the map full; a removal then commits an
  /// extra transaction (see `run_write`).
  bool full_ = false;
  /// Reused for every small encoded snapshot (see `put_one`): a write
  /// allocates nothing once it has grown to the largest one.
  byte_buffer scratch_;

  // -- sequence cache ----------------------------------------------------------
  //
  // A write must know the key's stored sequence; a B-tree seek per write
  // costs a few percent of a nosync commit. So we remember the sequences
  // our own commits stored, valid only while no other process committed in
  // between: LMDB numbers write transactions consecutively across all
  // processes, so our next write transaction's id is `cache_txn_ + 1`
  // exactly when nobody else wrote.

  /// Stored sequence per key as of our commit `cache_txn_`.
  std::unordered_map<std::string, uint64_t> seq_cache_;
  /// The id of the write transaction `seq_cache_` reflects (0: none).
  size_t cache_txn_ = 0;
  /// Whether `seq_cache_` is valid in the open write transaction.
  bool cache_ok_ = false;
  /// Sequences written in the open write transaction (a batch may write a
  /// key twice); merged into the cache on commit.
  std::unordered_map<std::string, uint64_t> staged_;

  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  ~impl() {
    if (env_ == nullptr)
      return;
    // Without per-commit syncs, at least a clean close reaches the disk.
    // Nothing to report to: a failed sync here is as if the machine had
    // crashed just after the last commit, the risk nosync accepted.
    if (opts_.mode == durability::nosync && !opts_.read_only)
      static_cast<void>(mdb_env_sync(env_, 1));
    mdb_env_close(env_);
  }

  size_t map_size() const noexcept {
    MDB_envinfo info;
    if (mdb_env_info(env_, &info) != 0)
      return 0;
    return info.me_mapsize;
  }

  /// `store_error` (or `store_full` for a full disk) naming the operation,
  /// the snapshot or key and the LMDB cause.
  caf::error fail(const char* op, const std::string& what, int rc) const {
    auto code = disk_full(rc) ? errc::store_full : errc::store_error;
    std::string ctx = op;
    if (!what.empty()) {
      ctx += ' ';
      ctx += what;
    }
    ctx += disk_full(rc) ? ": the disk is full or the file cannot grow: "
                         : ": ";
    ctx += mdb_strerror(rc);
    ctx += " (store ";
    ctx += dir_;
    ctx += ')';
    return make_error(code, std::move(ctx));
  }

  caf::error read_only_error(const char* op, const std::string& what) const {
    return make_error(errc::store_error, std::string{op} + ' ' + what
                                           + ": store " + dir_
                                           + " is open read-only");
  }

  /// Begins a transaction. Another process may have grown the map past
  /// ours (`MDB_MAP_RESIZED`): adopt its size and try again. Resizing is
  /// legal because this process has no other transaction open: the store
  /// is single-owner and each call ends its transaction before returning.
  caf::error begin(txn_guard& g, unsigned flags, const char* op,
                   const std::string& what) const {
    for (int attempt = 0;; ++attempt) {
      auto rc = mdb_txn_begin(env_, nullptr, flags, &g.txn);
      if (rc == 0)
        return caf::none;
      g.txn = nullptr;
      if (rc != MDB_MAP_RESIZED || attempt >= max_attempts)
        return fail(op, what, rc);
      if (auto rc2 = mdb_env_set_mapsize(env_, 0); rc2 != 0)
        return fail(op, what, rc2);
    }
  }

  caf::error begin_read(txn_guard& g, const char* op,
                        const std::string& what) const {
    return begin(g, MDB_RDONLY, op, what);
  }

  /// Lets deletions grow the map past `max_map_size` by this much: LMDB
  /// copies pages even to delete, so without it a full store could not be
  /// pruned to make room.
  size_t removal_headroom() const noexcept {
    return std::max(opts_.max_map_size / 32, size_t{1} << 20);
  }

  caf::error full_error(const char* op, const std::string& what,
                        size_t current, size_t cap) const {
    auto ctx = std::string{op} + ' ' + what + ": the map size of "
               + render_bytes(current) + " cannot grow within ";
    if (cap == opts_.max_map_size)
      ctx += "max_map_size ";
    else
      ctx += "max_map_size plus the removal headroom, ";
    ctx += render_bytes(cap) + " (store " + dir_ + ')';
    return make_error(errc::store_full, std::move(ctx));
  }

  /// Doubles the map (capped at `cap`) after `MDB_MAP_FULL`, or returns
  /// `store_full` when it is already at the cap.
  caf::error grow(const char* op, const std::string& what, size_t cap) {
    auto current = map_size();
    full_ = true;
    if (current >= cap)
      return full_error(op, what, current, cap);
    auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    auto next = (current > cap / 2 ? cap : current * 2) / page * page;
    if (next <= current)
      return full_error(op, what, current, cap);
    if (auto rc = mdb_env_set_mapsize(env_, next); rc != 0)
      return fail(op, what, rc);
    full_ = false;
    return caf::none;
  }

  /// Runs `body` in a write transaction and commits it. `body(txn)` returns
  /// 0 to commit, `rollback` to abort quietly (it rejected the operation and
  /// recorded why), or an LMDB code. On `MDB_MAP_FULL` (from a put or from
  /// the commit's free-list update) the transaction is aborted, the map
  /// grows and `body` runs again from scratch, so it must reset its results
  /// on entry.
  ///
  /// A `removing` operation may grow the map into the removal headroom. On
  /// a full store it then commits one more transaction (a marker put and
  /// deleted again, leaving no trace): LMDB reuses the pages freed by
  /// commit N only from commit N+2 on, as commit N+1 must leave N's
  /// snapshot intact, and without it every write would fail without
  /// committing — full for good. Last, the map shrinks back to
  /// `max_map_size` (or what is in use, if more), so writes never use the
  /// headroom for long.
  template <class F>
  caf::error run_write(const char* op, const std::string& what, F body,
                       bool removing = false) {
    if (opts_.read_only)
      return read_only_error(op, what);
    if (!removing)
      return run_write_capped(op, what, body, opts_.max_map_size);
    auto cap = opts_.max_map_size + removal_headroom();
    auto err = run_write_capped(op, what, body, cap);
    if (!err && (full_ || map_size() > opts_.max_map_size)) {
      auto touch = [this](MDB_txn* txn) {
        // An empty entity key: never a record's key.
        char marker = '\0';
        MDB_val k{1, &marker};
        MDB_val v{1, &marker};
        if (auto rc = mdb_put(txn, dbi_, &k, &v, 0); rc != 0)
          return rc;
        return mdb_del(txn, dbi_, &k, nullptr);
      };
      // The removal itself committed: a failure here must not report it
      // as failed. `full_` stays set, so the next removal tries again, and
      // a lasting LMDB problem surfaces in the next call.
      if (!run_write_capped(op, what, touch, cap))
        full_ = false;
    }
    if (map_size() > opts_.max_map_size) {
      if (auto rc = mdb_env_set_mapsize(env_, opts_.max_map_size); rc != 0)
        return err ? err : fail(op, what, rc);
    }
    return err;
  }

  template <class F>
  caf::error run_write_capped(const char* op, const std::string& what,
                              F& body, size_t cap) {
    for (int attempt = 0;; ++attempt) {
      txn_guard g;
      if (auto err = begin(g, 0, op, what))
        return err;
      auto id = mdb_txn_id(g.txn);
      cache_ok_ = cache_txn_ != 0 && id == cache_txn_ + 1;
      if (!cache_ok_)
        seq_cache_.clear();
      staged_.clear();
      auto rc = body(g.txn);
      if (rc == rollback)
        return caf::none;
      if (rc == 0)
        rc = g.commit();
      if (rc == 0) {
        // A committed transaction that stored nothing deleted something
        // (prune, remove): stored sequences may have dropped, forget them
        // all (removals are rare).
        if (staged_.empty())
          seq_cache_.clear();
        for (auto& kvp : staged_)
          seq_cache_[kvp.first] = kvp.second;
        staged_.clear();
        cache_txn_ = id;
        return caf::none;
      }
      if (rc != MDB_MAP_FULL || attempt >= max_attempts)
        return fail(op, what, rc);
      // The transaction must end before the map may change.
      if (g.txn != nullptr) {
        mdb_txn_abort(g.txn);
        g.txn = nullptr;
      }
      if (auto err = grow(op, what, cap))
        return err;
    }
  }

  /// Positions `c` on the newest record of `key` whose LMDB key is below
  /// `bound` (a key inside or just past `key`'s range). `found` is false if
  /// there is none.
  int last_below(MDB_cursor* c, const std::string& key,
                 const std::string& bound, bool& found, MDB_val& k,
                 MDB_val& v) const {
    found = false;
    k = to_val(bound);
    auto rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == 0)
      rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
      rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND)
      return 0;
    if (rc != 0)
      return rc;
    found = belongs_to(k, key);
    return 0;
  }

  /// The highest stored sequence of `key` within `txn` (0 if none); sees
  /// the transaction's own earlier puts, which is how a batch catches its
  /// duplicates.
  int latest_in(MDB_txn* txn, const std::string& key,
                uint64_t& sequence) const {
    sequence = 0;
    cursor_guard c;
    if (auto rc = mdb_cursor_open(txn, dbi_, &c.cursor); rc != 0)
      return rc;
    bool found = false;
    MDB_val k, v;
    if (auto rc = last_below(c.cursor, key, range_end(key), found, k, v);
        rc != 0)
      return rc;
    if (found)
      sequence = sequence_of(k);
    return 0;
  }

  /// Collects the LMDB keys of all records of `key`, oldest first.
  int keys_of(MDB_txn* txn, const std::string& key,
              std::vector<std::string>& out) const {
    out.clear();
    cursor_guard c;
    if (auto rc = mdb_cursor_open(txn, dbi_, &c.cursor); rc != 0)
      return rc;
    auto start = lmdb_key(key, 0);
    MDB_val k = to_val(start), v;
    auto rc = mdb_cursor_get(c.cursor, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && belongs_to(k, key)) {
      out.emplace_back(static_cast<const char*>(k.mv_data), k.mv_size);
      rc = mdb_cursor_get(c.cursor, &k, &v, MDB_NEXT);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
  }

  /// Checks, encodes and stores one snapshot inside `txn`. Leaves `result`
  /// empty when stored; sets it (and returns 0) when rejected: stale, or
  /// not encodable. Large values are encoded straight into the room LMDB
  /// reserves for them (overflow pages are word-aligned); small ones, whose
  /// place in a leaf page may not be, go through `scratch_`.
  int put_one(MDB_txn* txn, const snapshot_envelope& x, caf::error& result) {
    auto size = encoded_snapshot_size(x);
    if (!size) {
      result = std::move(size.error());
      return 0;
    }
    uint64_t stored = 0;
    if (auto i = staged_.find(x.key); i != staged_.end()) {
      stored = i->second;
    } else if (auto j = seq_cache_.find(x.key);
               cache_ok_ && j != seq_cache_.end()) {
      stored = j->second;
    } else if (auto rc = latest_in(txn, x.key, stored); rc != 0) {
      return rc;
    }
    // Sequences start at 1: 0 is what `latest_sequence` reports for "none".
    if (x.sequence <= stored) {
      result = make_error(errc::stale_sequence,
                          x.key + ": sequence " + std::to_string(x.sequence)
                            + " is not above the stored "
                            + std::to_string(stored));
      return 0;
    }
    auto k = lmdb_key(x.key, x.sequence);
    MDB_val kv = to_val(k);
    MDB_val vv{*size, nullptr};
    auto rc = mdb_put(txn, dbi_, &kv, &vv, MDB_NOOVERWRITE | MDB_RESERVE);
    if (rc != 0)
      return rc;
    caf::error err;
    if (reinterpret_cast<uintptr_t>(vv.mv_data) % 8 == 0) {
      err = encode_snapshot_to(x, vv.mv_data, *size);
    } else if (!(err = encode_snapshot_into(x, scratch_))) {
      std::memcpy(vv.mv_data, scratch_.data(), *size);
    }
    // The room is reserved but holds garbage: this transaction must not
    // commit (the codec checked `x` already, so this is an internal error).
    if (err)
      return EINVAL;
    staged_[x.key] = x.sequence;
    return 0;
  }

  /// Rejects what the codec would not encode or LMDB could not store.
  caf::error check_key(const snapshot_envelope& x) const {
    // The codec rejects these too; checked here as well because the
    // on-disk layout depends on it.
    if (x.key.empty() || x.key.find('\0') != std::string::npos)
      return make_error(errc::corrupt_snapshot,
                        describe(x.key, x.sequence)
                          + ": a key must be non-empty and without NUL");
    if (x.key.size() > max_key_)
      return make_error(errc::corrupt_snapshot,
                        describe(x.key.substr(0, 40) + "...", x.sequence)
                          + ": key of " + render_bytes(x.key.size())
                          + " is longer than the store's limit of "
                          + render_bytes(max_key_));
    return caf::none;
  }

  /// Reads and decodes one record inside the read transaction: the codec
  /// copies the bytes out of the map before the transaction ends.
  caf::expected<snapshot_envelope>
  decode_at(const MDB_val& v, const std::string& key, uint64_t sequence) const {
    auto what = describe(key, sequence);
    auto result = decode_snapshot(v.mv_data, v.mv_size, what);
    if (!result)
      return std::move(result.error());
    if (result->key != key || result->sequence != sequence)
      return make_error(errc::corrupt_snapshot,
                        what + ": the record holds "
                          + describe(result->key, result->sequence));
    return result;
  }

  /// The newest snapshot of `key` below LMDB key `bound`.
  caf::expected<snapshot_envelope>
  newest_below(const char* op, const std::string& key,
               const std::string& bound, const std::string& not_found) const {
    if (!valid_key(key, max_key_))
      return make_error(errc::snapshot_not_found, not_found);
    txn_guard g;
    if (auto err = begin_read(g, op, key))
      return err;
    cursor_guard c;
    if (auto rc = mdb_cursor_open(g.txn, dbi_, &c.cursor); rc != 0)
      return fail(op, key, rc);
    bool found = false;
    MDB_val k, v;
    if (auto rc = last_below(c.cursor, key, bound, found, k, v); rc != 0)
      return fail(op, key, rc);
    if (!found)
      return make_error(errc::snapshot_not_found, not_found);
    return decode_at(v, key, sequence_of(k));
  }
};

// -- construction -------------------------------------------------------------

namespace {

caf::error unavailable(const std::string& dir, const std::string& cause) {
  return make_error(errc::store_unavailable,
                    "snapshot store " + dir + ": " + cause);
}

} // namespace

caf::expected<snapshot_store>
snapshot_store::open(const std::string& dir, snapshot_store_options opts) {
  namespace fs = std::filesystem;
  if (opts.initial_map_size == 0 || opts.max_map_size < opts.initial_map_size)
    return make_error(errc::store_error,
                      "snapshot store " + dir + ": initial_map_size "
                        + render_bytes(opts.initial_map_size)
                        + " must be positive and at most max_map_size "
                        + render_bytes(opts.max_map_size));
  // -- the directory --
  std::error_code ec;
  auto st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    return unavailable(dir, ec.message());
  if (!fs::exists(st)) {
    if (!opts.create || opts.read_only)
      return unavailable(dir, "no such directory");
    fs::create_directories(dir, ec);
    if (ec)
      return unavailable(dir, "cannot create the directory: " + ec.message());
  } else if (!fs::is_directory(st)) {
    return unavailable(dir, "not a directory");
  }
  // -- the environment --
  auto st_impl = std::make_unique<impl>();
  auto& x = *st_impl;
  x.dir_ = dir;
  x.opts_ = opts;
  if (auto rc = mdb_env_create(&x.env_); rc != 0) {
    x.env_ = nullptr;
    return x.fail("open", "", rc);
  }
  // MDB_NOTLS: a read transaction's reader slot belongs to the transaction,
  // not the thread, since actors run on whatever worker thread is free.
  // MDB_NORDAHEAD: snapshots are read by key, not scanned sequentially, so
  // read-ahead only pollutes the page cache.
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
  if (opts.read_only)
    flags |= MDB_RDONLY;
  else if (opts.mode == durability::nosync)
    flags |= MDB_NOSYNC;
  // A new store starts at initial_map_size. A reader takes the size the
  // store records (no call: LMDB then reads it from the file).
  if (!opts.read_only) {
    if (auto rc = mdb_env_set_mapsize(x.env_, opts.initial_map_size);
        rc != 0)
      return x.fail("mdb_env_set_mapsize", dir, rc);
  }
  if (auto rc = mdb_env_open(x.env_, dir.c_str(), flags, 0644); rc != 0) {
    // LMDB requires closing an environment whose open failed.
    mdb_env_close(std::exchange(x.env_, nullptr));
    switch (rc) {
      case ENOENT:
        return unavailable(dir, std::string{mdb_strerror(rc)}
                                  + (opts.read_only ? " (no store to read)"
                                                    : ""));
      case EACCES:
      case EPERM:
      case EROFS:
      case ENOTDIR:
      case EISDIR:
      case MDB_INVALID:
      case MDB_VERSION_MISMATCH:
        return unavailable(dir, mdb_strerror(rc));
      default:
        return x.fail("open", dir, rc);
    }
  }
  // Clear reader slots of processes that died inside a read transaction:
  // they would pin old pages and make the file grow.
  int dead = 0;
  if (auto rc = mdb_reader_check(x.env_, &dead); rc != 0)
    return x.fail("mdb_reader_check", dir, rc);
  // An existing store keeps the size it grew to: size 0 adopts the size
  // recorded in the file (the open used ours, had it been smaller), then
  // never start below initial_map_size.
  if (!opts.read_only) {
    if (auto rc = mdb_env_set_mapsize(x.env_, 0); rc != 0)
      return x.fail("mdb_env_set_mapsize", dir, rc);
    if (x.map_size() < opts.initial_map_size) {
      if (auto rc = mdb_env_set_mapsize(x.env_, opts.initial_map_size);
          rc != 0)
        return x.fail("mdb_env_set_mapsize", dir, rc);
    }
  }
  auto max_key = mdb_env_get_maxkeysize(x.env_);
  if (max_key <= static_cast<int>(key_suffix))
    return x.fail("mdb_env_get_maxkeysize", dir, EINVAL);
  x.max_key_ = static_cast<size_t>(max_key) - key_suffix;
  // The unnamed database always exists; its handle outlives the
  // transaction that opened it.
  txn_guard g;
  if (auto err = x.begin(g, opts.read_only ? MDB_RDONLY : 0u, "open", dir))
    return err;
  if (auto rc = mdb_dbi_open(g.txn, nullptr, 0, &x.dbi_); rc != 0)
    return x.fail("mdb_dbi_open", dir, rc);
  if (auto rc = g.commit(); rc != 0)
    return x.fail("open", dir, rc);
  return snapshot_store{std::move(st_impl)};
}

snapshot_store::snapshot_store(std::unique_ptr<impl> ptr) noexcept
  : impl_(std::move(ptr)) {
  // nop
}

snapshot_store::snapshot_store(snapshot_store&&) noexcept = default;

snapshot_store& snapshot_store::operator=(snapshot_store&&) noexcept
  = default;

snapshot_store::~snapshot_store() = default;

// -- writing ------------------------------------------------------------------

caf::error snapshot_store::write(const snapshot_envelope& x) {
  auto what = describe(x.key, x.sequence);
  if (impl_->opts_.read_only)
    return impl_->read_only_error("write", what);
  if (auto err = impl_->check_key(x))
    return err;
  caf::error result;
  auto err = impl_->run_write("write", what, [&](MDB_txn* txn) {
    result = caf::none;
    auto rc = impl_->put_one(txn, x, result);
    return rc == 0 && result ? rollback : rc;
  });
  if (err)
    return err;
  return result;
}

caf::expected<std::vector<caf::error>>
snapshot_store::write_batch(const std::vector<snapshot_envelope>& xs) {
  if (impl_->opts_.read_only)
    return impl_->read_only_error("write_batch",
                                  "of " + std::to_string(xs.size()));
  std::vector<caf::error> rejected(xs.size());
  for (size_t i = 0; i < xs.size(); ++i)
    rejected[i] = impl_->check_key(xs[i]);
  std::vector<caf::error> results;
  auto what = "of " + std::to_string(xs.size());
  auto err = impl_->run_write("write_batch", what, [&](MDB_txn* txn) {
    what = "of " + std::to_string(xs.size());
    results = rejected;
    for (size_t i = 0; i < xs.size(); ++i) {
      if (results[i])
        continue;
      // Encoded inside the transaction, straight into LMDB's pages: holding
      // a batch's worth of encoded copies costs more (allocation, page
      // faults) than the encoding adds to the writer lock's hold time.
      if (auto rc = impl_->put_one(txn, xs[i], results[i]); rc != 0) {
        // Name the snapshot that failed the transaction.
        what = "of " + std::to_string(xs.size()) + " at "
               + describe(xs[i].key, xs[i].sequence);
        return rc;
      }
    }
    // Only stale writes: nothing to commit, nothing to sync.
    auto any = std::any_of(results.begin(), results.end(),
                           [](const caf::error& e) { return !e; });
    return any ? 0 : rollback;
  });
  if (err)
    return err;
  return results;
}

// -- reading ------------------------------------------------------------------

caf::expected<snapshot_envelope>
snapshot_store::read(const std::string& key, uint64_t sequence) const {
  auto what = describe(key, sequence);
  if (!valid_key(key, impl_->max_key_))
    return make_error(errc::snapshot_not_found, "no snapshot " + what);
  txn_guard g;
  if (auto err = impl_->begin_read(g, "read", what))
    return err;
  auto k = lmdb_key(key, sequence);
  MDB_val kv = to_val(k), v;
  auto rc = mdb_get(g.txn, impl_->dbi_, &kv, &v);
  if (rc == MDB_NOTFOUND)
    return make_error(errc::snapshot_not_found, "no snapshot " + what);
  if (rc != 0)
    return impl_->fail("read", what, rc);
  return impl_->decode_at(v, key, sequence);
}

caf::expected<snapshot_envelope>
snapshot_store::latest(const std::string& key) const {
  return impl_->newest_below("latest", key, range_end(key),
                             "no snapshot of " + key);
}

caf::expected<snapshot_envelope>
snapshot_store::before(const std::string& key, uint64_t sequence) const {
  return impl_->newest_below("before", key, lmdb_key(key, sequence),
                             "no snapshot of " + key + " before #"
                               + std::to_string(sequence));
}

caf::expected<uint64_t>
snapshot_store::latest_sequence(const std::string& key) const {
  if (!valid_key(key, impl_->max_key_))
    return uint64_t{0};
  txn_guard g;
  if (auto err = impl_->begin_read(g, "latest_sequence", key))
    return err;
  uint64_t result = 0;
  if (auto rc = impl_->latest_in(g.txn, key, result); rc != 0)
    return impl_->fail("latest_sequence", key, rc);
  return result;
}

caf::expected<std::vector<snapshot_info>>
snapshot_store::list(const std::optional<std::string>& key) const {
  std::vector<snapshot_info> result;
  if (key && !valid_key(*key, impl_->max_key_))
    return result;
  auto what = key ? *key : std::string{};
  txn_guard g;
  if (auto err = impl_->begin_read(g, "list", what))
    return err;
  cursor_guard c;
  if (auto rc = mdb_cursor_open(g.txn, impl_->dbi_, &c.cursor); rc != 0)
    return impl_->fail("list", what, rc);
  std::string start = key ? lmdb_key(*key, 0) : std::string{};
  MDB_val k = to_val(start), v;
  auto rc = mdb_cursor_get(c.cursor, &k, &v, key ? MDB_SET_RANGE : MDB_FIRST);
  for (; rc == 0; rc = mdb_cursor_get(c.cursor, &k, &v, MDB_NEXT)) {
    if (key && !belongs_to(k, *key))
      break;
    snapshot_info info;
    if (!parse_lmdb_key(k, info.key, info.sequence)) {
      // Not written by this store; `verify` reports it.
      continue;
    }
    info.stored_size = v.mv_size;
    size_t payload_size = 0;
    auto hdr = decode_snapshot_header(v.mv_data, v.mv_size, &payload_size,
                                      describe(info.key, info.sequence));
    // An undecodable record still shows up (with what its LMDB key tells),
    // so a listing is complete; `verify` tells what is wrong with it.
    if (hdr) {
      info.actor_type = std::move(hdr->actor_type);
      info.schema_version = hdr->schema_version;
      info.timestamp_ms = hdr->timestamp_ms;
      info.node_id = std::move(hdr->node_id);
      info.payload_size = payload_size;
    }
    result.push_back(std::move(info));
  }
  if (rc != 0 && rc != MDB_NOTFOUND)
    return impl_->fail("list", what, rc);
  return result;
}

caf::expected<std::vector<snapshot_problem>> snapshot_store::verify() const {
  std::vector<snapshot_problem> result;
  txn_guard g;
  if (auto err = impl_->begin_read(g, "verify", ""))
    return err;
  cursor_guard c;
  if (auto rc = mdb_cursor_open(g.txn, impl_->dbi_, &c.cursor); rc != 0)
    return impl_->fail("verify", "", rc);
  MDB_val k, v;
  auto rc = mdb_cursor_get(c.cursor, &k, &v, MDB_FIRST);
  for (; rc == 0; rc = mdb_cursor_get(c.cursor, &k, &v, MDB_NEXT)) {
    snapshot_problem problem;
    if (!parse_lmdb_key(k, problem.key, problem.sequence)) {
      problem.key.assign(static_cast<const char*>(k.mv_data), k.mv_size);
      problem.reason = make_error(errc::corrupt_snapshot,
                                  "malformed LMDB key of "
                                    + render_bytes(k.mv_size));
      result.push_back(std::move(problem));
      continue;
    }
    auto x = impl_->decode_at(v, problem.key, problem.sequence);
    if (!x) {
      problem.reason = std::move(x.error());
      result.push_back(std::move(problem));
    }
  }
  if (rc != MDB_NOTFOUND)
    return impl_->fail("verify", "", rc);
  return result;
}

// -- removing -----------------------------------------------------------------

caf::expected<size_t> snapshot_store::prune(const std::string& key,
                                            size_t keep) {
  return prune(std::vector<std::string>{key}, keep);
}

caf::expected<size_t>
snapshot_store::prune(const std::vector<std::string>& keys, size_t keep) {
  auto what = keys.size() == 1 ? keys.front()
                               : std::to_string(keys.size()) + " keys";
  if (impl_->opts_.read_only)
    return impl_->read_only_error("prune", what);
  size_t deleted = 0;
  std::vector<std::string> records;
  auto err = impl_->run_write("prune", what, [&](MDB_txn* txn) {
    deleted = 0;
    for (auto& key : keys) {
      if (!valid_key(key, impl_->max_key_))
        continue;
      if (auto rc = impl_->keys_of(txn, key, records); rc != 0)
        return rc;
      if (records.size() <= keep)
        continue;
      auto n = records.size() - keep;
      for (size_t i = 0; i < n; ++i) {
        MDB_val kv = to_val(records[i]);
        if (auto rc = mdb_del(txn, impl_->dbi_, &kv, nullptr); rc != 0)
          return rc;
      }
      deleted += n;
    }
    return deleted == 0 ? rollback : 0;
  }, true);
  if (err)
    return err;
  return deleted;
}

caf::expected<size_t> snapshot_store::remove(const std::string& key) {
  if (impl_->opts_.read_only)
    return impl_->read_only_error("remove", key);
  if (!valid_key(key, impl_->max_key_))
    return make_error(errc::snapshot_not_found, "no snapshot of " + key);
  size_t deleted = 0;
  std::vector<std::string> keys;
  auto err = impl_->run_write("remove", key, [&](MDB_txn* txn) {
    deleted = 0;
    if (auto rc = impl_->keys_of(txn, key, keys); rc != 0)
      return rc;
    if (keys.empty())
      return rollback;
    for (auto& k : keys) {
      MDB_val kv = to_val(k);
      if (auto rc = mdb_del(txn, impl_->dbi_, &kv, nullptr); rc != 0)
        return rc;
    }
    deleted = keys.size();
    return 0;
  }, true);
  if (err)
    return err;
  if (deleted == 0)
    return make_error(errc::snapshot_not_found, "no snapshot of " + key);
  return deleted;
}

caf::error snapshot_store::remove(const std::string& key, uint64_t sequence) {
  auto what = describe(key, sequence);
  if (impl_->opts_.read_only)
    return impl_->read_only_error("remove", what);
  if (!valid_key(key, impl_->max_key_))
    return make_error(errc::snapshot_not_found, "no snapshot " + what);
  bool found = false;
  auto err = impl_->run_write("remove", what, [&](MDB_txn* txn) {
    found = false;
    auto k = lmdb_key(key, sequence);
    MDB_val kv = to_val(k);
    auto rc = mdb_del(txn, impl_->dbi_, &kv, nullptr);
    if (rc == MDB_NOTFOUND)
      return rollback;
    found = rc == 0;
    return rc;
  }, true);
  if (err)
    return err;
  if (!found)
    return make_error(errc::snapshot_not_found, "no snapshot " + what);
  return caf::none;
}

// -- properties ---------------------------------------------------------------

const std::string& snapshot_store::directory() const noexcept {
  return impl_->dir_;
}

durability snapshot_store::mode() const noexcept {
  return impl_->opts_.mode;
}

size_t snapshot_store::map_size() const noexcept {
  return impl_->map_size();
}

} // namespace ft
