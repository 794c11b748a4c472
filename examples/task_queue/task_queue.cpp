// The task queue's entity types; see task_queue.hpp for the protocol.
//
// Durability rule used throughout: a state change that must survive a crash
// happens in a handler of the actor's behaviour (so the checkpointed actor
// saves it), never in a response handler. Response handlers only send the
// actor a message (assign, applied, reported) that makes the change.

#include "task_queue.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include <nlohmann/json.hpp>

#include "ft/breaker_registry.hpp"
#include "ft/error.hpp"
#include "ft/watchdog.hpp"

namespace task_queue {

namespace {

using json = nlohmann::json;
using ft::text_args;

// -- helpers ------------------------------------------------------------------

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

std::optional<int64_t> to_int(const std::string& x) {
  int64_t result = 0;
  auto [ptr, ec] = std::from_chars(x.data(), x.data() + x.size(), result);
  if (ec != std::errc{} || ptr != x.data() + x.size() || x.empty())
    return std::nullopt;
  return result;
}

/// `t00042` -> 42 (task ids are `t` and a number below 100000).
std::optional<int64_t> task_number(const std::string& id) {
  if (id.size() < 2 || id[0] != 't')
    return std::nullopt;
  auto n = to_int(id.substr(1));
  if (!n || *n < 0 || *n > 99999)
    return std::nullopt;
  return n;
}

std::string task_id(int64_t n) {
  char id[16];
  std::snprintf(id, sizeof(id), "t%05lld", static_cast<long long>(n));
  return id;
}

caf::error usage(const std::string& what) {
  return ft::make_error(ft::errc::invalid_argument, "usage: " + what);
}

/// Asks entity `key` through the node's router; `inner` may carry an id.
template <class Self>
auto ask_entity(Self* self, const std::string& key, caf::message inner,
                std::chrono::milliseconds timeout) {
  return self->request(ft::node_router(self->system()), timeout,
                       ft::entity_ask_atom::value, key, std::move(inner));
}

/// `(boot_atom)`: the first message every incarnation sends itself, so a
/// message that crashes the actor is never the first one it handles (which
/// would blame the snapshot it started from).
using boot_atom = caf::atom_constant<caf::atom("tqboot")>;
using tick_atom = caf::atom_constant<caf::atom("tqtick")>;
using assign_atom = caf::atom_constant<caf::atom("tqassign")>;
using applied_atom = caf::atom_constant<caf::atom("tqapplied")>;
using beat_atom = caf::atom_constant<caf::atom("tqbeat")>;
using step_atom = caf::atom_constant<caf::atom("tqstep")>;
using reported_atom = caf::atom_constant<caf::atom("tqreported")>;

// -- ledger ---------------------------------------------------------------------

/// Where finished tasks leave their effect. It does not deduplicate by
/// itself: the coordinator sends each effect with the task's id as message
/// id, and libft's dedupe window (stored with this state) is what keeps a
/// replayed effect from counting twice. `counts` has every application per
/// task number (one byte each, so the state stays small over long soaks),
/// so a failure of that guarantee shows as a count above one.
struct ledger_state {
  std::vector<uint8_t> counts;
  int64_t total = 0;
  uint64_t applications = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ledger_state& x) {
  return f(caf::meta::type_name("tq.ledger_state"), x.counts, x.total,
           x.applications);
}

caf::behavior ledger_behavior(ft::checkpointed<ledger_state>& ctx) {
  return {
    [&ctx](const std::string& cmd,
           const text_args& args) -> caf::result<std::string> {
      auto& st = ctx.state();
      if (cmd == "apply") {
        auto n = args.size() == 2 ? task_number(args[0]) : std::nullopt;
        auto value = args.size() == 2 ? to_int(args[1]) : std::nullopt;
        if (!n || !value)
          return usage("apply TASK VALUE (TASK: t and a number < 100000)");
        if (st.counts.size() <= static_cast<size_t>(*n))
          st.counts.resize(static_cast<size_t>(*n) + 1, 0);
        auto& c = st.counts[static_cast<size_t>(*n)];
        if (c < 255)
          ++c;
        st.total += *value;
        ++st.applications;
        return std::to_string(c);
      }
      if (cmd == "summary") {
        // Applied task numbers as [first, last] ranges: compact for the
        // driver's audit however many tasks ran.
        auto doubled = json::array();
        auto ranges = json::array();
        size_t tasks = 0;
        for (size_t i = 0; i < st.counts.size(); ++i) {
          if (st.counts[i] == 0)
            continue;
          ++tasks;
          if (st.counts[i] > 1)
            doubled.push_back(task_id(static_cast<int64_t>(i)));
          if (!ranges.empty() && ranges.back()[1].get<size_t>() + 1 == i)
            ranges.back()[1] = i;
          else
            ranges.push_back(json::array({i, i}));
        }
        return json{{"tasks", tasks},
                    {"applications", st.applications},
                    {"total", st.total},
                    {"doubled", doubled},
                    {"applied", ranges}}
          .dump();
      }
      return ft::make_error(ft::errc::invalid_argument,
                            "ledger: unknown command '" + cmd
                              + "' (known: apply TASK VALUE, summary)");
    },
  };
}

// -- worker ---------------------------------------------------------------------

/// A message to the coordinator that must arrive: kept in the state until
/// the coordinator acknowledged it.
struct report {
  std::string kind; // "done" or "failed"
  std::string task;
  uint32_t attempt = 0;
  int64_t result = 0;
  std::string coordinator;
  std::string reason;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, report& x) {
  return f(caf::meta::type_name("tq.report"), x.kind, x.task, x.attempt,
           x.result, x.coordinator, x.reason);
}

struct worker_state {
  /// The task in progress (empty: idle) and how far it got.
  std::string task;
  std::string coordinator;
  uint32_t attempt = 0;
  uint32_t step = 0;
  uint32_t steps = 0;
  int64_t value = 0;
  /// Restarts while this task was in progress.
  uint32_t interruptions = 0;
  std::vector<report> reports;
  /// Fault injection: every step before this wall-clock time crashes.
  int64_t crash_until_ms = 0;
  uint64_t completed = 0;
  uint64_t handed_back = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_state& x) {
  return f(caf::meta::type_name("tq.worker_state"), x.task, x.coordinator,
           x.attempt, x.step, x.steps, x.value, x.interruptions, x.reports,
           x.crash_until_ms, x.completed, x.handed_back);
}

/// What one incarnation keeps outside its snapshot.
struct worker_runtime {
  /// Fault injection: the worker stops handling anything (as a deadlock
  /// would); only its watchdog gets it out.
  bool hung = false;
  bool step_armed = false;
  /// Reports with a request in flight.
  std::set<std::string> sending;
};

constexpr auto beat_interval = std::chrono::milliseconds(250);

caf::behavior worker_behavior(ft::checkpointed<worker_state>& ctx) {
  auto* self = ctx.self();
  auto rt = std::make_shared<worker_runtime>();
  const std::string me = ctx.key();
  ft::watchdog_ref wd{ft::node::watchdog_name};
  self->send(self, boot_atom::value);
  // A worker that ends on purpose (a migration, its node leaving) is no
  // longer watched; one that crashes stays registered so its replacement
  // takes over the entry.
  self->attach_functor([sys = &self->system(), wd, me](const caf::error& r) {
    if (!r || r == caf::exit_reason::user_shutdown)
      if (auto h = wd.resolve(*sys))
        caf::anon_send(h, ft::watchdog_unregister_atom::value, me);
  });
  auto arm_step = [self, rt] {
    if (rt->step_armed)
      return;
    rt->step_armed = true;
    self->delayed_send(self, std::chrono::milliseconds(step_ms),
                       step_atom::value);
  };
  auto flush = [self, rt, &ctx] {
    for (auto& r : ctx.state().reports) {
      if (!rt->sending.insert(r.task).second)
        continue;
      text_args args{r.task, std::to_string(r.attempt)};
      if (r.kind == "done") {
        args.push_back(std::to_string(r.result));
        args.push_back(ctx.key());
      } else {
        args.push_back(ctx.key());
        args.push_back(r.reason);
      }
      auto task = r.task;
      ask_entity(self, r.coordinator, caf::make_message(r.kind, args),
                 std::chrono::seconds(10))
        .then(
          [self, task](const std::string&) {
            self->send(self, reported_atom::value, task);
          },
          [rt, task](caf::error&) {
            rt->sending.erase(task); // again at the next beat
          });
    }
  };
  auto hand_back = [&ctx](const std::string& reason) {
    auto& st = ctx.state();
    st.reports.push_back(
      report{"failed", st.task, st.attempt, 0, st.coordinator, reason});
    ++st.handed_back;
    st.task.clear();
  };
  return {
    [=, &ctx](boot_atom) {
      ft::watchdog_register(self, wd, me);
      self->send(self, beat_atom::value);
      auto& st = ctx.state();
      if (st.task.empty())
        return;
      if (ctx.restored() && ++st.interruptions >= max_interruptions) {
        hand_back("interrupted " + std::to_string(st.interruptions)
                  + " times during this task");
        flush();
        return;
      }
      arm_step();
    },
    [=, &ctx](beat_atom) {
      if (rt->hung)
        return;
      ft::watchdog_beat(self, wd, me);
      flush();
      self->delayed_send(self, beat_interval, beat_atom::value);
    },
    [=, &ctx](step_atom) {
      rt->step_armed = false;
      auto& st = ctx.state();
      if (rt->hung || st.task.empty())
        return;
      if (now_ms() < st.crash_until_ms)
        throw std::runtime_error(me + ": simulated crash during "
                                 + st.task);
      if (++st.step < st.steps) {
        arm_step();
        return;
      }
      st.reports.push_back(report{"done", st.task, st.attempt, st.value * 2,
                                  st.coordinator, {}});
      ++st.completed;
      st.task.clear();
      flush();
    },
    [=, &ctx](reported_atom, const std::string& task) {
      rt->sending.erase(task);
      auto& rs = ctx.state().reports;
      for (auto i = rs.begin(); i != rs.end(); ++i)
        if (i->task == task) {
          rs.erase(i);
          break;
        }
    },
    [=, &ctx](const std::string& cmd,
              const text_args& args) -> caf::result<std::string> {
      if (rt->hung) // never answered: the caller times out
        return self->make_response_promise<std::string>();
      auto& st = ctx.state();
      if (cmd == "run") {
        auto attempt = args.size() == 5 ? to_int(args[1]) : std::nullopt;
        auto steps = args.size() == 5 ? to_int(args[2]) : std::nullopt;
        auto value = args.size() == 5 ? to_int(args[3]) : std::nullopt;
        if (!attempt || !steps || !value || *steps < 1)
          return usage("run TASK ATTEMPT STEPS VALUE COORDINATOR");
        if (st.task == args[0]) {
          st.attempt = static_cast<uint32_t>(*attempt);
          return std::string{"\"running\""};
        }
        if (!st.task.empty())
          return ft::make_error(ft::errc::invalid_argument,
                                me + " is busy with " + st.task);
        st.task = args[0];
        st.attempt = static_cast<uint32_t>(*attempt);
        st.steps = static_cast<uint32_t>(*steps);
        st.value = *value;
        st.coordinator = args[4];
        st.step = 0;
        st.interruptions = 0;
        arm_step();
        return std::string{"\"accepted\""};
      }
      if (cmd == "cancel") {
        if (args.size() != 1)
          return usage("cancel TASK");
        if (st.task != args[0])
          return std::string{"false"};
        st.task.clear();
        return std::string{"true"};
      }
      if (cmd == "fault") {
        if (args.size() == 2 && args[0] == "crash_loop") {
          auto ms = to_int(args[1]);
          if (!ms || *ms < 0)
            return usage("fault crash_loop MS");
          st.crash_until_ms = now_ms() + *ms;
          return std::string{"\"crash_loop\""};
        }
        if (args.size() == 1 && args[0] == "hang") {
          rt->hung = true;
          return std::string{"\"hanging\""};
        }
        if (args.size() == 1 && args[0] == "clear") {
          st.crash_until_ms = 0;
          return std::string{"\"clear\""};
        }
        return usage("fault crash_loop MS | fault hang | fault clear");
      }
      if (cmd == "status")
        return json{{"task", st.task},
                    {"step", st.step},
                    {"steps", st.steps},
                    {"completed", st.completed},
                    {"handed_back", st.handed_back},
                    {"reports", st.reports.size()},
                    {"restored", ctx.restored()}}
          .dump();
      return ft::make_error(ft::errc::invalid_argument,
                            "worker: unknown command '" + cmd
                              + "' (known: run, cancel, fault, status)");
    },
  };
}

// -- coordinator ------------------------------------------------------------------

enum task_status : uint8_t { pending, assigned, completing, done };

const char* status_name(uint8_t x) {
  static const char* names[] = {"pending", "assigned", "completing", "done"};
  return x <= done ? names[x] : "?";
}

struct task_rec {
  std::string hw;
  int64_t value = 0;
  uint32_t steps = 1;
  uint8_t status = pending;
  std::string worker;
  uint32_t attempt = 0;
  int64_t deadline_ms = 0;
  int64_t result = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_rec& x) {
  return f(caf::meta::type_name("tq.task_rec"), x.hw, x.value, x.steps,
           x.status, x.worker, x.attempt, x.deadline_ms, x.result);
}

struct worker_rec {
  std::string hw;
  /// The task it works on as far as the coordinator knows (empty: idle).
  std::string task;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_rec& x) {
  return f(caf::meta::type_name("tq.worker_rec"), x.hw, x.task);
}

struct coordinator_state {
  std::string ledger;
  int64_t task_timeout_ms = 4000;
  /// Tasks not done yet; a task whose effect is applied leaves this map for
  /// `done_bits`, so the state holds only the work in flight.
  std::map<std::string, task_rec> tasks;
  /// One bit per task number: its effect is applied.
  std::vector<uint64_t> done_bits;
  uint64_t done_count = 0;
  std::map<std::string, worker_rec> workers;
  /// Tasks taken from one worker and given to another.
  uint64_t reassigned = 0;
  uint64_t failures = 0;

  bool is_done(const std::string& id) const {
    auto n = task_number(id);
    if (!n)
      return false;
    auto word = static_cast<size_t>(*n / 64);
    return word < done_bits.size()
           && (done_bits[word] >> (*n % 64) & 1u) != 0;
  }

  /// Moves `id` from `tasks` to the done bits.
  void mark_done(const std::string& id) {
    tasks.erase(id);
    auto n = task_number(id);
    if (!n || is_done(id))
      return;
    auto word = static_cast<size_t>(*n / 64);
    if (done_bits.size() <= word)
      done_bits.resize(word + 1, 0);
    done_bits[word] |= uint64_t{1} << (*n % 64);
    ++done_count;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, coordinator_state& x) {
  return f(caf::meta::type_name("tq.coordinator_state"), x.ledger,
           x.task_timeout_ms, x.tasks, x.done_bits, x.done_count, x.workers,
           x.reassigned, x.failures);
}

/// What one incarnation keeps outside its snapshot: breaker tickets (they
/// belong to this node's registry) and requests in flight.
struct coordinator_runtime {
  std::map<std::string, uint64_t> tickets; // task -> ticket
  std::set<std::string> acquiring;         // workers
  std::set<std::string> reserved;          // tasks
  std::set<std::string> applying;          // tasks
  std::map<std::string, int64_t> refused_until; // worker -> ms
};

constexpr auto tick_interval = std::chrono::milliseconds(200);
constexpr char worker_scope[] = "worker";

caf::behavior coordinator_behavior(ft::checkpointed<coordinator_state>& ctx) {
  auto* self = ctx.self();
  auto rt = std::make_shared<coordinator_runtime>();
  self->send(self, boot_atom::value);
  auto breakers = [self] { return ft::node_breakers(self->system()); };
  // Settles a task's breaker ticket: success, failure or timeout.
  auto settle = [self, rt, breakers](const std::string& task,
                                     std::optional<caf::error> outcome,
                                     bool timed_out = false) {
    auto i = rt->tickets.find(task);
    if (i == rt->tickets.end())
      return;
    auto ticket = i->second;
    rt->tickets.erase(i);
    auto reg = breakers();
    if (!reg)
      return;
    if (timed_out)
      self->send(reg, ft::registry_timeout_atom::value, ticket);
    else if (outcome)
      self->send(reg, ft::registry_complete_atom::value, ticket, *outcome);
    else
      self->send(reg, ft::registry_release_atom::value, ticket);
  };
  auto cancel_on = [self](const std::string& worker, const std::string& task) {
    ask_entity(self, worker,
               caf::make_message(std::string{"cancel"}, text_args{task}),
               std::chrono::seconds(5))
      .then([](const std::string&) {}, [](caf::error&) {});
  };
  // Frees `worker` if it works on `task`.
  auto release_worker = [&ctx](const std::string& worker,
                               const std::string& task) {
    auto w = ctx.state().workers.find(worker);
    if (w != ctx.state().workers.end() && w->second.task == task)
      w->second.task.clear();
  };
  auto dispatch = [=, &ctx] {
    auto& st = ctx.state();
    auto now = now_ms();
    for (auto& [key, w] : st.workers) {
      if (!w.task.empty() || rt->acquiring.count(key) != 0)
        continue;
      auto r = rt->refused_until.find(key);
      if (r != rt->refused_until.end() && r->second > now)
        continue;
      // The first pending task for this hardware, passing over one this
      // worker just gave back (another worker should get it first).
      const std::string* pick = nullptr;
      const std::string* given_back = nullptr;
      for (auto& [id, t] : st.tasks) {
        if (t.status != pending || t.hw != w.hw
            || rt->reserved.count(id) != 0)
          continue;
        if (t.worker != key) {
          pick = &id;
          break;
        }
        if (given_back == nullptr)
          given_back = &id;
      }
      if (pick == nullptr)
        pick = given_back;
      if (pick == nullptr)
        continue;
      auto task = *pick;
      auto worker = key;
      auto reg = breakers();
      if (!reg) { // no node around it (tests): no breaker
        self->send(self, assign_atom::value, task, worker, uint64_t{0});
        rt->acquiring.insert(worker);
        rt->reserved.insert(task);
        continue;
      }
      rt->acquiring.insert(worker);
      rt->reserved.insert(task);
      self
        ->request(reg, std::chrono::seconds(2), ft::registry_acquire_atom::value,
                  std::string{worker_scope}, worker)
        .then(
          [self, task, worker](uint64_t ticket) {
            self->send(self, assign_atom::value, task, worker, ticket);
          },
          [rt, task, worker](caf::error&) {
            // Open circuit (or half-open and busy): try it again later.
            rt->acquiring.erase(worker);
            rt->reserved.erase(task);
            rt->refused_until[worker] = now_ms() + 250;
          });
    }
  };
  auto apply_effects = [=, &ctx] {
    auto& st = ctx.state();
    for (auto& [id, t] : st.tasks) {
      if (t.status != completing || !rt->applying.insert(id).second)
        continue;
      auto task = id;
      auto inner = caf::make_message(std::string{"apply"},
                                     text_args{id, std::to_string(t.value)});
      ask_entity(self, st.ledger, ft::with_message_id("apply/" + id, inner),
                 std::chrono::seconds(20))
        .then(
          [self, task](const std::string&) {
            self->send(self, applied_atom::value, task);
          },
          [self, rt, task](caf::error& err) {
            rt->applying.erase(task);
            // Applied before (a replay after a restart): done as well.
            if (ft::is(err, ft::errc::duplicate_message))
              self->send(self, applied_atom::value, task);
          });
    }
  };
  // A task's worker finished it (`done`), gave it back (`failed`) or is
  // overdue: the common bookkeeping.
  auto finish = [=, &ctx](const std::string& id, task_rec& t,
                          const std::string& reporter, bool ok) {
    release_worker(reporter, id);
    if (t.status == assigned && t.worker != reporter) {
      // Another worker holds it now: tell that one to stop.
      release_worker(t.worker, id);
      cancel_on(t.worker, id);
    }
    settle(id, ok ? std::optional<caf::error>{caf::error{}}
                  : std::optional<caf::error>{ft::make_error(
                      ft::errc::invalid_argument, "task failed")});
  };
  return {
    [=](boot_atom) {
      self->send(self, tick_atom::value);
    },
    [=, &ctx](tick_atom) {
      auto& st = ctx.state();
      auto now = now_ms();
      for (auto& [id, t] : st.tasks) {
        if (t.status != assigned || now < t.deadline_ms)
          continue;
        // Overdue: its worker hangs, crashed for good or lost it.
        release_worker(t.worker, id);
        cancel_on(t.worker, id);
        settle(id, std::nullopt, true);
        t.status = pending;
        ++st.reassigned;
        ++st.failures;
      }
      dispatch();
      apply_effects();
      self->delayed_send(self, tick_interval, tick_atom::value);
    },
    [=, &ctx](assign_atom, const std::string& id, const std::string& worker,
              uint64_t ticket) {
      rt->acquiring.erase(worker);
      rt->reserved.erase(id);
      auto& st = ctx.state();
      auto t = st.tasks.find(id);
      auto w = st.workers.find(worker);
      if (t == st.tasks.end() || w == st.workers.end()
          || t->second.status != pending || !w->second.task.empty()) {
        if (ticket != 0)
          if (auto reg = breakers())
            self->send(reg, ft::registry_release_atom::value, ticket);
        return;
      }
      auto& task = t->second;
      task.status = assigned;
      task.worker = worker;
      ++task.attempt;
      task.deadline_ms = now_ms() + st.task_timeout_ms;
      w->second.task = id;
      if (ticket != 0)
        rt->tickets[id] = ticket;
      auto attempt = task.attempt;
      ask_entity(self, worker,
                 caf::make_message(std::string{"run"},
                                   text_args{id, std::to_string(attempt),
                                             std::to_string(task.steps),
                                             std::to_string(task.value),
                                             ctx.key()}),
                 std::chrono::seconds(3))
        .then([](const std::string&) {},
              [self, id, attempt, worker](caf::error& err) {
                // Refused or unreachable: the same as handing it back.
                self->send(self, std::string{"failed"},
                           text_args{id, std::to_string(attempt), worker,
                                     to_string(err)});
              });
    },
    [=, &ctx](applied_atom, const std::string& id) {
      rt->applying.erase(id);
      if (ctx.state().tasks.count(id) != 0)
        ctx.state().mark_done(id);
    },
    [=, &ctx](const std::string& cmd,
              const text_args& args) -> caf::result<std::string> {
      auto& st = ctx.state();
      if (cmd == "configure") {
        if (args.empty() || args.size() > 2)
          return usage("configure LEDGER [TASK_TIMEOUT_MS]");
        st.ledger = args[0];
        if (args.size() == 2) {
          auto ms = to_int(args[1]);
          if (!ms || *ms < 100)
            return usage("configure LEDGER [TASK_TIMEOUT_MS >= 100]");
          st.task_timeout_ms = *ms;
        }
        return std::string{"true"};
      }
      if (cmd == "add_worker") {
        if (args.size() != 2)
          return usage("add_worker KEY HW");
        st.workers[args[0]].hw = args[1];
        dispatch();
        return std::to_string(st.workers.size());
      }
      if (cmd == "submit") {
        auto steps = args.size() == 4 ? to_int(args[1]) : std::nullopt;
        auto first = args.size() == 4 ? to_int(args[2]) : std::nullopt;
        auto count = args.size() == 4 ? to_int(args[3]) : std::nullopt;
        if (!steps || !first || !count || *steps < 1 || *first < 0
            || *count < 0 || *first + *count > 99999)
          return usage("submit HW STEPS FIRST COUNT (numbers below 100000)");
        if (st.ledger.empty())
          return ft::make_error(ft::errc::invalid_argument,
                                "configure a ledger before submitting");
        int64_t added = 0;
        for (auto n = *first; n < *first + *count; ++n) {
          auto id = task_id(n);
          if (st.is_done(id))
            continue; // submitted and done before: a retried submit
          auto [it, fresh] = st.tasks.emplace(id, task_rec{});
          if (!fresh)
            continue; // submitted before: a retried submit adds nothing
          it->second.hw = args[0];
          it->second.steps = static_cast<uint32_t>(*steps);
          it->second.value = n;
          ++added;
        }
        dispatch();
        return std::to_string(added);
      }
      if (cmd == "done" || cmd == "failed") {
        auto attempt = args.size() == 4 ? to_int(args[1]) : std::nullopt;
        if (!attempt)
          return usage(cmd == "done" ? "done TASK ATTEMPT RESULT WORKER"
                                     : "failed TASK ATTEMPT WORKER REASON");
        auto t = st.tasks.find(args[0]);
        if (t == st.tasks.end()) {
          if (!st.is_done(args[0]))
            return ft::make_error(ft::errc::not_found,
                                  "no task '" + args[0] + "'");
          // Done already: a late or repeated report; free its worker.
          release_worker(cmd == "done" ? args[3] : args[2], args[0]);
          return std::string{"true"};
        }
        auto& task = t->second;
        if (cmd == "done") {
          auto result = to_int(args[2]);
          if (!result)
            return usage("done TASK ATTEMPT RESULT WORKER");
          const auto& worker = args[3];
          if (task.status == pending || task.status == assigned) {
            finish(args[0], task, worker, true);
            task.status = completing;
            task.result = *result;
            apply_effects();
          } else {
            release_worker(worker, args[0]);
          }
          dispatch();
          return std::string{"true"};
        }
        const auto& worker = args[2];
        release_worker(worker, args[0]);
        if (task.status == assigned && task.worker == worker
            && task.attempt == static_cast<uint32_t>(*attempt)) {
          settle(args[0], ft::make_error(ft::errc::invalid_argument,
                                         worker + ": " + args[3]));
          task.status = pending;
          ++st.reassigned;
          ++st.failures;
        }
        dispatch();
        return std::string{"true"};
      }
      if (cmd == "stats") {
        size_t counts[4] = {0, 0, 0, 0};
        for (auto& [id, t] : st.tasks)
          if (t.status <= done)
            ++counts[t.status];
        counts[done] += st.done_count;
        auto workers = json::object();
        for (auto& [key, w] : st.workers)
          workers[key] = json{{"hw", w.hw}, {"task", w.task}};
        json result{{"submitted", st.tasks.size() + st.done_count},
                    {"reassigned", st.reassigned},
                    {"failures", st.failures},
                    {"workers", workers}};
        for (uint8_t i = 0; i <= done; ++i)
          result[status_name(i)] = counts[i];
        return result.dump();
      }
      return ft::make_error(ft::errc::invalid_argument,
                            "coordinator: unknown command '" + cmd
                              + "' (known: configure, add_worker, submit, "
                                "done, failed, stats)");
    },
  };
}

} // namespace

void add_types(ft::entity_types& types) {
  types.add<coordinator_state>("coordinator", coordinator_behavior);
  types.add<worker_state>("worker", worker_behavior);
  types.add<ledger_state>("ledger", ledger_behavior);
}

} // namespace task_queue
