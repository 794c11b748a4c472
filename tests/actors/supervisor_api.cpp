// The supervisor's runtime API (start/terminate/restart/delete/which/count),
// simple_one_for_one, restart delays, message buffering across restarts,
// deciders, fault handlers and events.

#include "actors/fixture.hpp"

using namespace ft;
using namespace ft::test;
using namespace std::chrono_literals;

namespace {

supervisor_flags one_for_one(int intensity = 10) {
  supervisor_flags f;
  f.name = "api";
  f.intensity = intensity;
  return f;
}

template <class T>
bool failed_with(const std::optional<caf::expected<T>>& res, errc code) {
  return res && !*res && is(res->error(), code);
}

bool failed_with(const std::optional<caf::error>& res, errc code) {
  return res && is(*res, code);
}

} // namespace

// -- child API errors (OTP names) -----------------------------------------------

TEST_CASE_METHOD(fixture, "start_child rejects duplicates with OTP's errors",
                 "[supervisor][api]") {
  auto sup = spawn_sup(one_for_one(), {test_child(j, "a")});
  CHECK(failed_with(ask<caf::actor>(sup, start_child_atom::value,
                                    test_child(j, "a")),
                    errc::already_started));
  REQUIRE(ask_void(sup, terminate_child_atom::value, std::string{"a"}));
  CHECK(failed_with(ask<caf::actor>(sup, start_child_atom::value,
                                    test_child(j, "a")),
                    errc::already_present));
  auto res = ask<caf::actor>(sup, start_child_atom::value, test_child(j, "b"));
  REQUIRE(res);
  REQUIRE(*res);
  CHECK(**res == child_handle(sup, "b"));
  // start_child appends: b comes after a.
  auto xs = which(sup);
  REQUIRE(xs.size() == 2);
  CHECK(xs[1].id == "b");
}

TEST_CASE_METHOD(fixture, "start_child validates the spec",
                 "[supervisor][api][validation]") {
  auto sup = spawn_sup(one_for_one(), {});
  auto bad = test_child(j, "x");
  bad.shutdown = shutdown_spec::after(0s);
  CHECK(failed_with(ask<caf::actor>(sup, start_child_atom::value, bad),
                    errc::invalid_shutdown));
  auto sig = test_child(j, "y");
  sig.significant = true;
  CHECK(failed_with(ask<caf::actor>(sup, start_child_atom::value, sig),
                    errc::bad_combination));
  CHECK(which(sup).empty());
}

TEST_CASE_METHOD(fixture, "restart_child and delete_child follow OTP",
                 "[supervisor][api]") {
  auto sup = spawn_sup(one_for_one(), {test_child(j, "a")});
  CHECK(failed_with(ask<caf::actor>(sup, restart_child_atom::value,
                                    std::string{"a"}),
                    errc::running));
  CHECK(failed_with(ask<caf::actor>(sup, restart_child_atom::value,
                                    std::string{"zz"}),
                    errc::not_found));
  CHECK(failed_with(ask_void(sup, delete_child_atom::value, std::string{"a"}),
                    errc::running));
  CHECK(failed_with(ask_void(sup, terminate_child_atom::value,
                             std::string{"zz"}),
                    errc::not_found));
  REQUIRE(ask_void(sup, terminate_child_atom::value, std::string{"a"}));
  CHECK(info(sup, "a").state == child_state::undefined);
  CHECK(!info(sup, "a").actor);
  auto res = ask<caf::actor>(sup, restart_child_atom::value, std::string{"a"});
  REQUIRE(res);
  REQUIRE(*res);
  CHECK(j->starts["a"] == 2);
  REQUIRE(ask_void(sup, terminate_child_atom::value, std::string{"a"}));
  auto del = ask_void(sup, delete_child_atom::value, std::string{"a"});
  REQUIRE(del);
  CHECK(!*del);
  CHECK(which(sup).empty());
  CHECK(failed_with(ask_void(sup, delete_child_atom::value, std::string{"a"}),
                    errc::not_found));
}

TEST_CASE_METHOD(fixture, "a terminated temporary child is forgotten",
                 "[supervisor][api]") {
  auto sup = spawn_sup(one_for_one(),
                       {test_child(j, "t", restart_type::temporary)});
  REQUIRE(ask_void(sup, terminate_child_atom::value, std::string{"t"}));
  CHECK(which(sup).empty());
}

TEST_CASE_METHOD(fixture, "count_children counts specs, active and types",
                 "[supervisor][api]") {
  auto sup = spawn_sup(
    one_for_one(),
    {test_child(j, "a"), test_child(j, "b"),
     supervisor_child("sub", one_for_one(), {test_child(j, "c")})});
  REQUIRE(ask_void(sup, terminate_child_atom::value, std::string{"b"}));
  auto n = count(sup);
  CHECK(n.specs == 3);
  CHECK(n.active == 2);
  CHECK(n.supervisors == 1);
  CHECK(n.workers == 2);
  CHECK(info(sup, "sub").type == child_type::supervisor);
}

TEST_CASE_METHOD(fixture, "spawn_supervisor rejects bad flags and specs",
                 "[supervisor][api][validation]") {
  auto f = one_for_one();
  f.intensity = -1;
  auto r1 = spawn_supervisor(*sys, f, {});
  REQUIRE(!r1);
  CHECK(is(r1.error(), errc::invalid_intensity));
  CHECK(render(r1.error()).find("-1") != std::string::npos);
  auto r2 = spawn_supervisor(*sys, one_for_one(),
                             {test_child(j, "a"), test_child(j, "a")});
  REQUIRE(!r2);
  CHECK(is(r2.error(), errc::duplicate_child_name));
  auto sofo = one_for_one();
  sofo.strategy = supervision_strategy::simple_one_for_one;
  auto r3 = spawn_supervisor(*sys, sofo,
                             {test_child(j, "a"), test_child(j, "b")});
  REQUIRE(!r3);
  CHECK(is(r3.error(), errc::bad_combination));
  sofo.auto_shutdown_mode = auto_shutdown::any_significant;
  auto r4 = spawn_supervisor(*sys, sofo, {test_child(j, "a")});
  REQUIRE(!r4);
  CHECK(is(r4.error(), errc::bad_combination));
  // Nothing was started by any rejected call.
  CHECK(j->starts.empty());
}

// -- simple_one_for_one -----------------------------------------------------------

TEST_CASE_METHOD(fixture,
                 "simple_one_for_one runs 10,000 dynamic children",
                 "[supervisor][simple_one_for_one]") {
  auto f = one_for_one(100);
  f.strategy = supervision_strategy::simple_one_for_one;
  auto counter = std::make_shared<int>(0);
  child_spec tmpl;
  tmpl.id = "conn";
  tmpl.start = [counter](caf::actor_system& sys, const caf::message& args)
    -> caf::expected<caf::actor> {
    ++*counter;
    auto base = args.get_as<int>(0);
    return sys.spawn([base](caf::event_based_actor*) -> caf::behavior {
      return {[base](int x) { return base + x; }};
    });
  };
  auto sup = spawn_sup(f, {tmpl});
  CHECK(count(sup).specs == 0);
  // Start them all from one driver, pipelined, and collect the handles.
  auto handles = std::make_shared<std::vector<caf::actor>>();
  sys->spawn([=](caf::event_based_actor* self) {
    for (int i = 0; i < 10000; ++i)
      self->request(sup, caf::infinite, start_child_atom::value,
                    caf::make_message(i))
        .then([=](caf::actor& x) { handles->push_back(x); });
  });
  run();
  REQUIRE(handles->size() == 10000);
  auto n = count(sup);
  CHECK(n.specs == 10000);
  CHECK(n.active == 10000);
  CHECK(n.workers == 10000);
  CHECK(n.supervisors == 0);
  CHECK(which(sup).size() == 10000);
  // Arguments reached each child.
  auto res = ask<int>((*handles)[1234], 1);
  REQUIRE(res);
  REQUIRE(*res);
  CHECK(**res == 1235);
  // A crashed dynamic child comes back with the same arguments.
  auto victim = (*handles)[42];
  caf::anon_send_exit(victim, caf::exit_reason::kill);
  run();
  CHECK(*counter == 10001);
  CHECK(count(sup).active == 10000);
  // terminate_child by handle removes it.
  auto keep = (*handles)[7];
  REQUIRE(ask_void(sup, terminate_child_atom::value, keep));
  CHECK(count(sup).specs == 9999);
  CHECK(failed_with(ask_void(sup, terminate_child_atom::value, keep),
                    errc::not_found));
  // Shutting down stops all of them.
  auto down = watch(sup);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  REQUIRE(*down);
  CHECK(sys->registry().running() <= 2); // the watcher may still be counted
}

TEST_CASE_METHOD(fixture, "simple_one_for_one rejects static-child calls",
                 "[supervisor][simple_one_for_one]") {
  auto f = one_for_one();
  f.strategy = supervision_strategy::simple_one_for_one;
  auto sup = spawn_sup(f, {test_child(j, "tmpl")});
  CHECK(failed_with(ask<caf::actor>(sup, start_child_atom::value,
                                    test_child(j, "x")),
                    errc::not_supported));
  CHECK(failed_with(ask<caf::actor>(sup, restart_child_atom::value,
                                    std::string{"tmpl"}),
                    errc::not_supported));
  auto sup2 = spawn_sup(one_for_one(), {});
  CHECK(failed_with(ask<caf::actor>(sup2, start_child_atom::value,
                                    caf::make_message(1)),
                    errc::not_supported));
}

// -- restart delays ---------------------------------------------------------------

TEST_CASE_METHOD(fixture,
                 "exponential delays follow their schedule on the test clock",
                 "[supervisor][delay]") {
  auto [sink, evs] = event_sink();
  auto f = one_for_one(100);
  f.period = 1000s;
  f.subscribers = {sink};
  auto spec = test_child(j, "w");
  spec.delay = restart_delay::exponential(1s, 4s, 2.0);
  auto sup = spawn_sup(f, {spec, test_child(j, "sibling")});
  std::vector<caf::timespan> expected = {1s, 2s, 4s, 4s};
  for (auto d : expected) {
    tell(sup, "w", crash_atom::value);
    CHECK(info(sup, "w").state == child_state::restarting);
    // Siblings are unaffected and the supervisor answers meanwhile.
    CHECK(info(sup, "sibling").state == child_state::running);
    advance(d - 1ms);
    CHECK(info(sup, "w").state == child_state::restarting);
    advance(1ms);
    CHECK(info(sup, "w").state == child_state::running);
  }
  auto scheduled = events_of(*evs, event_kind::restart_scheduled);
  REQUIRE(scheduled.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    CHECK(scheduled[i].delay == expected[i]);
  CHECK(j->starts["w"] == 5);
}

TEST_CASE_METHOD(fixture, "max_attempts makes the supervisor give up",
                 "[supervisor][delay]") {
  auto f = one_for_one(100);
  f.period = 1000s;
  f.delay = restart_delay::fixed(1s, 2);
  auto sup = spawn_sup(f, {test_child(j, "w")});
  auto down = watch(sup);
  for (int i = 0; i < 2; ++i) {
    tell(sup, "w", crash_atom::value);
    advance(1s);
  }
  CHECK(!*down);
  tell(sup, "w", crash_atom::value);
  REQUIRE(*down);
  CHECK(is(**down, errc::max_attempts_exceeded));
}

TEST_CASE_METHOD(fixture, "jittered delays stay inside their bounds",
                 "[supervisor][delay]") {
  auto [sink, evs] = event_sink();
  auto f = one_for_one(1000);
  f.period = 1000s;
  f.subscribers = {sink};
  // multiplier 1: every base delay is 1 s, jitter 0.5 -> [0.5 s, 1.5 s].
  f.delay = restart_delay::exponential(1s, 10s, 1.0, 0, 0.5);
  auto sup = spawn_sup(f, {test_child(j, "w")});
  for (int i = 0; i < 50; ++i) {
    tell(sup, "w", crash_atom::value);
    advance(2s);
  }
  auto scheduled = events_of(*evs, event_kind::restart_scheduled);
  REQUIRE(scheduled.size() == 50);
  auto lo = scheduled[0].delay;
  auto hi = scheduled[0].delay;
  for (auto& ev : scheduled) {
    CHECK(ev.delay >= 500ms);
    CHECK(ev.delay <= 1500ms);
    lo = std::min(lo, ev.delay);
    hi = std::max(hi, ev.delay);
  }
  CHECK(hi - lo > 200ms); // the jitter actually spreads
}

// -- buffering across restarts -------------------------------------------------------

TEST_CASE_METHOD(fixture,
                 "messages sent through the supervisor during a restart "
                 "reach the replacement",
                 "[supervisor][buffer]") {
  auto f = one_for_one();
  f.delay = restart_delay::fixed(1s);
  auto sup = spawn_sup(f, {test_child(j, "w")});
  auto first = ask<std::string>(sup, send_to_child_atom::value,
                                std::string{"w"},
                                caf::make_message(whoami_atom::value));
  REQUIRE(first);
  REQUIRE(*first);
  CHECK(**first == "w#1");
  tell(sup, "w", crash_atom::value);
  REQUIRE(info(sup, "w").state == child_state::restarting);
  // Three requests while the child is down: none is answered yet.
  auto replies = std::make_shared<std::vector<std::string>>();
  sys->spawn([=](caf::event_based_actor* self) {
    for (int i = 0; i < 3; ++i)
      request_child(self, sup, "w", caf::infinite, whoami_atom::value)
        .then([=](const std::string& x) { replies->push_back(x); });
  });
  run();
  CHECK(replies->empty());
  advance(1s);
  CHECK(*replies == std::vector<std::string>{"w#2", "w#2", "w#2"});
}

TEST_CASE_METHOD(fixture, "a full restart buffer answers buffer_full",
                 "[supervisor][buffer]") {
  auto f = one_for_one();
  f.delay = restart_delay::fixed(1s);
  f.buffer_capacity = 2;
  auto sup = spawn_sup(f, {test_child(j, "w")});
  tell(sup, "w", crash_atom::value);
  auto ok = std::make_shared<int>(0);
  auto errors = std::make_shared<std::vector<caf::error>>();
  sys->spawn([=](caf::event_based_actor* self) {
    for (int i = 0; i < 3; ++i)
      request_child(self, sup, "w", caf::infinite, 1)
        .then([=](int) { ++*ok; },
              [=](caf::error& err) { errors->push_back(err); });
  });
  run();
  REQUIRE(errors->size() == 1);
  CHECK(is(errors->front(), errc::buffer_full));
  advance(1s);
  CHECK(*ok == 2);
}

TEST_CASE_METHOD(fixture,
                 "buffered messages are answered, not lost, when the child "
                 "is terminated",
                 "[supervisor][buffer]") {
  auto f = one_for_one();
  f.delay = restart_delay::fixed(1s);
  auto sup = spawn_sup(f, {test_child(j, "w")});
  tell(sup, "w", crash_atom::value);
  auto errors = std::make_shared<std::vector<caf::error>>();
  sys->spawn([=](caf::event_based_actor* self) {
    request_child(self, sup, "w", caf::infinite, 1)
      .then([](int) {}, [=](caf::error& err) { errors->push_back(err); });
  });
  run();
  REQUIRE(ask_void(sup, terminate_child_atom::value, std::string{"w"}));
  REQUIRE(errors->size() == 1);
  CHECK(is(errors->front(), errc::child_stopped));
  CHECK(failed_with(ask<int>(sup, send_to_child_atom::value,
                                      std::string{"nope"},
                                      caf::make_message(1)),
                    errc::not_found));
}

// -- deciders and fault handlers -------------------------------------------------------

TEST_CASE_METHOD(fixture, "a decider chooses restart, stop, ignore or escalate",
                 "[supervisor][custom]") {
  auto f = one_for_one();
  f.decider = [](const std::string& id, const caf::error&) {
    if (id == "r")
      return directive::restart;
    if (id == "s")
      return directive::stop;
    if (id == "i")
      return directive::ignore;
    return directive::escalate;
  };
  auto sup = spawn_sup(f, {test_child(j, "r"), test_child(j, "s"),
                           test_child(j, "i"), test_child(j, "e")});
  auto down = watch(sup);
  tell(sup, "r", crash_atom::value);
  CHECK(info(sup, "r").state == child_state::running);
  CHECK(j->starts["r"] == 2);
  tell(sup, "s", crash_atom::value);
  for (auto& x : which(sup))
    CHECK(x.id != "s");
  tell(sup, "i", crash_atom::value);
  CHECK(info(sup, "i").state == child_state::undefined);
  CHECK(!*down);
  tell(sup, "e", crash_atom::value);
  REQUIRE(*down);
  CHECK(is(**down, errc::escalated));
}

namespace {

/// Recovers each child at most twice, then gives up (escalates).
class twice_handler : public fault_handler {
public:
  explicit twice_handler(std::shared_ptr<std::vector<std::string>> log)
    : log_(std::move(log)) {
  }

  void handle_failure(const std::string& id, const caf::error&) override {
    ++failures_[id];
    log_->push_back("failure:" + id);
  }

  bool can_recover(const std::string& id) override {
    return failures_[id] <= 2;
  }

  directive recover(const std::string& id) override {
    log_->push_back("recover:" + id);
    return directive::restart;
  }

private:
  std::map<std::string, int> failures_;
  std::shared_ptr<std::vector<std::string>> log_;
};

} // namespace

TEST_CASE_METHOD(fixture,
                 "a fault handler picked by name from a config recovers, then "
                 "escalates",
                 "[supervisor][custom]") {
  auto log = std::make_shared<std::vector<std::string>>();
  register_fault_handler("twice", [log] {
    return std::make_shared<twice_handler>(log);
  });
  auto f = supervisor_flags_from_yaml("strategy: twice\nintensity: 10\n",
                                      "test.yaml");
  REQUIRE(f);
  REQUIRE(f->handler);
  auto sup = spawn_sup(*f, {test_child(j, "w")});
  auto down = watch(sup);
  tell(sup, "w", crash_atom::value);
  tell(sup, "w", crash_atom::value);
  CHECK(!*down);
  CHECK(j->starts["w"] == 3);
  tell(sup, "w", crash_atom::value);
  REQUIRE(*down);
  CHECK(is(**down, errc::escalated));
  CHECK(*log
        == std::vector<std::string>{"failure:w", "recover:w", "failure:w",
                                    "recover:w", "failure:w"});
}

// -- events -------------------------------------------------------------------

TEST_CASE_METHOD(fixture, "supervisors publish structured events",
                 "[supervisor][events]") {
  auto [sink, evs] = event_sink();
  auto f = one_for_one(1);
  f.name = "evsup";
  auto sup = spawn_sup(f, {test_child(j, "a")});
  REQUIRE(ask_void(sup, subscribe_atom::value, sink));
  tell(sup, "a", crash_atom::value);
  tell(sup, "a", crash_atom::value);
  std::vector<event_kind> kinds;
  for (auto& ev : *evs)
    kinds.push_back(ev.kind);
  CHECK(kinds
        == std::vector<event_kind>{event_kind::child_exited,
                                   event_kind::child_restarted,
                                   event_kind::child_exited,
                                   event_kind::intensity_exceeded,
                                   event_kind::shutdown});
  REQUIRE(!evs->empty());
  CHECK(evs->front().supervisor == "evsup");
  CHECK(evs->front().child == "a");
  CHECK(evs->front().reason);
  CHECK(evs->front().timestamp_ms > 0);
  auto restarted = events_of(*evs, event_kind::child_restarted);
  REQUIRE(restarted.size() == 1);
  CHECK(restarted.front().actor);
  CHECK(!evs->front().actor); // child_exited: the old incarnation is gone
  CHECK(events_of(*evs, event_kind::intensity_exceeded).front().severity == 3);
  CHECK(to_string(evs->front()).find("child_exited child=a")
        != std::string::npos);
}

TEST_CASE_METHOD(fixture, "a subscriber gets only the event kinds it asked for",
                 "[supervisor][events]") {
  auto [sink, evs] = event_sink();
  auto sup = spawn_sup(one_for_one(), {test_child(j, "a")});
  REQUIRE(ask_void(sup, subscribe_atom::value, sink,
                   mask_of({event_kind::child_restarted})));
  tell(sup, "a", crash_atom::value);
  tell(sup, "a", crash_atom::value);
  REQUIRE(evs->size() == 2);
  for (auto& ev : *evs)
    CHECK(ev.kind == event_kind::child_restarted);
  CHECK((*evs)[0].actor != (*evs)[1].actor);
  REQUIRE(ask_void(sup, unsubscribe_atom::value, sink));
  tell(sup, "a", crash_atom::value);
  CHECK(evs->size() == 2);
}

TEST_CASE_METHOD(fixture, "the built-in logger writes one line per event",
                 "[supervisor][events]") {
  std::ostringstream out;
  auto logger = spawn_event_logger(*sys, out);
  auto f = one_for_one();
  f.name = "logged";
  f.subscribers = {logger};
  auto sup = spawn_sup(f, {test_child(j, "a")});
  tell(sup, "a", crash_atom::value);
  auto text = out.str();
  CHECK(text.find("[ft] [logged] child_started child=a") != std::string::npos);
  CHECK(text.find("[ft] [logged] child_exited child=a") != std::string::npos);
  CHECK(text.find("[ft] [logged] child_restarted child=a")
        != std::string::npos);
  // The logger must not outlive its stream.
  caf::anon_send_exit(logger, caf::exit_reason::kill);
  run();
}

TEST_CASE_METHOD(fixture,
                 "a message that reaches a child as it dies waits for the "
                 "replacement",
                 "[supervisor][buffer]") {
  auto sup = spawn_sup(one_for_one(), {test_child(j, "w")});
  auto w1 = child_handle(sup, "w");
  auto reply = std::make_shared<std::optional<caf::expected<std::string>>>();
  // The requester runs first and puts the request in the supervisor's
  // mailbox; the crash is queued for the child behind it.
  sys->spawn([=](caf::event_based_actor* self) {
    request_child(self, sup, "w", caf::infinite, whoami_atom::value)
      .then([=](std::string& x) { *reply = std::move(x); },
            [=](caf::error& err) { *reply = std::move(err); });
  });
  REQUIRE(sched->try_run_once()); // requester: request -> supervisor
  caf::anon_send(w1, crash_atom::value);
  REQUIRE(sched->try_run_once()); // supervisor: forwards into w1's mailbox
  run(); // w1 crashes before reading it; the supervisor restarts w
  REQUIRE(*reply);
  INFO((**reply ? std::string{"ok"} : render((*reply)->error())));
  REQUIRE(**reply);
  CHECK(***reply == "w#2");
}

TEST_CASE_METHOD(fixture,
                 "a terminated supervisor releases its specs and children "
                 "while handles to it remain",
                 "[supervisor][memory]") {
  // CAF destroys an actor object only when its last handle goes. A child
  // that holds a handle to its supervisor (as a watchdog does) and the
  // supervisor's own handle to the child form a cycle: unless the
  // supervisor drops its members when it terminates, the whole tree stays
  // in memory forever.
  auto token = std::make_shared<int>(42);
  std::weak_ptr<int> weak = token;
  auto parent = std::make_shared<caf::actor>();
  child_spec spec = worker(
    "w",
    [token, parent](caf::actor_system& sys,
                    const caf::message&) -> caf::expected<caf::actor> {
      auto p = *parent;
      return sys.spawn([p](caf::event_based_actor* self) -> caf::behavior {
        // Trapped: only the supervisor's kill on termination stops it.
        self->set_exit_handler([](caf::exit_msg&) {});
        return {[p](int x) { return x; }};
      });
    });
  token.reset();
  auto sup = spawn_sup(one_for_one(), {});
  *parent = sup;
  REQUIRE(ask<caf::actor>(sup, start_child_atom::value, spec));
  parent.reset();
  spec = child_spec{};
  REQUIRE_FALSE(weak.expired()); // The supervisor holds the spec.
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  advance(std::chrono::seconds(10));
  // `sup` is still held here, as a user's handle would be.
  CHECK(weak.expired());
}
