#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

/// Cluster membership and the entity directory as plain data: the rules
/// every node applies to merge what it hears, pick the deciding node and
/// know whether it may still serve. The cluster agent is a thin shell that
/// feeds these rules heartbeats and time.

namespace ft {

// -- members ------------------------------------------------------------------

/// A member's state as the cluster agrees on it. `suspect` is a node's own
/// opinion (its failure detector doubts the peer) and never travels: the
/// others judge for themselves.
enum class member_status : uint8_t {
  /// Admitted by a seed, not yet confirmed by the deciding node.
  joining,
  up,
  /// This node's failure detector doubts the peer (local only).
  suspect,
  /// Declared dead by the deciding node: terminal for this incarnation.
  down,
  /// Left gracefully: terminal for this incarnation.
  left,
};

const char* to_string(member_status x) noexcept;

/// One node as the membership knows it.
struct member {
  std::string name;
  std::string host;
  uint16_t port = 0;
  uint16_t http_port = 0;
  /// Distinguishes the starts of a node with the same name (its start time
  /// in ms since the epoch, made unique): a node declared down rejoins as a
  /// higher incarnation, and old news about an older one is ignored.
  uint64_t incarnation = 0;
  member_status status = member_status::joining;
  std::map<std::string, std::string> labels;

  /// Whether the member counts for placement, quorum and leadership.
  bool alive() const noexcept {
    return status == member_status::joining || status == member_status::up
           || status == member_status::suspect;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member& x) {
  return f(caf::meta::type_name("ft.member"), x.name, x.host, x.port,
           x.http_port, x.incarnation, x.status, x.labels);
}

/// Every node's membership view: name → member. Views merge by a rule that
/// is commutative and idempotent, so gossip converges in any order: the
/// higher incarnation wins; at equal incarnation the later status in the
/// order joining < up < left < down wins (`suspect` never merges).
class membership {
public:
  using map_type = std::map<std::string, member>;

  /// Applies one record; returns whether the view changed.
  bool merge(const member& x);

  /// Applies every record of `xs`; returns whether the view changed.
  bool merge(const std::vector<member>& xs);

  /// The records, for gossip (`suspect` shown as `up`).
  std::vector<member> records() const;

  const member* find(const std::string& name) const;

  /// Sets a member's status if `incarnation` is its current one; returns
  /// whether it changed. Used by the deciding node (up, down) and by a node
  /// on its own record (left).
  bool set_status(const std::string& name, uint64_t incarnation,
                  member_status st);

  const map_type& members() const noexcept {
    return members_;
  }

  /// Names of members counting as alive (joining, up, suspect).
  std::vector<std::string> alive() const;

private:
  map_type members_;
};

/// The deciding node ("leader") as `self` sees it: the lowest name among
/// up members that `self` can reach (`reachable` holds the peers its
/// failure detector trusts; `self` always counts); among joining members
/// only when no up member is in reach.
std::optional<std::string> leader(const membership& view,
                                  const std::string& self,
                                  const std::vector<std::string>& reachable);

/// Whether `count` reachable members (self included) are a majority of
/// `alive` members.
bool is_quorum(size_t count, size_t alive) noexcept;

/// Until when a node may serve its entities, in nanoseconds of its own
/// steady clock: it may while a majority of alive members (itself counted)
/// acknowledged one of its heartbeats sent within `lease_ns`, and, unless it
/// is the leader, the leader is among them. `acked_send_ns` maps peers to
/// the send time of their newest acknowledged heartbeat. Returns 0 when no
/// quorum acknowledged anything.
int64_t lease_until(const std::map<std::string, int64_t>& acked_send_ns,
                    size_t alive_members, const std::string& self,
                    const std::optional<std::string>& leader,
                    int64_t lease_ns);

// -- entity directory ---------------------------------------------------------

/// Where an entity is in its life.
enum class entity_state : uint8_t {
  /// Its home is starting it (after a spawn, failover or migration).
  starting,
  active,
  /// Its home is stopping it to move it (messages wait).
  migrating,
  /// Its home was declared down and no new home could be found yet.
  orphaned,
};

const char* to_string(entity_state x) noexcept;

/// One entity's record, decided by the leader and copied to every node.
struct entity_record {
  std::string key;
  std::string type;
  std::string home;
  /// The incarnation of `home` it was placed on: when that node restarts
  /// (a new incarnation) the entity is gone with the old process and is
  /// resumed like after a failure.
  uint64_t home_incarnation = 0;
  /// Rises with every change of home (and state): a record with a higher
  /// epoch replaces one with a lower; the entity on its home carries the
  /// epoch it was started with.
  uint64_t epoch = 0;
  entity_state state = entity_state::starting;
  /// The placement it was spawned with (kept for failover).
  std::string pinned;
  std::map<std::string, std::string> requires_labels;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entity_record& x) {
  return f(caf::meta::type_name("ft.entity_record"), x.key, x.type, x.home,
           x.home_incarnation, x.epoch, x.state, x.pinned, x.requires_labels);
}

/// key → record, merged by epoch.
class entity_directory {
public:
  using map_type = std::map<std::string, entity_record>;

  /// Applies `x` if its epoch is above the stored one (or the key is new);
  /// returns whether it did.
  bool merge(const entity_record& x);

  bool merge(const std::vector<entity_record>& xs);

  const entity_record* find(const std::string& key) const;

  void erase(const std::string& key);

  /// Entities homed on `node`.
  std::vector<std::string> homed_on(const std::string& node) const;

  /// Entities per node (for least_loaded placement).
  std::map<std::string, size_t> load() const;

  std::vector<entity_record> records() const;

  const map_type& entries() const noexcept {
    return entries_;
  }

  /// The highest epoch ever seen, so a new leader's epochs stay above it.
  uint64_t max_epoch() const noexcept {
    return max_epoch_;
  }

private:
  map_type entries_;
  uint64_t max_epoch_ = 0;
};

} // namespace ft
