#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/timespan.hpp>

namespace ft {

/// All errors libft reports, in one category (`"ft"`), so a caller can match
/// any libft failure with one comparison. The supervisor's codes carry
/// Erlang/OTP's names so users coming from `supervisor.erl` recognise them.
enum class errc : uint8_t {
  /// Not an error.
  none = 0,
  // -- runtime API (OTP names) -----------------------------------------------
  already_started,
  already_present,
  running,
  restarting,
  not_found,
  /// The operation does not apply to this supervisor's strategy.
  not_supported,
  // -- validation of flags and child specs (OTP names) -----------------------
  invalid_strategy,
  invalid_intensity,
  invalid_period,
  invalid_restart_type,
  invalid_shutdown,
  invalid_child_type,
  duplicate_child_name,
  bad_combination,
  /// A child spec without id or start function.
  invalid_child_spec,
  /// A restart delay with out-of-range parameters.
  invalid_delay,
  /// A configuration document that is malformed or names an unknown field.
  invalid_config,
  /// A config names a fault handler no one registered.
  unknown_fault_handler,
  // -- supervision outcomes ---------------------------------------------------
  /// A child's start function failed (at init or on start_child).
  start_failed,
  /// Too many restarts within the period: the supervisor gave up.
  restart_intensity_exceeded,
  /// A child's restart delay policy ran out of attempts.
  max_attempts_exceeded,
  /// A decider or fault handler asked to escalate a child's failure.
  escalated,
  /// A message buffered for a restarting child overflowed the buffer.
  buffer_full,
  /// A message was addressed to a child that stopped and will not return.
  child_stopped,
  // -- breakers, retries, deadlines -------------------------------------------
  /// The circuit is open (or forced open): the call was rejected at once.
  circuit_open,
  /// Half-open admits only `half_open_max_calls` trial calls at once.
  half_open_limit,
  /// A call did not finish within its call timeout.
  call_timeout,
  /// A request's deadline passed before it finished.
  deadline_exceeded,
  /// A retry policy gave up (attempts or elapsed time); the context names
  /// the last error.
  retries_exhausted,
  /// A breaker or retry configuration value is out of range.
  invalid_breaker_config,
  /// The caller's cap on in-flight retrying requests is used up.
  too_many_retries,
  /// A recovery chain ran out of steps without an answer (or its last step,
  /// escalate, was taken); the context names the last error.
  recovery_exhausted,
  // -- snapshots ----------------------------------------------------------------
  /// No snapshot for this key (or key and sequence).
  snapshot_not_found,
  /// A write whose sequence is not above the key's stored one (an idempotent
  /// replay or a stale writer); nothing was written.
  stale_sequence,
  /// A stored snapshot's checksum does not match its bytes.
  checksum_mismatch,
  /// A stored snapshot cannot be decoded (truncated, not Cap'n Proto, or
  /// missing fields).
  corrupt_snapshot,
  /// A snapshot's schema version is not the one the reader expects and no
  /// upgrade hook converted it.
  schema_mismatch,
  /// The store reached its maximum map size (LMDB `MDB_MAP_FULL` after
  /// growing) or the disk is full.
  store_full,
  /// The store's directory is missing, unreadable or not an LMDB store.
  store_unavailable,
  /// Any other storage failure (the context names the LMDB or OS error).
  store_error,
  /// Starting an actor from its snapshots failed `max_recovery_attempts`
  /// times on every snapshot that was tried.
  restore_failed,
  /// A message carrying an id the actor already applied (its dedupe window,
  /// stored with its snapshot, remembers it): it was not applied again.
  duplicate_message,
  // -- cluster ------------------------------------------------------------------
  /// No node satisfies a placement request (the context says which rule).
  placement_failed,
  /// A spawn names an entity type this node did not register.
  unknown_entity_type,
  /// No entity has this key.
  unknown_entity,
  /// An entity with this key exists already.
  entity_exists,
  /// The entity cannot take messages right now (its home is failing over,
  /// it is migrating, or its node lost its lease); retry shortly.
  entity_unavailable,
  /// A node could not be reached (the context names its address).
  node_unreachable,
  /// A node presented the wrong cluster secret (or none).
  auth_failed,
  /// A node with this name is already a member.
  duplicate_node_name,
  /// The cluster declared this node down: it must stop its entities and
  /// rejoin as a new incarnation.
  node_down,
  /// Fewer replicas than `min_acks` acknowledged a snapshot.
  replication_failed,
  /// Joining the cluster failed (no seed answered within join_timeout).
  join_failed,
  /// A message or snapshot from an older ownership epoch of an entity.
  stale_epoch,
  /// A watchdog found an actor stale, stuck or a zombie (context says which).
  watchdog_timeout,
  /// A message an actor cannot take: an unknown command or bad arguments
  /// (the context names which).
  invalid_argument,
};

/// Returns the OTP-style name of `x`, e.g. `"already_present"`.
const char* to_string(errc x) noexcept;

/// The error category atom for libft.
constexpr caf::atom_value error_category = caf::atom("ft");

/// Converts `x` into a `caf::error` in category `"ft"`.
caf::error make_error(errc x);

/// Converts `x` into a `caf::error` with context, e.g. the offending field and
/// value, so the message a user sees names what was wrong.
caf::error make_error(errc x, std::string context);

/// Returns whether `err` is the libft error `x`.
bool is(const caf::error& err, errc x) noexcept;

/// Renders any `caf::error` (libft's or CAF's) for humans, including context.
std::string render(const caf::error& err);

/// Renders a duration in seconds for error messages and logs, e.g. `5s`,
/// `0.25s`.
std::string render_seconds(caf::timespan x);

/// Renders errors of category `"ft"` for `actor_system_config::add_error_category`.
std::string render_ft_error(uint8_t code, caf::atom_value category,
                            const caf::message& context);

} // namespace ft
