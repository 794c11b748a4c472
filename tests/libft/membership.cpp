#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "ft/membership.hpp"

using ft::entity_directory;
using ft::entity_record;
using ft::entity_state;
using ft::member;
using ft::member_status;
using ft::membership;

namespace {

member make_member(const std::string& name, uint64_t inc, member_status st) {
  member m;
  m.name = name;
  m.host = "127.0.0.1";
  m.port = 7000;
  m.incarnation = inc;
  m.status = st;
  return m;
}

entity_record make_record(const std::string& key, const std::string& home,
                          uint64_t epoch) {
  entity_record r;
  r.key = key;
  r.type = "counter";
  r.home = home;
  r.home_incarnation = 1;
  r.epoch = epoch;
  r.state = entity_state::active;
  return r;
}

} // namespace

TEST_CASE("membership merge: higher incarnation wins, then later status",
          "[membership]") {
  membership v;
  CHECK(v.merge(make_member("a", 1, member_status::joining)));
  CHECK_FALSE(v.merge(make_member("a", 1, member_status::joining)));
  CHECK(v.merge(make_member("a", 1, member_status::up)));
  CHECK(v.find("a")->status == member_status::up);
  // Old news about the same incarnation does not undo a later status.
  CHECK_FALSE(v.merge(make_member("a", 1, member_status::joining)));
  CHECK(v.merge(make_member("a", 1, member_status::down)));
  CHECK(v.find("a")->status == member_status::down);
  // Down is terminal for the incarnation: even `left` or `up` stays out.
  CHECK_FALSE(v.merge(make_member("a", 1, member_status::up)));
  CHECK_FALSE(v.merge(make_member("a", 1, member_status::left)));
  // A new incarnation replaces it, whatever its status.
  CHECK(v.merge(make_member("a", 2, member_status::joining)));
  CHECK(v.find("a")->incarnation == 2);
  CHECK(v.find("a")->status == member_status::joining);
  // News about the old incarnation is ignored now.
  CHECK_FALSE(v.merge(make_member("a", 1, member_status::down)));
  CHECK(v.find("a")->status == member_status::joining);
}

TEST_CASE("membership merge converges in any order", "[membership]") {
  std::vector<member> news{
    make_member("a", 1, member_status::joining),
    make_member("a", 1, member_status::up),
    make_member("b", 5, member_status::up),
    make_member("b", 5, member_status::down),
    make_member("b", 6, member_status::joining),
    make_member("c", 2, member_status::up),
    make_member("c", 2, member_status::left),
  };
  std::mt19937 rng{42};
  membership reference;
  reference.merge(news);
  for (int round = 0; round < 50; ++round) {
    std::shuffle(news.begin(), news.end(), rng);
    membership v;
    for (auto& m : news)
      v.merge(m);
    // Merging twice changes nothing (idempotent).
    CHECK_FALSE(v.merge(news));
    for (auto& [name, m] : reference.members()) {
      CAPTURE(round, name);
      REQUIRE(v.find(name) != nullptr);
      CHECK(v.find(name)->incarnation == m.incarnation);
      CHECK(v.find(name)->status == m.status);
    }
  }
  CHECK(reference.find("a")->status == member_status::up);
  CHECK(reference.find("b")->incarnation == 6);
  CHECK(reference.find("c")->status == member_status::left);
  CHECK(reference.alive() == std::vector<std::string>{"a", "b"});
}

TEST_CASE("suspicion is local: it never travels and gossip does not clear it",
          "[membership]") {
  membership v;
  v.merge(make_member("a", 1, member_status::up));
  CHECK(v.set_status("a", 1, member_status::suspect));
  CHECK(v.find("a")->status == member_status::suspect);
  CHECK(v.find("a")->alive());
  // Others' view of `a` as up does not overrule this node's doubt.
  CHECK_FALSE(v.merge(make_member("a", 1, member_status::up)));
  CHECK(v.find("a")->status == member_status::suspect);
  // Records for gossip show it as up.
  auto recs = v.records();
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].status == member_status::up);
  // A received `suspect` counts as `up`.
  membership w;
  w.merge(make_member("b", 1, member_status::suspect));
  CHECK(w.find("b")->status == member_status::up);
  // set_status needs the current incarnation and an alive member.
  CHECK_FALSE(v.set_status("a", 7, member_status::down));
  CHECK(v.set_status("a", 1, member_status::down));
  CHECK_FALSE(v.set_status("a", 1, member_status::up));
  CHECK_FALSE(v.set_status("zz", 1, member_status::up));
}

TEST_CASE("leader is the lowest-named alive member this node can reach",
          "[membership]") {
  membership v;
  v.merge(make_member("n1", 1, member_status::up));
  v.merge(make_member("n2", 1, member_status::up));
  v.merge(make_member("n3", 1, member_status::joining));
  CHECK(ft::leader(v, "n2", {"n1", "n3"}) == std::optional<std::string>{"n1"});
  // n1 unreachable from n2: n2 leads in its own view.
  CHECK(ft::leader(v, "n2", {"n3"}) == std::optional<std::string>{"n2"});
  CHECK(ft::leader(v, "n3", {}) == std::optional<std::string>{"n3"});
  // A joining member does not take the lead from an up one, even with a
  // lower name.
  membership w;
  w.merge(make_member("a", 1, member_status::joining));
  w.merge(make_member("b", 1, member_status::up));
  CHECK(ft::leader(w, "a", {"b"}) == std::optional<std::string>{"b"});
  CHECK(ft::leader(w, "b", {"a"}) == std::optional<std::string>{"b"});
  // A down member never leads, even when listed as reachable.
  v.set_status("n1", 1, member_status::down);
  CHECK(ft::leader(v, "n3", {"n1", "n2"}) == std::optional<std::string>{"n2"});
  // Unknown nodes do not lead.
  membership empty;
  CHECK_FALSE(ft::leader(empty, "x", {"a"}).has_value());
}

TEST_CASE("quorum is a strict majority", "[membership]") {
  CHECK(ft::is_quorum(1, 1));
  CHECK_FALSE(ft::is_quorum(1, 2));
  CHECK(ft::is_quorum(2, 2));
  CHECK_FALSE(ft::is_quorum(1, 3));
  CHECK(ft::is_quorum(2, 3));
  CHECK_FALSE(ft::is_quorum(2, 4));
  CHECK(ft::is_quorum(3, 4));
  CHECK(ft::is_quorum(3, 5));
  CHECK_FALSE(ft::is_quorum(0, 0));
}

TEST_CASE("lease: majority acknowledgement, the leader's included",
          "[membership]") {
  const int64_t lease = 300;
  std::optional<std::string> lead = std::string{"n1"};
  SECTION("a node alone is its own quorum") {
    CHECK(ft::lease_until({}, 1, "n1", lead, lease) == INT64_MAX);
  }
  SECTION("3 members: one acknowledgement plus self, which must include "
          "the leader for a follower") {
    std::map<std::string, int64_t> acked{{"n1", 1000}, {"n3", 2000}};
    // n2 (a follower): quorum time is the newest ack (2000) but the
    // leader's ack is older (1000): the lease runs from the leader's.
    CHECK(ft::lease_until(acked, 3, "n2", lead, lease) == 1000 + lease);
    // The leader needs any one other.
    CHECK(ft::lease_until({{"n3", 2000}}, 3, "n1", lead, lease)
          == 2000 + lease);
    // A follower that heard nothing from the leader has no lease.
    CHECK(ft::lease_until({{"n3", 2000}}, 3, "n2", lead, lease) == 0);
  }
  SECTION("5 members: the second newest ack decides") {
    std::map<std::string, int64_t> acked{
      {"n2", 500}, {"n3", 900}, {"n4", 700}, {"n5", 100}};
    CHECK(ft::lease_until(acked, 5, "n1", lead, lease) == 700 + lease);
    acked.erase("n3");
    CHECK(ft::lease_until(acked, 5, "n1", lead, lease) == 500 + lease);
    acked.erase("n2");
    acked.erase("n4");
    CHECK(ft::lease_until(acked, 5, "n1", lead, lease) == 0);
  }
  SECTION("its own entry never counts") {
    CHECK(ft::lease_until({{"n1", 5000}}, 3, "n1", lead, lease) == 0);
  }
}

TEST_CASE("entity directory: higher epochs replace, load and homes",
          "[membership]") {
  entity_directory d;
  CHECK(d.merge(make_record("c1", "n1", 3)));
  CHECK_FALSE(d.merge(make_record("c1", "n2", 2)));
  CHECK_FALSE(d.merge(make_record("c1", "n2", 3)));
  CHECK(d.find("c1")->home == "n1");
  CHECK(d.merge(make_record("c1", "n2", 4)));
  CHECK(d.find("c1")->home == "n2");
  d.merge({make_record("c2", "n2", 5), make_record("c3", "n1", 1)});
  CHECK(d.max_epoch() == 5);
  CHECK(d.homed_on("n2") == std::vector<std::string>{"c1", "c2"});
  auto load = d.load();
  CHECK(load["n1"] == 1);
  CHECK(load["n2"] == 2);
  CHECK(d.records().size() == 3);
  CHECK(d.find("nope") == nullptr);
  d.erase("c3");
  CHECK(d.find("c3") == nullptr);
  // max_epoch remembers rejected news too, so a new leader stays above it.
  d.merge(make_record("c1", "n9", 4));
  d.merge(make_record("c9", "n1", 11));
  CHECK(d.max_epoch() == 11);
}
