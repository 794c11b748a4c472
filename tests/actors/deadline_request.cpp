// Deadline propagation on the deterministic test scheduler: time moves only
// when a test advances the clock, so every deadline a hop sees and every
// expiry is checked at its exact time point.

#include "ft/deadline_request.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/fixture.hpp"

using namespace std::chrono_literals;

namespace ft::test {
namespace {

using release_atom = caf::atom_constant<caf::atom("release")>;
using time_point = caf::actor_clock::time_point;

/// How one hop's request ended (the reply handler's view).
struct outcome {
  caf::expected<caf::message> result;
  /// `current_deadline()` inside the reply handler.
  deadline ambient;
  /// When the handler ran, relative to the fixture's start.
  caf::timespan at;
};

/// What the hops saw.
struct hop_log {
  /// `current_deadline()` in each hop's request handler, by hop name.
  std::map<std::string, deadline> seen;
  /// Every outcome of each hop's downstream request (the client is "A").
  std::map<std::string, std::vector<outcome>> outcomes;
  /// Requests that reached the last hop.
  int last_calls = 0;
  /// The last hop keeps its requests unanswered until `release`.
  bool hold = false;
  std::vector<std::pair<caf::response_promise, int>> held;
};

using log_ptr = std::shared_ptr<hop_log>;

/// The end of the chain: answers `int x` with `x + 1` (or later, see
/// `hold`) and records the deadline it ran under.
caf::behavior last_hop(caf::event_based_actor* self, std::string name,
                       log_ptr log) {
  // Unexpected messages are answered as usual, without printing them.
  self->set_default_handler(caf::drop);
  return deadline_aware(
    self, {
            [=](int x) -> caf::result<int> {
              ++log->last_calls;
              log->seen[name] = current_deadline();
              if (log->hold) {
                log->held.emplace_back(self->make_response_promise(), x);
                return caf::delegated<int>{};
              }
              return x + 1;
            },
            [=](release_atom) {
              auto held = std::move(log->held);
              log->held.clear();
              for (auto& kvp : held)
                kvp.first.deliver(kvp.second + 1);
            },
          });
}

/// Records the outcome of `name`'s downstream request.
void record(caf::event_based_actor* self, const log_ptr& log,
            const std::string& name, time_point t0,
            caf::expected<caf::message> x) {
  log->outcomes[name].push_back(
    outcome{std::move(x), current_deadline(), self->clock().now() - t0});
}

/// A middle hop: answers `int` with whatever `next` answers, asked with
/// `request_with_deadline` and its own timeout `own`, through a promise.
caf::behavior middle_hop(caf::event_based_actor* self, std::string name,
                         caf::actor next, caf::timespan own, log_ptr log,
                         time_point t0) {
  return deadline_aware(
    self, {
            [=](int x) -> caf::response_promise {
              log->seen[name] = current_deadline();
              auto rp = self->make_response_promise();
              request_with_deadline(
                self, next, own, caf::make_message(x),
                [=](caf::expected<caf::message> res) mutable {
                  record(self, log, name, t0, res);
                  if (res)
                    rp.deliver(std::move(*res));
                  else
                    rp.deliver(std::move(res.error()));
                });
              return rp;
            },
          });
}

/// A middle hop written with `relay_with_deadline`.
caf::behavior relay_hop(caf::event_based_actor* self, std::string name,
                        caf::actor next, caf::timespan own, log_ptr log) {
  return deadline_aware(self,
                        {
                          [=](int x) {
                            log->seen[name] = current_deadline();
                            return relay_with_deadline(self, next, own,
                                                       caf::make_message(x));
                          },
                        });
}

struct dl_fixture : fixture {
  time_point t0 = sys->clock().now();
  log_ptr log = std::make_shared<hop_log>();
  /// The last hop of `chain`.
  caf::actor last;

  /// D, then C and B in front of it with their own timeouts.
  caf::actor chain(caf::timespan b_own, caf::timespan c_own) {
    auto d = sys->spawn(last_hop, std::string{"D"}, log);
    auto c = sys->spawn(middle_hop, std::string{"C"}, d, c_own, log, t0);
    auto b = sys->spawn(middle_hop, std::string{"B"}, c, b_own, log, t0);
    keep_alive.insert(keep_alive.end(), {b, c, d});
    last = d;
    run();
    return b;
  }

  /// The client A: asks `dest` with its own timeout `own` from outside any
  /// handler (no ambient deadline); the outcome goes to `log->outcomes["A"]`.
  /// Checks that the handler does not run inside the call. With `ambient`,
  /// calls inside a `deadline_scope` of it.
  void client(const caf::actor& dest, caf::timespan own, int x,
              deadline ambient = deadline::never()) {
    auto lg = log;
    auto start = t0;
    keep_alive.push_back(sys->spawn([=](caf::event_based_actor* self) {
      auto returned = std::make_shared<bool>(false);
      deadline_scope scope{ambient};
      request_with_deadline(self, dest, own, caf::make_message(x),
                            [=](caf::expected<caf::message> res) {
                              CHECK(*returned);
                              record(self, lg, "A", start, std::move(res));
                            });
      *returned = true;
    }));
    run();
  }

  /// The only outcome of `name`'s request.
  const outcome& only(const std::string& name) {
    auto& xs = log->outcomes[name];
    REQUIRE(xs.size() == 1);
    return xs.front();
  }

  int value(const std::string& name) {
    auto& x = only(name).result;
    REQUIRE(x);
    REQUIRE(x->match_elements<int>());
    return x->get_as<int>(0);
  }

  caf::error error(const std::string& name) {
    auto& x = only(name).result;
    REQUIRE(!x);
    return x.error();
  }

  deadline at(caf::timespan x) const {
    return deadline::at(t0 + x);
  }
};

} // namespace

TEST_CASE_METHOD(dl_fixture, "deadline propagation through 3 hops",
                 "[deadline_request]") {
  SECTION("the client's deadline is the shortest") {
    auto b = chain(5s, 3s);
    client(b, 2s, 7);
    CHECK(log->seen["B"] == at(2s));
    CHECK(log->seen["C"] == at(2s));
    CHECK(log->seen["D"] == at(2s));
    CHECK(value("A") == 8);
  }
  SECTION("each hop's own timeout shortens it") {
    auto b = chain(5s, 3s);
    client(b, 10s, 7);
    CHECK(log->seen["B"] == at(10s));
    CHECK(log->seen["C"] == at(5s));
    CHECK(log->seen["D"] == at(3s));
    CHECK(value("A") == 8);
    CHECK(value("B") == 8);
    CHECK(value("C") == 8);
    // A reply handler continues its hop's own request: it runs under the
    // hop's (parent's) deadline, not the one it gave its callee.
    CHECK(only("B").ambient == at(10s));
    CHECK(only("C").ambient == at(5s));
    CHECK(only("A").ambient == deadline::never());
  }
  SECTION("time spent in a hop counts against the rest") {
    auto d = sys->spawn(last_hop, std::string{"D"}, log);
    auto c = sys->spawn(middle_hop, std::string{"C"}, d, 3s, log, t0);
    // B works 1s before asking C: C gets the 4s left of B's deadline (a time
    // point, not a budget), and D gets C's own 3s from then.
    auto pending = std::make_shared<caf::response_promise>();
    auto b = sys->spawn([=](caf::event_based_actor* self) {
      return deadline_aware(
        self, {[=](int x) -> caf::response_promise {
                 log->seen["B"] = current_deadline();
                 *pending = self->make_response_promise();
                 self->delayed_send(self, 1s, x, std::string{"later"});
                 return *pending;
               },
               [=](int x, const std::string&) {
                 // A plain message: no ambient deadline here, so hand the
                 // parent's on explicitly.
                 CHECK(current_deadline() == deadline::never());
                 deadline_scope scope{log->seen["B"]};
                 auto rp = *pending;
                 request_with_deadline(
                   self, c, caf::timespan::max(), caf::make_message(x),
                   [=](caf::expected<caf::message> res) mutable {
                     if (res)
                       rp.deliver(std::move(*res));
                     else
                       rp.deliver(std::move(res.error()));
                   });
               }});
    });
    keep_alive.insert(keep_alive.end(), {b, c, d});
    client(b, 5s, 7);
    CHECK(log->last_calls == 0);
    advance(1s);
    CHECK(log->seen["B"] == at(5s));
    CHECK(log->seen["C"] == at(5s));
    CHECK(log->seen["D"] == at(4s));
    CHECK(value("A") == 8);
  }
  // Outside handlers there is no deadline.
  CHECK(current_deadline() == deadline::never());
}

TEST_CASE_METHOD(dl_fixture,
                 "deadline propagation through 3 hops: a silent last hop "
                 "fails every hop at the deadline",
                 "[deadline_request]") {
  log->hold = true;
  auto b = chain(5s, 3s);
  client(b, 2s, 7);
  CHECK(log->last_calls == 1);
  advance(2s - 1ns);
  CHECK(log->outcomes.empty());
  advance(1ns);
  auto err = error("A");
  CHECK(is(err, errc::deadline_exceeded));
  CHECK_THAT(render(err), Catch::Contains("no reply within the deadline (2s)"));
  CHECK(only("A").at == 2s);
  CHECK(is(error("B"), errc::deadline_exceeded));
  CHECK(only("B").at == 2s);
  CHECK(is(error("C"), errc::deadline_exceeded));
  CHECK(only("C").at == 2s);
  // The last hop's late answer reaches nobody.
  caf::anon_send(last, release_atom::value);
  advance(10s);
  CHECK(log->outcomes["A"].size() == 1);
  CHECK(log->outcomes["B"].size() == 1);
  CHECK(log->outcomes["C"].size() == 1);
}

TEST_CASE_METHOD(dl_fixture,
                 "deadline propagation through 3 hops: a hop's own timeout "
                 "shorter than its parent's wins",
                 "[deadline_request]") {
  log->hold = true;
  auto b = chain(5s, 1s);
  client(b, 10s, 7);
  CHECK(log->seen["D"] == at(1s));
  advance(1s - 1ns);
  CHECK(log->outcomes.empty());
  advance(1ns);
  // C gave up after its own 1s; B and A got C's answer at once, long
  // before their own deadlines.
  CHECK(is(error("C"), errc::deadline_exceeded));
  auto err = error("A");
  CHECK(is(err, errc::deadline_exceeded));
  CHECK_THAT(render(err), Catch::Contains("no reply within the deadline (1s)"));
  CHECK(only("A").at == 1s);
  CHECK(only("B").at == 1s);
  advance(20s);
  CHECK(log->outcomes["A"].size() == 1);
}

TEST_CASE_METHOD(dl_fixture,
                 "deadline_aware: an expired deadline is refused without "
                 "running the handler",
                 "[deadline_request]") {
  auto b = chain(5s, 3s);
  auto now = sys->clock().now();
  SECTION("a request is answered deadline_exceeded") {
    // A deadline at exactly now has expired, too.
    for (caf::timespan expired : {caf::timespan{-1s}, caf::timespan{0s}}) {
      auto res = ask<int>(b, with_deadline(deadline::after(now, expired),
                                           caf::make_message(7)));
      REQUIRE(res);
      REQUIRE(!*res);
      CHECK(is(res->error(), errc::deadline_exceeded));
      CHECK_THAT(render(res->error()),
                 Catch::Contains("deadline passed " + render_seconds(-expired)
                                 + " before"));
    }
  }
  SECTION("an asynchronous message is dropped") {
    caf::anon_send(b, with_deadline(deadline::after(now, -1s),
                                    caf::make_message(7)));
    run();
  }
  CHECK(log->seen.empty());
  CHECK(log->last_calls == 0);
  // The same message with time left runs the chain.
  auto res = ask<int>(b, with_deadline(deadline::after(now, 1s),
                                       caf::make_message(7)));
  REQUIRE(res);
  REQUIRE(*res);
  CHECK(**res == 8);
  CHECK(log->seen["D"] == at(1s));
}

TEST_CASE_METHOD(dl_fixture,
                 "request_with_deadline: an expired ambient deadline sends "
                 "nothing",
                 "[deadline_request]") {
  auto b = chain(5s, 3s);
  client(b, 5s, 7, deadline::after(t0, -1s));
  CHECK(log->seen.empty());
  auto err = error("A");
  CHECK(is(err, errc::deadline_exceeded));
  CHECK_THAT(render(err), Catch::Contains("request not sent"));
  CHECK(only("A").at == 0s);
  // The handler runs under the ambient deadline of the call.
  CHECK(only("A").ambient == deadline::after(t0, -1s));
}

TEST_CASE_METHOD(dl_fixture,
                 "request_with_deadline: an ambient deadline set by hand is "
                 "propagated",
                 "[deadline_request]") {
  auto b = chain(5s, 3s);
  client(b, caf::timespan::max(), 7, at(4s));
  CHECK(log->seen["B"] == at(4s));
  CHECK(log->seen["C"] == at(4s));
  CHECK(log->seen["D"] == at(3s));
  CHECK(value("A") == 8);
}

TEST_CASE_METHOD(dl_fixture,
                 "deadline_aware: messages without a deadline pass through",
                 "[deadline_request]") {
  auto d = sys->spawn(last_hop, std::string{"D"}, log);
  keep_alive.push_back(d);
  log->seen["D"] = at(1s);
  auto res = ask<int>(d, 41);
  REQUIRE(res);
  REQUIRE(*res);
  CHECK(**res == 42);
  CHECK(log->seen["D"] == deadline::never());
  // Unknown inner messages are unexpected, as without the wrapper.
  auto bad = ask<int>(d, with_deadline(at(1s), caf::make_message(1.5)));
  REQUIRE(bad);
  REQUIRE(!*bad);
  CHECK(bad->error() == caf::sec::unexpected_message);
}

TEST_CASE_METHOD(dl_fixture,
                 "relay_with_deadline answers the caller with the next hop's "
                 "reply or error",
                 "[deadline_request]") {
  auto d = sys->spawn(last_hop, std::string{"D"}, log);
  auto b = sys->spawn(relay_hop, std::string{"B"}, d, 1s, log);
  keep_alive.insert(keep_alive.end(), {b, d});
  SECTION("reply") {
    client(b, 5s, 7);
    CHECK(log->seen["B"] == at(5s));
    CHECK(log->seen["D"] == at(1s));
    CHECK(value("A") == 8);
  }
  SECTION("error") {
    log->hold = true;
    client(b, 5s, 7);
    advance(1s - 1ns);
    CHECK(log->outcomes.empty());
    advance(1ns);
    CHECK(is(error("A"), errc::deadline_exceeded));
    CHECK(only("A").at == 1s);
  }
}

TEST_CASE("deadline_scope nests and restores", "[deadline_request]") {
  auto t = caf::actor_clock::time_point{} + 100s;
  CHECK(current_deadline() == deadline::never());
  {
    deadline_scope outer{deadline::at(t)};
    CHECK(current_deadline() == deadline::at(t));
    {
      deadline_scope inner{deadline::at(t + 1s)};
      CHECK(current_deadline() == deadline::at(t + 1s));
    }
    CHECK(current_deadline() == deadline::at(t));
  }
  CHECK(current_deadline() == deadline::never());
}

} // namespace ft::test
