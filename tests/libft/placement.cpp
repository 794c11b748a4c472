#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ft/error.hpp"
#include "ft/placement.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

using ft::placement_candidate;
using ft::placement_request;
using ft::placement_strategy;
using labels = std::map<std::string, std::string>;
using moves = std::vector<std::pair<std::string, std::string>>;

placement_candidate node(std::string name, size_t entities,
                         labels ls = {}, bool eligible = true) {
  placement_candidate x;
  x.name = std::move(name);
  x.entities = entities;
  x.labels = std::move(ls);
  x.eligible = eligible;
  return x;
}

std::string placed(const placement_request& req,
                  const std::vector<placement_candidate>& nodes) {
  auto res = ft::place(req, nodes);
  if (!res)
    FAIL(ft::render(res.error()));
  return *res;
}

/// Requires placement_failed and returns the rendering.
std::string placed_error(const placement_request& req,
                        const std::vector<placement_candidate>& nodes) {
  auto res = ft::place(req, nodes);
  REQUIRE_FALSE(res);
  CHECK(ft::is(res.error(), ft::errc::placement_failed));
  return ft::render(res.error());
}

placement_request request(placement_strategy s, labels ls = {},
                          std::string pinned = {},
                          std::vector<std::string> exclude = {}) {
  placement_request x;
  x.strategy = s;
  x.requires_labels = std::move(ls);
  x.node = std::move(pinned);
  x.exclude = std::move(exclude);
  return x;
}

/// Entities per node after applying `ms` to `homes`.
std::map<std::string, size_t> loads_after(std::map<std::string, std::string> homes,
                                          const moves& ms) {
  for (auto& [key, target] : ms)
    homes.at(key) = target;
  std::map<std::string, size_t> result;
  for (auto& [key, home] : homes)
    ++result[home];
  return result;
}

} // namespace

TEST_CASE("placement strategies have names", "[placement]") {
  for (auto s : {placement_strategy::least_loaded,
                 placement_strategy::label_aware, placement_strategy::pinned})
    CHECK(ft::parse_placement_strategy(ft::to_string(s)) == s);
  CHECK(std::string{ft::to_string(placement_strategy::label_aware)}
        == "label_aware");
  CHECK_FALSE(ft::parse_placement_strategy("random"));
  CHECK_FALSE(ft::parse_placement_strategy("Pinned"));
  CHECK_FALSE(ft::parse_placement_strategy(""));
}

TEST_CASE("least_loaded picks the up node with the fewest entities",
          "[placement]") {
  auto req = request(placement_strategy::least_loaded);
  CHECK(placed(req, {node("a", 3), node("b", 1), node("c", 2)}) == "b");
  SECTION("ties break by the lowest name, whatever the order given") {
    CHECK(placed(req, {node("c", 1), node("b", 1), node("d", 1)}) == "b");
    CHECK(placed(req, {node("n10", 0), node("n2", 0)}) == "n10");
  }
  SECTION("nodes that are not up take nothing") {
    CHECK(placed(req, {node("a", 0, {}, false), node("b", 5)}) == "b");
  }
  SECTION("excluded nodes take nothing") {
    auto ex = request(placement_strategy::least_loaded, {}, {}, {"b"});
    CHECK(placed(ex, {node("a", 3), node("b", 1), node("c", 2)}) == "c");
  }
  SECTION("required labels are honoured too") {
    auto lr = request(placement_strategy::least_loaded, {{"ssd", "yes"}});
    CHECK(placed(lr, {node("a", 0), node("b", 9, {{"ssd", "yes"}})}) == "b");
  }
  SECTION("no eligible node") {
    CHECK_THAT(placed_error(req, {}),
               Equals("placement_failed: no eligible node (0 known, 0 not "
                      "up, 0 excluded)"));
    CHECK_THAT(placed_error(request(placement_strategy::least_loaded, {}, {},
                                   {"c"}),
                           {node("a", 0, {}, false), node("b", 0, {}, false),
                            node("c", 0)}),
               Contains("no eligible node (3 known, 2 not up, 1 excluded)"));
  }
}

TEST_CASE("label_aware matches every required label", "[placement]") {
  std::vector<placement_candidate> nodes{
    node("a", 0, {{"zone", "eu"}}),
    node("b", 4, {{"gpu", "true"}, {"zone", "eu"}}),
    node("c", 2, {{"gpu", "true"}, {"zone", "us"}}),
    node("d", 0, {{"gpu", "false"}}),
    node("e", 0, {{"gpu", "true"}, {"zone", "ap"}}, false),
  };
  auto req = [](labels ls) {
    return request(placement_strategy::label_aware, std::move(ls));
  };
  CHECK(placed(req({{"gpu", "true"}}), nodes) == "c");
  CHECK(placed(req({{"gpu", "true"}, {"zone", "eu"}}), nodes) == "b");
  CHECK(placed(req({{"zone", "eu"}}), nodes) == "a");
  // No labels required: as least_loaded.
  CHECK(placed(req({}), nodes) == "a");
  SECTION("values must match exactly") {
    CHECK_THAT(placed_error(req({{"gpu", "TRUE"}}), nodes),
               Equals("placement_failed: no up node has label gpu=TRUE"));
  }
  SECTION("a label only a down node carries") {
    CHECK_THAT(placed_error(req({{"zone", "ap"}}), nodes),
               Equals("placement_failed: no up node has label zone=ap"));
  }
  SECTION("a label only an excluded node carries") {
    auto r = req({{"zone", "us"}});
    r.exclude = {"c"};
    CHECK_THAT(placed_error(r, nodes), Contains("no up node has label zone=us"));
  }
  SECTION("the first label no one carries is named") {
    CHECK_THAT(placed_error(req({{"gpu", "true"}, {"rack", "r1"}}), nodes),
               Contains("no up node has label rack=r1"));
  }
  SECTION("labels carried, but never together") {
    CHECK_THAT(placed_error(req({{"gpu", "false"}, {"zone", "eu"}}), nodes),
               Equals("placement_failed: no up node has all labels "
                      "gpu=false, zone=eu"));
  }
}

TEST_CASE("pinned places on exactly the named node", "[placement]") {
  std::vector<placement_candidate> nodes{node("n1", 9, {{"gpu", "true"}}),
                                         node("n2", 0),
                                         node("n3", 0, {}, false)};
  auto pin = [](std::string n) {
    return request(placement_strategy::pinned, {}, std::move(n));
  };
  // However loaded it is.
  CHECK(placed(pin("n1"), nodes) == "n1");
  CHECK(placed(pin("n2"), nodes) == "n2");
  CHECK_THAT(placed_error(pin("n9"), nodes),
             Equals("placement_failed: pinned node n9 is unknown"));
  CHECK_THAT(placed_error(pin("n3"), nodes),
             Equals("placement_failed: pinned node n3 is not up"));
  CHECK_THAT(placed_error(pin(""), nodes),
             Contains("pinned placement names no node"));
  auto excluded = pin("n2");
  excluded.exclude = {"n2"};
  CHECK_THAT(placed_error(excluded, nodes),
             Contains("pinned node n2 is excluded"));
  auto with_label = pin("n2");
  with_label.requires_labels = {{"gpu", "true"}};
  CHECK_THAT(placed_error(with_label, nodes),
             Contains("pinned node n2 has no label gpu=true"));
  with_label.node = "n1";
  CHECK(placed(with_label, nodes) == "n1");
}

TEST_CASE("pick_replicas prefers the least loaded nodes other than the home",
          "[placement]") {
  std::vector<placement_candidate> nodes{node("a", 5), node("b", 1),
                                         node("c", 1), node("d", 0, {}, false),
                                         node("e", 3), node("f", 0)};
  CHECK(ft::pick_replicas("a", 2, nodes)
        == std::vector<std::string>{"f", "b"});
  CHECK(ft::pick_replicas("f", 3, nodes)
        == std::vector<std::string>{"b", "c", "e"});
  // Fewer when fewer exist; never the home or a node that is not up.
  CHECK(ft::pick_replicas("b", 10, nodes)
        == std::vector<std::string>{"f", "c", "e", "a"});
  CHECK(ft::pick_replicas("a", 0, nodes).empty());
  CHECK(ft::pick_replicas("a", 2, {node("a", 0)}).empty());
  // A home that is not among the nodes does not matter.
  CHECK(ft::pick_replicas("z", 1, nodes) == std::vector<std::string>{"f"});
}

TEST_CASE("plan_rebalance evens out the load when a node joins",
          "[placement]") {
  std::map<std::string, std::string> homes;
  for (int i = 0; i < 6; ++i) {
    homes["k" + std::to_string(i)] = "a";
    homes["m" + std::to_string(i)] = "b";
  }
  std::vector<placement_candidate> nodes{node("a", 6), node("b", 6),
                                         node("c", 0)};
  SECTION("moves from the most loaded first, ties by name, lowest key first") {
    auto ms = ft::plan_rebalance(homes, {}, nodes);
    CHECK(ms == moves{{"k0", "c"}, {"m0", "c"}, {"k1", "c"}, {"m1", "c"}});
    CHECK(loads_after(homes, ms)
          == std::map<std::string, size_t>{{"a", 4}, {"b", 4}, {"c", 4}});
    // Deterministic: the same input plans the same moves.
    CHECK(ft::plan_rebalance(homes, {}, nodes) == ms);
  }
  SECTION("fixed keys never move") {
    std::vector<std::string> fixed{"k0", "k1", "k2", "k3", "k4", "m0"};
    auto ms = ft::plan_rebalance(homes, fixed, nodes);
    for (auto& [key, target] : ms)
      CHECK(std::find(fixed.begin(), fixed.end(), key) == fixed.end());
    // a keeps its five fixed keys; b and c end within one of each other.
    CHECK(ms == moves{{"k5", "c"}, {"m1", "c"}, {"m2", "c"}});
    CHECK(loads_after(homes, ms)
          == std::map<std::string, size_t>{{"a", 5}, {"b", 4}, {"c", 3}});
  }
  SECTION("a node with only fixed keys stays loaded") {
    std::vector<std::string> fixed;
    for (int i = 0; i < 6; ++i)
      fixed.push_back("k" + std::to_string(i));
    auto ms = ft::plan_rebalance(homes, fixed, nodes);
    CHECK(ms == moves{{"m0", "c"}, {"m1", "c"}, {"m2", "c"}});
  }
  SECTION("nodes that are not up neither give nor take") {
    nodes[2].eligible = false;
    CHECK(ft::plan_rebalance(homes, {}, nodes).empty());
    nodes[2].eligible = true;
    nodes[0].eligible = false;
    auto ms = ft::plan_rebalance(homes, {}, nodes);
    CHECK(ms == moves{{"m0", "c"}, {"m1", "c"}, {"m2", "c"}});
  }
  SECTION("balanced already: nothing moves") {
    nodes.pop_back();
    CHECK(ft::plan_rebalance(homes, {}, nodes).empty());
    homes["z"] = "a"; // 7 and 6: within one of the mean
    CHECK(ft::plan_rebalance(homes, {}, nodes).empty());
  }
  SECTION("keys homed on unknown nodes are not counted") {
    homes["x1"] = "gone";
    homes["x2"] = "gone";
    auto ms = ft::plan_rebalance(homes, {}, nodes);
    CHECK(ms.size() == 4u);
    for (auto& [key, target] : ms)
      CHECK(key[0] != 'x');
  }
  SECTION("one node or none: nothing to balance") {
    CHECK(ft::plan_rebalance(homes, {}, {node("a", 6)}).empty());
    CHECK(ft::plan_rebalance(homes, {}, {}).empty());
  }
}

TEST_CASE("plan_rebalance brings every node within one of the mean",
          "[placement]") {
  std::mt19937 rng{42};
  for (int round = 0; round < 200; ++round) {
    auto n = 1 + rng() % 7;
    std::vector<placement_candidate> nodes;
    for (size_t i = 0; i < n; ++i)
      nodes.push_back(node("n" + std::to_string(i), 0, {}, rng() % 5 != 0));
    std::map<std::string, std::string> homes;
    std::vector<std::string> fixed;
    auto keys = rng() % 60;
    for (size_t k = 0; k < keys; ++k) {
      // Skewed: the first nodes get most keys.
      auto home = std::min<size_t>(rng() % n, rng() % n);
      auto key = "key" + std::to_string(k);
      homes[key] = nodes[home].name;
      if (round % 2 == 1 && rng() % 4 == 0)
        fixed.push_back(key);
    }
    auto ms = ft::plan_rebalance(homes, fixed, nodes);
    INFO("round " << round);
    std::set<std::string> moved;
    for (auto& [key, target] : ms) {
      CHECK(moved.insert(key).second); // each key moves at most once
      CHECK(homes.count(key) == 1);
      CHECK(std::find(fixed.begin(), fixed.end(), key) == fixed.end());
      auto t = std::find_if(nodes.begin(), nodes.end(),
                            [&](auto& x) { return x.name == target; });
      REQUIRE(t != nodes.end());
      CHECK(t->eligible);
      auto from = std::find_if(nodes.begin(), nodes.end(), [&](auto& x) {
        return x.name == homes.at(key);
      });
      REQUIRE(from != nodes.end());
      CHECK(from->eligible);
      CHECK(target != homes.at(key));
    }
    CHECK(ft::plan_rebalance(homes, fixed, nodes) == ms);
    // Loads of the eligible nodes after the moves.
    auto after = loads_after(homes, ms);
    std::map<std::string, size_t> load;
    for (auto& x : nodes)
      if (x.eligible)
        load[x.name] = after.count(x.name) ? after[x.name] : 0;
    if (load.empty())
      continue;
    size_t total = 0;
    for (auto& [name, l] : load)
      total += l;
    auto mean = static_cast<double>(total) / load.size();
    if (fixed.empty()) {
      for (auto& [name, l] : load)
        CHECK(std::abs(static_cast<double>(l) - mean) < 1.0);
    } else {
      // Only a node whose keys are all fixed may stay above: every node
      // with a movable key is within one of the least loaded.
      size_t min = total;
      for (auto& [name, l] : load)
        min = std::min(min, l);
      std::set<std::string> fixed_set{fixed.begin(), fixed.end()};
      std::map<std::string, std::string> final_homes = homes;
      for (auto& [key, target] : ms)
        final_homes[key] = target;
      for (auto& [key, home] : final_homes)
        if (fixed_set.count(key) == 0 && load.count(home) > 0)
          CHECK(load[home] <= min + 1);
    }
  }
}
