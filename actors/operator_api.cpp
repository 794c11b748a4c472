// The operator routes of a node's HTTP endpoint. Each handler runs on one
// of cpp-httplib's threads and talks to the node's actors with a scoped
// actor (bounded waits), so a slow actor delays one answer, never the node.

#include "operator_api.hpp"

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <caf/all.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "ft/breaker_registry.hpp"
#include "ft/error.hpp"
#include "ft/health.hpp"
#include "ft/supervisor.hpp"

#include "http_support.hpp"
#include "wall_clock.hpp"

namespace ft::detail {

namespace {

constexpr auto ask_timeout = std::chrono::seconds(2);

int64_t ms_of(caf::timespan x) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(x).count();
}

/// The bearer token of `req` (empty when it has none).
std::string bearer_token(const httplib::Request& req) {
  auto value = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (value.compare(0, prefix.size(), prefix) != 0)
    return {};
  return value.substr(prefix.size());
}

/// Whether `req` carries the cluster token. A cluster without a secret has
/// no token to ask for (it admits any node, too): everything passes.
bool authorized(const operator_context& ctx, const httplib::Request& req,
                httplib::Response& res) {
  auto& secret = ctx.sh->secret;
  if (secret.empty())
    return true;
  auto token = bearer_token(req);
  if (token.size() == secret.size()
      && CRYPTO_memcmp(token.data(), secret.data(), secret.size()) == 0)
    return true;
  reply_error(res, make_error(errc::auth_failed,
                              token.empty()
                                ? "this request needs the cluster token "
                                  "(Authorization: Bearer <secret>)"
                                : "wrong cluster token"));
  return false;
}

// -- supervision tree ---------------------------------------------------------

json tree_json(const supervision_tree& t) {
  auto& r = t.report;
  auto children = json::array();
  for (size_t i = 0; i < r.children.size(); ++i) {
    auto& c = r.children[i];
    json row{{"id", c.id},
             {"type", to_string(c.type)},
             {"state", to_string(c.state)},
             {"actor", c.actor ? json(c.actor.id()) : json(nullptr)},
             {"restarts", c.restarts},
             {"last_exit", c.last_exit.empty() ? json(nullptr)
                                               : json(c.last_exit)}};
    if (i < t.subtrees.size() && t.subtrees[i])
      row["supervisor"] = tree_json(*t.subtrees[i]);
    children.push_back(std::move(row));
  }
  return json{{"name", r.name},
              {"strategy", to_string(r.strategy)},
              {"intensity", r.intensity},
              {"period_ms", ms_of(r.period)},
              {"restarts_in_window", r.restarts_in_window},
              {"dynamic_children", r.dynamic_children},
              {"truncated", r.truncated},
              {"children", std::move(children)}};
}

std::vector<supervision_tree> trees(const operator_context& ctx) {
  std::vector<supervision_tree> result;
  for (auto& sup : ctx.supervisors())
    if (sup)
      if (auto t = describe_tree(*ctx.sys, sup, ask_timeout))
        result.push_back(std::move(*t));
  return result;
}

/// Calls `f(supervisor_name, child)` for every child in `xs`, depth first.
template <class F>
void each_child(const std::vector<supervision_tree>& xs, F&& f) {
  std::function<void(const supervision_tree&)> walk;
  walk = [&](const supervision_tree& t) {
    for (size_t i = 0; i < t.report.children.size(); ++i) {
      f(t.report.name, t.report.children[i]);
      if (i < t.subtrees.size() && t.subtrees[i])
        walk(*t.subtrees[i]);
    }
  };
  for (auto& t : xs)
    walk(t);
}

// -- breakers -----------------------------------------------------------------

/// The registry's health JSON (an empty aggregate when it does not answer).
caf::expected<json> breaker_health(const operator_context& ctx) {
  caf::scoped_actor self{*ctx.sys};
  caf::expected<json> result{json::object()};
  registry_health(self, ctx.breakers, ask_timeout)
    .receive(
      [&](std::string& text) {
        auto doc = json::parse(text, nullptr, false);
        if (doc.is_discarded())
          result = make_error(errc::invalid_argument,
                              "the breaker registry's JSON does not parse");
        else
          result = std::move(doc);
      },
      [&](caf::error& err) { result = std::move(err); });
  return result;
}

/// Calls `f(scope, key, circuit_json)` for each circuit of a health JSON.
template <class F>
void each_circuit(const json& doc, F&& f) {
  for (auto& [scope, keys] : doc.items()) {
    if (scope == "aggregate" || !keys.is_object())
      continue;
    for (auto& [key, c] : keys.items())
      f(scope, key, c);
  }
}

// -- health -------------------------------------------------------------------

health_report judge(const operator_context& ctx) {
  auto& t = *ctx.sh->telemetry;
  health_inputs in;
  in.started = ctx.started();
  auto st = ctx.status();
  in.watchdog_ok = st.watchdog_state == "ok";
  in.restarts_last_minute = t.restarts_last_minute();
  in.escalations_last_minute = t.escalations_last_minute();
  each_child(trees(ctx), [&](const std::string& sup, const child_report& c) {
    if (c.state == child_state::restarting)
      in.restarting_children.push_back(sup + "/" + c.id);
  });
  if (auto doc = breaker_health(ctx)) {
    each_circuit(*doc, [&](const std::string& scope, const std::string& key,
                           const json& c) {
      ++in.circuits;
      auto state = c.value("state", "");
      if (state == "open" || state == "forced_open")
        in.open_circuits.push_back(scope + "/" + key);
      else if (state == "half_open")
        in.half_open_circuits.push_back(scope + "/" + key);
    });
    if (doc->contains("aggregate"))
      in.breaker_capacity = (*doc)["aggregate"].value("overall_health", 100.0);
  }
  in.snapshot_writes = t.snapshot_writes();
  in.snapshot_failures_last_minute = t.snapshot_failures_last_minute();
  in.last_snapshot_failed = t.last_snapshot_failed(&in.last_snapshot_error);
  in.member_state = to_string(st.state);
  in.lease = st.lease;
  for (auto& e : ctx.view()) {
    if (e.info.name == ctx.sh->name)
      continue;
    if (e.info.status == member_status::suspect
        || e.info.status == member_status::down)
      in.unwell_members.push_back(e.info.name + " ("
                                  + to_string(e.info.status) + ")");
  }
  return evaluate_health(in);
}

json component_json(const component_health& c) {
  return json{{"status", to_string(c.status)}, {"reasons", c.reasons}};
}

// -- metrics ------------------------------------------------------------------

/// Brings the counters and gauges that mirror state kept elsewhere (breaker
/// stats, membership, failovers) up to date before a scrape.
class scrape_refresher {
public:
  void refresh(const operator_context& ctx) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto& m = ctx.sh->telemetry->metrics();
    auto to_value = [](ft::counter& c, double v) {
      if (v > c.value())
        c.inc(v - c.value());
    };
    if (auto doc = breaker_health(ctx)) {
      each_circuit(*doc, [&](const std::string& scope, const std::string& key,
                             const json& c) {
        auto state = c.value("state", "");
        for (auto s : {"closed", "open", "half_open", "forced_open",
                       "disabled"})
          m.gauge("ft_breaker_state",
                  "1 for the state a circuit is in, 0 for the others",
                  {{"scope", scope}, {"key", key}, {"state", s}})
            .set(state == s ? 1 : 0);
        m.gauge("ft_breaker_health_percentage",
                "A circuit's health (100 = every recent call succeeded)",
                {{"scope", scope}, {"key", key}})
          .set(c.value("health_percentage", 100.0));
        to_value(m.counter("ft_breaker_rejected_calls_total",
                           "Calls a circuit refused while open or half-open",
                           {{"scope", scope}, {"key", key}}),
                 c.value("rejected", 0.0));
        to_value(m.counter("ft_breaker_calls_total",
                           "Calls a circuit admitted, by outcome",
                           {{"scope", scope}, {"key", key},
                            {"outcome", "success"}}),
                 c.value("successes", 0.0));
        to_value(m.counter("ft_breaker_calls_total",
                           "Calls a circuit admitted, by outcome",
                           {{"scope", scope}, {"key", key},
                            {"outcome", "failure"}}),
                 c.value("failures", 0.0));
      });
    }
    to_value(m.counter("ft_failovers_total",
                       "Entities this node resumed after their home died"),
             static_cast<double>(ctx.sh->failovers.load()));
    std::map<std::string, size_t> by_state;
    for (auto s : {member_status::joining, member_status::up,
                   member_status::suspect, member_status::down,
                   member_status::left})
      by_state[to_string(s)] = 0;
    for (auto& e : ctx.view())
      ++by_state[to_string(e.info.status)];
    for (auto& [state, n] : by_state)
      m.gauge("ft_cluster_members", "Members in this node's view, by state",
              {{"state", state}})
        .set(static_cast<double>(n));
    auto st = ctx.status();
    m.gauge("ft_entities", "Entities hosted by this node")
      .set(static_cast<double>(st.entities));
    m.gauge("ft_lease", "1 while the node holds its quorum lease")
      .set(st.lease ? 1 : 0);
  }

private:
  std::mutex mtx_;
};

// -- kill ---------------------------------------------------------------------

/// Kills the child at `path` (`supervisor/child`): its supervisor sees a
/// crash and restarts it as configured.
void kill_actor(const operator_context& ctx, const std::string& path,
                httplib::Response& res) {
  auto slash = path.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == path.size()) {
    reply_error(res, make_error(errc::invalid_argument,
                                "actor path '" + path
                                  + "' is not supervisor/child"));
    return;
  }
  auto sup = path.substr(0, slash);
  auto id = path.substr(slash + 1);
  caf::actor victim;
  bool known = false;
  each_child(trees(ctx), [&](const std::string& name, const child_report& c) {
    if (name == sup && c.id == id) {
      known = true;
      victim = c.actor;
    }
  });
  if (!known) {
    reply_error(res, make_error(errc::not_found, "no child " + path
                                                   + " in /api/tree"));
    return;
  }
  if (!victim) {
    reply_error(res, make_error(errc::entity_unavailable,
                                "child " + path + " is not running"));
    return;
  }
  caf::anon_send_exit(victim, caf::exit_reason::kill);
  reply_json(res, json{{"killed", path}, {"actor", victim.id()}});
}

} // namespace

void install_operator_routes(httplib::Server& srv,
                             std::shared_ptr<operator_context> ctx) {
  auto refresher = std::make_shared<scrape_refresher>();
  srv.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(dashboard_html, "text/html; charset=utf-8");
  });
  srv.Get("/health", [ctx](const httplib::Request& req,
                           httplib::Response& res) {
    auto h = judge(*ctx);
    json doc{{"node", ctx->sh->name},
             {"status", to_string(h.status)},
             {"liveness", {{"status", h.live ? "up" : "down"}}},
             {"readiness",
              {{"status", h.ready ? "ready" : "not_ready"},
               {"reasons", h.readiness_reasons}}},
             {"startup", {{"status", h.started ? "started" : "starting"}}}};
    auto components = json::object();
    if (req.has_param("component")) {
      auto name = req.get_param_value("component");
      auto c = h.find(name);
      if (!c) {
        reply_error(res, make_error(errc::not_found,
                                    "no health component '" + name
                                      + "' (supervision, breakers, "
                                        "snapshot_store, cluster)"));
        return;
      }
      components[name] = component_json(*c);
      doc["status"] = to_string(worst(c->status, h.live
                                                   ? health_status::healthy
                                                   : health_status::unhealthy));
    } else {
      for (auto& c : h.components)
        components[c.name] = component_json(c);
    }
    doc["components"] = std::move(components);
    auto unhealthy = doc["status"] == "unhealthy";
    reply_json(res, doc, unhealthy ? 503 : 200);
  });
  srv.Get("/metrics", [ctx, refresher](const httplib::Request&,
                                       httplib::Response& res) {
    refresher->refresh(*ctx);
    res.set_content(ctx->sh->telemetry->metrics().render(),
                    prometheus_content_type);
  });
  srv.Get("/api/events", [ctx](const httplib::Request& req,
                               httplib::Response& res) {
    auto number = [&](const char* name, uint64_t fallback,
                      uint64_t max) -> std::optional<uint64_t> {
      if (!req.has_param(name))
        return fallback;
      auto text = req.get_param_value(name);
      if (text.empty() || text.size() > 19
          || text.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
      auto v = std::stoull(text);
      return v > max ? std::nullopt : std::optional<uint64_t>{v};
    };
    auto since = number("since", 0, UINT64_MAX);
    auto limit = number("limit", 1000, 100000);
    auto min_sev = number("min_severity", 1, 4);
    if (!since || !limit || !min_sev || *min_sev < 1) {
      reply_error(res, make_error(errc::invalid_argument,
                                  "since, limit and min_severity (1..4) "
                                  "must be whole numbers"));
      return;
    }
    uint64_t next = 0;
    auto xs = ctx->sh->telemetry->journal().since(
      *since, *limit, static_cast<uint8_t>(*min_sev), &next);
    auto events = json::array();
    for (auto& x : xs)
      events.push_back(json{{"id", x.id},
                            {"ts_ms", x.timestamp_ms},
                            {"source", to_string(x.source)},
                            {"kind", x.kind},
                            {"severity", x.severity},
                            {"subject", x.subject},
                            {"message", x.message}});
    reply_json(res, json{{"node", ctx->sh->name},
                         {"next", next},
                         {"events", std::move(events)}});
  });
  srv.Get("/api/tree", [ctx](const httplib::Request&, httplib::Response& res) {
    auto sups = json::array();
    for (auto& t : trees(*ctx))
      sups.push_back(tree_json(t));
    reply_json(res, json{{"node", ctx->sh->name}, {"supervisors", sups}});
  });
  srv.Get("/api/circuit-breakers", [ctx](const httplib::Request&,
                                         httplib::Response& res) {
    auto doc = breaker_health(*ctx);
    if (!doc) {
      reply_error(res, doc.error());
      res.status = 503;
      return;
    }
    reply_json(res, *doc);
  });
  srv.Post("/api/circuit-breakers/reset", [ctx](const httplib::Request& req,
                                                httplib::Response& res) {
    if (!authorized(*ctx, req, res))
      return;
    auto body = body_object(req, res);
    if (!body)
      return;
    auto str = [&](const char* k) -> std::optional<std::string> {
      if (body->contains(k) && (*body)[k].is_string())
        return (*body)[k].get<std::string>();
      return std::nullopt;
    };
    auto scope = str("scope");
    auto key = str("key");
    bool all = body->value("all", false);
    if (all == (scope.has_value() || key.has_value()) || (key && !scope)) {
      reply_error(res, make_error(errc::invalid_argument,
                                  "reset needs {\"scope\", \"key\"}, "
                                  "{\"scope\"} or {\"all\": true}"));
      return;
    }
    caf::scoped_actor self{*ctx->sys};
    auto done = [&](uint64_t n) { reply_json(res, json{{"reset", n}}); };
    auto fail = [&](caf::error& err) { reply_error(res, err); };
    if (all)
      registry_reset_all(self, ctx->breakers, ask_timeout)
        .receive(done, fail);
    else if (key)
      registry_reset(self, ctx->breakers, *scope, *key, ask_timeout)
        .receive(done, fail);
    else
      registry_reset_scope(self, ctx->breakers, *scope, ask_timeout)
        .receive(done, fail);
  });
  srv.Get("/api/auth-check", [ctx](const httplib::Request& req,
                                   httplib::Response& res) {
    auto nonce = req.get_param_value("nonce");
    if (nonce.size() < 16 || nonce.size() > 128
        || nonce.find_first_not_of("0123456789abcdefABCDEF")
             != std::string::npos) {
      reply_error(res, make_error(errc::invalid_argument,
                                  "nonce must be 16..128 hex digits"));
      return;
    }
    reply_json(res, json{{"node", ctx->sh->name},
                         {"proof",
                          hmac_hex(ctx->sh->secret, "doctor|" + nonce)}});
  });
  srv.Post("/api/kill", [ctx](const httplib::Request& req,
                              httplib::Response& res) {
    if (!authorized(*ctx, req, res))
      return;
    auto body = body_object(req, res);
    if (!body)
      return;
    if (body->contains("actor") && (*body)["actor"].is_string()) {
      kill_actor(*ctx, (*body)["actor"].get<std::string>(), res);
      return;
    }
    if (body->value("node", false)) {
      reply_json(res, json{{"killed", ctx->sh->name},
                           {"pid", static_cast<int64_t>(::getpid())}});
      // After the answer is on its way: the whole process dies as a
      // crashed node would (fault injection), with no farewell.
      std::thread{[] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ::kill(::getpid(), SIGKILL);
      }}.detach();
      return;
    }
    reply_error(res, make_error(errc::invalid_argument,
                                "kill needs {\"actor\": \"supervisor/child\"} "
                                "or {\"node\": true}"));
  });
}

} // namespace ft::detail
