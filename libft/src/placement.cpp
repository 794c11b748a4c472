// Placement rules: pure functions over a snapshot of the members, ties
// broken by node name, so one decider's choices are reproducible.

#include "ft/placement.hpp"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "ft/error.hpp"

namespace ft {

const char* to_string(placement_strategy x) noexcept {
  switch (x) {
    case placement_strategy::least_loaded: return "least_loaded";
    case placement_strategy::label_aware: return "label_aware";
    case placement_strategy::pinned: return "pinned";
  }
  return "invalid";
}

std::optional<placement_strategy>
parse_placement_strategy(const std::string& x) {
  for (auto s : {placement_strategy::least_loaded,
                 placement_strategy::label_aware, placement_strategy::pinned})
    if (x == to_string(s))
      return s;
  return std::nullopt;
}

namespace {

using candidates = std::vector<const placement_candidate*>;

bool has_label(const placement_candidate& node, const std::string& key,
               const std::string& value) {
  auto i = node.labels.find(key);
  return i != node.labels.end() && i->second == value;
}

bool has_labels(const placement_candidate& node,
                const std::map<std::string, std::string>& required) {
  for (auto& [key, value] : required)
    if (!has_label(node, key, value))
      return false;
  return true;
}

std::string render_labels(const std::map<std::string, std::string>& xs) {
  std::string result;
  for (auto& [key, value] : xs)
    result += (result.empty() ? "" : ", ") + key + "=" + value;
  return result;
}

/// Fewest entities first, then lowest name: the order every choice uses.
bool less_loaded(const placement_candidate* x, const placement_candidate* y) {
  return std::tie(x->entities, x->name) < std::tie(y->entities, y->name);
}

caf::error failed(std::string why) {
  return make_error(errc::placement_failed, std::move(why));
}

caf::expected<std::string> place_pinned(const placement_request& req,
                                        const std::vector<placement_candidate>&
                                          nodes) {
  if (req.node.empty())
    return failed("pinned placement names no node");
  auto i = std::find_if(nodes.begin(), nodes.end(),
                        [&](auto& n) { return n.name == req.node; });
  if (i == nodes.end())
    return failed("pinned node " + req.node + " is unknown");
  if (!i->eligible)
    return failed("pinned node " + req.node + " is not up");
  if (std::count(req.exclude.begin(), req.exclude.end(), req.node) > 0)
    return failed("pinned node " + req.node + " is excluded");
  for (auto& [key, value] : req.requires_labels)
    if (!has_label(*i, key, value))
      return failed("pinned node " + req.node + " has no label " + key + "="
                    + value);
  return req.node;
}

} // namespace

caf::expected<std::string> place(const placement_request& req,
                                 const std::vector<placement_candidate>& nodes) {
  switch (req.strategy) {
    case placement_strategy::pinned:
      return place_pinned(req, nodes);
    case placement_strategy::least_loaded:
    case placement_strategy::label_aware:
      break;
    default:
      return failed("unknown placement strategy "
                    + std::to_string(static_cast<int>(req.strategy)));
  }
  std::set<std::string> excluded{req.exclude.begin(), req.exclude.end()};
  candidates up;
  size_t down = 0;
  for (auto& n : nodes) {
    if (!n.eligible)
      ++down;
    else if (excluded.count(n.name) == 0)
      up.push_back(&n);
  }
  if (up.empty())
    return failed("no eligible node (" + std::to_string(nodes.size())
                  + " known, " + std::to_string(down) + " not up, "
                  + std::to_string(nodes.size() - down) + " excluded)");
  candidates matching;
  for (auto* n : up)
    if (has_labels(*n, req.requires_labels))
      matching.push_back(n);
  if (matching.empty()) {
    // Name the first label no one carries: that is the one to fix.
    for (auto& [key, value] : req.requires_labels) {
      bool carried = false;
      for (auto* n : up)
        carried = carried || has_label(*n, key, value);
      if (!carried)
        return failed("no up node has label " + key + "=" + value);
    }
    return failed("no up node has all labels "
                  + render_labels(req.requires_labels));
  }
  return (*std::min_element(matching.begin(), matching.end(), less_loaded))
    ->name;
}

std::vector<std::string>
pick_replicas(const std::string& home, size_t count,
              const std::vector<placement_candidate>& nodes) {
  candidates xs;
  std::set<std::string> seen;
  for (auto& n : nodes)
    if (n.eligible && n.name != home && seen.insert(n.name).second)
      xs.push_back(&n);
  std::sort(xs.begin(), xs.end(), less_loaded);
  std::vector<std::string> result;
  for (size_t i = 0; i < xs.size() && i < count; ++i)
    result.push_back(xs[i]->name);
  return result;
}

std::vector<std::pair<std::string, std::string>>
plan_rebalance(const std::map<std::string, std::string>& homes,
               const std::vector<std::string>& fixed,
               const std::vector<placement_candidate>& nodes) {
  // Loads count the keys of `homes` on each eligible node. Keys homed on a
  // node that is not eligible are failover's business, not rebalancing's.
  std::map<std::string, size_t> load;
  for (auto& n : nodes)
    if (n.eligible)
      load.emplace(n.name, 0);
  std::set<std::string> pinned{fixed.begin(), fixed.end()};
  // Movable keys per node, in key order (the lowest moves first).
  std::map<std::string, std::vector<std::string>> movable;
  for (auto& [key, home] : homes) {
    auto i = load.find(home);
    if (i == load.end())
      continue;
    ++i->second;
    if (pinned.count(key) == 0)
      movable[home].push_back(key);
  }
  for (auto& [node, keys] : movable)
    std::reverse(keys.begin(), keys.end()); // pop_back takes the lowest
  std::vector<std::pair<std::string, std::string>> moves;
  if (load.size() < 2)
    return moves;
  // Each step moves one key from the most loaded node that has a movable
  // key to the least loaded node, while that narrows their gap. When no
  // such pair is left, max - min <= 1 among the nodes with movable keys,
  // so (without fixed keys) every node is within one of the mean. A key
  // never moves twice: a receiver ends at most one above the minimum, and
  // the minimum never falls. Ties break by name: load is a std::map.
  for (;;) {
    auto dst = load.begin();
    for (auto i = load.begin(); i != load.end(); ++i)
      if (i->second < dst->second)
        dst = i;
    auto src = load.end();
    for (auto i = load.begin(); i != load.end(); ++i) {
      auto m = movable.find(i->first);
      if (m == movable.end() || m->second.empty())
        continue;
      if (src == load.end() || i->second > src->second)
        src = i;
    }
    if (src == load.end() || src->second < dst->second + 2)
      break;
    auto& keys = movable[src->first];
    moves.emplace_back(keys.back(), dst->first);
    keys.pop_back();
    --src->second;
    ++dst->second;
  }
  return moves;
}

} // namespace ft
