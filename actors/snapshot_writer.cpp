// The snapshot writer: an event-based actor owning the node's one
// `ft::snapshot_store` (the LMDB environment). Every store call happens in
// one of its handlers, so each LMDB transaction begins and commits inside
// one handler on one thread.
//
// Group commit: the first write of a batch schedules a flush — a message to
// itself, which lands behind every write already queued, or a timer when
// `group_window > 0` — and each writer gets a response promise that is
// delivered after the batch's single commit.

#include "ft/snapshot_writer.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <new>
#include <set>
#include <string>
#include <utility>

#include <caf/all.hpp>

#if defined(__GLIBC__)
#  include <malloc.h>
#endif

#include "ft/error.hpp"

namespace ft {

namespace {

/// `(flush_atom, uint64_t batch)`: commit batch number `batch` if it is
/// still pending.
using flush_atom = caf::atom_constant<caf::atom("ftsnflush")>;

/// `(retain_atom)`: the timer that prunes the keys stored since the last
/// one down to `keep_per_key`.
using retain_atom = caf::atom_constant<caf::atom("ftsnretain")>;

class snapshot_writer_actor : public caf::event_based_actor {
public:
  snapshot_writer_actor(caf::actor_config& cfg, snapshot_store store,
                        snapshot_writer_options opts)
    : caf::event_based_actor(cfg),
      store_(std::move(store)),
      group_(opts.store.mode == durability::group_commit),
      window_(opts.group_window),
      max_batch_(opts.max_batch == 0 ? 1 : opts.max_batch),
      keep_(opts.keep_per_key),
      prune_interval_(opts.prune_interval),
      on_commit_(std::move(opts.on_commit)) {
    // nop
  }

  const char* name() const override {
    return "ft.snapshot_writer";
  }

  /// Commits what is pending: a graceful stop must not drop acknowledged
  /// work, and the writers waiting for an answer get one.
  void on_exit() override {
    flush();
    // Close the environment now, not when the last handle to this actor
    // goes (which may be never, or after a successor tried to open the same
    // directory: LMDB allows one environment per directory and process).
    { auto closing = std::move(store_); }
    on_commit_ = nullptr;
    dirty_.clear();
  }

  caf::behavior make_behavior() override {
    return {
      [this](snapshot_write_atom,
             snapshot_envelope& x) -> caf::result<uint64_t> {
        if (!group_)
          return write_one(x);
        return add_to_batch(std::move(x));
      },
      [this](flush_atom, uint64_t batch) {
        if (batch == batch_no_)
          flush();
      },
      [this](retain_atom) {
        retain_armed_ = false;
        retain();
      },
      [this](snapshot_latest_atom,
             const std::string& key) -> caf::result<snapshot_envelope> {
        flush();
        return to_result(store_.latest(key));
      },
      [this](snapshot_before_atom, const std::string& key,
             uint64_t seq) -> caf::result<snapshot_envelope> {
        flush();
        return to_result(store_.before(key, seq));
      },
      [this](snapshot_list_atom) -> caf::result<std::vector<snapshot_info>> {
        flush();
        return to_result(store_.list());
      },
      [this](snapshot_list_atom, const std::string& key)
        -> caf::result<std::vector<snapshot_info>> {
        flush();
        return to_result(store_.list(key));
      },
      [this](snapshot_verify_atom)
        -> caf::result<std::vector<snapshot_problem>> {
        flush();
        return to_result(store_.verify());
      },
      [this](snapshot_prune_atom, const std::string& key,
             uint64_t keep) -> caf::result<uint64_t> {
        flush();
        auto n = store_.prune(key, keep);
        if (!n)
          return std::move(n.error());
        return static_cast<uint64_t>(*n);
      },
      [this](snapshot_remove_atom,
             const std::string& key) -> caf::result<uint64_t> {
        flush();
        auto n = store_.remove(key);
        if (!n)
          return std::move(n.error());
        return static_cast<uint64_t>(*n);
      },
      [this](snapshot_stats_atom) { return stats_; },
    };
  }

private:
  template <class T>
  static caf::result<T> to_result(caf::expected<T>&& x) {
    if (!x)
      return std::move(x.error());
    return std::move(*x);
  }

  caf::result<uint64_t> write_one(const snapshot_envelope& x) {
    auto start = std::chrono::steady_clock::now();
    auto err = store_.write(x);
    observe(start, err ? 0 : 1, err ? 1 : 0, err);
    if (err) {
      ++stats_.rejected;
      return err;
    }
    ++stats_.transactions;
    note_stored(x, 1);
    return x.sequence;
  }

  /// Tells the `on_commit` observer about one commit.
  void observe(std::chrono::steady_clock::time_point start, size_t stored,
               size_t failed, const caf::error& err) {
    if (!on_commit_)
      return;
    snapshot_commit_info info;
    info.stored = stored;
    info.failed = failed;
    info.duration = std::chrono::steady_clock::now() - start;
    info.error = err;
    on_commit_(info);
  }

  caf::result<uint64_t> add_to_batch(snapshot_envelope&& x) {
    auto rp = make_response_promise<uint64_t>();
    batch_.push_back(std::move(x));
    waiting_.push_back(rp);
    if (batch_.size() >= max_batch_) {
      flush();
    } else if (batch_.size() == 1) {
      if (window_.count() > 0)
        delayed_send(this, window_, flush_atom::value, batch_no_);
      else
        send(this, flush_atom::value, batch_no_);
    }
    return rp;
  }

  /// Commits the pending batch in one transaction and answers its writers.
  void flush() {
    if (batch_.empty())
      return;
    ++batch_no_; // a timer or message for the old number is now stale
    auto batch = std::move(batch_);
    auto waiting = std::move(waiting_);
    batch_.clear();
    waiting_.clear();
    caf::expected<std::vector<caf::error>> results{caf::error{}};
    auto start = std::chrono::steady_clock::now();
    try {
      results = store_.write_batch(batch);
    } catch (const std::bad_alloc&) {
      // Nothing was committed; every writer must still get an answer.
      results = make_error(errc::store_error,
                           "write_batch: out of memory encoding the batch");
    }
    if (!results) {
      observe(start, 0, batch.size(), results.error());
      stats_.rejected += batch.size();
      for (auto& rp : waiting)
        rp.deliver(results.error());
      return;
    }
    ++stats_.transactions;
    if (on_commit_) {
      size_t failed = 0;
      caf::error first;
      for (auto& err : *results)
        if (err && failed++ == 0)
          first = err;
      observe(start, batch.size() - failed, failed, first);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (auto& err = (*results)[i]) {
        ++stats_.rejected;
        waiting[i].deliver(std::move(err));
      } else {
        note_stored(batch[i], batch.size());
        waiting[i].deliver(batch[i].sequence);
      }
    }
  }

  /// Prunes every key stored since the last call to its newest `keep_`
  /// snapshots, in one transaction. A failure (e.g. a full disk) leaves the
  /// keys for the next round; the writes themselves are not affected.
  void retain() {
    if (dirty_.empty())
      return;
    std::vector<std::string> keys(dirty_.begin(), dirty_.end());
    flush();
    auto n = store_.prune(keys, keep_);
    if (!n) {
      arm_retain();
      return;
    }
    dirty_.clear();
    stats_.pruned += *n;
  }

  void arm_retain() {
    if (retain_armed_)
      return;
    retain_armed_ = true;
    delayed_send(this, prune_interval_, retain_atom::value);
  }

  void note_stored(const snapshot_envelope& x, uint64_t batch_size) {
    if (keep_ > 0) {
      dirty_.insert(x.key);
      arm_retain();
    }
    ++stats_.writes;
    stats_.payload_bytes += x.payload.size();
    if (batch_size > stats_.largest_batch)
      stats_.largest_batch = batch_size;
  }

  snapshot_store store_;
  const bool group_;
  const caf::timespan window_;
  const size_t max_batch_;
  /// Snapshots kept per key (0: all) and how often the writer prunes.
  const size_t keep_;
  const caf::timespan prune_interval_;
  std::set<std::string> dirty_;
  bool retain_armed_ = false;
  std::function<void(const snapshot_commit_info&)> on_commit_;
  std::vector<snapshot_envelope> batch_;
  std::vector<caf::typed_response_promise<uint64_t>> waiting_;
  uint64_t batch_no_ = 0;
  snapshot_writer_stats stats_;
};

} // namespace

caf::expected<caf::actor> spawn_snapshot_writer(caf::actor_system& sys,
                                                snapshot_writer_options opts) {
  auto store = snapshot_store::open(opts.dir, opts.store);
  if (!store)
    return std::move(store.error());
  return sys.spawn<snapshot_writer_actor>(std::move(*store), std::move(opts));
}

bool set_heap_headroom(size_t bytes) noexcept {
#if defined(__GLIBC__)
  // Also false when glibc's malloc is replaced: a sanitizer's `mallopt`
  // accepts nothing.
  auto pad = static_cast<int>(std::min(bytes, size_t{INT_MAX}));
  return mallopt(M_TOP_PAD, pad) == 1;
#else
  static_cast<void>(bytes);
  return false;
#endif
}

} // namespace ft
