// Chaos soak for supervision trees on CAF's real, multi-threaded scheduler:
// random children and sub-supervisors are killed with random reasons for
// FT_SOAK_SECONDS (default 20) seconds. Invariants: the tree recovers every
// time (same shape, all children running), nothing leaks (the actor count
// returns to where it started), and memory stays bounded. Labelled `long`:
// run with `./tools/ft test --long`.

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <caf/all.hpp>

#include <catch2/catch.hpp>

#include "ft/all.hpp"

using namespace ft;
using namespace std::chrono_literals;

namespace {

caf::behavior soak_worker(caf::event_based_actor*) {
  return {[](int x) { return x; }};
}

long rss_kib() {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stol(line.substr(6));
  return -1;
}

child_spec soak_child(const std::string& id) {
  return worker(id, start_fun(soak_worker));
}

supervisor_flags soak_flags(std::string name, supervision_strategy s) {
  supervisor_flags f;
  f.name = std::move(name);
  f.strategy = s;
  // Generous: the chaos must not exceed the intensity of the inner levels
  // every time; the top level must never give up.
  f.intensity = 1000000;
  f.period = 1s;
  return f;
}

/// The children of `sup`, or nothing if `sup` is gone (the chaos may have
/// killed it a moment ago).
std::optional<std::vector<child_info>> try_which(caf::scoped_actor& self,
                                                 const caf::actor& sup) {
  std::optional<std::vector<child_info>> result;
  which_children(self, sup, std::chrono::seconds(5))
    .receive([&](std::vector<child_info>& xs) { result = std::move(xs); },
             [&](caf::error& err) {
               if (err != caf::sec::request_receiver_down)
                 FAIL("which_children: " << render(err));
             });
  return result;
}

std::vector<child_info> which(caf::scoped_actor& self, const caf::actor& sup) {
  auto result = try_which(self, sup);
  REQUIRE(result);
  return std::move(*result);
}

/// Waits (bounded) until the whole tree runs: `top` has `subs` running
/// sub-supervisors, each with `workers` running workers. Reads the tree
/// afresh each round (a sub-supervisor may have been replaced meanwhile).
/// Returns an empty string, or what the last round saw.
std::string settle_tree(caf::scoped_actor& self, const caf::actor& top,
                        size_t subs, size_t workers) {
  std::string seen;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    seen.clear();
    auto xs = try_which(self, top);
    bool ok = xs && xs->size() == subs;
    for (auto& x : xs ? *xs : std::vector<child_info>{}) {
      seen += x.id + "=" + to_string(x.state) + " ";
      if (x.state != child_state::running) {
        ok = false;
        continue;
      }
      auto ys = try_which(self, x.actor);
      ok = ok && ys && ys->size() == workers;
      for (auto& y : ys ? *ys : std::vector<child_info>{}) {
        seen += y.id + "=" + to_string(y.state) + " ";
        ok = ok && y.state == child_state::running;
      }
    }
    if (ok)
      return {};
    std::this_thread::sleep_for(5ms);
  }
  return seen.empty() ? std::string{"no answer from the tree"} : seen;
}

} // namespace

TEST_CASE("supervision trees survive a chaos soak without leaks",
          "[supervisor][soak]") {
  auto seconds = 20;
  if (auto env = std::getenv("FT_SOAK_SECONDS"))
    seconds = std::max(1, std::atoi(env));
  caf::actor_system_config cfg;
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto baseline_actors = sys.registry().running();
  const char* subs[] = {"ofo", "ofa", "rfo"};
  supervision_strategy strategies[] = {supervision_strategy::one_for_one,
                                       supervision_strategy::one_for_all,
                                       supervision_strategy::rest_for_one};
  std::vector<child_spec> top_children;
  for (int i = 0; i < 3; ++i) {
    std::vector<child_spec> xs;
    for (int k = 0; k < 5; ++k)
      xs.push_back(soak_child(std::string{subs[i]} + "-w" + std::to_string(k)));
    top_children.push_back(
      supervisor_child(subs[i], soak_flags(subs[i], strategies[i]), xs));
  }
  auto top_res = spawn_supervisor(sys, soak_flags("top",
                                                  supervision_strategy::one_for_one),
                                  top_children);
  REQUIRE(top_res);
  auto top = *top_res;
  REQUIRE(settle_tree(self, top, 3, 5).empty());
  std::mt19937 rng{42};
  long rss_after_warmup = -1;
  size_t kills = 0;
  auto start = std::chrono::steady_clock::now();
  auto warmup_end = start + std::chrono::seconds(seconds) / 4;
  auto end = start + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    auto tops = which(self, top);
    REQUIRE(tops.size() == 3);
    auto& pick = tops[rng() % tops.size()];
    if (pick.state != child_state::running)
      continue;
    if (rng() % 20 == 0) {
      // Now and then, a whole sub-tree dies.
      caf::anon_send_exit(pick.actor, caf::exit_reason::kill);
    } else {
      auto xs = try_which(self, pick.actor);
      if (!xs || xs->empty())
        continue;
      auto& victim = (*xs)[rng() % xs->size()];
      if (victim.state == child_state::running)
        caf::anon_send_exit(victim.actor, rng() % 2 == 0
                                            ? caf::exit_reason::kill
                                            : caf::exit_reason::user_shutdown);
    }
    ++kills;
    if (kills % 50 == 0) {
      // Let the tree settle and check its shape.
      REQUIRE(settle_tree(self, top, 3, 5) == "");
    }
    if (rss_after_warmup < 0 && std::chrono::steady_clock::now() > warmup_end)
      rss_after_warmup = rss_kib();
  }
  REQUIRE(settle_tree(self, top, 3, 5) == "");
  auto rss_end = rss_kib();
  INFO("kills: " << kills << ", RSS after warm-up " << rss_after_warmup
                 << " KiB, at the end " << rss_end << " KiB");
  CHECK(kills > 100);
  // Memory stays bounded: no growth of more than 32 MiB after warm-up.
  CHECK(rss_end - rss_after_warmup < 32 * 1024);
  // Shutting down the tree leaves no actor behind.
  self->send_exit(top, caf::exit_reason::user_shutdown);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sys.registry().running() > baseline_actors
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  CHECK(sys.registry().running() == baseline_actors);
}
