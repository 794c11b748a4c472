#pragma once

// Private to ft_cluster: the messages nodes exchange, the state a node's
// actors share, and the helpers they have in common.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include "ft/cluster.hpp"
#include "ft/membership.hpp"
#include "ft/placement.hpp"

#include "node_telemetry.hpp"

namespace ft::detail {

// -- handles and handshake ------------------------------------------------------

/// A member plus the handles of its node's actors.
struct peer_info {
  member info;
  caf::actor agent;
  caf::actor router;
  caf::actor replicator;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_info& x) {
  return f(caf::meta::type_name("ft.peer_info"), x.info, x.agent, x.router,
           x.replicator);
}

/// `(hello_atom, hello_msg) -> hello_reply`: the first message on a new
/// connection. `proof` is HMAC-SHA256(secret, "hello|" + nonce + "|" + name)
/// over the nonce the receiver handed out (`challenge_atom`), so only nodes
/// holding the cluster secret get in, and a recorded proof is useless.
struct hello_msg {
  peer_info self;
  std::string nonce;
  std::string proof;
  /// Joining the cluster (through a seed) rather than greeting a member
  /// learnt from gossip.
  bool join = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello_msg& x) {
  return f(caf::meta::type_name("ft.hello_msg"), x.self, x.nonce, x.proof,
           x.join);
}

/// The answer proves the receiver holds the secret too
/// (HMAC(secret, "welcome|" + nonce + "|" + name)) and brings the view and
/// the directory.
struct hello_reply {
  peer_info self;
  std::string proof;
  std::vector<member> view;
  std::vector<entity_record> directory;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello_reply& x) {
  return f(caf::meta::type_name("ft.hello_reply"), x.self, x.proof, x.view,
           x.directory);
}


/// `(challenge_atom, std::string name) -> std::string nonce`.
using challenge_atom = caf::atom_constant<caf::atom("ftchal")>;
using hello_atom = caf::atom_constant<caf::atom("fthello")>;

// -- heartbeats and gossip ----------------------------------------------------

/// `(heartbeat_atom, std::string from, uint64_t incarnation, int64_t send_ns,
///   std::vector<member> view, uint64_t dir_epoch)`; answered (as a plain
/// message) by `(heartbeat_ack_atom, std::string from, uint64_t
/// incarnation, int64_t echo_ns)` or, to an incarnation declared down,
/// `(you_are_down_atom, uint64_t incarnation)`.
using heartbeat_atom = caf::atom_constant<caf::atom("fthb")>;
using heartbeat_ack_atom = caf::atom_constant<caf::atom("fthback")>;
using you_are_down_atom = caf::atom_constant<caf::atom("ftyoudown")>;

/// `(directory_atom, std::vector<entity_record>)`: records changed by the
/// leader; `(directory_sync_atom) -> std::vector<entity_record>`: all.
using directory_atom = caf::atom_constant<caf::atom("ftdir")>;
using directory_sync_atom = caf::atom_constant<caf::atom("ftdirsync")>;

// -- entity life (leader → home) ------------------------------------------------

/// `(start_entity_atom, entity_record) -> bool`: the home starts (or
/// confirms) the entity at this epoch, restored from the newest snapshot in
/// the cluster.
using start_entity_atom = caf::atom_constant<caf::atom("ftenstart")>;

/// `(stop_entity_atom, std::string key) -> bool`: the home stops the entity
/// gracefully; answers once its last snapshot is committed and replicated.
using stop_entity_atom = caf::atom_constant<caf::atom("ftenstop")>;

/// `(route_atom, std::string key, std::string message_id, caf::message)
/// -> reply`: a router hands a message to the router of the entity's home,
/// which wraps it with its id (`with_message_id`) for the entity; the id
/// travels beside the message, not in a nested one, because each level of
/// nesting costs a (de)serialisation of type names and a few allocations.
/// `entity_unavailable` when the entity is not active there (or the node
/// lost its lease).
using route_atom = caf::atom_constant<caf::atom("ftroute")>;

// -- replication --------------------------------------------------------------

/// `(replicate_atom, std::vector<uint8_t> encoded_envelope) -> uint64_t`.
using replicate_atom = caf::atom_constant<caf::atom("ftsnrepl")>;

/// `(fetch_latest_atom, std::string key) -> std::vector<uint8_t>` (the
/// encoded newest snapshot) or `snapshot_not_found`.
using fetch_latest_atom = caf::atom_constant<caf::atom("ftsnfetch")>;

/// `(prepare_restore_atom, std::string key) -> uint64_t`: copy the newest
/// snapshot of `key` found on any alive node into the local store;
/// answers its sequence (0: none anywhere).
using prepare_restore_atom = caf::atom_constant<caf::atom("ftsnprep")>;

/// `(catch_up_atom, std::vector<entity_record>)`: a node that (re)joined
/// copies the newest snapshot of every entity homed elsewhere from its home,
/// so it holds replicas again before it is needed for a failover.
using catch_up_atom = caf::atom_constant<caf::atom("ftcatchup")>;

/// `(peers_atom, std::vector<peer_info> alive_others)`: the agent tells
/// the router and the replicator who is alive.
using peers_atom = caf::atom_constant<caf::atom("ftpeers")>;

/// `(local_entity_atom, std::string key, caf::actor)`: the agent tells the
/// router about a local entity (an invalid handle: it is gone).
using local_entity_atom = caf::atom_constant<caf::atom("ftenlocal")>;

/// `(block_atom, std::string key) -> bool`: the router stops handing
/// messages to a local entity (it is being moved away).
using block_atom = caf::atom_constant<caf::atom("ftenblock")>;

/// `(ports_atom, uint16_t port, uint16_t http_port)`: where the node
/// listens (the agent puts it in its member record).
using ports_atom = caf::atom_constant<caf::atom("ftports")>;

/// `(tick_atom)`: the agent's heartbeat timer.
using tick_atom = caf::atom_constant<caf::atom("fttick")>;

/// `(retry_atom, uint64_t id)`: the router's timer for a waiting message.
using retry_atom = caf::atom_constant<caf::atom("ftretry")>;

// -- state shared by one node's actors and its HTTP threads -------------------

/// Written by the agent, read by everyone on the node. The lease is an
/// atomic so the router and replicator check it per message without asking.
struct node_shared {
  std::string name;
  node_config config;
  std::string secret;
  entity_types types;
  /// Steady-clock nanoseconds until which this node may serve its entities.
  std::atomic<int64_t> lease_until_ns{0};
  std::atomic<uint64_t> restarts{0};
  std::atomic<uint64_t> failovers{0};

  /// Events, metrics and alerts of this node (never null once started).
  std::shared_ptr<node_telemetry> telemetry;

  /// A copy of the agent's view and directory for the HTTP endpoint.
  mutable std::mutex mtx;
  node_status status;
  std::vector<node_view_entry> view;
  std::vector<entity_record> directory;

  bool lease_valid() const noexcept;
};

using node_shared_ptr = std::shared_ptr<node_shared>;

int64_t steady_ns() noexcept;

/// Whether a message came from this process (an actor of this node, or
/// anonymous local code): the node's own actors may send any control
/// message, remote senders only what the handshake allows.
inline bool is_local(const caf::strong_actor_ptr& sender,
                     caf::actor_system& sys) {
  return sender == nullptr || sender->node() == sys.node();
}

/// HMAC-SHA256 of `data` under `secret`, hex encoded.
std::string hmac_hex(const std::string& secret, const std::string& data);

/// A random 128-bit nonce, hex encoded.
std::string make_nonce();

/// Announces every cluster message type (call on each node's config).
void add_cluster_types(caf::actor_system_config& cfg);

/// The node's actors.
caf::actor spawn_router(caf::actor_system& sys, node_shared_ptr shared);
caf::actor spawn_replicator(caf::actor_system& sys, node_shared_ptr shared,
                            caf::actor writer);
caf::actor spawn_agent(caf::actor_system& sys, node_shared_ptr shared,
                       caf::actor router, caf::actor replicator,
                       caf::actor entity_supervisor);

} // namespace ft::detail
