// The snapshot replicator: the writer an entity checkpoints through. It
// speaks the snapshot writer's protocol, so a checkpointed actor does not
// know it is replicated: a write goes to the node's own writer and, as
// Cap'n Proto bytes, to the replicators of `factor` other nodes, and is
// acknowledged once the local commit and `min_acks` replica commits are
// done. A node that lost its lease writes nothing (a stale copy of an
// entity must not overwrite the state its new home continues from).
// Before an entity starts on a node, `prepare_restore` copies the newest
// snapshot of its key found anywhere in the cluster into the local store.

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "cluster_protocol.hpp"
#include "ft/error.hpp"
#include "ft/snapshot.hpp"
#include "ft/snapshot_writer.hpp"

namespace ft::detail {

namespace {

std::vector<char> to_chars(const byte_buffer& x) {
  return std::vector<char>(x.begin(), x.end());
}

class replicator_actor : public caf::event_based_actor {
public:
  replicator_actor(caf::actor_config& cfg, node_shared_ptr shared,
                   caf::actor writer)
    : caf::event_based_actor(cfg),
      sh_(std::move(shared)),
      writer_(std::move(writer)),
      rep_(sh_->config.replication) {
    // nop
  }

  const char* name() const override {
    return "ft.snapshot_replicator";
  }

  /// Members live until the last handle goes, not until termination: the
  /// open writes' promises point back at us, so release them, the writer
  /// (its LMDB environment) and the node's shared state now.
  void on_exit() override {
    sh_.reset();
    writer_ = nullptr;
    peers_.clear();
    writes_.clear();
  }

  caf::behavior make_behavior() override {
    return {
      // -- the writer's protocol, for local entities --
      [this](snapshot_write_atom,
             snapshot_envelope& env) -> caf::result<uint64_t> {
        return on_write(std::move(env));
      },
      [this](snapshot_latest_atom a, std::string& key) {
        return delegate(writer_, a, std::move(key));
      },
      [this](snapshot_before_atom a, std::string& key, uint64_t seq) {
        return delegate(writer_, a, std::move(key), seq);
      },
      [this](snapshot_list_atom a, std::string& key) {
        return delegate(writer_, a, std::move(key));
      },
      [this](snapshot_list_atom a) { return delegate(writer_, a); },
      // -- from other nodes --
      [this](replicate_atom,
             std::vector<char>& bytes) -> caf::result<uint64_t> {
        if (!from_peer())
          return make_error(errc::auth_failed, "not a member of this cluster");
        return on_replica(bytes);
      },
      [this](fetch_latest_atom,
             std::string& key) -> caf::result<std::vector<char>> {
        if (!from_peer())
          return make_error(errc::auth_failed, "not a member of this cluster");
        auto rp = make_response_promise<std::vector<char>>();
        request(writer_, caf::infinite, snapshot_latest_atom::value, key)
          .then(
            [rp](snapshot_envelope& env) mutable {
              auto bytes = encode_snapshot(env);
              if (!bytes)
                rp.deliver(std::move(bytes.error()));
              else
                rp.deliver(to_chars(*bytes));
            },
            [rp](caf::error& err) mutable { rp.deliver(err); });
        return rp;
      },
      // -- from the agent --
      [this](prepare_restore_atom,
             std::string& key) -> caf::result<uint64_t> {
        if (!local_sender())
          return make_error(errc::auth_failed, "local only");
        return on_prepare(key);
      },
      [this](peers_atom, std::vector<peer_info>& peers) {
        if (local_sender())
          peers_ = std::move(peers);
      },
      [this](catch_up_atom, std::vector<entity_record>& recs) {
        if (local_sender())
          catch_up(recs);
      },
    };
  }

private:
  bool local_sender() {
    return is_local(current_sender(), system());
  }

  /// This node's actors, or a node the agent greeted.
  bool from_peer() {
    if (local_sender())
      return true;
    auto node = current_sender()->node();
    for (auto& p : peers_)
      if (p.replicator && p.replicator.node() == node)
        return true;
    return false;
  }

  struct write_state {
    caf::response_promise rp;
    uint64_t sequence = 0;
    bool local_done = false;
    size_t acks = 0;
    size_t answered = 0;
    size_t asked = 0;
    size_t needed = 0;
    std::string key;
    caf::error local_error;
    std::string replica_errors;
  };

  caf::result<uint64_t> on_write(snapshot_envelope env) {
    if (!sh_->lease_valid())
      return make_error(errc::entity_unavailable,
                        "snapshot of '" + env.key + "' refused: "
                          + sh_->name + " lost its lease");
    auto id = ++next_;
    auto& w = writes_[id];
    w.rp = make_response_promise();
    w.sequence = env.sequence;
    w.key = env.key;
    // Replicas: the first `factor` other alive nodes by name, so every
    // node's copies of a key land in the same places.
    std::vector<const peer_info*> targets;
    for (auto& p : peers_) {
      if (static_cast<int>(targets.size()) >= rep_.factor)
        break;
      if (p.info.name != sh_->name && p.info.status == member_status::up)
        targets.push_back(&p);
    }
    w.needed = static_cast<size_t>(rep_.min_acks);
    w.asked = targets.size();
    auto rp = w.rp;
    if (targets.size() < w.needed) {
      writes_.erase(id);
      return make_error(errc::replication_failed,
                        "snapshot of '" + env.key + "' needs "
                          + std::to_string(rep_.min_acks)
                          + " replica(s) but only "
                          + std::to_string(targets.size())
                          + " other node(s) are up");
    }
    if (!targets.empty()) {
      auto bytes = encode_snapshot(env);
      if (!bytes) {
        writes_.erase(id);
        return std::move(bytes.error());
      }
      auto chars = to_chars(*bytes);
      for (auto* t : targets) {
        auto name = t->info.name;
        auto sent = std::chrono::steady_clock::now();
        sh_->telemetry->replica_sent(name);
        request(t->replicator, rep_.timeout, replicate_atom::value, chars)
          .then(
            [this, id, name, sent](uint64_t) {
              sh_->telemetry->replica_answered(
                name, std::chrono::steady_clock::now() - sent, true);
              on_replica_answer(id, {}, "");
            },
            [this, id, name, sent](caf::error& err) {
              sh_->telemetry->replica_answered(
                name, std::chrono::steady_clock::now() - sent, false);
              on_replica_answer(id, err, name);
            });
      }
    }
    request(writer_, caf::infinite, snapshot_write_atom::value, std::move(env))
      .then(
        [this, id](uint64_t) {
          auto i = writes_.find(id);
          if (i == writes_.end())
            return;
          i->second.local_done = true;
          maybe_finish(id);
        },
        [this, id](caf::error& err) {
          auto i = writes_.find(id);
          if (i == writes_.end())
            return;
          i->second.local_done = true;
          i->second.local_error = err;
          maybe_finish(id);
        });
    return rp;
  }

  void on_replica_answer(uint64_t id, const caf::error& err,
                         const std::string& name) {
    auto i = writes_.find(id);
    if (i == writes_.end())
      return;
    auto& w = i->second;
    ++w.answered;
    if (!err)
      ++w.acks;
    else {
      if (!w.replica_errors.empty())
        w.replica_errors += "; ";
      w.replica_errors += name + ": " + render(err);
    }
    maybe_finish(id);
  }

  void maybe_finish(uint64_t id) {
    auto i = writes_.find(id);
    auto& w = i->second;
    if (!w.local_done)
      return;
    if (w.local_error) {
      w.rp.deliver(w.local_error);
      writes_.erase(i);
      return;
    }
    if (w.acks >= w.needed) {
      w.rp.deliver(w.sequence);
      writes_.erase(i);
      return;
    }
    if (w.answered == w.asked) {
      w.rp.deliver(make_error(errc::replication_failed,
                              "snapshot '" + w.key + "' #"
                                + std::to_string(w.sequence) + ": "
                                + std::to_string(w.acks) + " of "
                                + std::to_string(w.needed)
                                + " replica acks (" + w.replica_errors + ")"));
      writes_.erase(i);
    }
  }

  caf::result<uint64_t> on_replica(const std::vector<char>& bytes) {
    auto env = decode_snapshot(bytes.data(), bytes.size(), "replica");
    if (!env)
      return std::move(env.error());
    auto seq = env->sequence;
    auto rp = make_response_promise<uint64_t>();
    request(writer_, caf::infinite, snapshot_write_atom::value,
            std::move(*env))
      .then([rp](uint64_t s) mutable { rp.deliver(s); },
            [rp, seq](caf::error& err) mutable {
              // Holding this sequence or a newer one is what was asked.
              if (is(err, errc::stale_sequence))
                rp.deliver(seq);
              else
                rp.deliver(err);
            });
    return rp;
  }

  /// Gathers the newest snapshot of `key` from this node and every alive
  /// peer, and stores it locally when it is newer than the local one.
  caf::result<uint64_t> on_prepare(const std::string& key) {
    struct gather {
      caf::response_promise rp;
      size_t waiting = 0;
      uint64_t local_seq = 0;
      std::optional<snapshot_envelope> best;
    };
    auto g = std::make_shared<gather>();
    g->rp = make_response_promise();
    g->waiting = 1 + peers_.size();
    auto done = [this, g] {
      if (--g->waiting != 0)
        return;
      if (!g->best || g->best->sequence <= g->local_seq) {
        g->rp.deliver(g->local_seq);
        return;
      }
      auto seq = g->best->sequence;
      request(writer_, caf::infinite, snapshot_write_atom::value, *g->best)
        .then([g, seq](uint64_t) { g->rp.deliver(seq); },
              [g, seq](caf::error& err) {
                if (is(err, errc::stale_sequence))
                  g->rp.deliver(seq);
                else
                  g->rp.deliver(err);
              });
    };
    request(writer_, caf::infinite, snapshot_latest_atom::value, key)
      .then(
        [g, done](snapshot_envelope& env) {
          g->local_seq = env.sequence;
          done();
        },
        [done](caf::error&) { done(); });
    for (auto& p : peers_) {
      request(p.replicator, std::chrono::seconds(5), fetch_latest_atom::value,
              key)
        .then(
          [g, done](std::vector<char>& bytes) {
            auto env = decode_snapshot(bytes.data(), bytes.size(), "fetched");
            if (env && (!g->best || env->sequence > g->best->sequence))
              g->best = std::move(*env);
            done();
          },
          [done](caf::error&) { done(); });
    }
    auto rp = g->rp;
    return rp;
  }

  /// Copies the newest snapshot of each entity homed on another node from
  /// that node (one request per entity; failures are left for the next
  /// write to repair, since every write goes to the replicas anyway).
  void catch_up(const std::vector<entity_record>& recs) {
    auto copied = std::make_shared<size_t>(0);
    auto pending = std::make_shared<size_t>(0);
    for (auto& rec : recs) {
      if (rec.home == sh_->name)
        continue;
      auto home = std::find_if(peers_.begin(), peers_.end(),
                               [&](const peer_info& p) {
                                 return p.info.name == rec.home;
                               });
      if (home == peers_.end())
        continue;
      ++*pending;
      request(home->replicator, std::chrono::seconds(10),
              fetch_latest_atom::value, rec.key)
        .then(
          [this, copied, pending](std::vector<char>& bytes) {
            auto env = decode_snapshot(bytes.data(), bytes.size(), "catch-up");
            if (env)
              request(writer_, caf::infinite, snapshot_write_atom::value,
                      std::move(*env))
                .then([copied](uint64_t) { ++*copied; },
                      [](caf::error&) { /* had it, or newer */ });
            --*pending;
          },
          [pending](caf::error&) { --*pending; });
    }
  }

  node_shared_ptr sh_;
  caf::actor writer_;
  replication_config rep_;
  std::vector<peer_info> peers_;
  std::map<uint64_t, write_state> writes_;
  uint64_t next_ = 0;
};

} // namespace

caf::actor spawn_replicator(caf::actor_system& sys, node_shared_ptr shared,
                            caf::actor writer) {
  return sys.spawn<replicator_actor>(std::move(shared), std::move(writer));
}

} // namespace ft::detail
