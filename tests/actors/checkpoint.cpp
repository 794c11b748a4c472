#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

#include "ft/capnp_state.hpp"
#include "ft/checkpoint.hpp"
#include "actors/fixture.hpp"

#include "counter_state.capnp.h"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace ft::test {

// -- state types --------------------------------------------------------------

/// Saved with CAF's inspect (the primary state_codec). `poison` makes the
/// next `add` crash the actor: a snapshot holding it is a poison snapshot.
struct counter {
  int32_t value = 0;
  bool poison = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, counter& x) {
  return f(caf::meta::type_name("counter"), x.value, x.poison);
}

/// Version 2 of the counter (64-bit value and a note), for upgrades.
struct counter_v2 {
  int64_t value = 0;
  std::string note;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, counter_v2& x) {
  return f(caf::meta::type_name("counter_v2"), x.value, x.note);
}

/// Saved as the Cap'n Proto struct `CounterState` (counter_state.capnp).
struct capnp_counter {
  int64_t value = 0;
  std::vector<std::string> history;
};

void to_capnp(const capnp_counter& x, schema::CounterState::Builder out) {
  out.setValue(x.value);
  auto h = out.initHistory(static_cast<unsigned>(x.history.size()));
  for (unsigned i = 0; i < x.history.size(); ++i)
    h.set(i, x.history[i]);
}

caf::error from_capnp(schema::CounterState::Reader in, capnp_counter& x) {
  x.value = in.getValue();
  x.history.clear();
  for (auto s : in.getHistory())
    x.history.emplace_back(s.cStr());
  return caf::none;
}

} // namespace ft::test

template <>
struct ft::state_codec<ft::test::counter_v2>
  : ft::inspect_state_codec<ft::test::counter_v2, 2> {};

template <>
struct ft::state_codec<ft::test::capnp_counter>
  : ft::capnp_state_codec<ft::test::capnp_counter,
                          ft::test::schema::CounterState> {};

namespace ft::test {

namespace {

namespace fs = std::filesystem;

using add_atom = caf::atom_constant<caf::atom("ckadd")>;
using get_atom = caf::atom_constant<caf::atom("ckget")>;
using poison_atom = caf::atom_constant<caf::atom("ckpoison")>;
using save_atom = caf::atom_constant<caf::atom("cksave")>;
using fail_atom = caf::atom_constant<caf::atom("ckfail")>;

/// A fresh directory under the system temp dir, removed at the end.
struct temp_dir {
  fs::path path;

  temp_dir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path()
           / ("ft-ckpt-" + std::to_string(::getpid()) + "-"
              + std::to_string(n++));
    fs::remove_all(path);
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// The counter's behaviour: `add x` answers the new value (and crashes on
/// a poison state), `get`, `poison`, `save` (on-demand checkpoint through
/// the context), `fail` answers an error, `crash` quits abnormally, `stop`
/// normally. Logs `start:VALUE@RESTORED_SEQUENCE` per incarnation.
auto counter_actor(journal_ptr j) {
  return [j](checkpointed<counter>& ctx) -> caf::behavior {
    j->lines.push_back("start:" + std::to_string(ctx.state().value) + "@"
                       + std::to_string(ctx.restored_sequence()));
    auto self = ctx.self();
    auto* c = &ctx;
    return {
      [=](add_atom, int32_t x) -> int32_t {
        if (c->state().poison) {
          self->quit(caf::make_error(caf::sec::runtime_error, "poison"));
          return -1;
        }
        return c->state().value += x;
      },
      [=](get_atom) { return c->state().value; },
      [=](poison_atom) { c->state().poison = true; },
      [=](save_atom) { c->checkpoint(); },
      [=](fail_atom) -> caf::error {
        return caf::make_error(caf::sec::runtime_error, "refused");
      },
      [=](crash_atom) {
        self->quit(caf::make_error(caf::sec::runtime_error, "crash"));
      },
      [=](stop_atom) { self->quit(); },
    };
  };
}

struct ckpt_fixture : fixture {
  temp_dir dir;
  caf::actor writer;
  std::string key = "counter/1";

  ckpt_fixture() {
    spawn_writer(durability::nosync);
  }

  void spawn_writer(durability mode, caf::timespan window = {}) {
    if (writer)
      caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    run();
    snapshot_writer_options opts;
    opts.dir = dir.path.string();
    opts.store.mode = mode;
    opts.group_window = window;
    auto res = spawn_snapshot_writer(*sys, opts);
    REQUIRE(res);
    writer = *res;
    keep_alive.push_back(writer);
  }

  checkpoint_options options() {
    checkpoint_options opts;
    opts.key = key;
    opts.actor_type = "counter";
    opts.writer = writer;
    opts.node_id = "test";
    return opts;
  }

  caf::actor spawn_counter(checkpoint_options opts) {
    auto res = spawn_checkpointed<counter>(*sys, std::move(opts),
                                           counter_actor(j));
    REQUIRE(res);
    run();
    return *res;
  }

  /// Sends a request and requires a value back.
  template <class T, class... Ts>
  T value_of(const caf::actor& dest, Ts... xs) {
    auto res = ask<T>(dest, xs...);
    REQUIRE(res);
    if (!*res)
      FAIL(render(res->error()));
    return **res;
  }

  template <class T = int32_t, class... Ts>
  caf::error error_of(const caf::actor& dest, Ts... xs) {
    auto res = ask<T>(dest, xs...);
    REQUIRE(res);
    REQUIRE_FALSE(*res);
    return res->error();
  }

  /// The sequences stored for `key`, in order.
  std::vector<uint64_t> sequences() {
    auto xs = value_of<std::vector<snapshot_info>>(writer,
                                                   snapshot_list_atom::value);
    std::vector<uint64_t> result;
    for (auto& x : xs)
      if (x.key == key)
        result.push_back(x.sequence);
    return result;
  }

  snapshot_envelope latest() {
    return value_of<snapshot_envelope>(writer, snapshot_latest_atom::value,
                                       key);
  }

  /// The state (and payload) of the latest snapshot.
  template <class State = counter>
  State latest_state(detail::checkpoint_payload* out = nullptr) {
    auto env = latest();
    auto payload = detail::decode_checkpoint_payload(env.payload, "test");
    REQUIRE(payload);
    State result;
    REQUIRE_FALSE(state_codec<State>::decode(payload->state, result));
    if (out != nullptr)
      *out = *payload;
    return result;
  }

  /// Stores a snapshot as a checkpointed actor would (or with a raw
  /// payload), bypassing any actor.
  void put(uint64_t seq, const counter& state, uint32_t version = 1) {
    auto bytes = state_codec<counter>::encode(state);
    REQUIRE(bytes);
    detail::checkpoint_payload p;
    p.state = *bytes;
    auto payload = detail::encode_checkpoint_payload(p);
    REQUIRE(payload);
    put_raw(seq, *payload, version);
  }

  void put_raw(uint64_t seq, byte_buffer payload, uint32_t version = 1) {
    snapshot_envelope env;
    env.key = key;
    env.actor_type = "counter";
    env.schema_version = version;
    env.sequence = seq;
    env.payload = std::move(payload);
    CHECK(value_of<uint64_t>(writer, snapshot_write_atom::value, env) == seq);
  }

  /// Sends `xs...` to the running child `id` and runs.
  template <class... Ts>
  void tell_child(const caf::actor& sup, const std::string& id, Ts... xs) {
    caf::anon_send(child_handle(sup, id), xs...);
    run();
  }

  std::vector<std::string> starts() {
    return j->with("start:");
  }

  supervisor_flags flags(int intensity = 20) {
    supervisor_flags f;
    f.name = "sup";
    f.intensity = intensity;
    f.period = 5s;
    return f;
  }
};

} // namespace

// -- codecs -------------------------------------------------------------------

TEST_CASE("the inspect-based state codec round-trips and rejects junk",
          "[checkpoint]") {
  counter x{42, true};
  auto bytes = state_codec<counter>::encode(x);
  REQUIRE(bytes);
  counter y;
  REQUIRE_FALSE(state_codec<counter>::decode(*bytes, y));
  CHECK(y.value == 42);
  CHECK(y.poison);
  // Truncated or trailing bytes are errors, not a half-read state.
  auto shorter = *bytes;
  shorter.pop_back();
  CHECK(state_codec<counter>::decode(shorter, y));
  auto longer = *bytes;
  longer.push_back(0);
  CHECK(state_codec<counter>::decode(longer, y));
}

TEST_CASE("the payload wrapper keeps state bytes and dedupe ids",
          "[checkpoint]") {
  detail::checkpoint_payload p;
  p.state = {1, 2, 3, 0, 255};
  p.applied_ids = {"task-1", "task-2", ""};
  p.handled = 77;
  auto bytes = detail::encode_checkpoint_payload(p);
  REQUIRE(bytes);
  auto q = detail::decode_checkpoint_payload(*bytes, "k #1");
  REQUIRE(q);
  CHECK(q->state == p.state);
  CHECK(q->applied_ids == p.applied_ids);
  CHECK(q->handled == 77u);
  auto junk = detail::decode_checkpoint_payload(byte_buffer{1, 2, 3}, "k #1");
  REQUIRE_FALSE(junk);
  CHECK(is(junk.error(), errc::corrupt_snapshot));
  CHECK_THAT(render(junk.error()), Contains("k #1"));
}

TEST_CASE("the Cap'n Proto state codec round-trips", "[checkpoint]") {
  capnp_counter x{-7, {"a", "bb"}};
  auto bytes = state_codec<capnp_counter>::encode(x);
  REQUIRE(bytes);
  capnp_counter y;
  REQUIRE_FALSE(state_codec<capnp_counter>::decode(*bytes, y));
  CHECK(y.value == -7);
  CHECK(y.history == std::vector<std::string>{"a", "bb"});
  CHECK(state_codec<capnp_counter>::decode(byte_buffer{1, 2, 3}, y));
  CHECK(state_codec<capnp_counter>::version == 1u);
  CHECK(state_codec<counter_v2>::version == 2u);
}

TEST_CASE_METHOD(ckpt_fixture,
                 "a Cap'n Proto state survives a restart of its actor",
                 "[checkpoint]") {
  auto make = [](checkpointed<capnp_counter>& ctx) -> caf::behavior {
    auto* c = &ctx;
    return {
      [c](add_atom, int32_t x) {
        c->state().value += x;
        c->state().history.push_back("add " + std::to_string(x));
        return c->state().value;
      },
      [c](get_atom) { return c->state().history; },
    };
  };
  auto a = spawn_checkpointed<capnp_counter>(*sys, options(), make);
  REQUIRE(a);
  run();
  CHECK(value_of<int64_t>(*a, add_atom::value, int32_t{3}) == 3);
  CHECK(value_of<int64_t>(*a, add_atom::value, int32_t{4}) == 7);
  CHECK(value_of<uint64_t>(*a, checkpoint_now_atom::value) == 1u);
  caf::anon_send_exit(*a, caf::exit_reason::kill);
  run();
  auto b = spawn_checkpointed<capnp_counter>(*sys, options(), make);
  REQUIRE(b);
  run();
  CHECK(value_of<std::vector<std::string>>(*b, get_atom::value)
        == std::vector<std::string>{"add 3", "add 4"});
  CHECK(value_of<int64_t>(*b, add_atom::value, int32_t{1}) == 8);
}

// -- restore through a supervisor ----------------------------------------------

TEST_CASE_METHOD(ckpt_fixture,
                 "a restarted child starts from its latest checkpoint",
                 "[checkpoint]") {
  auto sup = spawn_sup(flags(), {checkpointed_worker<counter>(
                                  "counter", options(), counter_actor(j))});
  auto c = child_handle(sup, "counter");
  CHECK(value_of<int32_t>(c, add_atom::value, int32_t{5}) == 5);
  CHECK(value_of<uint64_t>(c, checkpoint_now_atom::value) == 1u);
  // Applied after the checkpoint: lost with the crash.
  CHECK(value_of<int32_t>(c, add_atom::value, int32_t{100}) == 105);
  tell(sup, "counter", crash_atom::value);
  auto c2 = child_handle(sup, "counter");
  CHECK(c2 != c);
  CHECK(value_of<int32_t>(c2, get_atom::value) == 5);
  CHECK(starts() == std::vector<std::string>{"start:0@0", "start:5@1"});
  // The next snapshot continues the sequence.
  CHECK(value_of<uint64_t>(c2, checkpoint_now_atom::value) == 2u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
}

TEST_CASE_METHOD(ckpt_fixture,
                 "strategy restart starts fresh but keeps writing snapshots",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.strategy = ft_strategy::restart;
  auto sup = spawn_sup(flags(), {checkpointed_worker<counter>(
                                  "counter", opts, counter_actor(j))});
  auto c = child_handle(sup, "counter");
  CHECK(value_of<int32_t>(c, add_atom::value, int32_t{5}) == 5);
  CHECK(value_of<uint64_t>(c, checkpoint_now_atom::value) == 1u);
  tell(sup, "counter", crash_atom::value);
  auto c2 = child_handle(sup, "counter");
  CHECK(value_of<int32_t>(c2, get_atom::value) == 0);
  CHECK(starts() == std::vector<std::string>{"start:0@0", "start:0@0"});
  CHECK(value_of<uint64_t>(c2, checkpoint_now_atom::value) == 2u);
  CHECK(latest_state().value == 0);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
}

// -- checkpoint policy --------------------------------------------------------

TEST_CASE_METHOD(ckpt_fixture, "checkpoint_every stores every Nth state",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.checkpoint_every = 3;
  opts.config.checkpoint_on_stop = false;
  auto a = spawn_counter(opts);
  for (int i = 1; i <= 7; ++i)
    CHECK(value_of<int32_t>(a, add_atom::value, int32_t{1}) == i);
  CHECK(sequences() == std::vector<uint64_t>{1, 2});
  detail::checkpoint_payload p;
  CHECK(latest_state(&p).value == 6);
  CHECK(p.handled == 6u);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  run();
  CHECK(sequences() == std::vector<uint64_t>{1, 2}); // stop write is off
}

TEST_CASE_METHOD(ckpt_fixture,
                 "checkpoint_interval checkpoints while messages arrive",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.checkpoint_interval = 1s;
  opts.config.checkpoint_on_stop = false;
  auto a = spawn_counter(opts);
  // Idle: no timer, nothing written.
  advance(5s);
  CHECK(sequences().empty());
  CHECK(value_of<int32_t>(a, add_atom::value, int32_t{2}) == 2);
  advance(500ms);
  CHECK(value_of<int32_t>(a, add_atom::value, int32_t{3}) == 5);
  CHECK(sequences().empty());
  advance(500ms); // one interval after the first message
  CHECK(sequences() == std::vector<uint64_t>{1});
  CHECK(latest_state().value == 5);
  // Nothing new: the timer is not re-armed.
  advance(3s);
  CHECK(sequences() == std::vector<uint64_t>{1});
  CHECK(value_of<int32_t>(a, add_atom::value, int32_t{1}) == 6);
  advance(1s);
  CHECK(sequences() == std::vector<uint64_t>{1, 2});
  CHECK(latest_state().value == 6);
}

TEST_CASE_METHOD(ckpt_fixture, "a checkpoint on demand", "[checkpoint]") {
  auto opts = options();
  opts.config.checkpoint_on_stop = false;
  auto a = spawn_counter(opts);
  CHECK(value_of<int32_t>(a, add_atom::value, int32_t{4}) == 4);
  CHECK(sequences().empty());
  SECTION("by message: answered with the committed sequence") {
    CHECK(value_of<uint64_t>(a, checkpoint_now_atom::value) == 1u);
    CHECK(latest_state().value == 4);
  }
  SECTION("from a handler, through the context") {
    caf::anon_send(a, save_atom::value);
    run();
    CHECK(sequences() == std::vector<uint64_t>{1});
    CHECK(latest_state().value == 4);
  }
}

TEST_CASE_METHOD(ckpt_fixture,
                 "a graceful stop writes a last snapshot, a crash does not",
                 "[checkpoint]") {
  auto a = spawn_counter(options());
  CHECK(value_of<int32_t>(a, add_atom::value, int32_t{9}) == 9);
  SECTION("graceful") {
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    run();
    CHECK(sequences() == std::vector<uint64_t>{1});
    CHECK(latest_state().value == 9);
    auto b = spawn_counter(options());
    CHECK(value_of<int32_t>(b, get_atom::value) == 9);
  }
  SECTION("quit normally from a handler") {
    caf::anon_send(a, stop_atom::value);
    run();
    CHECK(sequences() == std::vector<uint64_t>{1});
  }
  SECTION("crash") {
    caf::anon_send(a, crash_atom::value);
    run();
    CHECK(sequences().empty());
  }
  SECTION("nothing changed since the last snapshot") {
    CHECK(value_of<uint64_t>(a, checkpoint_now_atom::value) == 1u);
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    run();
    CHECK(sequences() == std::vector<uint64_t>{1});
  }
}

TEST_CASE_METHOD(ckpt_fixture,
                 "messages sent while the actor restores wait for the state",
                 "[checkpoint]") {
  put(3, counter{40, false});
  auto a = spawn_checkpointed<counter>(*sys, options(), counter_actor(j));
  REQUIRE(a);
  // Not run yet: this message is queued before the restore reply.
  auto res = ask<int32_t>(*a, add_atom::value, int32_t{2});
  REQUIRE(res);
  REQUIRE(*res);
  CHECK(**res == 42);
  CHECK(value_of<uint64_t>(*a, checkpoint_now_atom::value) == 4u);
}

TEST_CASE_METHOD(ckpt_fixture,
                 "a failed write neither crashes the actor nor stalls it",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.checkpoint_on_stop = false;
  auto a = spawn_counter(opts);
  CHECK(value_of<int32_t>(a, add_atom::value, int32_t{1}) == 1);
  put(100, counter{-1, false}); // someone else wrote a newer snapshot
  auto err = error_of<uint64_t>(a, checkpoint_now_atom::value);
  CHECK(is(err, errc::stale_sequence));
  // Still alive, and it learned the stored sequence.
  CHECK(value_of<int32_t>(a, add_atom::value, int32_t{1}) == 2);
  CHECK(value_of<uint64_t>(a, checkpoint_now_atom::value) == 101u);
  CHECK(latest_state().value == 2);
}

TEST_CASE_METHOD(ckpt_fixture, "invalid options are refused at spawn",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.reply_after_checkpoint = true;
  opts.config.checkpoint_every = 2;
  auto a = spawn_checkpointed<counter>(*sys, opts, counter_actor(j));
  REQUIRE_FALSE(a);
  CHECK(is(a.error(), errc::invalid_config));
  CHECK_THAT(render(a.error()), Contains("reply_after_checkpoint"));
  opts = options();
  opts.writer = caf::actor{};
  a = spawn_checkpointed<counter>(*sys, opts, counter_actor(j));
  REQUIRE_FALSE(a);
  CHECK(is(a.error(), errc::invalid_config));
  opts = options();
  opts.key.clear();
  CHECK_FALSE(spawn_checkpointed<counter>(*sys, opts, counter_actor(j)));
}

// -- poison snapshots ---------------------------------------------------------

TEST_CASE_METHOD(ckpt_fixture,
                 "a poison snapshot is given up after max_recovery_attempts",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.checkpoint_every = 1;
  opts.config.max_recovery_attempts = 2;
  auto sup = spawn_sup(flags(), {checkpointed_worker<counter>(
                                  "counter", opts, counter_actor(j))});
  auto c = child_handle(sup, "counter");
  CHECK(value_of<int32_t>(c, add_atom::value, int32_t{5}) == 5); // #1
  caf::anon_send(c, poison_atom::value);                         // #2
  run();
  CHECK(sequences() == std::vector<uint64_t>{1, 2});
  // Each incarnation restored from #2 crashes on its first message.
  tell_child(sup, "counter", add_atom::value, int32_t{1}); // crashes the original
  tell_child(sup, "counter", add_atom::value, int32_t{1}); // 1st start from #2
  tell_child(sup, "counter", add_atom::value, int32_t{1}); // 2nd start from #2
  // The third start falls back to #1.
  CHECK(starts()
        == std::vector<std::string>{"start:0@0", "start:5@2", "start:5@2",
                                    "start:5@1"});
  auto c4 = child_handle(sup, "counter");
  CHECK(value_of<int32_t>(c4, add_atom::value, int32_t{1}) == 6);
  // The crashing incarnations wrote nothing; the next snapshot goes above
  // the poison one.
  CHECK(sequences() == std::vector<uint64_t>{1, 2, 3});
  CHECK(latest_state().value == 6);
  // Healthy again: a later crash restores the latest snapshot.
  tell(sup, "counter", crash_atom::value);
  CHECK(starts().back() == "start:6@3");
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
}

TEST_CASE_METHOD(ckpt_fixture,
                 "incarnations killed from outside are not failed starts",
                 "[checkpoint]") {
  put(1, counter{11, false});
  auto opts = options();
  opts.config.max_recovery_attempts = 2;
  auto sup = spawn_sup(flags(), {checkpointed_worker<counter>(
                                  "counter", opts, counter_actor(j))});
  // Killed before handling anything (as by a brutal_kill or a sibling's
  // restart), again and again: the snapshot is not to blame.
  for (int i = 0; i < 4; ++i) {
    caf::anon_send_exit(child_handle(sup, "counter"), caf::exit_reason::kill);
    run();
  }
  CHECK(starts()
        == std::vector<std::string>(5, std::string{"start:11@1"}));
  auto c = child_handle(sup, "counter");
  CHECK(value_of<int32_t>(c, add_atom::value, int32_t{1}) == 12);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
}

TEST_CASE_METHOD(ckpt_fixture,
                 "a poison fallback makes the start fail with restore_failed",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.checkpoint_every = 1;
  opts.config.max_recovery_attempts = 2;
  auto [sink, events] = event_sink();
  auto f = flags(8);
  f.subscribers = {sink};
  auto sup = spawn_sup(f, {checkpointed_worker<counter>("counter", opts,
                                                        counter_actor(j))});
  auto down = watch(sup);
  auto c = child_handle(sup, "counter");
  caf::anon_send(c, poison_atom::value); // #1, poison
  caf::anon_send(c, poison_atom::value); // #2, poison
  run();
  CHECK(sequences() == std::vector<uint64_t>{1, 2});
  tell_child(sup, "counter", add_atom::value, int32_t{1}); // crashes the original
  for (int i = 0; i < 4; ++i) // two starts from #2, two from #1
    tell_child(sup, "counter", add_atom::value, int32_t{1});
  CHECK(starts()
        == std::vector<std::string>{"start:0@0", "start:0@2", "start:0@2",
                                    "start:0@1", "start:0@1"});
  // The sixth start is refused; the supervisor retries, each failure counts
  // toward its intensity, and it gives up.
  REQUIRE(*down);
  CHECK(is(**down, errc::restart_intensity_exceeded));
  auto failed = events_of(*events, event_kind::restart_failed);
  REQUIRE_FALSE(failed.empty());
  auto why = render(failed.front().reason);
  CHECK_THAT(why, Contains("restore_failed"));
  CHECK_THAT(why, Contains("#2 (2 failed starts)"));
  CHECK_THAT(why, Contains("#1 (2 failed starts)"));
  CHECK(starts().size() == 5u);
}

TEST_CASE_METHOD(ckpt_fixture, "an undecodable payload falls back at once",
                 "[checkpoint]") {
  put(1, counter{11, false});
  put_raw(2, byte_buffer{'j', 'u', 'n', 'k', 0, 0, 0, 0});
  auto a = spawn_counter(options());
  CHECK(starts() == std::vector<std::string>{"start:11@1"});
  CHECK(value_of<int32_t>(a, get_atom::value) == 11);
  CHECK(value_of<uint64_t>(a, checkpoint_now_atom::value) == 3u);
}

TEST_CASE_METHOD(ckpt_fixture,
                 "a snapshot damaged on disk falls back to the one before",
                 "[checkpoint]") {
  put(1, counter{11, false});
  put(2, counter{22, false});
  // The stored bytes of #2 are its encoded envelope (encoding is
  // deterministic): find them in the data file and flip one.
  snapshot_envelope env2 = latest();
  auto bytes = encode_snapshot(env2);
  REQUIRE(bytes);
  // Close the store first: LMDB allows one environment per file and
  // process.
  caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
  run();
  keep_alive.clear();
  writer = nullptr;
  run();
  {
    auto path = dir.path / "data.mdb";
    std::string data;
    {
      std::ifstream in{path, std::ios::binary};
      data.assign(std::istreambuf_iterator<char>{in}, {});
    }
    std::string needle(bytes->begin(), bytes->end());
    auto pos = data.find(needle);
    REQUIRE(pos != std::string::npos);
    data[pos + needle.size() - 3] ^= 0x40; // inside the payload
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  spawn_writer(durability::nosync);
  auto a = spawn_counter(options());
  CHECK(starts() == std::vector<std::string>{"start:11@1"});
  CHECK(value_of<int32_t>(a, get_atom::value) == 11);
  // The next snapshot goes above the damaged one.
  CHECK(value_of<uint64_t>(a, checkpoint_now_atom::value) == 3u);
}

TEST_CASE_METHOD(ckpt_fixture,
                 "two unusable snapshots in a row fail the restore",
                 "[checkpoint]") {
  put_raw(1, byte_buffer{1, 2, 3, 4, 5, 6, 7, 8});
  put_raw(2, byte_buffer{1, 2, 3, 4, 5, 6, 7, 8});
  auto a = spawn_checkpointed<counter>(*sys, options(), counter_actor(j));
  REQUIRE(a);
  auto down = watch(*a);
  run();
  REQUIRE(*down);
  CHECK(is(**down, errc::restore_failed));
  CHECK(starts().empty());
}

TEST_CASE_METHOD(ckpt_fixture, "a schema version mismatch", "[checkpoint]") {
  put(1, counter{21, false}, 1);
  auto make = [this](checkpointed<counter_v2>& ctx) -> caf::behavior {
    j->lines.push_back("start:" + std::to_string(ctx.state().value) + "@"
                       + std::to_string(ctx.restored_sequence()));
    auto* c = &ctx;
    return {
      [c](get_atom) { return c->state().value; },
      [c](add_atom, int32_t x) { return c->state().value += x; },
    };
  };
  SECTION("without an upgrade hook falls back (here: to a fresh state)") {
    auto a = spawn_checkpointed<counter_v2>(*sys, options(), make);
    REQUIRE(a);
    run();
    CHECK(starts() == std::vector<std::string>{"start:0@0"});
    CHECK(value_of<int64_t>(*a, get_atom::value) == 0);
    // Fresh, but numbering stays above the snapshot it could not read.
    CHECK(value_of<uint64_t>(*a, checkpoint_now_atom::value) == 2u);
    CHECK(latest().schema_version == 2u);
  }
  SECTION("with an upgrade hook restores the converted state") {
    auto opts = options();
    std::vector<uint32_t> calls;
    opts.upgrade = [&calls](uint32_t from, const byte_buffer& bytes)
      -> caf::expected<byte_buffer> {
      calls.push_back(from);
      counter old;
      if (auto err = state_codec<counter>::decode(bytes, old))
        return err;
      return state_codec<counter_v2>::encode(
        counter_v2{old.value, "from v" + std::to_string(from)});
    };
    auto a = spawn_checkpointed<counter_v2>(*sys, opts, make);
    REQUIRE(a);
    run();
    CHECK(calls == std::vector<uint32_t>{1});
    CHECK(starts() == std::vector<std::string>{"start:21@1"});
    CHECK(value_of<int64_t>(*a, add_atom::value, int32_t{1}) == 22);
  }
  SECTION("a failing upgrade hook falls back too") {
    auto opts = options();
    opts.upgrade = [](uint32_t, const byte_buffer&)
      -> caf::expected<byte_buffer> {
      return make_error(errc::schema_mismatch, "cannot convert");
    };
    auto a = spawn_checkpointed<counter_v2>(*sys, opts, make);
    REQUIRE(a);
    run();
    CHECK(starts() == std::vector<std::string>{"start:0@0"});
  }
}

// -- deduplication ------------------------------------------------------------

TEST_CASE_METHOD(ckpt_fixture,
                 "a message replayed after a restore is not applied twice",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.checkpoint_every = 1;
  auto sup = spawn_sup(flags(), {checkpointed_worker<counter>(
                                  "counter", opts, counter_actor(j))});
  auto c = child_handle(sup, "counter");
  auto t1 = with_message_id("t1", caf::make_message(add_atom::value,
                                                    int32_t{5}));
  CHECK(value_of<int32_t>(c, t1) == 5);
  // A duplicate within the same incarnation.
  CHECK(is(error_of(c, t1), errc::duplicate_message));
  tell(sup, "counter", crash_atom::value);
  auto c2 = child_handle(sup, "counter");
  CHECK(c2 != c);
  auto err = error_of(c2, t1);
  CHECK(is(err, errc::duplicate_message));
  CHECK_THAT(render(err), Contains("t1"));
  CHECK(value_of<int32_t>(c2, get_atom::value) == 5);
  // A new id is applied; an id whose handler failed may be retried.
  auto t2 = with_message_id("t2", caf::make_message(add_atom::value,
                                                    int32_t{1}));
  CHECK(value_of<int32_t>(c2, t2) == 6);
  auto f1 = with_message_id("f1", caf::make_message(fail_atom::value));
  CHECK(error_of(c2, f1) == caf::sec::runtime_error);
  CHECK(error_of(c2, f1) == caf::sec::runtime_error);
  detail::checkpoint_payload p;
  CHECK(latest_state(&p).value == 6);
  CHECK(p.applied_ids == std::vector<std::string>{"t1", "t2"});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
}

TEST_CASE_METHOD(ckpt_fixture, "the dedupe window keeps the newest ids",
                 "[checkpoint]") {
  auto opts = options();
  opts.config.checkpoint_every = 1;
  opts.config.dedupe_window = 2;
  auto a = spawn_counter(opts);
  auto msg = [](const char* id) {
    return with_message_id(id, caf::make_message(add_atom::value,
                                                 int32_t{1}));
  };
  CHECK(value_of<int32_t>(a, msg("a")) == 1);
  CHECK(value_of<int32_t>(a, msg("b")) == 2);
  CHECK(value_of<int32_t>(a, msg("c")) == 3);
  CHECK(is(error_of(a, msg("c")), errc::duplicate_message));
  CHECK(is(error_of(a, msg("b")), errc::duplicate_message));
  // "a" left the window: applied again.
  CHECK(value_of<int32_t>(a, msg("a")) == 4);
  detail::checkpoint_payload p;
  latest_state(&p);
  CHECK(p.applied_ids == std::vector<std::string>{"c", "a"});
}

TEST_CASE_METHOD(ckpt_fixture,
                 "the dedupe window recycles long and short ids alike",
                 "[checkpoint]") {
  // The window reuses the oldest id's storage for the next: ids longer
  // than a string's inline buffer and short ones, mixed, many times round.
  auto opts = options();
  opts.config.checkpoint_every = 1;
  opts.config.dedupe_window = 3;
  auto a = spawn_counter(opts);
  auto id_of = [](int n) {
    auto id = std::to_string(n);
    return n % 2 == 0 ? id : "a-long-message-id-past-the-inline-buffer/" + id;
  };
  auto msg = [&](int n) {
    return with_message_id(id_of(n), caf::make_message(add_atom::value,
                                                       int32_t{1}));
  };
  for (int n = 0; n < 20; ++n)
    REQUIRE(value_of<int32_t>(a, msg(n)) == n + 1);
  for (int n = 17; n < 20; ++n) {
    CAPTURE(n);
    CHECK(is(error_of(a, msg(n)), errc::duplicate_message));
  }
  // 16 left the window: applied again, and 17 leaves in its turn.
  CHECK(value_of<int32_t>(a, msg(16)) == 21);
  CHECK(value_of<int32_t>(a, msg(17)) == 22);
  detail::checkpoint_payload p;
  CHECK(latest_state(&p).value == 22);
  CHECK(p.applied_ids
        == std::vector<std::string>{id_of(19), id_of(16), id_of(17)});
}

TEST_CASE_METHOD(ckpt_fixture,
                 "reply_after_checkpoint answers only after the commit",
                 "[checkpoint]") {
  spawn_writer(durability::group_commit, 10ms);
  auto opts = options();
  opts.config.checkpoint_every = 1;
  opts.config.reply_after_checkpoint = true;
  auto a = spawn_counter(opts);
  auto r1 = std::make_shared<std::optional<caf::expected<int32_t>>>();
  auto r2 = std::make_shared<std::optional<caf::expected<int32_t>>>();
  auto send = [&](auto slot, caf::message msg) {
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(a, caf::infinite, msg)
        .then([=](int32_t x) { *slot = x; },
              [=](caf::error& err) { *slot = std::move(err); });
    });
  };
  send(r1, with_message_id("t1", caf::make_message(add_atom::value,
                                                   int32_t{2})));
  send(r2, caf::make_message(add_atom::value, int32_t{3}));
  run();
  // Both handled (pipelined), neither answered: the batch waits for its
  // window.
  CHECK_FALSE(*r1);
  CHECK_FALSE(*r2);
  advance(10ms);
  REQUIRE(*r1);
  REQUIRE(*r2);
  CHECK(**r1 == 2);
  CHECK(**r2 == 5);
  auto st = value_of<snapshot_writer_stats>(writer, snapshot_stats_atom::value);
  CHECK(st.writes == 2u);
  CHECK(st.transactions == 1u);
  // A duplicate is answered once the original is durable (here: at once).
  auto dup = ask<int32_t>(a, with_message_id("t1", caf::make_message(
                                                     add_atom::value,
                                                     int32_t{2})));
  REQUIRE(dup);
  REQUIRE_FALSE(*dup);
  CHECK(is(dup->error(), errc::duplicate_message));
}

} // namespace ft::test
