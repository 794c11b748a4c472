// Checkpointed actors (ft/checkpoint.hpp): one event-based actor class that
// restores the user's state from the node's snapshot writer, then runs the
// user's behaviour behind a hook (hooked_behavior.hpp) that counts handled
// messages, takes checkpoints, answers our private messages, applies the
// dedupe window and, with `reply_after_checkpoint`, holds replies until the
// snapshot covering them is committed.
//
// Life of an incarnation:
//
//   spawn -> restoring: latest(key) [-> before(key, seq) ...] -> running
//                         (user messages wait: default handler `skip`)
//
// The recovery tracker, shared by the incarnations of one supervised child,
// remembers which snapshot each start used and whether it failed, so a
// poison snapshot is given up after `max_recovery_attempts` failed starts.

#include "ft/checkpoint.hpp"

#include <chrono>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "ft/child_spec.hpp"
#include "ft/error.hpp"
#include "ft/snapshot_writer.hpp"

#include "hooked_behavior.hpp"
#include "wall_clock.hpp"

namespace ft {

// -- the recovery tracker -----------------------------------------------------

/// Thread-safe: the supervisor calls `begin_start` from its thread (inside
/// the start function), the incarnations report from theirs. The ordering
/// that matters — an incarnation's reports happen before the supervisor
/// learns that it ended — holds because the reports are made from the
/// actor's own handlers and `on_exit`, which CAF runs before it sends the
/// down message; nothing depends on attached functors.
class recovery_tracker {
public:
  /// Called before each spawn: settles the previous incarnation (a start
  /// still marked pending ended abnormally before its first successful
  /// message) and refuses when every snapshot we may fall back to failed.
  caf::error begin_start(const std::string& key, int max_attempts) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!exhausted_ && pending_ && source_) {
      pending_ = false;
      if (++failures_ >= max_attempts)
        give_up(*source_, std::to_string(failures_) + " failed starts");
    }
    pending_ = false;
    if (exhausted_)
      return make_error(errc::restore_failed, describe_locked(key));
    return caf::none;
  }

  /// The incarnation now starts from snapshot `seq` (0: from a fresh
  /// state). A fresh start is watched only after a fallback: a worker that
  /// crashes without any snapshot is the supervisor's business, not a
  /// poison snapshot.
  void restoring(uint64_t seq) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!source_ || *source_ != seq) {
      source_ = seq;
      failures_ = 0;
    }
    pending_ = seq != 0 || !chain_.empty();
  }

  /// Snapshot `seq` cannot be used at all (decode, upgrade or checksum
  /// failure): deterministic, so given up at once. Returns whether that
  /// leaves nothing to fall back to.
  bool unusable(uint64_t seq, const std::string& why) {
    std::lock_guard<std::mutex> guard{mtx_};
    pending_ = false;
    give_up(seq, why);
    return exhausted_;
  }

  /// The incarnation handled its first message: its snapshot is good.
  void healthy() {
    std::lock_guard<std::mutex> guard{mtx_};
    pending_ = false;
    failures_ = 0;
    chain_.clear();
  }

  /// The incarnation stopped gracefully: not a failed start (but no proof
  /// that its snapshot is good either).
  void stopped() {
    std::lock_guard<std::mutex> guard{mtx_};
    pending_ = false;
  }

  /// Whether a restore must pass over snapshot `seq`.
  bool skipped(uint64_t seq) const {
    std::lock_guard<std::mutex> guard{mtx_};
    return skip_.count(seq) > 0;
  }

  /// The highest sequence any incarnation read or wrote: the next snapshot
  /// must exceed it even after a fallback to an older one.
  uint64_t highest() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return highest_;
  }

  void note_sequence(uint64_t seq) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (seq > highest_)
      highest_ = seq;
  }

  std::string describe(const std::string& key) const {
    std::lock_guard<std::mutex> guard{mtx_};
    return describe_locked(key);
  }

private:
  std::string describe_locked(const std::string& key) const {
    std::string result = key + ": no usable snapshot after ";
    for (size_t i = 0; i < chain_.size(); ++i) {
      if (i > 0)
        result += ", then ";
      auto& x = chain_[i];
      result += x.seq == 0 ? std::string{"the fresh state"}
                           : "#" + std::to_string(x.seq);
      result += " (" + x.why + ")";
    }
    return result;
  }

  /// Gives up a start source. Two in a row without a healthy start in
  /// between — the snapshot and the one it fell back to — exhaust the
  /// tracker: "fall back to the previous one, then escalate".
  void give_up(uint64_t seq, std::string why) {
    if (seq != 0)
      skip_.insert(seq);
    chain_.push_back({seq, std::move(why)});
    source_.reset();
    failures_ = 0;
    if (chain_.size() >= 2)
      exhausted_ = true;
  }

  struct given_up {
    uint64_t seq;
    std::string why;
  };

  mutable std::mutex mtx_;
  uint64_t highest_ = 0;
  /// Snapshots never used again by this child (poison or unreadable).
  std::set<uint64_t> skip_;
  /// Sources given up since the last healthy start, in order.
  std::vector<given_up> chain_;
  /// The source of the latest start and its failed starts so far.
  std::optional<uint64_t> source_;
  int failures_ = 0;
  /// Whether the latest start has neither succeeded nor stopped gracefully.
  bool pending_ = false;
  /// Sticky: a child whose snapshots failed twice in a row will not heal by
  /// itself; an operator removes the bad snapshots and starts a new child
  /// (a fresh spec, hence a fresh tracker).
  bool exhausted_ = false;
};

// -- the core behind checkpoint_context ---------------------------------------

namespace detail {

class checkpoint_core {
public:
  virtual ~checkpoint_core() = default;
  virtual caf::event_based_actor* core_self() noexcept = 0;
  virtual void checkpoint_on_demand() = 0;
  virtual uint64_t committed() const noexcept = 0;
  virtual uint64_t restored_from() const noexcept = 0;
  virtual const std::string& snapshot_key() const noexcept = 0;
};

recovery_tracker_ptr make_recovery_tracker() {
  return std::make_shared<recovery_tracker>();
}

} // namespace detail

caf::event_based_actor* checkpoint_context::self() const noexcept {
  return core_ != nullptr ? core_->core_self() : nullptr;
}

void checkpoint_context::checkpoint() {
  if (core_ != nullptr)
    core_->checkpoint_on_demand();
}

uint64_t checkpoint_context::committed_sequence() const noexcept {
  return core_ != nullptr ? core_->committed() : 0;
}

uint64_t checkpoint_context::restored_sequence() const noexcept {
  return core_ != nullptr ? core_->restored_from() : 0;
}

const std::string& checkpoint_context::key() const noexcept {
  static const std::string none;
  return core_ != nullptr ? core_->snapshot_key() : none;
}

namespace {

// -- private messages ---------------------------------------------------------

/// `(tick_atom)`: the `checkpoint_interval` timer (to self).
using tick_atom = caf::atom_constant<caf::atom("ftckpttick")>;

/// Never sent: the restoring behaviour needs one handler to keep the actor
/// alive while user messages are skipped.
using restoring_atom = caf::atom_constant<caf::atom("ftckptrest")>;

constexpr uint64_t key_of(caf::atom_value x) {
  return static_cast<uint64_t>(x);
}

/// `key #seq`, as the snapshot store names a snapshot in its errors.
std::string describe(const std::string& key, uint64_t seq) {
  return key + " #" + std::to_string(seq);
}

/// The highest sequence in `xs` (below `bound`, if set); 0 if none.
uint64_t newest_below(const std::vector<snapshot_info>& xs,
                      std::optional<uint64_t> bound) {
  uint64_t result = 0;
  for (auto& x : xs)
    if ((!bound || x.sequence < *bound) && x.sequence > result)
      result = x.sequence;
  return result;
}

// -- result observation -------------------------------------------------------

/// Sees what the user's handler returned. Passes it on unchanged, except
/// when `hold`: then a value or error is kept (the reply waits for the
/// commit), so the mailbox element stays unanswered and a response promise
/// can take it over after the handler.
class observing_visitor final : public detail::forwarding_visitor {
public:
  enum class outcome { none, deferred, value, error, nothing };

  observing_visitor(caf::detail::invoke_result_visitor& next, bool hold)
    : forwarding_visitor(next), hold_(hold) {
    // nop
  }

  using forwarding_visitor::operator();

  void operator()() override {
    result_ = outcome::deferred;
    next_();
  }

  void operator()(caf::error& x) override {
    result_ = outcome::error;
    if (hold_)
      err_ = x;
    else
      next_(x);
  }

  void operator()(caf::message& x) override {
    result_ = outcome::value;
    if (hold_)
      msg_ = x;
    else
      next_(x);
  }

  void operator()(const caf::none_t& x) override {
    result_ = outcome::nothing;
    if (hold_)
      err_ = caf::sec::unexpected_response; // as CAF answers `none`
    else
      next_(x);
  }

  outcome result() const noexcept {
    return result_;
  }

  /// Whether a result was kept back (hold mode).
  bool held() const noexcept {
    return hold_ && result_ != outcome::none && result_ != outcome::deferred;
  }

  caf::message& msg() noexcept {
    return msg_;
  }

  caf::error& err() noexcept {
    return err_;
  }

private:
  bool hold_;
  outcome result_ = outcome::none;
  caf::message msg_;
  caf::error err_;
};

// -- the actor ----------------------------------------------------------------

/// The dedupe window: the ids of the last `capacity` applied messages,
/// oldest first, with an index. Every routed message passes through it, so
/// it recycles: a new id takes over the oldest one's string (whose storage
/// it reuses) and index node, where a plain deque and set of strings cost
/// three allocations and three frees per message.
class id_window {
public:
  bool contains(const std::string& id) const {
    return index_.count(std::string_view{id}) != 0;
  }

  /// Adds `id` unless present, dropping the oldest beyond `capacity`.
  void add(const std::string& id, size_t capacity) {
    if (capacity == 0 || contains(id))
      return;
    while (ids_.size() > capacity) // the capacity shrank
      drop_oldest();
    if (ids_.size() < capacity) {
      ids_.push_back(id);
      index_.insert(std::string_view{ids_.back()});
      return;
    }
    // Full: recycle the oldest. A deque keeps its elements in place as it
    // grows and shrinks at the ends, so the views into them stay valid.
    auto node = index_.extract(std::string_view{ids_.front()});
    auto recycled = std::move(ids_.front());
    ids_.pop_front();
    recycled.assign(id);
    ids_.push_back(std::move(recycled));
    std::string_view view{ids_.back()};
    if (node.empty()) {
      index_.insert(view);
    } else {
      node.value() = view;
      index_.insert(std::move(node));
    }
  }

  void clear() {
    index_.clear();
    ids_.clear();
  }

  auto begin() const {
    return ids_.begin();
  }

  auto end() const {
    return ids_.end();
  }

private:
  void drop_oldest() {
    index_.erase(std::string_view{ids_.front()});
    ids_.pop_front();
  }

  std::deque<std::string> ids_;
  std::unordered_set<std::string_view> index_;
};

class checkpoint_actor final : public caf::event_based_actor,
                               public detail::checkpoint_core {
public:
  checkpoint_actor(caf::actor_config& cfg, checkpoint_options opts,
                   recovery_tracker_ptr tracker,
                   std::shared_ptr<checkpoint_context> ctx,
                   checkpoint_hooks hooks, std::function<caf::behavior()> make)
    : caf::event_based_actor(cfg),
      opts_(std::move(opts)),
      tracker_(std::move(tracker)),
      ctx_(std::move(ctx)),
      hooks_(std::move(hooks)),
      make_(std::move(make)) {
    last_seq_ = tracker_->highest();
  }

  const char* name() const override {
    return "ft.checkpointed";
  }

  caf::behavior make_behavior() override {
    ctx_->attach(this);
    // User messages (and checkpoint requests) wait in the mailbox until the
    // state is in place; CAF retries skipped messages after the next
    // handled one, i.e. right after the restore reply.
    set_default_handler(caf::skip);
    fetch(std::nullopt);
    return {[](restoring_atom) {}};
  }

  /// Graceful stop: the last snapshot (the writer's mailbox is FIFO, so the
  /// next incarnation's restore read comes after this write). Any stop:
  /// answer what waits for commits this incarnation will not see.
  void on_exit() override {
    auto graceful = is_normal_exit(fail_state());
    if (graceful && running_ && opts_.config.checkpoint_on_stop && dirty_) {
      if (auto env = make_envelope())
        caf::anon_send(opts_.writer, snapshot_write_atom::value,
                       std::move(*env));
    }
    // Killed from outside (its supervisor's brutal_kill or shutdown
    // timeout, e.g. for a sibling's restart): not a failed start either.
    auto external = fail_state() == caf::exit_reason::kill;
    if ((graceful || external) && tracked())
      tracker_->stopped();
    auto err = make_error(errc::child_stopped,
                          opts_.key
                            + ": the actor stopped before the snapshot with "
                              "this message's effect was committed; resend "
                              "with the same message id to learn the outcome");
    for (auto& h : held_)
      h.rp.deliver(err);
    held_.clear();
    for (auto& kvp : acks_)
      for (auto& rp : kvp.second)
        rp.deliver(err);
    acks_.clear();
    ctx_->attach(nullptr);
    // Members live until our last handle goes, not until we terminate: the
    // user's behaviour factory and hooks may capture handles that point back
    // at us, so release them with the writer.
    make_ = nullptr;
    hooks_ = checkpoint_hooks{};
    opts_.writer = nullptr;
  }

  // -- checkpoint_core --------------------------------------------------------

  caf::event_based_actor* core_self() noexcept override {
    return this;
  }

  void checkpoint_on_demand() override {
    if (running_)
      write_snapshot();
  }

  uint64_t committed() const noexcept override {
    return committed_;
  }

  uint64_t restored_from() const noexcept override {
    return restored_;
  }

  const std::string& snapshot_key() const noexcept override {
    return opts_.key;
  }

private:
  /// A reply waiting for the commit of snapshot `need`.
  struct held_reply {
    uint64_t need;
    caf::response_promise rp;
    bool is_error;
    caf::message msg;
    caf::error err;
  };

  bool checkpointing() const noexcept {
    return opts_.config.strategy == ft_strategy::checkpoint;
  }

  /// Whether the tracker watches this incarnation (only strategy
  /// checkpoint reads snapshots back).
  bool tracked() const noexcept {
    return checkpointing();
  }

  void report(const std::string& what) {
    caf::aout(this) << "[ft] checkpoint " << opts_.key << ": " << what
                    << std::endl;
  }

  // -- restoring --------------------------------------------------------------

  /// Asks the writer for the newest snapshot, or the newest below `below`.
  /// Every restore starts at the newest and steps down past the snapshots
  /// the tracker skips (rather than starting below a fixed ceiling): a
  /// snapshot written after a fallback is newer than the poison one and
  /// must win, with no ceiling to clear.
  void fetch(std::optional<uint64_t> below) {
    fetching_below_ = below;
    auto ok = [this](snapshot_envelope& env) { on_snapshot(env); };
    auto failed = [this](caf::error& err) { on_fetch_error(err); };
    if (below)
      request(opts_.writer, caf::infinite, snapshot_before_atom::value,
              opts_.key, *below)
        .then(ok, failed);
    else
      request(opts_.writer, caf::infinite, snapshot_latest_atom::value,
              opts_.key)
        .then(ok, failed);
  }

  void note_sequence(uint64_t seq) {
    if (seq > last_seq_)
      last_seq_ = seq;
    tracker_->note_sequence(seq);
  }

  void on_snapshot(snapshot_envelope& env) {
    note_sequence(env.sequence);
    if (!checkpointing()) {
      // Strategy restart reads only to continue the sequence numbers.
      go_live();
      return;
    }
    if (tracker_->skipped(env.sequence)) {
      fetch(env.sequence);
      return;
    }
    tracker_->restoring(env.sequence);
    if (auto err = apply(env)) {
      give_up(env.sequence, err);
      return;
    }
    restored_ = env.sequence;
    go_live();
  }

  void on_fetch_error(const caf::error& err) {
    if (is(err, errc::snapshot_not_found)) {
      if (checkpointing())
        tracker_->restoring(0);
      go_live();
      return;
    }
    if (is(err, errc::checksum_mismatch) || is(err, errc::corrupt_snapshot)) {
      // The record we asked for is damaged. Its sequence is the newest one
      // of our key (below the fetch's bound): the listing has it, as it
      // reads headers only and includes damaged records.
      request(opts_.writer, caf::infinite, snapshot_list_atom::value,
              opts_.key)
        .then(
          [this, err](std::vector<snapshot_info>& xs) {
            auto seq = newest_below(xs, fetching_below_);
            if (seq == 0) {
              report("cannot read snapshots: " + render(err));
              quit(err);
              return;
            }
            note_sequence(seq);
            if (!checkpointing())
              go_live();
            else if (tracker_->skipped(seq))
              fetch(seq); // given up by an earlier incarnation already
            else
              give_up(seq, err);
          },
          [this](caf::error& e) {
            report("cannot read snapshots: " + render(e));
            quit(e);
          });
      return;
    }
    // The writer is gone or the store failed: nothing we can decide here.
    // Exit abnormally and let the supervisor retry (not a poison snapshot:
    // no snapshot was tried).
    report("cannot read snapshots: " + render(err));
    quit(err);
  }

  /// A snapshot that cannot be used: back to a fresh state, then the one
  /// before it (at once: a deterministic failure does not improve with
  /// retries), unless that was the second in a row.
  void give_up(uint64_t seq, const caf::error& err) {
    reset_state();
    report("snapshot #" + std::to_string(seq) + " unusable: " + render(err));
    if (tracker_->unusable(seq, render(err))) {
      quit(make_error(errc::restore_failed, tracker_->describe(opts_.key)));
      return;
    }
    fetch(seq);
  }

  void reset_state() {
    hooks_.reset();
    ids_.clear();
    handled_ = 0;
  }

  /// Unwraps, upgrades and decodes `env` into the state. User code
  /// (codecs, upgrade hooks) may throw: that is a failed decode too, not a
  /// crash of the restore.
  caf::error apply(const snapshot_envelope& env) {
    auto what = describe(opts_.key, env.sequence);
    auto payload = detail::decode_checkpoint_payload(env.payload, what);
    if (!payload)
      return std::move(payload.error());
    auto state = std::move(payload->state);
    try {
      if (env.schema_version != hooks_.version) {
        auto mismatch = what + ": schema_version "
                        + std::to_string(env.schema_version)
                        + ", this actor reads "
                        + std::to_string(hooks_.version);
        if (!opts_.upgrade)
          return make_error(errc::schema_mismatch,
                            mismatch + " and has no upgrade hook");
        auto up = opts_.upgrade(env.schema_version, state);
        if (!up)
          return make_error(errc::schema_mismatch,
                            mismatch + ": upgrade failed: "
                              + render(up.error()));
        state = std::move(*up);
      }
      if (auto err = hooks_.decode(state))
        return make_error(errc::corrupt_snapshot,
                          what + ": cannot decode the state: " + render(err));
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& ex) {
      return make_error(errc::corrupt_snapshot,
                        what + ": exception while decoding: " + ex.what());
    }
    // A window configured smaller than the stored one keeps the newest ids.
    auto& ids = payload->applied_ids;
    auto first = ids.size() > opts_.config.dedupe_window
                   ? ids.size() - opts_.config.dedupe_window
                   : size_t{0};
    for (auto i = first; i < ids.size(); ++i)
      remember(ids[i]);
    handled_ = payload->handled;
    return caf::none;
  }

  void go_live() {
    running_ = true;
    set_default_handler(caf::print_and_drop);
    auto inner = make_();
    become(detail::hook_behavior(
      std::move(inner),
      [this](caf::detail::invoke_result_visitor& f, caf::type_erased_tuple& xs,
             caf::behavior& bhvr) { return on_message(f, xs, bhvr); }));
  }

  // -- running ----------------------------------------------------------------

  caf::match_case::result on_message(caf::detail::invoke_result_visitor& f,
                                     caf::type_erased_tuple& xs,
                                     caf::behavior& bhvr) {
    if (xs.size() == 1 && xs.match_element<caf::atom_value>(0)) {
      switch (key_of(xs.get_as<caf::atom_value>(0))) {
        case key_of(tick_atom::value):
          on_tick();
          f();
          return caf::match_case::match;
        case key_of(checkpoint_now_atom::value):
          on_checkpoint_now();
          f();
          return caf::match_case::match;
        default:
          break;
      }
    }
    if (xs.size() == 3
        && xs.match_elements<message_id_atom, std::string, caf::message>())
      return on_with_id(f, xs, bhvr);
    return run_handler(f, nullptr,
                       [&](caf::detail::invoke_result_visitor& v) {
                         return bhvr(v, xs);
                       });
  }

  bool is_request() {
    auto* el = current_mailbox_element();
    return el != nullptr && el->mid.is_request();
  }

  caf::match_case::result on_with_id(caf::detail::invoke_result_visitor& f,
                                     caf::type_erased_tuple& xs,
                                     caf::behavior& bhvr) {
    const auto& id = xs.get_as<std::string>(1);
    if (opts_.config.dedupe_window > 0 && ids_.contains(id)) {
      answer_duplicate(f, id);
      return caf::match_case::match;
    }
    // Taken out of the envelope, not shared with it: the handler then runs
    // on the message itself, where a shared one would be copied first.
    auto inner = xs.move_if_unshared<caf::message>(2);
    auto res = run_handler(f, &id, [&](caf::detail::invoke_result_visitor& v) {
      return bhvr(v, inner);
    });
    // Not handled (e.g. skipped for later): the envelope stays whole.
    if (res != caf::match_case::match && !xs.shared())
      xs.get_mutable_as<caf::message>(2) = std::move(inner);
    return res;
  }

  /// A duplicate is answered `duplicate_message`; with
  /// `reply_after_checkpoint` only once the original's effect is committed,
  /// so the answer means "applied and durable".
  void answer_duplicate(caf::detail::invoke_result_visitor& f,
                        const std::string& id) {
    if (!is_request()) {
      f(); // an asynchronous sender expects no answer
      return;
    }
    auto err = make_error(errc::duplicate_message,
                          opts_.key + ": message " + id
                            + " was already applied");
    if (!opts_.config.reply_after_checkpoint) {
      f(err);
      return;
    }
    f();
    hold(held_reply{0, make_response_promise(), true, caf::message{},
                    std::move(err)});
  }

  /// Runs the user's handler through `call`, then does the bookkeeping of
  /// a handled message. `id` is the message id of an envelope.
  template <class Call>
  caf::match_case::result run_handler(caf::detail::invoke_result_visitor& f,
                                      const std::string* id, Call call) {
    auto hold_reply = opts_.config.reply_after_checkpoint && is_request();
    observing_visitor v{f, hold_reply};
    auto res = call(v);
    if (res != caf::match_case::match)
      return res;
    // An id counts as applied once its handler returned without an error
    // (an error says "not done": a retry under the same id should run).
    auto ok = v.result() != observing_visitor::outcome::error;
    if (id != nullptr && ok)
      remember(*id);
    after_handled();
    if (v.held()) {
      held_reply h{0, make_response_promise(),
                   v.result() != observing_visitor::outcome::value,
                   std::move(v.msg()), std::move(v.err())};
      // A handler that crashed the actor saved nothing: answer at once,
      // and never write its state (hold() might, when a write is due).
      if (aborting())
        release(h);
      else
        hold(std::move(h));
    }
    return caf::match_case::match;
  }

  /// Whether the running handler made the actor quit with an error (CAF
  /// marks a quit as "shutting down" until the handler returns).
  bool aborting() const {
    return (getf(is_shutting_down_flag) || getf(is_terminated_flag))
           && !is_normal_exit(fail_state());
  }

  void after_handled() {
    // A handler that quit with an error crashed the actor: its message does
    // not prove the snapshot, and the state it left must not be saved (a
    // poison state written now would replace the snapshot being given up).
    // A thrown exception never gets here.
    if (aborting())
      return;
    // The first message handled without crashing proves the snapshot this
    // incarnation started from.
    if (!confirmed_) {
      confirmed_ = true;
      if (tracked())
        tracker_->healthy();
    }
    ++handled_;
    ++since_;
    dirty_ = true;
    auto every = opts_.config.checkpoint_every;
    if (every > 0 && since_ >= every)
      write_snapshot();
    if (dirty_)
      arm_timer();
  }

  /// `checkpoint_interval`: armed by a handled message, so an idle actor
  /// with nothing new to save does not wake up.
  void arm_timer() {
    auto interval = opts_.config.checkpoint_interval;
    if (interval.count() <= 0 || timer_armed_)
      return;
    timer_armed_ = true;
    delayed_send(this, interval, tick_atom::value);
  }

  void on_tick() {
    timer_armed_ = false;
    if (dirty_)
      write_snapshot();
  }

  void on_checkpoint_now() {
    auto rp = make_response_promise();
    auto seq = write_snapshot();
    if (!seq) {
      rp.deliver(std::move(seq.error()));
      return;
    }
    acks_[*seq].push_back(std::move(rp));
  }

  // -- dedupe window ----------------------------------------------------------

  void remember(const std::string& id) {
    ids_.add(id, opts_.config.dedupe_window);
  }

  // -- writing ----------------------------------------------------------------

  /// The current state as the next snapshot (takes its sequence).
  caf::expected<snapshot_envelope> make_envelope() {
    caf::expected<byte_buffer> state{byte_buffer{}};
    try {
      state = hooks_.encode();
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& ex) {
      state = make_error(errc::corrupt_snapshot,
                         std::string{"exception while encoding: "}
                           + ex.what());
    }
    if (!state) {
      report("cannot encode the state: " + render(state.error()));
      return std::move(state.error());
    }
    detail::checkpoint_payload payload;
    payload.state = std::move(*state);
    payload.applied_ids.assign(ids_.begin(), ids_.end());
    payload.handled = handled_;
    auto bytes = detail::encode_checkpoint_payload(payload);
    if (!bytes) {
      report(render(bytes.error()));
      return std::move(bytes.error());
    }
    snapshot_envelope env;
    env.key = opts_.key;
    env.actor_type = opts_.actor_type;
    env.schema_version = hooks_.version;
    env.sequence = last_seq_ + 1;
    env.timestamp_ms = detail::wall_clock_ms();
    env.node_id = opts_.node_id;
    env.payload = std::move(*bytes);
    note_sequence(env.sequence);
    dirty_ = false;
    since_ = 0;
    return env;
  }

  /// Sends the next snapshot to the writer; returns its sequence. Writes
  /// are pipelined: the next message is handled without waiting for this
  /// commit, so the writer's group commit can batch them.
  caf::expected<uint64_t> write_snapshot() {
    auto env = make_envelope();
    if (!env)
      return std::move(env.error());
    auto seq = env->sequence;
    in_flight_.insert(seq);
    request(opts_.writer, caf::infinite, snapshot_write_atom::value,
            std::move(*env))
      .then([this, seq](uint64_t) { on_committed(seq); },
            [this, seq](caf::error& err) { on_write_failed(seq, err); });
    return seq;
  }

  void on_committed(uint64_t seq) {
    in_flight_.erase(seq);
    if (seq > committed_)
      committed_ = seq;
    if (auto i = acks_.find(seq); i != acks_.end()) {
      for (auto& rp : i->second)
        rp.deliver(seq);
      acks_.erase(i);
    }
    // Snapshots hold the whole state: any commit at or after a reply's
    // snapshot makes its effect durable.
    while (!held_.empty() && held_.front().need <= committed_) {
      release(held_.front());
      held_.pop_front();
    }
  }

  /// The write failed (e.g. `store_full`): the actor lives on. The state
  /// is still unsaved (`dirty_`), so the next trigger writes it again; a
  /// reply waiting for this snapshot waits for a later one still in
  /// flight, else it gets the writer's error.
  void on_write_failed(uint64_t seq, const caf::error& err) {
    in_flight_.erase(seq);
    dirty_ = true;
    report("snapshot #" + std::to_string(seq) + " not stored: " + render(err));
    if (is(err, errc::stale_sequence)) {
      // Someone else wrote a newer snapshot of our key (an operator, a
      // failover): learn its sequence so the next snapshot goes above it
      // instead of failing forever.
      request(opts_.writer, caf::infinite, snapshot_latest_atom::value,
              opts_.key)
        .then([this](snapshot_envelope& env) { note_sequence(env.sequence); },
              [this](caf::error&) {
                // The newest record is damaged: its header still counts.
                request(opts_.writer, caf::infinite,
                        snapshot_list_atom::value, opts_.key)
                  .then(
                    [this](std::vector<snapshot_info>& xs) {
                      note_sequence(newest_below(xs, std::nullopt));
                    },
                    [](caf::error&) {});
              });
    }
    if (auto i = acks_.find(seq); i != acks_.end()) {
      for (auto& rp : i->second)
        rp.deliver(err);
      acks_.erase(i);
    }
    if (in_flight_.empty() || *in_flight_.rbegin() < seq) {
      while (!held_.empty() && held_.front().need <= seq) {
        held_.front().rp.deliver(err);
        held_.pop_front();
      }
    }
    arm_timer();
  }

  /// Holds a reply until everything applied so far is committed.
  void hold(held_reply h) {
    if (!h.rp.pending())
      return;
    if (dirty_) {
      // Not yet in any snapshot sent (e.g. the last write failed): send
      // one now, or answer why it cannot be saved.
      auto seq = write_snapshot();
      if (!seq) {
        h.rp.deliver(std::move(seq.error()));
        return;
      }
    }
    if (in_flight_.empty()) {
      release(h);
      return;
    }
    h.need = *in_flight_.rbegin();
    held_.push_back(std::move(h));
  }

  void release(held_reply& h) {
    if (h.is_error)
      h.rp.deliver(std::move(h.err));
    else
      h.rp.deliver(std::move(h.msg));
  }

  // -- state ------------------------------------------------------------------

  checkpoint_options opts_;
  recovery_tracker_ptr tracker_;
  std::shared_ptr<checkpoint_context> ctx_;
  checkpoint_hooks hooks_;
  std::function<caf::behavior()> make_;

  /// Whether the user's behaviour runs (restore finished).
  bool running_ = false;
  /// Whether this incarnation handled a message without crashing.
  bool confirmed_ = false;
  /// The highest sequence seen or written for the key.
  uint64_t last_seq_ = 0;
  /// The bound of the snapshot being fetched (`before`), none for `latest`:
  /// tells which record a damaged-read error was about.
  std::optional<uint64_t> fetching_below_;
  uint64_t committed_ = 0;
  uint64_t restored_ = 0;
  /// Messages handled (over all incarnations, via the snapshot).
  uint64_t handled_ = 0;
  /// Messages handled since the last snapshot was sent.
  uint64_t since_ = 0;
  /// Whether the state may differ from the last snapshot sent.
  bool dirty_ = false;
  bool timer_armed_ = false;
  /// The dedupe window.
  id_window ids_;
  /// Snapshots sent and not yet answered by the writer.
  std::set<uint64_t> in_flight_;
  /// `checkpoint_now_atom` requests by the sequence they wait for.
  std::map<uint64_t, std::vector<caf::response_promise>> acks_;
  /// Replies held for `reply_after_checkpoint`, by rising `need`.
  std::deque<held_reply> held_;
};

} // namespace

// -- spawning -----------------------------------------------------------------

namespace detail {

caf::expected<caf::actor>
spawn_checkpointed_impl(caf::actor_system& sys, checkpoint_options opts,
                        recovery_tracker_ptr tracker,
                        std::shared_ptr<checkpoint_context> ctx,
                        checkpoint_hooks hooks,
                        std::function<caf::behavior()> make) {
  if (auto err = validate(opts.config))
    return err;
  if (opts.key.empty())
    return make_error(errc::invalid_config,
                      "key = '' (a checkpointed actor needs a snapshot key)");
  if (!opts.writer)
    return make_error(errc::invalid_config,
                      "writer of " + opts.key
                        + " is invalid (see spawn_snapshot_writer)");
  if (!tracker || !ctx || !hooks.encode || !hooks.decode || !hooks.reset
      || !make)
    return make_error(errc::invalid_config,
                      "checkpointed actor " + opts.key
                        + ": missing tracker, context, codec or behaviour");
  if (opts.config.strategy == ft_strategy::checkpoint)
    if (auto err = tracker->begin_start(opts.key,
                                        opts.config.max_recovery_attempts))
      return err;
  return sys.spawn<checkpoint_actor>(std::move(opts), std::move(tracker),
                                     std::move(ctx), std::move(hooks),
                                     std::move(make));
}

} // namespace detail

} // namespace ft
