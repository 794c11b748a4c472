// The breaker registry: a thin actor around a map of pure `breaker`s. The
// state machine lives in ft_core; this file adds lazy creation per scope,
// tickets (so callers never hold permits), the expiry of abandoned tickets
// and the health JSON.

#include "ft/breaker_registry.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include <caf/all.hpp>

#include <nlohmann/json.hpp>

#include "ft/error.hpp"

#include "breaker_events.hpp"
#include "wall_clock.hpp"

namespace ft {

namespace {

// -- private message atoms ----------------------------------------------------

/// `(sweep_atom)`: expire the tickets whose time is up.
using sweep_atom = caf::atom_constant<caf::atom("ftrgsweep")>;

using time_point = caf::actor_clock::time_point;

using detail::wall_clock_ms;

/// The text of a libft error's context, without the code name, so a wrapper
/// can prefix it (e.g. with the scope).
std::string context_of(const caf::error& err) {
  auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return render(err);
}

class registry_actor : public caf::event_based_actor {
public:
  registry_actor(caf::actor_config& cfg, registry_options opts)
    : caf::event_based_actor(cfg), opts_(std::move(opts)) {
    // nop
  }

  /// Members live until our last handle goes, not until we terminate: the
  /// subscribers may hold handles to us in turn.
  void on_exit() override {
    opts_.subscribers.clear();
  }

  caf::behavior make_behavior() override {
    return {
      [this](registry_acquire_atom, const std::string& scope,
             const std::string& key) -> caf::result<uint64_t> {
        return acquire(scope, key);
      },
      [this](registry_complete_atom, uint64_t ticket,
             const caf::error& outcome) -> caf::result<void> {
        return settle(ticket, [&](circuit& c, const pending& p) {
          auto now = now_();
          if (outcome)
            c.cb.record_error(p.permit, now, now - p.start, outcome);
          else
            c.cb.record_success(p.permit, now, now - p.start);
        });
      },
      [this](registry_timeout_atom, uint64_t ticket) -> caf::result<void> {
        return settle(ticket, [&](circuit& c, const pending& p) {
          c.cb.record_timeout(p.permit, now_());
        });
      },
      [this](registry_release_atom, uint64_t ticket) -> caf::result<void> {
        return settle(ticket, [&](circuit& c, const pending& p) {
          c.cb.release(p.permit);
        });
      },
      [this](registry_stats_atom, const std::string& scope,
             const std::string& key) -> caf::result<breaker_stats> {
        auto c = find(scope, key);
        if (!c)
          return not_found(scope, key);
        return c->cb.stats(now_());
      },
      [this](registry_health_atom) { return health(); },
      [this](registry_reset_atom, const std::string& scope,
             const std::string& key) -> caf::result<uint64_t> {
        auto c = find(scope, key);
        if (!c)
          return not_found(scope, key);
        c->cb.reset(now_());
        return uint64_t{1};
      },
      [this](registry_reset_atom, const std::string& scope) {
        uint64_t n = 0;
        auto i = circuits_.find(scope);
        if (i != circuits_.end())
          for (auto& kvp : i->second) {
            kvp.second.cb.reset(now_());
            ++n;
          }
        return n;
      },
      [this](registry_reset_atom) {
        uint64_t n = 0;
        for (auto& scope : circuits_)
          for (auto& kvp : scope.second) {
            kvp.second.cb.reset(now_());
            ++n;
          }
        return n;
      },
      [this](registry_force_open_atom, const std::string& scope,
             const std::string& key) {
        get(scope, key).cb.force_open(now_());
      },
      [this](registry_disable_atom, const std::string& scope,
             const std::string& key) {
        get(scope, key).cb.disable(now_());
      },
      [this](sweep_atom) { sweep(); },
    };
  }

private:
  // -- state types ------------------------------------------------------------

  struct circuit {
    breaker cb;
    /// Outstanding tickets of this circuit, so a ticket's circuit can never
    /// be removed under it (circuits are never removed anyway today).
    size_t tickets = 0;
  };

  /// What the registry keeps behind a ticket.
  struct pending {
    circuit* target;
    breaker_permit permit;
    time_point start;
    time_point expires;
  };

  // -- helpers ----------------------------------------------------------------

  time_point now_() const {
    return clock().now();
  }

  const breaker_config& config_of(const std::string& scope) const {
    auto i = opts_.scopes.find(scope);
    return i != opts_.scopes.end() ? i->second : opts_.default_config;
  }

  circuit* find(const std::string& scope, const std::string& key) {
    auto i = circuits_.find(scope);
    if (i == circuits_.end())
      return nullptr;
    auto j = i->second.find(key);
    return j != i->second.end() ? &j->second : nullptr;
  }

  /// Finds or creates the circuit; `std::map` keeps the address stable, so
  /// tickets may point at it.
  circuit& get(const std::string& scope, const std::string& key) {
    auto& keys = circuits_[scope];
    auto i = keys.find(key);
    if (i == keys.end()) {
      i = keys.emplace(key, circuit{breaker{config_of(scope), now_()}, 0})
            .first;
      if (!opts_.subscribers.empty())
        i->second.cb.on_transition(
          [this, name = scope + "/" + key](const breaker_transition& t) {
            auto ev = detail::transition_event(name, t);
            for (auto& sub : opts_.subscribers)
              send(sub, ev);
          });
    }
    return i->second;
  }

  static caf::error not_found(const std::string& scope,
                              const std::string& key) {
    return make_error(errc::not_found, "circuit " + scope + "/" + key);
  }

  caf::result<uint64_t> acquire(const std::string& scope,
                                const std::string& key) {
    auto& c = get(scope, key);
    auto now = now_();
    auto permit = c.cb.try_acquire(now);
    if (!permit)
      return make_error(static_cast<errc>(permit.error().code()),
                        "circuit " + scope + "/" + key);
    auto ttl = std::max(c.cb.config().call_timeout, opts_.ticket_ttl);
    auto ticket = ++last_ticket_;
    tickets_.emplace(ticket, pending{&c, *permit, now, now + ttl});
    ++c.tickets;
    schedule_sweep();
    return ticket;
  }

  /// Applies `f` to the ticket's circuit and forgets the ticket.
  template <class F>
  caf::result<void> settle(uint64_t ticket, F f) {
    auto i = tickets_.find(ticket);
    if (i == tickets_.end())
      return make_error(errc::not_found,
                        "ticket " + std::to_string(ticket)
                          + " (already settled or expired)");
    auto p = i->second;
    tickets_.erase(i);
    --p.target->tickets;
    f(*p.target, p);
    return caf::unit;
  }

  /// Keeps one sweep pending while tickets are outstanding, and none
  /// otherwise, so an idle registry sets no timers.
  void schedule_sweep() {
    if (sweep_pending_ || tickets_.empty())
      return;
    sweep_pending_ = true;
    delayed_send(this, opts_.ticket_ttl, sweep_atom::value);
  }

  void sweep() {
    sweep_pending_ = false;
    auto now = now_();
    for (auto i = tickets_.begin(); i != tickets_.end();) {
      auto& p = i->second;
      if (p.expires > now) {
        ++i;
        continue;
      }
      // The caller is gone. With a call timeout, the call has exceeded it;
      // without one, the registry cannot judge, so it only frees the slot.
      if (p.target->cb.config().call_timeout.count() > 0)
        p.target->cb.record_timeout(p.permit, now);
      else
        p.target->cb.release(p.permit);
      --p.target->tickets;
      i = tickets_.erase(i);
    }
    schedule_sweep();
  }

  std::string health() {
    auto now = now_();
    std::vector<circuit_snapshot> xs;
    for (auto& scope : circuits_)
      for (auto& kvp : scope.second)
        xs.push_back({scope.first, kvp.first, kvp.second.cb.stats(now)});
    return breaker_health_json(xs, now, wall_clock_ms());
  }

  // -- member variables -------------------------------------------------------

  registry_options opts_;
  /// scope -> key -> circuit; ordered so the health JSON is stable.
  std::map<std::string, std::map<std::string, circuit>> circuits_;
  std::unordered_map<uint64_t, pending> tickets_;
  /// Tickets count from 1 and are never reused, so a late outcome for a
  /// settled ticket is always `not_found`, never someone else's call.
  uint64_t last_ticket_ = 0;
  bool sweep_pending_ = false;
};

} // namespace

caf::expected<caf::actor> spawn_breaker_registry(caf::actor_system& sys,
                                                 registry_options opts) {
  for (auto& kvp : opts.scopes)
    if (auto err = validate(kvp.second))
      return make_error(errc::invalid_breaker_config,
                        "scope " + kvp.first + ": " + context_of(err));
  if (auto err = validate(opts.default_config))
    return make_error(errc::invalid_breaker_config,
                      "scope default: " + context_of(err));
  if (opts.ticket_ttl.count() <= 0)
    return make_error(errc::invalid_breaker_config,
                      "ticket_ttl = " + render_seconds(opts.ticket_ttl)
                        + " (must be > 0)");
  return sys.spawn<registry_actor>(std::move(opts));
}

std::string breaker_health_json(const std::vector<circuit_snapshot>& xs,
                                time_point now, int64_t wall_now_ms) {
  using nlohmann::json;
  json result = json::object();
  // The scopes operators' dashboards read are always there.
  result[worker_scope] = json::object();
  result[hardware_scope] = json::object();
  result[task_type_scope] = json::object();
  uint64_t open = 0;
  uint64_t half_open = 0;
  uint64_t closed = 0;
  double health_sum = 0;
  for (auto& x : xs) {
    auto& st = x.stats;
    switch (st.state) {
      case breaker_state::open:
      case breaker_state::forced_open:
        ++open;
        break;
      case breaker_state::half_open:
        ++half_open;
        break;
      case breaker_state::closed:
      case breaker_state::disabled:
        ++closed;
        break;
    }
    health_sum += st.health_percentage;
    auto age = std::chrono::duration_cast<std::chrono::milliseconds>(
                 now - st.last_transition)
                 .count();
    result[x.scope][x.key] = {
      {"state", to_string(st.state)},
      {"health_percentage", st.health_percentage},
      {"successes", st.success_count},
      {"failures", st.failure_count},
      {"rejected", st.rejected_count},
      {"last_transition", wall_now_ms - age},
    };
  }
  auto total = static_cast<uint64_t>(xs.size());
  double average = total == 0 ? 100.0 : health_sum / total;
  double overall = total == 0 ? 100.0
                              : 100.0 * (closed + 0.5 * half_open) / total;
  result["aggregate"] = {
    {"total_circuits", total},
    {"open_circuits", open},
    {"half_open_circuits", half_open},
    {"closed_circuits", closed},
    {"average_health", average},
    {"overall_health", overall},
  };
  return result.dump();
}

} // namespace ft
