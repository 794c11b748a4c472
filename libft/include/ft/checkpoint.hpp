#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/timespan.hpp>

#include "ft/child_spec.hpp"
#include "ft/error.hpp"
#include "ft/snapshot.hpp"

/// Checkpointable actors: an actor whose state survives its crashes. It
/// saves snapshots of its state through the node's snapshot writer (every N
/// messages, every T, on demand, before a graceful stop) and, when its
/// supervisor restarts it, starts from the latest snapshot instead of from
/// nothing — Akka Persistence's snapshotting, for CAF actors.
namespace ft {

// -- configuration (the seed's `fault_tolerance` section) ---------------------

/// What a restart does with the saved state.
enum class ft_strategy : uint8_t {
  /// Start from the latest snapshot (default).
  checkpoint,
  /// Start fresh; snapshots are still written (for inspection and for the
  /// cluster's failover) but never read back on restart.
  restart,
};

const char* to_string(ft_strategy x) noexcept;

/// `fault_tolerance: {strategy, checkpoint_interval, checkpoint_every,
/// max_recovery_attempts, checkpoint_dir, dedupe_window, keep_snapshots,
/// reply_after_checkpoint, checkpoint_on_stop}`.
struct fault_tolerance_config {
  ft_strategy strategy = ft_strategy::checkpoint;

  /// Checkpoint every T while messages arrive (0 = off). YAML: seconds.
  caf::timespan checkpoint_interval{0};

  /// Checkpoint after every N handled messages (0 = off).
  uint64_t checkpoint_every = 0;

  /// Failed starts from one snapshot before falling back to the one before
  /// it; after the fallback fails as often, the start fails with
  /// `restore_failed` and the supervisor escalates as for any failed start.
  int max_recovery_attempts = 3;

  /// The snapshot store's directory (used by whoever spawns the writer).
  std::string checkpoint_dir;

  /// Message ids remembered for deduplication (see `with_message_id`); the
  /// oldest is forgotten first. 0 turns deduplication off. At most
  /// 1,000,000: the ids travel in every snapshot.
  size_t dedupe_window = 1024;

  /// Snapshots kept per key by the writer (`snapshot_writer_options::
  /// keep_per_key`, set by whoever spawns it from this field — the node
  /// does); 0 keeps all. An actor that checkpoints every message otherwise
  /// grows its store without bound. 0 or >= 2 (validated): a restore falls
  /// back to the snapshot before a poison one.
  size_t keep_snapshots = 0;

  /// Hold each reply until the snapshot covering its message is committed:
  /// a caller that got an answer knows the effect survives a crash. Needs
  /// `checkpoint_every = 1` to be meaningful (validated). Writes stay
  /// pipelined (the next message is handled before the commit), so the
  /// writer's group commit batches them. Only values and errors a handler
  /// returns are held; a handler that answers through its own response
  /// promise or delegates answers when it does. Replies still held when the
  /// actor stops get `child_stopped`; a failed write answers them with the
  /// writer's error (e.g. `store_full`) unless a later snapshot covering
  /// them is still in flight.
  bool reply_after_checkpoint = false;

  /// Write a snapshot when the actor stops gracefully (exit reason normal or
  /// user_shutdown, e.g. stopped by its supervisor) and its state changed
  /// since the last snapshot it sent.
  bool checkpoint_on_stop = true;
};

/// `invalid_config` naming the field, e.g. `max_recovery_attempts = 0 (must
/// be >= 1)`.
caf::error validate(const fault_tolerance_config& x);

/// Reads the mapping (the value of a `fault_tolerance:` key, or a document
/// holding one). Durations in seconds. Errors name `source:line`, the field
/// and the value.
caf::expected<fault_tolerance_config>
fault_tolerance_from_yaml(const std::string& text,
                          const std::string& source = "<config>");

// -- state codecs -------------------------------------------------------------

/// CAF's binary serializer over the type's `inspect` overload, stamped with
/// `Version`. The primary `state_codec` uses it with version 1; a state
/// type whose format changed keeps using it by raising the version:
/// `template <> struct ft::state_codec<my_state>
///    : ft::inspect_state_codec<my_state, 2> {};` (plus an `upgrade` hook in
/// `checkpoint_options` for the old snapshots).
template <class State, uint32_t Version = 1>
struct inspect_state_codec {
  static constexpr uint32_t version = Version;

  static caf::expected<byte_buffer> encode(const State& x) {
    std::vector<char> buf;
    caf::binary_serializer sink{nullptr, buf};
    if (auto err = sink(const_cast<State&>(x)))
      return err;
    return byte_buffer(buf.begin(), buf.end());
  }

  /// Fails (and the restore falls back) on bytes left over: they mean the
  /// bytes were written for another type, which the binary format cannot
  /// otherwise tell.
  static caf::error decode(const byte_buffer& bytes, State& x) {
    caf::binary_deserializer source{nullptr,
                                    reinterpret_cast<const char*>(bytes.data()),
                                    bytes.size()};
    if (auto err = source(x))
      return err;
    if (source.remaining() != 0)
      return make_error(errc::corrupt_snapshot,
                        std::to_string(source.remaining())
                          + " bytes left after decoding the state");
    return caf::none;
  }
};

/// Converts a state type to and from bytes: `static constexpr uint32_t
/// version`, `static caf::expected<byte_buffer> encode(const State&)` and
/// `static caf::error decode(const byte_buffer&, State&)`. The primary
/// template is `inspect_state_codec<State>`, so any type with an `inspect`
/// overload works; to use Cap'n Proto (or anything else) specialise it for
/// your type, or see `ft/capnp_state.hpp`. `version` is stored with each
/// snapshot as `schema_version`.
template <class State, class = void>
struct state_codec : inspect_state_codec<State> {};

/// Converts the state bytes of a snapshot written with another
/// `schema_version` (as that version's `state_codec::encode` wrote them)
/// into the current version's bytes, or fails. Any failure (an error or an
/// exception) counts as `schema_mismatch`: the restore falls back to the
/// snapshot before.
using upgrade_fn = std::function<caf::expected<byte_buffer>(
  uint32_t from_version, const byte_buffer& state)>;

// -- message ids and deduplication --------------------------------------------

/// `(message_id_atom, std::string id, caf::message inner)`: a message the
/// actor applies at most once. The id (chosen by the sender, e.g. a task id)
/// is stored in the snapshot's dedupe window with the state it changed, so
/// the same message replayed after a restore is answered with
/// `duplicate_message` instead of being applied again (an asynchronous
/// duplicate is dropped). An id counts as applied once its handler returned
/// without an error: an error means "not done", so a retry runs again.
/// The guarantee holds for ids among the last `dedupe_window` applied and
/// for effects that made it into the snapshot restored: an effect lost with
/// a crash (after the last checkpoint) loses its id too, so the replay is
/// applied — exactly once in the surviving history.
using message_id_atom = caf::atom_constant<caf::atom("ftmsgid")>;

/// Wraps `inner` as a message applied at most once under `id`.
caf::message with_message_id(std::string id, caf::message inner);

/// `(checkpoint_now_atom) -> uint64_t`: writes a snapshot now and answers
/// its sequence after the commit (or the writer's error).
using checkpoint_now_atom = caf::atom_constant<caf::atom("ftckptnow")>;

namespace detail {

/// What a checkpointed actor stores as the envelope's payload: its state and
/// the dedupe window that belongs to exactly that state. The format is a
/// Cap'n Proto struct (`libft/schema/checkpoint.capnp`), private to
/// ft_core; these functions are its only door (for ft_actors and tools).
struct checkpoint_payload {
  /// The state as `state_codec<State>::encode` wrote it.
  byte_buffer state;
  /// Ids of applied messages, oldest first.
  std::vector<std::string> applied_ids;
  /// Messages handled over all incarnations (informational).
  uint64_t handled = 0;
};

caf::expected<byte_buffer> encode_checkpoint_payload(const checkpoint_payload& x);

/// Errors: `corrupt_snapshot` naming `what` (e.g. `counter/42 #7`).
caf::expected<checkpoint_payload>
decode_checkpoint_payload(const byte_buffer& bytes, const std::string& what);

} // namespace detail

// -- the actor's view ---------------------------------------------------------

namespace detail {

/// The actor-side implementation behind `checkpoint_context` (ft_actors).
class checkpoint_core;

} // namespace detail

/// What a checkpointed actor's behaviour factory gets: its checkpoint
/// controls (and, through `checkpointed<State>`, its state). Lives as long
/// as the actor; use it only from the actor's own handlers.
class checkpoint_context {
public:
  /// The actor itself.
  caf::event_based_actor* self() const noexcept;

  /// Writes a snapshot now (asynchronously; send `checkpoint_now_atom` for
  /// an acknowledged one).
  void checkpoint();

  /// The sequence of the last committed snapshot (0 if none).
  uint64_t committed_sequence() const noexcept;

  /// The sequence this incarnation was restored from (0 if it started
  /// fresh).
  uint64_t restored_sequence() const noexcept;

  /// The snapshot key (`checkpoint_options::key`; an entity's key), so a
  /// behaviour knows its own name for reports and watchdogs.
  const std::string& key() const noexcept;

  /// Whether the incarnation started from a snapshot.
  bool restored() const noexcept {
    return restored_sequence() != 0;
  }

  /// Set by the actor when it starts (internal).
  void attach(detail::checkpoint_core* core) noexcept {
    core_ = core;
  }

private:
  detail::checkpoint_core* core_ = nullptr;
};

/// Typed access to the state.
template <class State>
class checkpointed : public checkpoint_context {
public:
  State& state() noexcept {
    return state_;
  }

  const State& state() const noexcept {
    return state_;
  }

private:
  State state_{};
};

// -- spawning -----------------------------------------------------------------

/// Everything a checkpointed actor needs besides its behaviour.
struct checkpoint_options {
  /// The snapshot key, unique per store, e.g. `account/alice`.
  std::string key;
  /// Stored in each snapshot so tools can tell what it holds.
  std::string actor_type;
  /// The node's snapshot writer (see `spawn_snapshot_writer`).
  caf::actor writer;
  /// Stored in each snapshot.
  std::string node_id;
  fault_tolerance_config config;
  /// Converts the state bytes of snapshots written with another
  /// `schema_version` (none: such a snapshot is `schema_mismatch`, which
  /// makes the start fall back to the snapshot before).
  upgrade_fn upgrade;
};

/// How the type-erased core reads and writes the typed state.
struct checkpoint_hooks {
  uint32_t version = 1;
  std::function<caf::expected<byte_buffer>()> encode;
  std::function<caf::error(const byte_buffer&)> decode;
  /// Back to a fresh state (after a failed decode left it half-written).
  std::function<void()> reset;
};

/// Shared between the incarnations of one checkpointed child: remembers
/// which snapshot each start used and whether that start failed, so a
/// snapshot that crashes its actor is not used forever (poison snapshots).
/// A start from snapshot S fails when the incarnation exits abnormally
/// while restoring or before it handled its first message; after
/// `max_recovery_attempts` such starts S is skipped for good and the next
/// start uses the snapshot before S (or a fresh state when there is none).
/// A snapshot that cannot be decoded or upgraded is skipped at once. When
/// the fallback is given up too (two in a row without a healthy start in
/// between), every further start fails with `restore_failed`: the child
/// will not heal by itself.
class recovery_tracker;

using recovery_tracker_ptr = std::shared_ptr<recovery_tracker>;

namespace detail {

recovery_tracker_ptr make_recovery_tracker();

/// Spawns the actor (ft_actors). Fails with `restore_failed` when `tracker`
/// says every usable snapshot failed too often, and with `invalid_config`
/// for a bad `opts.config` or a missing writer.
caf::expected<caf::actor>
spawn_checkpointed_impl(caf::actor_system& sys, checkpoint_options opts,
                        recovery_tracker_ptr tracker,
                        std::shared_ptr<checkpoint_context> ctx,
                        checkpoint_hooks hooks,
                        std::function<caf::behavior()> make);

template <class State, class F>
caf::expected<caf::actor>
spawn_checkpointed_typed(caf::actor_system& sys, checkpoint_options opts,
                         recovery_tracker_ptr tracker, F make) {
  auto ctx = std::make_shared<checkpointed<State>>();
  auto* st = &ctx->state();
  checkpoint_hooks h;
  h.version = state_codec<State>::version;
  h.encode = [st] { return state_codec<State>::encode(*st); };
  h.decode = [st](const byte_buffer& bytes) {
    return state_codec<State>::decode(bytes, *st);
  };
  h.reset = [st] { *st = State{}; };
  auto* typed = ctx.get();
  return spawn_checkpointed_impl(sys, std::move(opts), std::move(tracker),
                                 std::move(ctx), std::move(h),
                                 [typed, make] { return make(*typed); });
}

} // namespace detail

/// Spawns a checkpointed actor outside a supervisor: it starts from the
/// latest snapshot of `opts.key` (strategy `checkpoint`), then `make`
/// builds its behaviour with the state in place. Messages that arrive while
/// it restores wait in its mailbox. `make` is called as
/// `caf::behavior(checkpointed<State>&)`.
template <class State, class F>
caf::expected<caf::actor> spawn_checkpointed(caf::actor_system& sys,
                                             checkpoint_options opts, F make) {
  return detail::spawn_checkpointed_typed<State>(
    sys, std::move(opts), detail::make_recovery_tracker(), std::move(make));
}

/// A child spec for a checkpointed worker: each (re)start by the supervisor
/// restores the latest usable snapshot, falling back past a snapshot whose
/// starts failed `max_recovery_attempts` times; when the fallback fails as
/// often, the start fails with `restore_failed` (the supervisor retries it,
/// each failure counts toward its intensity, so it escalates as for any
/// failing child). One spec is one key and one tracker: not for
/// `simple_one_for_one`, whose dynamic children would share both.
template <class State, class F>
child_spec checkpointed_worker(std::string id, checkpoint_options opts,
                               F make,
                               restart_type restart = restart_type::permanent) {
  auto tracker = detail::make_recovery_tracker();
  auto start = [opts, tracker, make](caf::actor_system& sys,
                                     const caf::message&)
    -> caf::expected<caf::actor> {
    return detail::spawn_checkpointed_typed<State>(sys, opts, tracker, make);
  };
  return worker(std::move(id), std::move(start), restart);
}

} // namespace ft
