#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "ft/retry.hpp"

/// Progressive recovery: when a call fails, walk an ordered chain of steps —
/// retry at once, retry after a backoff pause, restart the worker, switch to
/// another worker of the pool, switch to another resource, degrade to a
/// fallback, escalate — until one answers. This header is the pure part
/// (types, validation, YAML, the chain's state machine); `recovery_request`
/// (ft/recovery_request.hpp) executes a chain with actors.
namespace ft {

// -- step kinds ---------------------------------------------------------------

/// What one step of a recovery chain does. The seed configs' strategy names
/// are accepted as aliases (see `parse_recovery_step_kind`).
enum class recovery_step_kind : uint8_t {
  /// Call the same worker again at once: for transient failures.
  immediate_retry,
  /// Call the same worker again after a backoff pause (a `retry_policy`
  /// schedule): for intermittent failures.
  delayed_retry,
  /// Ask the worker's supervisor to restart the worker (terminate_child,
  /// then restart_child), then call the new incarnation once. Alias
  /// `restart_kernel`.
  restart,
  /// Call another worker of the same pool. Alias `use_replica`.
  switch_worker,
  /// Call a worker on another resource (hardware class, node label). Alias
  /// `failover`.
  switch_resource,
  /// Answer from a fallback the user provides (smaller batch, lower
  /// precision, a cached answer).
  degrade,
  /// Give up: tell the operator hook (and optionally the supervisor) and
  /// answer `recovery_exhausted`. Always the last step. Alias
  /// `notify_operator`.
  escalate,
};

/// The canonical name, e.g. `"switch_worker"`.
const char* to_string(recovery_step_kind x) noexcept;

/// Parses a canonical name or an alias of the seed configs: `restart_kernel`
/// (restart), `use_replica` (switch_worker), `failover` (switch_resource),
/// `notify_operator` (escalate); the seeds' CamelCase spellings
/// (`RestartKernel`, `UseReplica`, `Degrade`, `Failover`, `NotifyOperator`)
/// too. `std::nullopt` for anything else.
std::optional<recovery_step_kind>
parse_recovery_step_kind(const std::string& x);

// -- error names --------------------------------------------------------------

/// The name a step's `on` / `except` lists use for `err`: the libft name for
/// category `"ft"` (e.g. `call_timeout`), CAF's name for category `"system"`
/// (e.g. `request_timeout`), otherwise `category:code` (e.g. `gpu:3`), so
/// configs can name errors of user categories too. Empty for no error.
std::string recovery_error_name(const caf::error& err);

/// Whether `x` is a name `recovery_error_name` can return: a libft or
/// `caf::sec` name, or `category:code` with an atom-sized category and a
/// code in 1..255.
bool is_recovery_error_name(const std::string& x);

// -- steps and chains ---------------------------------------------------------

/// Whether a step applies to the error that triggered it (in addition to the
/// `on` / `except` lists).
using recovery_predicate = std::function<bool(const caf::error&)>;

/// One step of a recovery chain. Plain data: validate with `validate`.
struct recovery_step {
  recovery_step() = default;

  /// A step of kind `k` (e.g. `{recovery_step_kind::restart, 2, 5s}`); the
  /// other fields keep their defaults.
  recovery_step(recovery_step_kind k, int n = 0,
                caf::timespan pause = caf::timespan{0})
    : kind(k), attempts(n), delay(pause) {
    // nop
  }

  recovery_step_kind kind = recovery_step_kind::immediate_retry;

  /// How many attempts this step makes; 0 means the kind's default (see
  /// `default_attempts`). For switch_worker and switch_resource it caps the
  /// number of alternatives tried, each once, in the order given; there are
  /// never more attempts than alternatives. escalate happens once.
  int attempts = 0;

  /// The pause before each attempt of restart, switch_worker,
  /// switch_resource and degrade (e.g. OTP-style restart delays). Must be 0
  /// for the other kinds: immediate_retry does not pause, delayed_retry
  /// pauses per `backoff`.
  caf::timespan delay{0};

  /// delayed_retry only: the schedule of its pauses. Read are `backoff`,
  /// `jitter`, `initial_delay`, `max_delay` and `multiplier`; the step's
  /// `attempts` replaces `max_attempts` (the first call already happened),
  /// `max_elapsed`, `retryable` and `wait_for_half_open` are ignored.
  retry_policy backoff;

  /// If not empty, the step applies only to errors with these names (see
  /// `recovery_error_name`), e.g. only `call_timeout` for a retry.
  std::vector<std::string> on;

  /// The step never applies to errors with these names, e.g. skip retries on
  /// resource exhaustion and go straight to degrade.
  std::vector<std::string> except;

  /// An extra filter for C++ users (not in YAML): the step applies only if
  /// it returns true.
  recovery_predicate applies;
};

/// The attempts a step makes when its `attempts` is 0: immediate_retry 1,
/// delayed_retry 3, restart 3, degrade 1, escalate 1, switch_worker and
/// switch_resource every alternative (returned as `INT_MAX`).
int default_attempts(recovery_step_kind x) noexcept;

/// Whether `step` applies to `err` per its `on`, `except` and `applies`.
bool step_applies(const recovery_step& step, const caf::error& err);

/// The steps of the default chain: immediate_retry (1) → delayed_retry (3,
/// exponential from 100ms, at most 2s) → switch_worker (every other worker)
/// → switch_resource (every resource) → degrade (1) → escalate. (restart is
/// not in it: it needs a supervisor; add it where one exists.)
std::vector<recovery_step> default_recovery_steps();

/// An ordered recovery chain plus the limit on each call it makes.
struct recovery_chain_config {
  /// In order; escalate, if present, must be last.
  std::vector<recovery_step> steps = default_recovery_steps();

  /// How long one call (the first one and each attempt) may take; 0 = no
  /// limit. An attempt that runs out fails with `call_timeout`. Without a
  /// limit, a worker that hangs never fails and the chain never starts.
  caf::timespan call_timeout{0};
};

/// Returns an `invalid_config` error (context `field = value why`) for the
/// first bad field of `step`, or none: attempts < 0, escalate with more
/// than one attempt, a delay < 0 or set on immediate_retry, delayed_retry or
/// escalate, an invalid `backoff` of delayed_retry (see `validate(const
/// retry_policy&)`), an unknown error name in `on` / `except`.
caf::error validate(const recovery_step& step);

/// As above for each step (context `chain[i].field = value why`), and also
/// rejects an empty chain, escalate before the last step and a negative
/// `call_timeout`.
caf::error validate(const recovery_chain_config& cfg);

// -- policies (the seed configs' form) ----------------------------------------

/// The seed configs' recovery policy: one strategy applied up to
/// `max_restarts` times, then an optional escalation step. A shorthand for
/// a chain; `to_chain` expands it.
struct recovery_policy {
  recovery_step_kind strategy = recovery_step_kind::restart;

  /// Attempts of the strategy step: restarts for restart, alternatives
  /// tried for switch_worker / switch_resource; degrade and escalate happen
  /// once regardless.
  int max_restarts = 3;

  /// The pause before each restart (for strategy delayed_retry: its fixed
  /// pause; the other strategies do not pause).
  caf::timespan restart_delay = std::chrono::seconds(5);

  /// The step after the strategy ran out, e.g. notify_operator (escalate).
  /// Must differ from the strategy.
  std::optional<recovery_step_kind> escalation;

  /// The equivalent chain: the strategy step with `max_restarts` attempts
  /// (restart pausing `restart_delay` before each), none if max_restarts is
  /// 0, then the escalation step with its defaults; `call_timeout` 0.
  recovery_chain_config to_chain() const;
};

/// Returns an `invalid_config` error naming the bad field, or none:
/// max_restarts < 0 (or 0 without an escalation: no step left),
/// restart_delay < 0, an escalation equal to the strategy or following
/// escalate (which ends the chain).
caf::error validate(const recovery_policy& policy);

// -- the chain's state machine -------------------------------------------------

/// What the executor has to work with; steps without it are skipped.
struct recovery_targets {
  /// Other workers of the pool (for switch_worker).
  size_t workers = 0;
  /// Workers on other resources (for switch_resource).
  size_t resources = 0;
  /// A supervisor and child id (for restart).
  bool restartable = false;
  /// A fallback (for degrade).
  bool fallback = false;
};

/// What `recovery_plan::next` decided.
enum class recovery_decision : uint8_t {
  /// Make an attempt (after `delay`).
  attempt,
  /// The step does not apply (no target, error excluded); `reason` says why.
  skip,
  /// No step left.
  exhausted,
};

const char* to_string(recovery_decision x) noexcept;

/// One decision of a recovery plan.
struct recovery_action {
  recovery_decision decision = recovery_decision::exhausted;
  /// The step deciding; exhausted: the chain's last step.
  recovery_step_kind step = recovery_step_kind::escalate;
  /// Index of the step in the chain (the chain's size when exhausted).
  size_t step_index = 0;
  /// 1-based within the step; 0 for skip and exhausted.
  int attempt = 0;
  /// switch_worker / switch_resource: index of the alternative; else 0.
  size_t target = 0;
  /// The pause before the attempt.
  caf::timespan delay{0};
  /// skip: why, for events and logs.
  std::string reason;
};

/// The memory of one request's recovery: which step it is in and how many
/// attempts that step made. Plain data, so tests replay a chain without an
/// actor system. Feed every failure to `next` and do what it says, until an
/// attempt succeeds, it answers `exhausted`, or an escalate attempt is made
/// (after which it answers `exhausted`).
class recovery_plan {
public:
  /// `cfg` should be valid (see `validate`); an invalid step is used as is.
  recovery_plan(recovery_chain_config cfg, recovery_targets targets);

  /// The latest call failed with `last`: the next attempt, a skipped step
  /// (call again for the one after it) or `exhausted`. A step is skipped
  /// when, on entering it, it has no target or does not apply to `last`; a
  /// step that stops applying midway (the error changed) ends quietly.
  /// `random01` in [0, 1) draws delayed_retry's jitter.
  recovery_action next(const caf::error& last, double random01 = 0.0);

  /// Attempts decided so far, over all steps.
  int attempts() const noexcept {
    return attempts_;
  }

  bool exhausted() const noexcept {
    return index_ >= cfg_.steps.size();
  }

  const recovery_chain_config& config() const noexcept {
    return cfg_;
  }

private:
  /// The attempts step `i` may make with the targets at hand.
  int limit(const recovery_step& step) const noexcept;

  /// Why step `step` cannot start for `last`, or empty.
  std::string skip_reason(const recovery_step& step,
                          const caf::error& last) const;

  void advance() noexcept;

  recovery_chain_config cfg_;
  recovery_targets targets_;
  size_t index_ = 0;
  int done_ = 0;
  int attempts_ = 0;
  caf::timespan previous_{0};
};

// -- events -------------------------------------------------------------------

/// How one step (or attempt) of a recovery ended.
enum class recovery_outcome : uint8_t {
  /// The attempt answered: the chain ends with its answer.
  succeeded,
  /// The attempt failed; the chain goes on.
  failed,
  /// The step did not apply (no target, error excluded).
  skipped,
  /// The escalate step ran: the operator was told, the chain ends.
  escalated,
  /// The chain ran out of steps without an answer.
  exhausted,
};

const char* to_string(recovery_outcome x) noexcept;

/// Severity (1 info, 2 warning, 3 error, 4 critical, as in ft/events.hpp):
/// escalated 4, exhausted 3, failed attempts and degraded answers 2,
/// everything else 1.
uint8_t severity_of(recovery_step_kind step, recovery_outcome outcome) noexcept;

/// One structured recovery event: every attempt, skipped step and the end of
/// a chain produce one, in order.
struct recovery_event {
  /// The request's name (`recovery_options::name`).
  std::string name;
  recovery_step_kind step = recovery_step_kind::immediate_retry;
  /// 1-based within the step; 0 for skipped and exhausted.
  int attempt = 0;
  /// What was tried: `primary`, `pool[i]`, the resource's label,
  /// `restart:<child id>`, `fallback`, `operator`.
  std::string target;
  /// The worker called, if any.
  caf::actor actor;
  recovery_outcome outcome = recovery_outcome::failed;
  /// failed: the attempt's error; skipped, escalated, exhausted: the last
  /// error (the one the chain was recovering from).
  caf::error error;
  /// skipped: why; escalated, exhausted: a summary (calls made, last
  /// error); empty otherwise.
  std::string detail;
  /// The pause before the attempt.
  caf::timespan delay{0};
  uint8_t severity = 1;
  /// Wall-clock time in milliseconds since the epoch.
  int64_t timestamp_ms = 0;
};

/// A one-line human rendering, e.g.
/// `[fetch] delayed_retry #2 primary failed delay=200ms error=... severity=2`.
std::string to_string(const recovery_event& x);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recovery_event& x) {
  return f(caf::meta::type_name("ft.recovery_event"), x.name, x.step,
           x.attempt, x.target, x.actor, x.outcome, x.error, x.detail,
           x.delay, x.severity, x.timestamp_ms);
}

// -- YAML ---------------------------------------------------------------------

/// Reads a recovery chain from YAML, in one of two forms (optionally wrapped
/// in a top-level `recovery:` mapping):
///
/// ```yaml
/// chain:                      # in order
///   - step: immediate_retry   # or a bare name: `- immediate_retry`
///     attempts: 1             # 0 or left out: the kind's default
///   - step: delayed_retry
///     attempts: 3
///     backoff: exponential    # fixed | linear | exponential | exponential_with_jitter
///     jitter: full            # full | decorrelated
///     initial_delay: 0.1      # seconds
///     max_delay: 2
///     multiplier: 2
///   - {step: restart, attempts: 2, delay: 5}
///   - {step: switch_worker, except: [call_timeout]}
///   - {step: switch_resource, on: [request_receiver_down]}
///   - degrade
///   - escalate                # notify_operator
/// call_timeout: 5             # seconds, 0 = none
/// ```
///
/// or the seed configs' policy form (see `recovery_policy`):
///
/// ```yaml
/// strategy: restart           # restart | use_replica | failover | degrade | notify_operator | ...
/// max_restarts: 3
/// restart_delay: 5
/// escalation: notify_operator
/// call_timeout: 5
/// ```
///
/// An empty document is the default chain. Every failure (malformed YAML,
/// unknown field or step name, wrong type, out-of-range value, both forms at
/// once) is `invalid_config` with context `source:line: field ...` naming
/// the value; errors of a step name it as `chain[i].field`.
caf::expected<recovery_chain_config>
recovery_chain_from_yaml(const std::string& text,
                         const std::string& source = "<config>");

/// Reads only the policy form (`strategy`, `max_restarts`, `restart_delay`,
/// `escalation`); errors as above.
caf::expected<recovery_policy>
recovery_policy_from_yaml(const std::string& text,
                          const std::string& source = "<config>");

/// Writes `cfg` in the chain form, readable by `recovery_chain_from_yaml`
/// (the `applies` predicates cannot be written and are dropped).
std::string to_yaml(const recovery_chain_config& cfg);

} // namespace ft
