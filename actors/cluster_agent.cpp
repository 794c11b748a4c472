// The cluster agent: one per node, published on the node's cluster port.
// It admits nodes that prove the cluster secret, exchanges heartbeats and
// membership gossip, judges peers with a failure detector, keeps the
// node's lease and the entity directory, and — on the node that is leader
// (the lowest-named reachable member, acting only while it holds a quorum
// lease) — declares silent nodes down, places entities and moves them.
// The rules are in libft (membership.hpp, placement.hpp,
// failure_detector.hpp); this actor feeds them messages and time.

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "cluster_protocol.hpp"
#include "ft/error.hpp"
#include "ft/failure_detector.hpp"
#include "ft/supervisor.hpp"
#include "wall_clock.hpp"

namespace ft::detail {

namespace {

/// `(join_atom) -> bool`: join through the seeds (or found the cluster).
using join_atom = caf::atom_constant<caf::atom("ftjoin")>;

/// `(join_try_atom)`: the next round of join attempts.
using join_try_atom = caf::atom_constant<caf::atom("ftjointry")>;

/// `(leave_atom) -> bool`: leave gracefully.
using leave_atom = caf::atom_constant<caf::atom("ftleave")>;

/// `(unstart_atom, std::string key, uint64_t epoch)`: a failed start may be
/// issued again.
using unstart_atom = caf::atom_constant<caf::atom("ftunstart")>;

class agent_actor : public caf::event_based_actor {
public:
  agent_actor(caf::actor_config& cfg, node_shared_ptr shared,
              caf::actor router, caf::actor replicator, caf::actor sup)
    : caf::event_based_actor(cfg),
      sh_(std::move(shared)),
      router_(std::move(router)),
      replicator_(std::move(replicator)),
      sup_(std::move(sup)),
      cfg_(sh_->config) {
    self_.name = cfg_.name;
    self_.host = cfg_.host;
    self_.labels = cfg_.labels;
    self_.incarnation = new_incarnation(0);
    self_.status = member_status::joining;
  }

  const char* name() const override {
    return "ft.cluster_agent";
  }

  /// A class-based actor's members live until its last handle goes, not
  /// until it terminates: the join promise points back at us and the peers'
  /// handles at actors that point at us, so keeping them would keep this
  /// actor, the node's shared state and everything it holds forever.
  void on_exit() override {
    sh_.reset();
    router_ = replicator_ = sup_ = nullptr;
    peers_.clear();
    join_rp_ = caf::response_promise{};
    local_.clear();
    starting_.clear();
    waiters_.clear();
  }

  caf::behavior make_behavior() override {
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
    // Entity restarts by the supervisor give the entity a new handle.
    send(sup_, subscribe_atom::value, caf::actor_cast<caf::actor>(this),
         mask_of({event_kind::child_restarted}));
    return {
      // -- set-up (from the node) --
      [this](supervisor_event& ev) {
        if (!local_sender() || ev.kind != event_kind::child_restarted)
          return;
        auto i = local_.find(ev.child);
        if (i == local_.end() || !ev.actor)
          return;
        i->second = ev.actor;
        send(router_, local_entity_atom::value, ev.child, ev.actor);
      },
      [this](ports_atom, uint16_t port, uint16_t http_port) {
        if (!local_sender())
          return;
        self_.port = port;
        self_.http_port = http_port;
      },
      [this](unstart_atom, const std::string& key, uint64_t epoch) {
        if (local_sender())
          start_requested_.erase(std::make_pair(key, epoch));
      },
      [this](join_atom) -> caf::result<bool> {
        if (!local_sender())
          return refused();
        join_rp_ = make_response_promise();
        join_deadline_ = clock().now() + cfg_.join_timeout;
        start_join();
        return join_rp_;
      },
      [this](join_try_atom) {
        if (local_sender())
          try_join_round();
      },
      [this](leave_atom) -> caf::result<bool> {
        if (!local_sender())
          return refused();
        return leave();
      },
      [this](tick_atom) {
        if (local_sender())
          on_tick();
      },
      // -- handshake --
      [this](challenge_atom, const std::string& from) -> std::string {
        // Keyed by the nonce: one node may greet us on two paths at once
        // (its join and its gossip-driven greeting).
        auto nonce = make_nonce();
        if (nonces_.size() > 1024)
          nonces_.clear(); // Abandoned handshakes; a retry gets a new one.
        nonces_[nonce] = from;
        return nonce;
      },
      [this](hello_atom, hello_msg& msg) -> caf::result<hello_reply> {
        return on_hello(msg);
      },
      // -- heartbeats and gossip --
      [this](heartbeat_atom, const std::string& from, uint64_t inc,
             int64_t send_ns, std::vector<member>& view, uint64_t dir_epoch) {
        on_heartbeat(from, inc, send_ns, view, dir_epoch);
      },
      [this](heartbeat_ack_atom, const std::string& from, uint64_t inc,
             int64_t echo_ns) {
        auto p = peers_.find(from);
        if (p == peers_.end() || p->second.info.incarnation != inc
            || !from_peer(from))
          return;
        auto& t = acked_[from];
        t = std::max(t, echo_ns);
        check_fences();
      },
      [this](you_are_down_atom, uint64_t inc) {
        if (inc == self_.incarnation && authorised())
          become_down("a peer reports it");
      },
      [this](directory_atom, std::vector<entity_record>& recs) {
        if (authorised() && dir_.merge(recs))
          on_directory_changed();
      },
      [this](directory_sync_atom) -> caf::result<std::vector<entity_record>> {
        if (!authorised())
          return refused();
        return dir_.records();
      },
      // -- entity requests (from the router) --
      [this](entity_spawn_atom, std::string& type, std::string& key,
             placement_request& req) -> caf::result<entity_record> {
        if (!authorised())
          return refused();
        return on_spawn(type, key, req);
      },
      [this](entity_migrate_atom, std::string& key,
             std::string& to) -> caf::result<entity_record> {
        if (!authorised())
          return refused();
        return on_migrate(key, to);
      },
      // -- entity life on this node (from the leader) --
      [this](start_entity_atom, entity_record& rec) -> caf::result<bool> {
        if (!authorised())
          return refused();
        return on_start_entity(rec);
      },
      [this](stop_entity_atom, std::string& key) -> caf::result<bool> {
        if (!authorised())
          return refused();
        return on_stop_entity(key);
      },
    };
  }

private:
  using time_point = caf::actor_clock::time_point;

  // -- who may talk to the agent ----------------------------------------------

  /// Sent from this process (the node's own actors).
  bool local_sender() {
    return is_local(current_sender(), system());
  }

  /// Sent from this process or from a node that proved the secret.
  bool authorised() {
    if (local_sender())
      return true;
    auto node = current_sender()->node();
    for (auto& [name, p] : peers_)
      if (p.agent && p.agent.node() == node)
        return true;
    return false;
  }

  /// Sent by the agent of peer `name` (as greeted).
  bool from_peer(const std::string& name) {
    auto p = peers_.find(name);
    auto s = current_sender();
    return p != peers_.end() && s != nullptr && p->second.agent
           && p->second.agent.node() == s->node();
  }

  caf::error refused() {
    auto s = current_sender();
    note("refused a control message from unauthenticated node "
        + (s ? caf::to_string(s->node()) : std::string{"?"}),
            "auth_refused", 3);
    return make_error(errc::auth_failed,
                      "not a member of this cluster: greet first");
  }

  struct peer_track {
    failure_detector fd;
    time_point last_heartbeat;
    bool seen = false;
    /// CAF reported the connection gone (down_msg from its agent).
    bool connection_lost = false;
  };

  // -- time and identity ------------------------------------------------------

  static uint64_t new_incarnation(uint64_t previous) {
    auto now = static_cast<uint64_t>(wall_clock_ms());
    return std::max(now, previous + 1);
  }

  int64_t now_ns() {
    return steady_ns();
  }

  peer_info self_info() {
    return peer_info{self_, caf::actor_cast<caf::actor>(this), router_,
                     replicator_};
  }

  caf::timespan min_down() const {
    return cfg_.failure_detector.heartbeat_interval
           + cfg_.failure_detector.acceptable_heartbeat_pause;
  }

  void log(const std::string& what) {
    std::fprintf(stderr, "%s ft-node %s: %s\n", iso_now().c_str(),
                 self_.name.c_str(), what.c_str());
  }

  /// Logs `what` and journals it as a cluster event of `kind` (severity
  /// 1-4) about `subject` (default: this node), so operators see
  /// membership and failover in `GET /api/events` and alerts.
  void note(const std::string& what, const char* kind, uint8_t severity,
            const std::string& subject = {}) {
    log(what);
    if (sh_->telemetry)
      sh_->telemetry->cluster(kind, severity,
                              subject.empty() ? self_.name : subject, what);
  }

  static std::string iso_now() {
    auto ms = wall_clock_ms();
    auto secs = static_cast<time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof(out), "%s.%03d", buf,
                  static_cast<int>(ms % 1000));
    return out;
  }

  // -- joining ----------------------------------------------------------------

  bool is_self(const host_port& hp) const {
    return hp.port == self_.port
           && (hp.host == self_.host
               || (hp.host == "localhost" && self_.host == "127.0.0.1")
               || (hp.host == "127.0.0.1" && self_.host == "localhost"));
  }

  void start_join() {
    std::vector<host_port> others;
    for (auto& s : cfg_.seeds)
      if (!is_self(s))
        others.push_back(s);
    seeds_ = others;
    // The first seed founds the cluster when none of the others answers
    // (Akka's rule), so a restarted first seed rejoins instead of founding
    // a second cluster; a node without seeds founds at once.
    first_seed_ = cfg_.seeds.empty() || is_self(cfg_.seeds.front());
    if (others.empty()) {
      found_cluster();
      return;
    }
    join_attempt_ = 0;
    try_join_round();
  }

  void found_cluster() {
    self_.status = member_status::up;
    view_.merge(self_);
    note("founded the cluster (no seed answered)" + std::string(),
        "founded", 1);
    joined();
  }

  void joined() {
    view_.merge(self_);
    if (!ticking_) {
      ticking_ = true;
      send(this, tick_atom::value);
    }
    if (join_rp_.pending())
      join_rp_.deliver(true);
    publish_view();
  }

  void try_join_round() {
    if (self_.status == member_status::up || joined_ok_)
      return;
    auto now = clock().now();
    if (first_seed_ && join_attempt_ >= 1) {
      found_cluster();
      return;
    }
    if (now >= join_deadline_) {
      auto err = make_error(errc::join_failed,
                            "no seed answered within "
                              + render_seconds(cfg_.join_timeout) + " ("
                              + seed_list() + ")"
                              + (last_join_error_.empty()
                                   ? std::string()
                                   : "; last error: " + last_join_error_));
      if (join_rp_.pending())
        join_rp_.deliver(err);
      return;
    }
    ++join_attempt_;
    join_pending_ = seeds_.size();
    for (auto& seed : seeds_) {
      auto addr = seed.host + ":" + std::to_string(seed.port);
      if (connecting_.insert(addr).second)
        greet(seed.host, seed.port, true, {});
    }
    delayed_send(this, std::chrono::milliseconds(500), join_try_atom::value);
  }

  std::string seed_list() const {
    std::string result;
    for (auto& s : seeds_) {
      if (!result.empty())
        result += ", ";
      result += to_string(s);
    }
    return result;
  }

  /// Connects to `host:port`, proves the secret and merges what the peer
  /// knows. `join` asks to be admitted (through a seed).
  void greet(const std::string& host, uint16_t port, bool join,
             std::string expected_name) {
    // With TLS configured, the SSL-aware middleman dials (and checks the
    // peer's certificate against the CA).
    auto mm = cfg_.tls_cert_file.empty()
                ? system().middleman().actor_handle()
                : system().openssl_manager().actor_handle();
    auto addr = host + ":" + std::to_string(port);
    request(mm, std::chrono::seconds(5), caf::connect_atom::value, host, port)
      .then(
        [=](const caf::node_id&, caf::strong_actor_ptr& ptr,
            const std::set<std::string>&) {
          auto agent = caf::actor_cast<caf::actor>(ptr);
          if (!agent) {
            fail_greet(addr, join, "no actor published there", {});
            return;
          }
          request(agent, std::chrono::seconds(5), challenge_atom::value,
                  self_.name)
            .then(
              [=](std::string& nonce) {
                hello_msg msg;
                msg.self = self_info();
                msg.nonce = nonce;
                msg.proof = hmac_hex(sh_->secret,
                                     "hello|" + nonce + "|" + self_.name);
                msg.join = join;
                request(agent, std::chrono::seconds(5), hello_atom::value,
                        std::move(msg))
                  .then(
                    [=](hello_reply& rep) {
                      on_welcome(addr, nonce, rep, join);
                    },
                    [=](caf::error& err) {
                      fail_greet(addr, join, render(err), err);
                    });
              },
              [=](caf::error& err) {
                fail_greet(addr, join, render(err), err);
              });
        },
        [=](caf::error& err) {
          fail_greet(addr, join, render(err), err);
        });
    (void) expected_name;
  }

  void fail_greet(const std::string& addr, bool join, const std::string& why,
                  const caf::error& err) {
    connecting_.erase(addr);
    if (!join) {
      log("cannot greet " + addr + ": " + why);
      return;
    }
    last_join_error_ = addr + ": " + why;
    // A wrong secret or a duplicate name will not heal by retrying.
    if (is(err, errc::auth_failed) || is(err, errc::duplicate_node_name)) {
      note("join refused by " + addr + ": " + why, "join_refused", 3);
      if (join_rp_.pending())
        join_rp_.deliver(err);
      joined_ok_ = true; // stop trying
    }
  }

  void on_welcome(const std::string& addr, const std::string& nonce,
                  hello_reply& rep, bool join) {
    connecting_.erase(addr);
    auto expect = hmac_hex(sh_->secret,
                           "welcome|" + nonce + "|" + self_.name);
    if (rep.proof != expect) {
      auto err = make_error(errc::auth_failed,
                            "node at " + addr
                              + " does not hold the cluster secret");
      log(render(err));
      if (join && join_rp_.pending()) {
        join_rp_.deliver(err);
        joined_ok_ = true;
      }
      return;
    }
    add_peer(rep.self);
    bool changed = view_.merge(rep.view);
    if (dir_.merge(rep.directory))
      on_directory_changed();
    if (join && self_.status != member_status::up && !joined_ok_) {
      joined_ok_ = true;
      note("joined the cluster through " + rep.self.info.name + " (" + addr
          + ")", "joined", 1);
      joined();
      // Once the greetings to the other members are through (next ticks),
      // copy the snapshots this node missed while it was away.
      delayed_send(replicator_, std::chrono::seconds(1), catch_up_atom::value,
                   dir_.records());
    } else if (changed) {
      on_view_changed();
    }
  }

  // -- handshake (receiving side) -----------------------------------------------

  caf::result<hello_reply> on_hello(hello_msg& msg) {
    auto& who = msg.self.info;
    auto n = nonces_.find(msg.nonce);
    auto expect = hmac_hex(sh_->secret, "hello|" + msg.nonce + "|" + who.name);
    if (n == nonces_.end() || n->second != who.name || msg.proof != expect) {
      note("refused node '" + who.name + "' (" + who.host + ":"
          + std::to_string(who.port) + "): wrong cluster secret",
              "auth_refused", 3, who.name);
      return make_error(errc::auth_failed,
                        "node " + self_.name
                          + " refused the join: wrong cluster secret");
    }
    nonces_.erase(n);
    if (who.name == self_.name)
      return make_error(errc::duplicate_node_name,
                        "node name '" + who.name + "' is this node's name");
    if (msg.join && self_.status != member_status::up)
      return make_error(errc::join_failed,
                        "seed " + self_.name + " is not up yet");
    if (auto cur = view_.find(who.name); cur != nullptr && cur->alive()
                                         && cur->incarnation
                                              != who.incarnation) {
      // A newer incarnation at the member's own address is that node
      // restarted: two processes cannot listen on one port, so the old one
      // is gone, whatever our failure detector has not noticed yet.
      bool restarted = who.incarnation > cur->incarnation
                       && who.host == cur->host && who.port == cur->port;
      // Liveness of the member in the view, not of the joiner: our greeting
      // of the restarted process may have tracked the new incarnation.
      auto t = tracks_.find(who.name);
      auto p = peers_.find(who.name);
      bool live = !restarted && t != tracks_.end() && p != peers_.end()
                  && p->second.info.incarnation == cur->incarnation
                  && !t->second.connection_lost && t->second.seen
                  && clock().now() - t->second.last_heartbeat < min_down();
      if (live || cur->incarnation > who.incarnation) {
        note("refused node '" + who.name + "' from " + who.host + ":"
            + std::to_string(who.port)
            + ": a live member already has that name",
                "join_refused", 3, who.name);
        return make_error(errc::duplicate_node_name,
                          "a node named '" + who.name
                            + "' is already a member (at " + cur->host + ":"
                            + std::to_string(cur->port) + ")");
      }
    }
    hello_reply rep;
    rep.self = self_info();
    rep.proof = hmac_hex(sh_->secret, "welcome|" + msg.nonce + "|" + who.name);
    add_peer(msg.self);
    if (view_.merge(who))
      on_view_changed();
    rep.view = view_.records();
    rep.directory = dir_.records();
    if (msg.join)
      note("admitted node '" + who.name + "' (" + who.host + ":"
          + std::to_string(who.port) + ")", "member_admitted", 1, who.name);
    return rep;
  }

  void add_peer(const peer_info& p) {
    auto& name = p.info.name;
    auto i = peers_.find(name);
    if (i != peers_.end() && i->second.info.incarnation > p.info.incarnation)
      return;
    if (i == peers_.end() || i->second.agent != p.agent)
      monitor(p.agent);
    if (i == peers_.end() || i->second.info.incarnation != p.info.incarnation) {
      tracks_.erase(name);
      acked_.erase(name);
    }
    peers_[name] = p;
    auto t = tracks_.find(name);
    if (t == tracks_.end()) {
      peer_track track{failure_detector{cfg_.failure_detector}, clock().now(),
                       false, false};
      // The first heartbeat is due within the detector's grace: count the
      // greeting as one so a peer that never beats is still found out.
      track.fd.heartbeat(clock().now());
      track.last_heartbeat = clock().now();
      track.seen = true;
      tracks_.emplace(name, std::move(track));
    } else {
      t->second.connection_lost = false;
    }
    push_peers();
  }

  void on_down(const caf::down_msg& dm) {
    for (auto& [name, p] : peers_) {
      if (p.agent.address() == dm.source) {
        auto t = tracks_.find(name);
        if (t != tracks_.end())
          t->second.connection_lost = true;
        note("lost the connection to " + name, "connection_lost", 2, name);
        // A reset connection to a live node must not cost it its
        // membership: dial again (a dead one simply does not answer).
        auto m = view_.find(name);
        if (m != nullptr && m->alive()) {
          auto addr = m->host + ":" + std::to_string(m->port);
          if (connecting_.insert(addr).second)
            greet(m->host, m->port, false, name);
        }
        break;
      }
    }
  }

  // -- heartbeats -------------------------------------------------------------

  void on_tick() {
    auto now = clock().now();
    auto ns = now_ns();
    auto interval = cfg_.failure_detector.heartbeat_interval;
    // A late tick means this process was paused: its opinions of others
    // are stale (their heartbeats wait unread), so judge nobody until the
    // mailbox has caught up.
    bool paused = last_tick_ != time_point{}
                  && now - last_tick_ > interval + min_down();
    if (paused)
      note("resumed after a pause of about "
          + render_seconds(now - last_tick_ - interval), "paused", 2);
    last_tick_ = now;
    send_heartbeats(ns);
    check_fences();
    // Local suspicion.
    std::vector<std::string> reachable;
    for (auto& [name, t] : tracks_) {
      auto m = view_.find(name);
      if (m == nullptr || !m->alive())
        continue;
      bool ok = !t.connection_lost && t.fd.available(now);
      if (paused)
        ok = true;
      if (ok) {
        reachable.push_back(name);
        if (m->status == member_status::suspect)
          view_.set_status(name, m->incarnation, member_status::up);
      } else if (m->status == member_status::up) {
        view_.set_status(name, m->incarnation, member_status::suspect);
      }
    }
    reachable_ = reachable;
    leader_ = ft::leader(view_, self_.name, reachable);
    auto alive = view_.alive().size();
    auto until = lease_until(acked_, alive, self_.name, leader_,
                             cfg_.lease.count());
    if (paused || leaving_)
      until = 0;
    sh_->lease_until_ns.store(until);
    bool lease = until > ns;
    if (lease != had_lease_) {
      had_lease_ = lease;
      if (!lease && !leaving_)
        note("lease lost: not serving entities until a quorum answers",
            "lease_lost", 3);
    }
    // A node still joining has not heard the real leader yet: it must not
    // crown itself and start declaring others down.
    auto me = view_.find(self_.name);
    bool joining = me == nullptr || me->status == member_status::joining;
    if (!paused && lease && !joining && leader_ && *leader_ == self_.name)
      leader_duties(now);
    connect_unknown_members();
    publish_view();
    delayed_send(this, interval, tick_atom::value);
  }

  void send_heartbeats(int64_t ns) {
    auto recs = view_.records();
    for (auto& [name, p] : peers_) {
      auto m = view_.find(name);
      if (m == nullptr || !m->alive() || m->incarnation != p.info.incarnation)
        continue;
      send(p.agent, heartbeat_atom::value, self_.name, self_.incarnation, ns,
           recs, dir_.max_epoch());
    }
  }

  // -- fencing a node declared down ---------------------------------------------

  /// A node declared down may still believe it holds its lease (a reset
  /// connection, an asymmetric partition). Its entities are resumed
  /// elsewhere only once a majority has acknowledged a heartbeat carrying
  /// the verdict — from then on none of them acknowledges the node, so its
  /// lease cannot be renewed — and one more `lease` has passed, so the
  /// lease it had has run out.
  struct fence {
    int64_t since = 0;
    std::optional<int64_t> quorum_at;
  };

  /// Whether the entities of `name` (incarnation `inc`), declared down, may
  /// be resumed elsewhere now; starts the fence when it is new.
  bool fenced(const std::string& name, uint64_t inc) {
    auto key = std::make_pair(name, inc);
    auto i = fences_.find(key);
    if (i == fences_.end()) {
      fences_.emplace(key, fence{now_ns(), std::nullopt});
      send_heartbeats(now_ns());
      check_fences();
      i = fences_.find(key);
    }
    auto& f = i->second;
    return f.quorum_at && now_ns() >= *f.quorum_at + cfg_.lease.count();
  }

  void check_fences() {
    if (fences_.empty())
      return;
    auto alive = view_.alive();
    for (auto& [key, f] : fences_) {
      if (f.quorum_at)
        continue;
      size_t count = 1; // this node knows
      for (auto& name : alive) {
        if (name == self_.name || name == key.first)
          continue;
        auto a = acked_.find(name);
        if (a != acked_.end() && a->second >= f.since)
          ++count;
      }
      if (is_quorum(count, alive.size()))
        f.quorum_at = now_ns();
    }
  }

  void on_heartbeat(const std::string& from, uint64_t inc, int64_t send_ns,
                    std::vector<member>& view, uint64_t dir_epoch) {
    auto p = peers_.find(from);
    if (p == peers_.end() || !from_peer(from))
      return; // Not greeted: unauthenticated.
    auto sender = caf::actor_cast<caf::actor>(current_sender());
    if (auto m = view_.find(from); m != nullptr) {
      if (m->incarnation == inc && !m->alive()) {
        send(sender, you_are_down_atom::value, inc);
        return;
      }
      if (m->incarnation > inc)
        return;
    }
    bool changed = view_.merge(view);
    if (auto me = view_.find(self_.name);
        me != nullptr && me->incarnation == self_.incarnation
        && (me->status == member_status::down
            || me->status == member_status::left)
        && !leaving_) {
      become_down("the cluster's view says so");
      return;
    }
    if (auto me = view_.find(self_.name);
        me != nullptr && me->incarnation == self_.incarnation
        && self_.status != me->status && me->status == member_status::up) {
      self_.status = member_status::up;
    }
    auto t = tracks_.find(from);
    if (t != tracks_.end()) {
      t->second.fd.heartbeat(clock().now());
      t->second.last_heartbeat = clock().now();
      t->second.seen = true;
    }
    send(sender, heartbeat_ack_atom::value, self_.name, self_.incarnation,
         send_ns);
    if (changed)
      on_view_changed();
    if (dir_epoch > dir_.max_epoch() && !syncing_) {
      syncing_ = true;
      request(sender, std::chrono::seconds(5), directory_sync_atom::value)
        .then(
          [this](std::vector<entity_record>& recs) {
            syncing_ = false;
            if (dir_.merge(recs))
              on_directory_changed();
          },
          [this](caf::error&) { syncing_ = false; });
    }
  }

  /// Members learnt from gossip get a direct, authenticated connection.
  void connect_unknown_members() {
    for (auto& [name, m] : view_.members()) {
      if (name == self_.name || !m.alive())
        continue;
      auto p = peers_.find(name);
      auto t = tracks_.find(name);
      bool lost = t != tracks_.end() && t->second.connection_lost;
      if (p != peers_.end() && p->second.info.incarnation == m.incarnation
          && !lost)
        continue;
      auto addr = m.host + ":" + std::to_string(m.port);
      if (connecting_.count(addr) != 0)
        continue;
      connecting_.insert(addr);
      greet(m.host, m.port, false, name);
    }
  }

  // -- being declared down, leaving ---------------------------------------------

  void become_down(const std::string& why) {
    if (leaving_)
      return;
    note("declared down by the cluster (" + why + "): stopping "
        + std::to_string(local_.size())
        + " stale entities, then rejoining as a new incarnation",
        "fenced", 4);
    sh_->lease_until_ns.store(0);
    for (auto& [key, handle] : local_) {
      drop_local(key);
    }
    local_.clear();
    self_.incarnation = new_incarnation(self_.incarnation);
    self_.status = member_status::joining;
    acked_.clear();
    view_.merge(self_);
    joined_ok_ = false;
    // Greet every member again as the new incarnation.
    for (auto& [name, m] : view_.members()) {
      if (name == self_.name || !m.alive())
        continue;
      auto addr = m.host + ":" + std::to_string(m.port);
      if (connecting_.insert(addr).second)
        greet(m.host, m.port, true, name);
    }
    joined_ok_ = true;
    delayed_send(replicator_, std::chrono::seconds(1), catch_up_atom::value,
                 dir_.records());
    publish_view();
  }

  caf::result<bool> leave() {
    leaving_ = true;
    self_.status = member_status::left;
    view_.set_status(self_.name, self_.incarnation, member_status::left);
    view_.merge(self_);
    // Tell everyone at once rather than waiting for the next heartbeat.
    for (auto& [name, p] : peers_)
      send(p.agent, heartbeat_atom::value, self_.name, self_.incarnation,
           now_ns(), view_.records(), dir_.max_epoch());
    sh_->lease_until_ns.store(0);
    publish_view();
    return true;
  }

  // -- the leader's work --------------------------------------------------------

  void leader_duties(time_point now) {
    bool view_changed = false;
    bool joined_up = false;
    // Admit joiners that answer.
    for (auto& [name, m] : view_.members()) {
      if (m.status != member_status::joining)
        continue;
      bool ok = name == self_.name
                || std::find(reachable_.begin(), reachable_.end(), name)
                     != reachable_.end();
      if (ok && view_.set_status(name, m.incarnation, member_status::up)) {
        view_changed = true;
        if (name == self_.name)
          self_.status = member_status::up;
        note("node '" + name + "' is up", "member_up", 1, name);
        if (name != self_.name)
          joined_up = true;
      }
    }
    if (joined_up && sh_->config.rebalance_on_join)
      rebalance();
    // Declare silent members down.
    std::vector<std::pair<std::string, uint64_t>> downs;
    for (auto& [name, m] : view_.members()) {
      if (name == self_.name || !m.alive())
        continue;
      auto t = tracks_.find(name);
      if (t == tracks_.end())
        continue;
      auto silent = now - t->second.last_heartbeat;
      bool judged = t->second.connection_lost || !t->second.fd.available(now);
      if (judged && silent >= min_down())
        downs.emplace_back(name, m.incarnation);
    }
    for (auto& [name, inc] : downs) {
      if (view_.set_status(name, inc, member_status::down)) {
        view_changed = true;
        fences_[std::make_pair(name, inc)] = fence{now_ns(), std::nullopt};
        note("declared node '" + name + "' down (silent for "
            + render_seconds(now - tracks_.at(name).last_heartbeat) + ")",
                "member_down", 3, name);
      }
    }
    if (view_changed) {
      on_view_changed();
      if (!downs.empty()) {
        // Spread the verdict now: the fence waits for its acknowledgement.
        send_heartbeats(now_ns());
      }
    }
    // Entities whose home is gone go elsewhere; starts get (re)issued.
    std::vector<entity_record> changes;
    for (auto& [key, rec] : dir_.entries()) {
      auto home = view_.find(rec.home);
      bool home_ok = home != nullptr && home->alive()
                     && home->incarnation == rec.home_incarnation;
      if (!home_ok && home != nullptr
          && home->incarnation == rec.home_incarnation
          && home->status == member_status::down
          && !fenced(rec.home, rec.home_incarnation))
        continue; // Its old home may still serve it: wait for the fence.
      if (!home_ok) {
        auto next = rec;
        placement_request req;
        req.strategy = rec.pinned.empty() ? cfg_.placement
                                          : placement_strategy::least_loaded;
        req.requires_labels = rec.requires_labels;
        if (!rec.pinned.empty() && rec.pinned != rec.home) {
          auto pm = view_.find(rec.pinned);
          if (pm != nullptr && pm->status == member_status::up) {
            req.strategy = placement_strategy::pinned;
            req.node = rec.pinned;
          }
        }
        auto where = place(req, candidates());
        if (where) {
          next.home = *where;
          next.home_incarnation = view_.find(*where)->incarnation;
          next.state = entity_state::starting;
          sh_->failovers.fetch_add(1);
          // A node restarted under the same name is a new incarnation.
          auto again = *where == rec.home
                         ? std::string{" (restarted since: a new incarnation)"}
                         : std::string{};
          note("entity '" + key + "': home '" + rec.home + "' is gone; "
              + "resuming it on '" + *where + "'" + again, "failover", 2, key);
        } else if (rec.state != entity_state::orphaned) {
          next.state = entity_state::orphaned;
          note("entity '" + key + "' is orphaned: " + render(where.error()),
              "entity_orphaned", 3, key);
        } else {
          continue;
        }
        next.epoch = dir_.max_epoch() + 1 + changes.size();
        changes.push_back(std::move(next));
      }
    }
    // A move this leader does not drive (its leader died mid-way) would
    // stay `migrating` for ever: confirm the entity where it is.
    for (auto& [key, rec] : dir_.entries()) {
      if (rec.state != entity_state::migrating || migrations_.count(key) != 0)
        continue;
      auto home = view_.find(rec.home);
      if (home == nullptr || !home->alive()
          || home->incarnation != rec.home_incarnation)
        continue; // handled above as a failover
      auto next = rec;
      next.state = entity_state::starting;
      next.epoch = dir_.max_epoch() + 1 + changes.size();
      log("entity '" + key + "': its migration was abandoned; confirming it "
          "on '" + rec.home + "'");
      changes.push_back(std::move(next));
    }
    if (!changes.empty())
      apply_and_broadcast(changes);
    for (auto& [key, rec] : dir_.entries())
      if (rec.state == entity_state::starting)
        ensure_started(rec);
  }

  /// Moves entities so every up node hosts within one of the mean (pinned
  /// entities stay), one migration at a time through this agent's own
  /// migrate handler, so each move is the same safe sequence as a
  /// requested one.
  void rebalance() {
    if (rebalancing_)
      return;
    std::map<std::string, std::string> homes;
    std::vector<std::string> fixed;
    for (auto& [key, rec] : dir_.entries()) {
      if (rec.state != entity_state::active)
        continue;
      homes.emplace(key, rec.home);
      if (!rec.pinned.empty())
        fixed.push_back(key);
    }
    auto moves = plan_rebalance(homes, fixed, candidates());
    if (moves.empty())
      return;
    note("rebalancing: moving " + std::to_string(moves.size())
        + " entities to even out the load", "rebalance", 1);
    rebalancing_ = true;
    next_move(std::make_shared<decltype(moves)>(std::move(moves)), 0);
  }

  void next_move(
    std::shared_ptr<std::vector<std::pair<std::string, std::string>>> moves,
    size_t i) {
    if (i >= moves->size()) {
      rebalancing_ = false;
      return;
    }
    auto& [key, to] = (*moves)[i];
    request(caf::actor_cast<caf::actor>(this), std::chrono::seconds(60),
            entity_migrate_atom::value, key, to)
      .then([this, moves, i](entity_record&) { next_move(moves, i + 1); },
            [this, moves, i](caf::error& err) {
              log("rebalancing: moving '" + (*moves)[i].first
                  + "' failed: " + render(err));
              next_move(moves, i + 1);
            });
  }

  std::vector<placement_candidate> candidates() {
    std::vector<placement_candidate> result;
    auto load = dir_.load();
    for (auto& [name, m] : view_.members()) {
      placement_candidate c;
      c.name = name;
      c.labels = m.labels;
      c.entities = load[name];
      bool reach = name == self_.name
                   || std::find(reachable_.begin(), reachable_.end(), name)
                        != reachable_.end();
      c.eligible = m.status == member_status::up && reach;
      result.push_back(std::move(c));
    }
    return result;
  }

  void apply_and_broadcast(const std::vector<entity_record>& changes) {
    if (dir_.merge(changes))
      on_directory_changed();
    for (auto& [name, p] : peers_) {
      auto m = view_.find(name);
      if (m != nullptr && m->alive())
        send(p.agent, directory_atom::value, changes);
    }
  }

  entity_record bump(entity_record rec) {
    rec.epoch = dir_.max_epoch() + 1;
    return rec;
  }

  void ensure_started(const entity_record& rec) {
    auto tag = std::make_pair(rec.key, rec.epoch);
    if (start_requested_.count(tag) != 0)
      return;
    caf::actor home_agent;
    if (rec.home == self_.name) {
      home_agent = caf::actor_cast<caf::actor>(this);
    } else {
      auto p = peers_.find(rec.home);
      if (p == peers_.end())
        return;
      home_agent = p->second.agent;
    }
    start_requested_.insert(tag);
    request(home_agent, std::chrono::seconds(30), start_entity_atom::value,
            rec)
      .then(
        [this, rec, tag](bool) {
          start_requested_.erase(tag);
          auto cur = dir_.find(rec.key);
          if (cur == nullptr || cur->epoch != rec.epoch)
            return; // Moved on meanwhile.
          auto next = bump(*cur);
          next.state = entity_state::active;
          apply_and_broadcast({next});
          finish_waiters(rec.key, next);
        },
        [this, rec, tag](caf::error& err) {
          note("starting entity '" + rec.key + "' on '" + rec.home
              + "' failed: " + render(err),
              "entity_start_failed", 3, rec.key);
          // Let a later tick try again (the home may recover or be
          // declared down, which picks another).
          delayed_send(this, std::chrono::seconds(1), unstart_atom::value,
                       rec.key, rec.epoch);
          fail_count_[rec.key]++;
          if (fail_count_[rec.key] >= 5)
            finish_waiters_error(rec.key, err);
        });
  }

  void finish_waiters(const std::string& key, const entity_record& rec) {
    fail_count_.erase(key);
    auto i = waiters_.find(key);
    if (i == waiters_.end())
      return;
    for (auto& rp : i->second)
      rp.deliver(rec);
    waiters_.erase(i);
  }

  void finish_waiters_error(const std::string& key, const caf::error& err) {
    auto i = waiters_.find(key);
    if (i == waiters_.end())
      return;
    for (auto& rp : i->second)
      rp.deliver(err);
    waiters_.erase(i);
  }

  /// Requests only the leader may decide go to it.
  caf::actor leader_agent() {
    if (!leader_)
      return {};
    if (*leader_ == self_.name)
      return caf::actor_cast<caf::actor>(this);
    auto p = peers_.find(*leader_);
    return p == peers_.end() ? caf::actor{} : p->second.agent;
  }

  bool acting_leader() const {
    return leader_ && *leader_ == self_.name
           && sh_->lease_until_ns.load() > steady_ns();
  }

  caf::result<entity_record> on_spawn(std::string& type, std::string& key,
                                      placement_request& req) {
    if (!acting_leader()) {
      auto la = leader_agent();
      if (!la || la == caf::actor_cast<caf::actor>(this))
        return make_error(errc::entity_unavailable,
                          "no leader holds a quorum right now; retry");
      delegate(la, entity_spawn_atom::value, std::move(type), std::move(key),
               std::move(req));
      return caf::delegated<entity_record>{};
    }
    if (!sh_->types.contains(type))
      return make_error(errc::unknown_entity_type,
                        "unknown entity type '" + type + "' (known: "
                          + join_names(sh_->types.names()) + ")");
    if (key.empty())
      return make_error(errc::invalid_config, "entity key is empty");
    if (auto cur = dir_.find(key))
      return make_error(errc::entity_exists,
                        "entity '" + key + "' exists (type " + cur->type
                          + ", on " + cur->home + ")");
    auto where = place(req, candidates());
    if (!where)
      return std::move(where.error());
    entity_record rec;
    rec.key = key;
    rec.type = type;
    rec.home = *where;
    rec.home_incarnation = view_.find(*where)->incarnation;
    rec.state = entity_state::starting;
    rec.pinned = req.strategy == placement_strategy::pinned ? req.node : "";
    rec.requires_labels = req.requires_labels;
    rec.epoch = dir_.max_epoch() + 1;
    auto rp = make_response_promise<entity_record>();
    waiters_[key].push_back(rp);
    apply_and_broadcast({rec});
    ensure_started(rec);
    return rp;
  }

  caf::result<entity_record> on_migrate(std::string& key, std::string& to) {
    if (!acting_leader()) {
      auto la = leader_agent();
      if (!la || la == caf::actor_cast<caf::actor>(this))
        return make_error(errc::entity_unavailable,
                          "no leader holds a quorum right now; retry");
      delegate(la, entity_migrate_atom::value, std::move(key), std::move(to));
      return caf::delegated<entity_record>{};
    }
    auto cur = dir_.find(key);
    if (cur == nullptr)
      return make_error(errc::unknown_entity, "no entity '" + key + "'");
    auto target = view_.find(to);
    if (target == nullptr || target->status != member_status::up)
      return make_error(errc::placement_failed,
                        "node '" + to + "' is not an up member");
    if (cur->home == to && cur->state == entity_state::active)
      return *cur;
    if (cur->state != entity_state::active)
      return make_error(errc::entity_unavailable,
                        "entity '" + key + "' is " + to_string(cur->state)
                          + "; retry when it is active");
    auto moving = bump(*cur);
    moving.state = entity_state::migrating;
    migrations_.insert(key);
    apply_and_broadcast({moving});
    auto rp = make_response_promise<entity_record>();
    caf::actor home_agent = moving.home == self_.name
                              ? caf::actor_cast<caf::actor>(this)
                              : peers_[moving.home].agent;
    auto started = clock().now();
    request(home_agent, std::chrono::seconds(30), stop_entity_atom::value, key)
      .then(
        [this, key, to, rp, started](bool) mutable {
          migrations_.erase(key);
          auto cur = dir_.find(key);
          auto target = view_.find(to);
          if (cur == nullptr || target == nullptr) {
            rp.deliver(make_error(errc::entity_unavailable,
                                  "entity or target vanished mid-move"));
            return;
          }
          auto next = bump(*cur);
          next.home = to;
          next.home_incarnation = target->incarnation;
          next.state = entity_state::starting;
          waiters_[key].push_back(rp);
          apply_and_broadcast({next});
          ensure_started(next);
          log("entity '" + key + "' stopped for migration after "
              + render_seconds(clock().now() - started));
        },
        [this, key, rp](caf::error& err) mutable {
          migrations_.erase(key);
          auto cur = dir_.find(key);
          if (cur != nullptr && cur->state == entity_state::migrating) {
            // Whether the home stopped it or not is unknown (a timeout):
            // have the home start or confirm it.
            auto back = bump(*cur);
            back.state = entity_state::starting;
            apply_and_broadcast({back});
          }
          rp.deliver(err);
        });
    return rp;
  }

  static std::string join_names(const std::vector<std::string>& xs) {
    std::string result;
    for (auto& x : xs) {
      if (!result.empty())
        result += ", ";
      result += x;
    }
    return result;
  }

  // -- entities on this node ------------------------------------------------------

  caf::result<bool> on_start_entity(entity_record& rec) {
    if (rec.home != self_.name || rec.home_incarnation != self_.incarnation)
      return make_error(errc::stale_epoch,
                        "entity '" + rec.key + "' is not placed on this "
                          "incarnation of " + self_.name);
    dir_.merge(rec);
    if (auto l = local_.find(rec.key); l != local_.end()) {
      // Still here (e.g. a move that was abandoned): serve it again.
      send(router_, local_entity_atom::value, rec.key, l->second);
      return true;
    }
    auto& waiting = starting_[rec.key];
    auto rp = make_response_promise<bool>();
    waiting.push_back(rp);
    if (waiting.size() > 1)
      return rp;
    auto factory = sh_->types.find(rec.type);
    if (factory == nullptr) {
      fail_start(rec.key, make_error(errc::unknown_entity_type,
                                     "node " + self_.name
                                       + " has no entity type '" + rec.type
                                       + "'"));
      return rp;
    }
    auto key = rec.key;
    request(replicator_, std::chrono::seconds(20), prepare_restore_atom::value,
            key)
      .then(
        [this, key, rec](uint64_t) {
          checkpoint_options opts;
          opts.key = key;
          opts.actor_type = rec.type;
          opts.writer = replicator_;
          opts.node_id = self_.name;
          opts.config = cfg_.fault_tolerance;
          auto spec = (*sh_->types.find(rec.type))(opts);
          spec.shutdown = shutdown_spec::brutal_kill();
          request(sup_, std::chrono::seconds(20), start_child_atom::value,
                  std::move(spec))
            .then(
              [this, key](caf::actor& handle) {
                local_[key] = handle;
                send(router_, local_entity_atom::value, key, handle);
                auto i = starting_.find(key);
                if (i == starting_.end())
                  return;
                for (auto& rp : i->second)
                  rp.deliver(true);
                starting_.erase(i);
                publish_view();
              },
              [this, key](caf::error& err) { fail_start(key, err); });
        },
        [this, key](caf::error& err) { fail_start(key, err); });
    return rp;
  }

  void fail_start(const std::string& key, const caf::error& err) {
    auto i = starting_.find(key);
    if (i == starting_.end())
      return;
    for (auto& rp : i->second)
      rp.deliver(err);
    starting_.erase(i);
  }

  caf::result<bool> on_stop_entity(std::string& key) {
    auto i = local_.find(key);
    if (i == local_.end())
      return true;
    auto handle = i->second;
    auto rp = make_response_promise<bool>();
    // Block new deliveries first; everything delivered before is in the
    // entity's mailbox ahead of the checkpoint request, so the final
    // snapshot covers it.
    request(router_, std::chrono::seconds(10), block_atom::value, key)
      .then(
        [this, key, handle, rp](bool) mutable {
          request(handle, std::chrono::seconds(20),
                  checkpoint_now_atom::value)
            .then(
              [this, key, rp](uint64_t) mutable {
                drop_local(key);
                local_.erase(key);
                rp.deliver(true);
              },
              [this, key, handle, rp](caf::error& err) mutable {
                // The entity stays here: let the router use it again.
                send(router_, local_entity_atom::value, key, handle);
                rp.deliver(err);
              });
        },
        [this, key, handle, rp](caf::error& err) mutable {
          send(router_, local_entity_atom::value, key, handle);
          rp.deliver(err);
        });
    return rp;
  }

  /// Stops a local entity without a last snapshot (its supervisor's
  /// brutal_kill) and forgets it.
  void drop_local(const std::string& key) {
    send(router_, local_entity_atom::value, key, caf::actor{});
    request(sup_, std::chrono::seconds(10), terminate_child_atom::value, key)
      .then(
        [this, key] {
          request(sup_, std::chrono::seconds(10), delete_child_atom::value,
                  key)
            .then([] {}, [](caf::error&) {});
        },
        [](caf::error&) {});
  }

  // -- view and directory changes -------------------------------------------------

  void on_view_changed() {
    push_peers();
    publish_view();
  }

  void on_directory_changed() {
    // Entities this node runs that the directory placed elsewhere (or on
    // another incarnation) are stale: stop them without a snapshot.
    std::vector<std::string> stale;
    for (auto& [key, handle] : local_) {
      auto rec = dir_.find(key);
      if (rec == nullptr || rec->home != self_.name
          || rec->home_incarnation != self_.incarnation)
        stale.push_back(key);
    }
    for (auto& key : stale) {
      note("stopping stale entity '" + key + "' (now homed elsewhere)",
          "stale_entity_stopped", 2, key);
      drop_local(key);
      local_.erase(key);
    }
    send(router_, directory_atom::value, dir_.records());
    // Spawns and moves waiting here finish when their entity is active,
    // whichever leader completed them (leadership may have moved on).
    std::vector<std::string> done;
    for (auto& [key, rps] : waiters_)
      if (auto rec = dir_.find(key);
          rec != nullptr && rec->state == entity_state::active)
        done.push_back(key);
    for (auto& key : done)
      finish_waiters(key, *dir_.find(key));
    publish_view();
  }

  void push_peers() {
    std::vector<peer_info> alive;
    for (auto& [name, p] : peers_) {
      auto m = view_.find(name);
      if (m != nullptr && m->alive() && m->incarnation == p.info.incarnation) {
        auto q = p;
        q.info = *m;
        alive.push_back(std::move(q));
      }
    }
    send(router_, peers_atom::value, alive);
    send(replicator_, peers_atom::value, alive);
  }

  void publish_view() {
    auto now = clock().now();
    auto load = dir_.load();
    std::vector<node_view_entry> entries;
    for (auto& [name, m] : view_.members()) {
      node_view_entry e;
      e.info = m;
      if (name == self_.name) {
        e.info = self_;
        e.info.status = m.status;
      }
      e.entities = load[name];
      auto t = tracks_.find(name);
      if (t != tracks_.end() && name != self_.name) {
        e.last_heartbeat_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                now - t->second.last_heartbeat)
                                .count();
        e.phi = t->second.fd.phi(now);
        if (std::isinf(e.phi))
          e.phi = 1e9;
      }
      entries.push_back(std::move(e));
    }
    std::lock_guard<std::mutex> guard{sh_->mtx};
    auto& st = sh_->status;
    st.name = self_.name;
    auto me = view_.find(self_.name);
    st.state = me != nullptr ? me->status : self_.status;
    st.incarnation = self_.incarnation;
    st.leader = leader_ ? *leader_ : std::string{};
    st.members = view_.alive().size();
    st.entities = local_.size();
    st.restarts = sh_->restarts.load();
    st.lease = sh_->lease_valid();
    st.port = self_.port;
    st.http_port = self_.http_port;
    sh_->view = std::move(entries);
    sh_->directory = dir_.records();
  }

  // -- state --------------------------------------------------------------------

  node_shared_ptr sh_;
  caf::actor router_;
  caf::actor replicator_;
  caf::actor sup_;
  node_config cfg_;
  member self_;
  membership view_;
  entity_directory dir_;
  std::map<std::string, peer_info> peers_;
  std::map<std::string, peer_track> tracks_;
  std::map<std::string, int64_t> acked_;
  std::map<std::string, std::string> nonces_;
  std::set<std::string> connecting_;
  std::vector<std::string> reachable_;
  std::optional<std::string> leader_;
  bool had_lease_ = false;
  bool ticking_ = false;
  bool syncing_ = false;
  bool leaving_ = false;
  bool rebalancing_ = false;
  time_point last_tick_{};
  // Joining.
  caf::response_promise join_rp_;
  time_point join_deadline_{};
  std::vector<host_port> seeds_;
  bool first_seed_ = false;
  bool joined_ok_ = false;
  int join_attempt_ = 0;
  size_t join_pending_ = 0;
  std::string last_join_error_;
  // Entities.
  std::map<std::string, caf::actor> local_;
  std::map<std::string, std::vector<caf::response_promise>> starting_;
  std::map<std::string, std::vector<caf::response_promise>> waiters_;
  std::set<std::pair<std::string, uint64_t>> start_requested_;
  std::map<std::pair<std::string, uint64_t>, fence> fences_;
  /// Keys this leader is moving right now.
  std::set<std::string> migrations_;
  std::map<std::string, int> fail_count_;
};

} // namespace

caf::actor spawn_agent(caf::actor_system& sys, node_shared_ptr shared,
                       caf::actor router, caf::actor replicator,
                       caf::actor entity_supervisor) {
  return sys.spawn<agent_actor>(std::move(shared), std::move(router),
                                std::move(replicator),
                                std::move(entity_supervisor));
}

} // namespace ft::detail
