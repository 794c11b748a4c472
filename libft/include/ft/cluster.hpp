#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "ft/checkpoint.hpp"
#include "ft/child_spec.hpp"
#include "ft/membership.hpp"
#include "ft/node_config.hpp"
#include "ft/placement.hpp"

/// Cluster-wide named actors ("entities") and the node that hosts them: an
/// entity has a type and a key, lives on one node at a time (its home),
/// is supervised and checkpointed there, and is reached by key from any
/// node. When its home dies the entity resumes on a surviving node from the
/// newest replicated snapshot (Akka Cluster Sharding with remembered
/// entities, Orleans' virtual actors — on CAF's messaging).

namespace ft {

// -- entity protocol ----------------------------------------------------------

/// The text protocol every stock entity speaks, so operators (ftctl, HTTP)
/// can talk to entities they have no C++ types for:
/// `(std::string command, std::vector<std::string> args) -> std::string`
/// where the answer is a JSON value (e.g. `42`, `"x"`, `null`). Entities may
/// accept any other (announced) message types too.
using text_args = std::vector<std::string>;

// -- entity types -------------------------------------------------------------

/// Named, checkpointable entity types a node can host (like CAF's
/// `add_actor_type`): every node of a cluster registers the same types.
class entity_types {
public:
  /// Builds the child spec that runs one entity under the node's entity
  /// supervisor.
  using spec_factory = std::function<child_spec(checkpoint_options opts)>;

  /// Registers `name` with state `State` (serialised by `state_codec<State>`)
  /// and a behaviour factory called as `caf::behavior(checkpointed<State>&)`.
  template <class State, class F>
  entity_types& add(std::string name, F make, upgrade_fn upgrade = {}) {
    auto factory = [make, upgrade](checkpoint_options opts) {
      if (upgrade)
        opts.upgrade = upgrade;
      auto id = opts.key;
      return checkpointed_worker<State>(std::move(id), std::move(opts), make);
    };
    factories_[std::move(name)] = std::move(factory);
    return *this;
  }

  bool contains(const std::string& name) const {
    return factories_.count(name) != 0;
  }

  const spec_factory* find(const std::string& name) const {
    auto i = factories_.find(name);
    return i == factories_.end() ? nullptr : &i->second;
  }

  std::vector<std::string> names() const;

private:
  std::map<std::string, spec_factory> factories_;
};

/// The stock types `ft-node` registers: `counter` (`add N` → new value,
/// `get` → value, `crash` → the entity throws, for fault injection) and `kv` (`put K V` → null, `get K` → value or null,
/// `delete K` → whether it existed, `keys` → array).
void add_stock_entity_types(entity_types& types);

// -- messages to a node's router (any node; it finds the entity's home) -------

/// `(entity_spawn_atom, std::string type, std::string key,
///   placement_request) -> entity_record` (after the entity started).
using entity_spawn_atom = caf::atom_constant<caf::atom("ftenspawn")>;

/// `(entity_ask_atom, std::string key, caf::message msg) -> reply of the
/// entity`. Messages sent while the entity moves or fails over wait and are
/// delivered to its next home. Each message carries an id so that a resend
/// after a failover is not applied twice (`duplicate_message`).
using entity_ask_atom = caf::atom_constant<caf::atom("ftenask")>;

/// `(entity_where_atom, std::string key) -> entity_record`.
using entity_where_atom = caf::atom_constant<caf::atom("ftenwhere")>;

/// `(entity_list_atom) -> std::vector<entity_record>`.
using entity_list_atom = caf::atom_constant<caf::atom("ftenlist")>;

/// `(entity_migrate_atom, std::string key, std::string to) -> entity_record`
/// (after the entity answers on its new home).
using entity_migrate_atom = caf::atom_constant<caf::atom("ftenmove")>;

// -- the node -----------------------------------------------------------------

/// What a running node reports about itself (also `GET /api/status`).
struct node_status {
  std::string name;
  member_status state = member_status::joining;
  uint64_t incarnation = 0;
  std::string leader;
  size_t members = 0;
  size_t entities = 0;
  uint64_t restarts = 0;
  /// Actors running in the node's actor system (CAF's registry count): a
  /// number that keeps growing while the entities stay the same is a leak.
  size_t actors = 0;
  bool lease = false;
  uint16_t port = 0;
  uint16_t http_port = 0;
  /// The node watchdog as its pulse shows it: `ok`, or `stale` when the
  /// watchdog answered no pulse for its `heartbeat_timeout` (the node's
  /// actor system is wedged or the watchdog hangs).
  std::string watchdog_state = "ok";
  /// Since the node watchdog last answered the pulse.
  int64_t watchdog_last_beat_ms = 0;
  /// Workers the node watchdog watches (the pulse included), as of its
  /// last answer.
  size_t watchdog_workers = 0;
};

/// One peer as a node sees it (`GET /api/nodes`).
struct node_view_entry {
  member info;
  size_t entities = 0;
  /// Milliseconds since its last heartbeat arrived (-1 for the node itself
  /// or before the first).
  int64_t last_heartbeat_ms = -1;
  double phi = 0;
};

/// A node: actor system, middleman, snapshot writer, entity supervisor,
/// cluster agent, router, replicator and HTTP endpoint. `start` returns once
/// the node joined (or founded) the cluster.
class node {
public:
  class impl;

  ~node();

  /// Starts a node in this process. Errors: `invalid_config`, the store's
  /// errors, `join_failed` / `auth_failed` / `duplicate_node_name` naming
  /// the seed, a port in use (naming it).
  static caf::expected<std::unique_ptr<node>>
  start(node_config cfg, entity_types types,
        std::function<void(caf::actor_system_config&)> customize = {});

  /// Leaves the cluster gracefully and shuts down: the node stops serving
  /// its entities at once (its lease ends), announces `left`, and the
  /// others resume the entities from their newest snapshots (with the
  /// default checkpoint per message, their current state).
  void stop();

  node_status status() const;

  std::vector<node_view_entry> view() const;

  /// The router: send it the `entity_*` messages above.
  caf::actor router() const;

  /// The name the node watchdog registers under in the node's actor
  /// system: `watchdog_ref{node::watchdog_name}` reaches whichever
  /// incarnation runs now, so prefer it over a handle as a parent.
  static constexpr caf::atom_value watchdog_name = caf::atom("ftnodewd");

  /// The names the router and the breaker registry register under in the
  /// node's actor system, so code running on the node (an entity's
  /// behaviour) reaches them without a handle; see `node_router` and
  /// `node_breakers`.
  static constexpr caf::atom_value router_name = caf::atom("ftrouter");
  static constexpr caf::atom_value breakers_name = caf::atom("ftbreakers");

  /// The node watchdog (invalid while it restarts): register your own
  /// watchdogs with it (`watchdog_options::parent`) or workers (they then
  /// show in `GET /api/watchdog`). It runs under a small node supervisor
  /// next to the pulse that proves it alive; a worker it finds dead with
  /// no replacement that this supervisor does not run counts as a failed
  /// recovery, and `max_recoveries` of them run the operator hook.
  caf::actor watchdog() const;

  /// The node's breaker registry (`ft/breaker_registry.hpp`): circuits
  /// acquired here show in `GET /api/circuit-breakers`, `/health` and
  /// `/metrics`, and their transitions in `/api/events` and alerts.
  caf::actor breakers() const;

  /// Where the node records events: subscribe it to your supervisors
  /// (`supervisor_flags::subscribers`), guards, watchdogs and recovery
  /// requests, and their events reach the journal, metrics and alerts.
  caf::actor event_sink() const;

  /// Adds `sup` to the supervision tree the node reports (`GET /api/tree`,
  /// `/health`, `ftctl kill actor`) and subscribes the event sink to it.
  void attach_supervisor(caf::actor sup);

  caf::actor_system& system();

  uint16_t port() const;

  uint16_t http_port() const;

private:
  explicit node(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// The router of the node running in `sys` (invalid when `sys` runs no
/// node): an entity asks another entity by key with
/// `self->request(node_router(self->system()), timeout, entity_ask_atom_v,
/// key, msg)`. A message already wrapped by `with_message_id` keeps its id
/// end to end, so the caller's own idempotency key (e.g. a task id) is what
/// the target deduplicates, also across the caller's restarts.
caf::actor node_router(caf::actor_system& sys);

/// The breaker registry of the node running in `sys` (invalid when none):
/// circuits acquired there show in the node's `/api/circuit-breakers`,
/// `/health`, `/metrics` and dashboard.
caf::actor node_breakers(caf::actor_system& sys);

/// `ft-node`'s whole `main`: parses the command line, starts the node,
/// writes the ready file, runs until SIGINT/SIGTERM and leaves gracefully.
/// Returns the process's exit code (1 with a message on stderr for bad
/// input).
int node_main(int argc, char** argv, entity_types types,
              std::function<void(caf::actor_system_config&)> customize = {});

} // namespace ft
