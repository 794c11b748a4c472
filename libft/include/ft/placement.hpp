#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>

/// Where an entity lives: the placement rule the cluster's deciding node
/// applies when an entity is spawned, fails over or is rebalanced. Pure
/// functions over a snapshot of the members, so every rule is tested
/// without a cluster and the decision is deterministic (ties break by node
/// name), which keeps one decider's choices reproducible.

namespace ft {

enum class placement_strategy : uint8_t {
  /// The up node with the fewest entities (ties: lowest name).
  least_loaded,
  /// Like least_loaded, among nodes whose labels contain every required
  /// label (`requires: {gpu: "true"}`).
  label_aware,
  /// Exactly the named node.
  pinned,
};

const char* to_string(placement_strategy x) noexcept;

std::optional<placement_strategy> parse_placement_strategy(const std::string& x);

/// What the placement rule knows about one node.
struct placement_candidate {
  std::string name;
  std::map<std::string, std::string> labels;
  /// Entities the node hosts now (counting decisions already made).
  size_t entities = 0;
  /// Whether it may take entities (up, not leaving, not the failed home).
  bool eligible = true;
};

/// One spawn's placement request.
struct placement_request {
  placement_strategy strategy = placement_strategy::least_loaded;
  /// Labels a node must carry (any strategy: also honoured by least_loaded
  /// when given).
  std::map<std::string, std::string> requires_labels;
  /// `pinned`: the node.
  std::string node;
  /// Nodes to avoid (e.g. the node an entity is migrating away from).
  std::vector<std::string> exclude;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, placement_request& x) {
  return f(caf::meta::type_name("ft.placement_request"), x.strategy,
           x.requires_labels, x.node, x.exclude);
}

/// The chosen node's name, or `placement_failed` saying why (no eligible
/// node; which label no node carries; the pinned node unknown or not up).
caf::expected<std::string> place(const placement_request& req,
                                 const std::vector<placement_candidate>& nodes);

/// Picks `count` replica holders for an entity homed on `home`: eligible
/// nodes other than the home, preferring fewest entities, ties by name;
/// fewer when fewer exist.
std::vector<std::string>
pick_replicas(const std::string& home, size_t count,
              const std::vector<placement_candidate>& nodes);

/// Rebalancing when a node joins: moves (key → target) that bring every
/// eligible node within one entity of the mean, moving from the most loaded
/// first. `homes` maps entity keys to their nodes; pinned keys (`fixed`)
/// never move. Loads count the keys of `homes` on each eligible node (keys
/// homed on other nodes are failover's business); a node whose keys are all
/// fixed may stay above. Each key moves at most once, the lowest key of
/// the most loaded node to the least loaded node. Deterministic.
std::vector<std::pair<std::string, std::string>>
plan_rebalance(const std::map<std::string, std::string>& homes,
               const std::vector<std::string>& fixed,
               const std::vector<placement_candidate>& nodes);

} // namespace ft
