// The entity router: one per node. It takes messages for entities by key
// from anyone on its node, hands each to the router of the entity's home
// (or to the entity itself when the home is this node), and answers with
// the entity's reply. Messages for an entity that is starting, moving or
// failing over wait here and go out when its record says it is active
// again; a message whose delivery failed because the home died or gave the
// entity away is sent again to the next home. Each message carries an id
// (`with_message_id`) that the entity remembers with its state, so a
// message sent again after a failover is not applied twice.

#include <deque>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "any_response.hpp"
#include "cluster_protocol.hpp"
#include "ft/error.hpp"

namespace ft::detail {

namespace {

/// `(sweep_atom)`: the router's timer for overdue delivery attempts.
using sweep_atom = caf::atom_constant<caf::atom("ftsweep")>;

/// How long a message may wait for its entity before the caller gets
/// `entity_unavailable`.
constexpr auto ask_timeout = std::chrono::seconds(15);

/// How long a message for an unknown key waits for the directory to learn
/// it (a spawn answered on another node may not have reached this one).
constexpr auto unknown_grace = std::chrono::milliseconds(500);

/// How long one delivery attempt waits before it is tried again (the home
/// may have paused; a new attempt re-reads the directory). Longer than a
/// commit plus replication (`replication.timeout`, 2 s by default), so a
/// slow acknowledgement is not mistaken for a lost message; a home that
/// dies is noticed sooner, through the membership (attempts to a node that
/// left the alive set are sent again at once).
constexpr auto attempt_timeout = std::chrono::seconds(5);

class router_actor : public caf::event_based_actor {
public:
  router_actor(caf::actor_config& cfg, node_shared_ptr shared)
    : caf::event_based_actor(cfg), sh_(std::move(shared)) {
    // nop
  }

  const char* name() const override {
    return "ft.entity_router";
  }

  /// Members live until the last handle goes, not until termination: the
  /// waiting messages' promises point back at us, so release them (and the
  /// node's shared state) now.
  void on_exit() override {
    sh_.reset();
    agent_ = nullptr;
    peers_.clear();
    local_.clear();
    pending_.clear();
  }

  caf::behavior make_behavior() override {
    return {
      // -- from users on this node --
      [this](entity_ask_atom, std::string& key,
             caf::message& msg) -> caf::result<caf::message> {
        return on_ask(std::move(key), std::move(msg));
      },
      [this](entity_where_atom,
             const std::string& key) -> caf::result<entity_record> {
        auto rec = dir_.find(key);
        if (rec == nullptr)
          return make_error(errc::unknown_entity, "no entity '" + key + "'");
        return *rec;
      },
      [this](entity_list_atom) { return dir_.records(); },
      [this](entity_spawn_atom a, std::string& type, std::string& key,
             placement_request& req) {
        return delegate(agent_, a, std::move(type), std::move(key),
                        std::move(req));
      },
      [this](entity_migrate_atom a, std::string& key, std::string& to) {
        return delegate(agent_, a, std::move(key), std::move(to));
      },
      // -- from other routers --
      [this](route_atom, std::string& key, std::string& id,
             caf::message& msg) -> caf::result<caf::message> {
        if (!local_sender() && !from_peer())
          return make_error(errc::auth_failed,
                            "not a member of this cluster");
        return on_route(key, std::move(id), std::move(msg));
      },
      // -- from the agent --
      [this](caf::actor& agent) {
        if (local_sender())
          agent_ = std::move(agent);
      },
      [this](directory_atom, std::vector<entity_record>& recs) {
        if (!local_sender())
          return;
        dir_ = entity_directory{};
        dir_.merge(recs);
        wake_all();
      },
      [this](peers_atom, std::vector<peer_info>& peers) {
        if (!local_sender())
          return;
        std::set<std::string> gone;
        for (auto& [name, p] : peers_)
          gone.insert(name);
        peers_.clear();
        for (auto& p : peers) {
          gone.erase(p.info.name);
          peers_.emplace(p.info.name, std::move(p));
        }
        // Attempts out to a node that is gone will not be answered.
        for (auto& [id, p] : pending_)
          if (p.in_flight && gone.count(p.target) != 0) {
            p.in_flight = false;
            ++p.attempt;
          }
        wake_all();
      },
      [this](local_entity_atom, std::string& key, caf::actor& handle) {
        if (!local_sender())
          return;
        if (handle) {
          local_[key] = std::move(handle);
          blocked_.erase(key);
        } else {
          local_.erase(key);
          blocked_.erase(key);
        }
        wake_all();
      },
      [this](block_atom, std::string& key) -> caf::result<bool> {
        if (!local_sender())
          return make_error(errc::auth_failed, "local only");
        blocked_.insert(std::move(key));
        return true;
      },
      [this](retry_atom) {
        retry_scheduled_ = false;
        wake_all();
      },
      [this](sweep_atom) {
        sweep_scheduled_ = false;
        sweep();
      },
    };
  }

private:
  /// Sent from this process (the node's own actors and its HTTP endpoint).
  bool local_sender() {
    return is_local(current_sender(), system());
  }

  /// Sent from a node the agent greeted (it proved the cluster secret).
  bool from_peer() {
    auto s = current_sender();
    if (s == nullptr)
      return false;
    for (auto& [name, p] : peers_)
      if (p.router && p.router.node() == s->node())
        return true;
    return false;
  }

  struct pending {
    std::string key;
    /// The message's id (see `with_message_id`) and the message itself.
    std::string id;
    caf::message msg;
    caf::response_promise rp;
    caf::actor_clock::time_point deadline;
    /// Attempts so far; a reply to an older attempt is ignored.
    uint64_t attempt = 0;
    bool in_flight = false;
    caf::actor_clock::time_point created;
    /// When the current attempt counts as lost.
    caf::actor_clock::time_point attempt_deadline;
    /// The node the current attempt went to.
    std::string target;
    caf::error last_error;
  };

  // -- asking -------------------------------------------------------------------

  caf::result<caf::message> on_ask(std::string key, caf::message msg) {
    auto id = ++next_id_;
    pending p;
    p.key = std::move(key);
    // A message the caller wrapped keeps the caller's id (its idempotency
    // key, stable across the caller's restarts). Others get one unique per
    // incarnation of this router: name, start time and a counter.
    if (msg.match_elements<message_id_atom, std::string, caf::message>()) {
      p.id = msg.get_as<std::string>(1);
      p.msg = msg.get_as<caf::message>(2);
    } else {
      if (id_prefix_.empty())
        id_prefix_ = sh_->name + "/" + std::to_string(start_ns_) + "/";
      p.id.reserve(id_prefix_.size() + 20);
      p.id = id_prefix_;
      p.id += std::to_string(id);
      p.msg = std::move(msg);
    }
    p.rp = make_response_promise();
    p.created = clock().now();
    p.deadline = p.created + ask_timeout;
    auto rp = p.rp;
    pending_.emplace(id, std::move(p));
    dispatch(id);
    return rp;
  }

  /// Sends pending message `id` to the entity's home, or leaves it waiting.
  void dispatch(uint64_t id) {
    auto i = pending_.find(id);
    if (i == pending_.end() || i->second.in_flight)
      return;
    auto& p = i->second;
    auto now = clock().now();
    if (now >= p.deadline) {
      auto err = p.last_error ? p.last_error
                              : make_error(errc::entity_unavailable,
                                           "entity '" + p.key
                                             + "' did not become available");
      p.rp.deliver(make_error(errc::entity_unavailable,
                              "entity '" + p.key + "' unavailable for "
                                + render_seconds(ask_timeout)
                                + " (last: " + render(err) + ")"));
      pending_.erase(i);
      return;
    }
    auto rec = dir_.find(p.key);
    if (rec == nullptr && now - p.created >= unknown_grace) {
      p.rp.deliver(make_error(errc::unknown_entity,
                              "no entity '" + p.key + "'"));
      pending_.erase(i);
      return;
    }
    if (rec == nullptr || rec->state != entity_state::active) {
      schedule_retry();
      return;
    }
    caf::actor target;
    bool local = rec->home == sh_->name;
    if (local) {
      if (blocked_.count(p.key) != 0 || !sh_->lease_valid()) {
        schedule_retry();
        return;
      }
      auto l = local_.find(p.key);
      if (l == local_.end()) {
        schedule_retry();
        return;
      }
      target = l->second;
    } else {
      auto peer = peers_.find(rec->home);
      if (peer == peers_.end()) {
        schedule_retry();
        return;
      }
      target = peer->second.router;
    }
    p.in_flight = true;
    p.target = rec->home;
    auto attempt = ++p.attempt;
    // No per-request timeout: CAF 0.17 keeps every request's timeout in
    // its clock until it fires, which at tens of thousands of requests per
    // second costs more than the routing. One sweep timer ends overdue
    // attempts instead.
    p.attempt_deadline = std::min(now + attempt_timeout, p.deadline);
    schedule_sweep();
    auto rh = local ? request(target, caf::infinite, message_id_atom::value,
                              p.id, p.msg)
                    : request(target, caf::infinite, route_atom::value, p.key,
                              p.id, p.msg);
    on_any_response(this, rh.id(), [this, id, attempt](caf::message reply) {
      on_reply(id, attempt, reply);
    });
  }

  void on_reply(uint64_t id, uint64_t attempt, caf::message& reply) {
    auto i = pending_.find(id);
    if (i == pending_.end() || i->second.attempt != attempt)
      return; // An old attempt: the message went elsewhere since.
    auto& p = i->second;
    p.in_flight = false;
    if (reply.match_elements<caf::error>()) {
      auto& err = reply.get_as<caf::error>(0);
      if (retryable(err)) {
        p.last_error = err;
        schedule_retry();
        return;
      }
      p.rp.deliver(err);
      pending_.erase(i);
      return;
    }
    p.rp.deliver(std::move(reply));
    pending_.erase(i);
  }

  static bool retryable(const caf::error& err) {
    // Not `replication_failed`: the entity applied the message but could
    // not make it durable on enough nodes; sending it again would only be
    // refused as a duplicate, so the caller learns the truth instead.
    if (is(err, errc::entity_unavailable) || is(err, errc::child_stopped))
      return true;
    if (err.category() == caf::atom("system")) {
      auto code = static_cast<caf::sec>(err.code());
      return code == caf::sec::request_receiver_down
             || code == caf::sec::request_timeout
             || code == caf::sec::remote_linking_failed
             || code == caf::sec::no_route_to_receiving_node
             || code == caf::sec::invalid_argument;
    }
    if (err.category() == caf::atom("exit"))
      return true;
    return false;
  }

  void schedule_sweep() {
    if (sweep_scheduled_)
      return;
    sweep_scheduled_ = true;
    delayed_send(this, std::chrono::milliseconds(250), sweep_atom::value);
  }

  /// Ends attempts that are overdue (their reply, if it still comes, is
  /// ignored) and sends those messages again.
  void sweep() {
    auto now = clock().now();
    bool in_flight = false;
    for (auto& [id, p] : pending_) {
      if (!p.in_flight)
        continue;
      if (now >= p.attempt_deadline) {
        p.in_flight = false;
        ++p.attempt;
        p.last_error = caf::make_error(caf::sec::request_timeout);
      } else {
        in_flight = true;
      }
    }
    wake_all();
    if (in_flight)
      schedule_sweep();
  }

  void schedule_retry() {
    if (retry_scheduled_)
      return;
    retry_scheduled_ = true;
    delayed_send(this, std::chrono::milliseconds(50), retry_atom::value);
  }

  void wake_all() {
    std::vector<uint64_t> ids;
    ids.reserve(pending_.size());
    for (auto& [id, p] : pending_)
      if (!p.in_flight)
        ids.push_back(id);
    for (auto id : ids)
      dispatch(id);
  }

  // -- delivering for other routers ---------------------------------------------

  caf::result<caf::message> on_route(const std::string& key, std::string id,
                                     caf::message msg) {
    auto rec = dir_.find(key);
    auto l = local_.find(key);
    if (rec == nullptr || rec->home != sh_->name
        || rec->state != entity_state::active || l == local_.end()
        || blocked_.count(key) != 0)
      return make_error(errc::entity_unavailable,
                        "entity '" + key + "' is not active on "
                          + sh_->name);
    if (!sh_->lease_valid())
      return make_error(errc::entity_unavailable,
                        sh_->name + " lost its lease (no quorum answered)");
    // Handed on with the asking router as sender: the entity answers it
    // directly, one hop less than relaying the reply.
    return delegate(l->second, message_id_atom::value, std::move(id),
                    std::move(msg));
  }

  // -- state --------------------------------------------------------------------

  node_shared_ptr sh_;
  caf::actor agent_;
  entity_directory dir_;
  std::map<std::string, peer_info> peers_;
  std::map<std::string, caf::actor> local_;
  std::set<std::string> blocked_;
  std::map<uint64_t, pending> pending_;
  uint64_t next_id_ = 0;
  int64_t start_ns_ = steady_ns();
  /// `name/start/`, the start of the ids this router gives messages.
  std::string id_prefix_;
  bool retry_scheduled_ = false;
  bool sweep_scheduled_ = false;
};

} // namespace

caf::actor spawn_router(caf::actor_system& sys, node_shared_ptr shared) {
  return sys.spawn<router_actor>(std::move(shared));
}

} // namespace ft::detail
