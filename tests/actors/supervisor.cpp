// Supervisor semantics, ported from the behaviours OTP's supervisor_SUITE
// checks: strategies, restart types, intensity, escalation, shutdown order
// and timeouts, significant children. Runs on CAF's deterministic scheduler.

#include "actors/fixture.hpp"

using namespace ft;
using namespace ft::test;
using namespace std::chrono_literals;

namespace {

supervisor_flags flags_for(supervision_strategy s, int intensity = 10,
                           caf::timespan period = 5s) {
  supervisor_flags f;
  f.name = "sup";
  f.strategy = s;
  f.intensity = intensity;
  f.period = period;
  return f;
}

} // namespace

// -- strategies -----------------------------------------------------------------

TEST_CASE_METHOD(fixture, "children start in spec order",
                 "[supervisor][start]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one),
                       {test_child(j, "a"), test_child(j, "b"),
                        test_child(j, "c")});
  CHECK(j->with("start:")
        == std::vector<std::string>{"start:a", "start:b", "start:c"});
  auto xs = which(sup);
  REQUIRE(xs.size() == 3);
  CHECK(xs[0].id == "a");
  CHECK(xs[1].id == "b");
  CHECK(xs[2].id == "c");
  for (auto& x : xs)
    CHECK(x.state == child_state::running);
}

TEST_CASE_METHOD(fixture, "one_for_one restarts only the failed child",
                 "[supervisor][strategy]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one),
                       {test_child(j, "a"), test_child(j, "b"),
                        test_child(j, "c")});
  auto a = child_handle(sup, "a");
  auto b = child_handle(sup, "b");
  auto c = child_handle(sup, "c");
  tell(sup, "b", crash_atom::value);
  CHECK(child_handle(sup, "a") == a);
  CHECK(child_handle(sup, "c") == c);
  auto b2 = child_handle(sup, "b");
  CHECK(b2 != b);
  CHECK(j->starts["b"] == 2);
  CHECK(j->starts["a"] == 1);
  CHECK(j->starts["c"] == 1);
  // The replacement works.
  auto res = ask<int>(b2, 1);
  REQUIRE(res);
  REQUIRE(*res);
  CHECK(**res == 1001);
}

TEST_CASE_METHOD(fixture, "one_for_all restarts every child in order",
                 "[supervisor][strategy]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_all),
                       {test_child(j, "a"), test_child(j, "b"),
                        test_child(j, "c")});
  j->lines.clear();
  tell(sup, "b", crash_atom::value);
  // b died on its own; c and a are stopped in reverse order, then all three
  // start again in spec order.
  CHECK(j->lines
        == std::vector<std::string>{"stop:b", "stop:c", "stop:a", "start:a",
                                    "start:b", "start:c"});
  for (auto& x : which(sup))
    CHECK(x.state == child_state::running);
}

TEST_CASE_METHOD(fixture,
                 "rest_for_one restarts the failed child and later ones",
                 "[supervisor][strategy]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::rest_for_one),
                       {test_child(j, "a"), test_child(j, "b"),
                        test_child(j, "c"), test_child(j, "d")});
  auto a = child_handle(sup, "a");
  j->lines.clear();
  tell(sup, "b", crash_atom::value);
  CHECK(j->lines
        == std::vector<std::string>{"stop:b", "stop:d", "stop:c", "start:b",
                                    "start:c", "start:d"});
  CHECK(child_handle(sup, "a") == a);
  CHECK(j->starts["a"] == 1);
}

TEST_CASE_METHOD(fixture,
                 "a temporary bystander of a group restart is dropped and "
                 "not counted",
                 "[supervisor][strategy]") {
  // intensity 1: the one real restart fits; counting the bystander would
  // exceed it.
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_all, 1),
                       {test_child(j, "a"),
                        test_child(j, "tmp", restart_type::temporary),
                        test_child(j, "c")});
  auto down = watch(sup);
  tell(sup, "a", crash_atom::value);
  CHECK(!*down);
  auto xs = which(sup);
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].id == "a");
  CHECK(xs[1].id == "c");
  CHECK(j->starts["tmp"] == 1);
  CHECK(j->starts["a"] == 2);
  CHECK(j->starts["c"] == 2);
}

// -- restart types × exit reasons ---------------------------------------------------

TEST_CASE_METHOD(fixture, "restart types follow OTP for each exit reason",
                 "[supervisor][restart_type]") {
  struct row {
    restart_type type;
    const char* how;
    bool restarted;
    bool spec_kept;
  };
  std::vector<row> rows = {
    {restart_type::permanent, "normal", true, true},
    {restart_type::permanent, "shutdown", true, true},
    {restart_type::permanent, "abnormal", true, true},
    {restart_type::transient, "normal", false, true},
    {restart_type::transient, "shutdown", false, true},
    {restart_type::transient, "abnormal", true, true},
    {restart_type::temporary, "normal", false, false},
    {restart_type::temporary, "shutdown", false, false},
    {restart_type::temporary, "abnormal", false, false},
  };
  for (auto& r : rows) {
    DYNAMIC_SECTION(to_string(r.type) << " x " << r.how) {
      auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one),
                           {test_child(j, "w", r.type)});
      std::string how = r.how;
      if (how == "normal")
        tell(sup, "w", stop_atom::value);
      else if (how == "shutdown")
        tell(sup, "w", shut_atom::value);
      else
        tell(sup, "w", crash_atom::value);
      CHECK(j->starts["w"] == (r.restarted ? 2 : 1));
      auto xs = which(sup);
      REQUIRE(xs.size() == (r.spec_kept ? 1u : 0u));
      if (r.spec_kept)
        CHECK(xs[0].state
              == (r.restarted ? child_state::running
                              : child_state::undefined));
    }
  }
}

// -- intensity ----------------------------------------------------------------------

TEST_CASE_METHOD(fixture,
                 "more than intensity restarts within period stop the "
                 "supervisor",
                 "[supervisor][intensity]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one, 2, 5s),
                       {test_child(j, "a"), test_child(j, "b")});
  auto down = watch(sup);
  tell(sup, "a", crash_atom::value);
  tell(sup, "a", crash_atom::value);
  CHECK(!*down);
  j->lines.clear();
  tell(sup, "a", crash_atom::value);
  REQUIRE(*down);
  CHECK(is(**down, errc::restart_intensity_exceeded));
  // The supervisor stopped the remaining child before exiting.
  CHECK(j->with("stop:") == std::vector<std::string>{"stop:a", "stop:b"});
}

TEST_CASE_METHOD(fixture,
                 "restarts spaced wider than the period never exceed "
                 "intensity",
                 "[supervisor][intensity]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one, 1, 5s),
                       {test_child(j, "a")});
  auto down = watch(sup);
  for (int i = 0; i < 20; ++i) {
    tell(sup, "a", crash_atom::value);
    advance(5s + 1ms);
  }
  CHECK(!*down);
  CHECK(j->starts["a"] == 21);
}

TEST_CASE_METHOD(fixture, "the restart window slides",
                 "[supervisor][intensity]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one, 2, 10s),
                       {test_child(j, "a")});
  auto down = watch(sup);
  tell(sup, "a", crash_atom::value); // t = 0
  advance(6s);
  tell(sup, "a", crash_atom::value); // t = 6
  advance(6s);
  tell(sup, "a", crash_atom::value); // t = 12: the t = 0 restart left
  CHECK(!*down);
  advance(1s);
  tell(sup, "a", crash_atom::value); // t = 13: 6, 12, 13 within 10 s
  REQUIRE(*down);
  CHECK(is(**down, errc::restart_intensity_exceeded));
}

// -- escalation -----------------------------------------------------------------------

TEST_CASE_METHOD(fixture, "escalation travels through three levels",
                 "[supervisor][escalation]") {
  auto leaf = flags_for(supervision_strategy::one_for_one, 0);
  leaf.name = "leaf";
  auto mid = flags_for(supervision_strategy::one_for_one, 0);
  mid.name = "mid";
  auto top = flags_for(supervision_strategy::one_for_one, 0);
  top.name = "top";
  auto [sink, evs] = event_sink();
  leaf.subscribers = mid.subscribers = top.subscribers = {sink};
  auto sup = spawn_sup(
    top, {supervisor_child("mid", mid,
                           {supervisor_child("leaf", leaf,
                                             {test_child(j, "w")})}),
          test_child(j, "bystander")});
  auto down = watch(sup);
  // Find the worker through the tree.
  auto mid_sup = child_handle(sup, "mid");
  auto leaf_sup = child_handle(mid_sup, "leaf");
  tell(leaf_sup, "w", crash_atom::value);
  REQUIRE(*down);
  CHECK(is(**down, errc::restart_intensity_exceeded));
  auto exceeded = events_of(*evs, event_kind::intensity_exceeded);
  REQUIRE(exceeded.size() == 3);
  CHECK(exceeded[0].supervisor == "leaf");
  CHECK(exceeded[1].supervisor == "mid");
  CHECK(exceeded[2].supervisor == "top");
  CHECK(j->with("stop:").size() == 2);
}

TEST_CASE_METHOD(fixture, "a parent restarts a child supervisor that gave up",
                 "[supervisor][escalation]") {
  auto inner = flags_for(supervision_strategy::one_for_one, 0);
  inner.name = "inner";
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one, 5),
                       {supervisor_child("inner", inner,
                                         {test_child(j, "w")})});
  auto inner1 = child_handle(sup, "inner");
  tell(inner1, "w", crash_atom::value);
  auto inner2 = child_handle(sup, "inner");
  CHECK(inner2 != inner1);
  CHECK(j->starts["w"] == 2);
  CHECK(info(inner2, "w").state == child_state::running);
}

// -- group restarts with a failing sibling ----------------------------------------------

TEST_CASE_METHOD(fixture,
                 "one_for_all with a sibling whose restart fails retries "
                 "the group",
                 "[supervisor][strategy][restart_failure]") {
  auto fail_b = std::make_shared<bool>(false);
  auto f = flags_for(supervision_strategy::one_for_all, 100);
  f.delay = restart_delay::fixed(1s);
  auto sup = spawn_sup(f, {test_child(j, "a"),
                           worker("b", worker_start(j, "b", fail_b)),
                           test_child(j, "c")});
  *fail_b = true;
  tell(sup, "a", crash_atom::value);
  // The group waits for its delay.
  for (auto& x : which(sup))
    CHECK(x.state == child_state::restarting);
  advance(1s);
  // a started, b failed: a is stopped again, and the group waits again.
  CHECK(j->starts["a"] == 2);
  CHECK(j->starts["c"] == 1);
  for (auto& x : which(sup))
    CHECK(x.state == child_state::restarting);
  *fail_b = false;
  advance(1s);
  for (auto& x : which(sup))
    CHECK(x.state == child_state::running);
  CHECK(j->starts["a"] == 3);
  CHECK(j->starts["b"] == 2);
  CHECK(j->starts["c"] == 2);
}

TEST_CASE_METHOD(fixture,
                 "rest_for_one with a sibling whose restart fails keeps "
                 "earlier children running",
                 "[supervisor][strategy][restart_failure]") {
  auto fail_c = std::make_shared<bool>(false);
  auto f = flags_for(supervision_strategy::rest_for_one, 100);
  f.delay = restart_delay::fixed(1s);
  auto sup = spawn_sup(f, {test_child(j, "a"), test_child(j, "b"),
                           worker("c", worker_start(j, "c", fail_c))});
  auto a = child_handle(sup, "a");
  *fail_c = true;
  tell(sup, "b", crash_atom::value);
  advance(1s);
  CHECK(child_handle(sup, "a") == a);
  CHECK(info(sup, "b").state == child_state::restarting);
  CHECK(info(sup, "c").state == child_state::restarting);
  *fail_c = false;
  advance(1s);
  CHECK(child_handle(sup, "a") == a);
  CHECK(info(sup, "b").state == child_state::running);
  CHECK(info(sup, "c").state == child_state::running);
}

TEST_CASE_METHOD(fixture,
                 "terminating the failed child during a group delay still "
                 "restarts the rest of the group",
                 "[supervisor][strategy][delay]") {
  auto f = flags_for(supervision_strategy::one_for_all, 100);
  f.delay = restart_delay::fixed(1s);
  auto sup = spawn_sup(f, {test_child(j, "a"), test_child(j, "b"),
                           test_child(j, "c")});
  tell(sup, "b", crash_atom::value);
  REQUIRE(ask_void(sup, terminate_child_atom::value, std::string{"b"}));
  REQUIRE(ask_void(sup, delete_child_atom::value, std::string{"b"}));
  advance(1s);
  auto xs = which(sup);
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].state == child_state::running);
  CHECK(xs[1].state == child_state::running);
  CHECK(j->starts["a"] == 2);
  CHECK(j->starts["b"] == 1);
  CHECK(j->starts["c"] == 2);
}

// -- shutdown -------------------------------------------------------------------------

TEST_CASE_METHOD(fixture, "children stop in reverse start order",
                 "[supervisor][shutdown]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one),
                       {test_child(j, "a"), test_child(j, "b"),
                        test_child(j, "c")});
  auto down = watch(sup);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  REQUIRE(*down);
  CHECK(**down == caf::exit_reason::user_shutdown);
  CHECK(j->with("stop:")
        == std::vector<std::string>{"stop:c", "stop:b", "stop:a"});
}

TEST_CASE_METHOD(fixture,
                 "a child that ignores shutdown is killed at its timeout",
                 "[supervisor][shutdown]") {
  auto stubborn = worker("stubborn", worker_start(j, "stubborn", nullptr,
                                                  true));
  stubborn.shutdown = shutdown_spec::after(2s);
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one),
                       {test_child(j, "a"), stubborn});
  auto down = watch(sup);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  // stubborn ignores the request; a (before it) must wait.
  CHECK(!*down);
  CHECK(j->with("stop:").empty());
  advance(1999ms);
  CHECK(!*down);
  advance(1ms);
  REQUIRE(*down);
  CHECK(j->with("stop:")
        == std::vector<std::string>{"stop:stubborn", "stop:a"});
}

TEST_CASE_METHOD(fixture, "brutal_kill stops a child that traps exits at once",
                 "[supervisor][shutdown]") {
  auto stubborn = worker("stubborn", worker_start(j, "stubborn", nullptr,
                                                  true));
  stubborn.shutdown = shutdown_spec::brutal_kill();
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one),
                       {stubborn});
  auto down = watch(sup);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  REQUIRE(*down);
  CHECK(j->with("stop:") == std::vector<std::string>{"stop:stubborn"});
}

TEST_CASE_METHOD(fixture, "a killed supervisor takes its children with it",
                 "[supervisor][shutdown]") {
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one),
                       {test_child(j, "a"), test_child(j, "b")});
  caf::anon_send_exit(sup, caf::exit_reason::kill);
  run();
  CHECK(j->with("stop:").size() == 2);
}

// -- start failures ---------------------------------------------------------------------

TEST_CASE_METHOD(fixture,
                 "a start failure at init aborts the start, names the "
                 "child and stops the started ones",
                 "[supervisor][start]") {
  auto fail = std::make_shared<bool>(true);
  auto res = spawn_supervisor(*sys, flags_for(supervision_strategy::one_for_one),
                              {test_child(j, "a"), test_child(j, "b"),
                               worker("bad", worker_start(j, "bad", fail)),
                               test_child(j, "never")});
  run();
  REQUIRE(!res);
  CHECK(is(res.error(), errc::start_failed));
  CHECK(render(res.error()).find("bad") != std::string::npos);
  CHECK(j->starts.count("never") == 0);
  CHECK(j->with("stop:") == std::vector<std::string>{"stop:b", "stop:a"});
}

TEST_CASE_METHOD(fixture,
                 "an init failure still kills a started child that ignores "
                 "shutdown at its timeout",
                 "[supervisor][start][shutdown]") {
  auto fail = std::make_shared<bool>(true);
  auto stubborn = worker("stubborn", worker_start(j, "stubborn", nullptr,
                                                  true));
  stubborn.shutdown = shutdown_spec::after(3s);
  auto res = spawn_supervisor(*sys, flags_for(supervision_strategy::one_for_one),
                              {test_child(j, "a"), stubborn,
                               worker("bad", worker_start(j, "bad", fail))});
  run();
  REQUIRE(!res);
  CHECK(j->with("stop:").empty());
  advance(3s);
  CHECK(j->with("stop:")
        == std::vector<std::string>{"stop:stubborn", "stop:a"});
}

TEST_CASE_METHOD(fixture,
                 "a child supervisor that fails to start fails its parent's "
                 "start",
                 "[supervisor][start]") {
  auto fail = std::make_shared<bool>(true);
  auto res = spawn_supervisor(
    *sys, flags_for(supervision_strategy::one_for_one),
    {test_child(j, "a"),
     supervisor_child("sub", flags_for(supervision_strategy::one_for_one),
                      {worker("bad", worker_start(j, "bad", fail))})});
  run();
  REQUIRE(!res);
  CHECK(is(res.error(), errc::start_failed));
  auto text = render(res.error());
  CHECK(text.find("sub") != std::string::npos);
  CHECK(text.find("bad") != std::string::npos);
  CHECK(j->with("stop:") == std::vector<std::string>{"stop:a"});
}

TEST_CASE_METHOD(fixture, "a start failure at start_child is reported",
                 "[supervisor][start]") {
  auto fail = std::make_shared<bool>(true);
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one), {});
  auto res = ask<caf::actor>(sup, start_child_atom::value,
                             worker("bad", worker_start(j, "bad", fail)));
  REQUIRE(res);
  REQUIRE(!*res);
  CHECK(is(res->error(), errc::start_failed));
  CHECK(which(sup).empty()); // as OTP, the failed spec is not kept
}

// -- restart loops ------------------------------------------------------------------

TEST_CASE_METHOD(fixture,
                 "a hanging restart loop shows restarting and stays "
                 "controllable",
                 "[supervisor][restart_failure]") {
  auto fail = std::make_shared<bool>(false);
  auto f = flags_for(supervision_strategy::one_for_one, 1000, 1000s);
  f.delay = restart_delay::fixed(1s);
  auto sup = spawn_sup(f, {worker("w", worker_start(j, "w", fail)),
                           test_child(j, "other")});
  *fail = true;
  tell(sup, "w", crash_atom::value);
  for (int i = 0; i < 5; ++i) {
    advance(1s);
    CHECK(info(sup, "w").state == child_state::restarting);
    // The supervisor stays responsive and the sibling unaffected.
    CHECK(info(sup, "other").state == child_state::running);
  }
  auto r1 = ask<caf::actor>(sup, restart_child_atom::value, std::string{"w"});
  REQUIRE(r1);
  REQUIRE(!*r1);
  CHECK(is(r1->error(), errc::restarting));
  auto r2 = ask_void(sup, delete_child_atom::value, std::string{"w"});
  REQUIRE(r2);
  CHECK(is(*r2, errc::restarting));
  auto r3 = ask_void(sup, terminate_child_atom::value, std::string{"w"});
  REQUIRE(r3);
  CHECK(!*r3);
  CHECK(info(sup, "w").state == child_state::undefined);
  // No restart attempt comes after terminate_child.
  auto starts = j->starts["w"];
  advance(5s);
  CHECK(j->starts["w"] == starts);
  CHECK(info(sup, "w").state == child_state::undefined);
  auto down = watch(sup);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  CHECK(*down);
}

TEST_CASE_METHOD(fixture,
                 "failed restarts count toward intensity",
                 "[supervisor][restart_failure][intensity]") {
  auto fail = std::make_shared<bool>(false);
  auto sup = spawn_sup(flags_for(supervision_strategy::one_for_one, 3, 5s),
                       {worker("w", worker_start(j, "w", fail))});
  auto down = watch(sup);
  *fail = true;
  tell(sup, "w", crash_atom::value);
  // Each retry is a message to self; after 3 restarts the supervisor gives up.
  REQUIRE(*down);
  CHECK(is(**down, errc::restart_intensity_exceeded));
}

// -- significant children ---------------------------------------------------------------

TEST_CASE_METHOD(fixture,
                 "any_significant stops the supervisor when a significant "
                 "child ends",
                 "[supervisor][auto_shutdown]") {
  auto f = flags_for(supervision_strategy::one_for_one);
  f.auto_shutdown_mode = auto_shutdown::any_significant;
  auto sig = test_child(j, "sig", restart_type::transient);
  sig.significant = true;
  auto sup = spawn_sup(f, {test_child(j, "a"), sig});
  auto down = watch(sup);
  tell(sup, "sig", stop_atom::value);
  REQUIRE(*down);
  CHECK(**down == caf::exit_reason::user_shutdown);
  CHECK(j->with("stop:") == std::vector<std::string>{"stop:sig", "stop:a"});
}

TEST_CASE_METHOD(fixture,
                 "a significant transient child that crashes is restarted, "
                 "not a reason to stop",
                 "[supervisor][auto_shutdown]") {
  auto f = flags_for(supervision_strategy::one_for_one);
  f.auto_shutdown_mode = auto_shutdown::any_significant;
  auto sig = test_child(j, "sig", restart_type::transient);
  sig.significant = true;
  auto sup = spawn_sup(f, {sig});
  auto down = watch(sup);
  tell(sup, "sig", crash_atom::value);
  CHECK(!*down);
  CHECK(j->starts["sig"] == 2);
}

TEST_CASE_METHOD(fixture,
                 "all_significant stops the supervisor after the last "
                 "significant child ends",
                 "[supervisor][auto_shutdown]") {
  auto f = flags_for(supervision_strategy::one_for_one);
  f.auto_shutdown_mode = auto_shutdown::all_significant;
  auto s1 = test_child(j, "s1", restart_type::temporary);
  s1.significant = true;
  auto s2 = test_child(j, "s2", restart_type::transient);
  s2.significant = true;
  auto sup = spawn_sup(f, {s1, s2, test_child(j, "plain")});
  auto down = watch(sup);
  tell(sup, "s1", stop_atom::value);
  CHECK(!*down);
  tell(sup, "s2", shut_atom::value);
  REQUIRE(*down);
  CHECK(**down == caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture, "the fixture's watch() sees an actor end",
                 "[fixture]") {
  auto w = sys->spawn(test_worker, j, std::string{"x"}, false);
  run();
  auto down = watch(w);
  CHECK(!*down);
  caf::anon_send(w, crash_atom::value);
  run();
  REQUIRE(*down);
  CHECK(**down);
}
