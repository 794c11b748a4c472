// A cluster node in one process: the actor system with the middleman, the
// snapshot writer, the entity supervisor, the agent (published on the
// cluster port), router and replicator, and the HTTP JSON endpoint. Also
// `ft::node_main`, the whole of `ft-node`'s main.
//
// Layered monitors: a small node supervisor runs the node watchdog and its
// pulse. The pulse heartbeats to the node watchdog (so a hung pulse is
// restarted through the node supervisor) and asks it for its status every
// heartbeat_interval; each answer stamps an atomic time the HTTP thread
// reads. A wedged actor system or watchdog thus shows as
// `"watchdog": {"state": "stale"}` in `GET /api/status`, and a wedged
// process does not answer at all: ft-launch kills and restarts it either
// way. The entity supervisor stays outside the node supervisor: the agent,
// router and replicator hold its handle, so it must never be replaced.

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <fstream>
#include <memory>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cluster_protocol.hpp"
#include "http_support.hpp"
#include "operator_api.hpp"
#include "wall_clock.hpp"
#include "ft/breaker_registry.hpp"
#include "ft/cluster.hpp"
#include "ft/error.hpp"
#include "ft/snapshot_writer.hpp"
#include "ft/supervisor.hpp"
#include "ft/watchdog.hpp"

namespace ft {

using json = nlohmann::json;

namespace {

using detail::body_object;
using detail::node_shared;
using detail::node_shared_ptr;
using detail::reply_error;
using detail::reply_json;

/// `(join_atom) -> bool` and `(leave_atom) -> bool`, as the agent names
/// them.
using join_atom = caf::atom_constant<caf::atom("ftjoin")>;
using leave_atom = caf::atom_constant<caf::atom("ftleave")>;

/// `(pulse_atom)`: the pulse's timer.
using pulse_atom = caf::atom_constant<caf::atom("ftndpulse")>;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// What the pulse learned from the node watchdog; written by the pulse,
/// read by the HTTP thread, hence atomics.
struct pulse_state {
  /// steady_ms() of the node watchdog's latest answer; -1 before the first.
  std::atomic<int64_t> last_ms{-1};
  std::atomic<size_t> workers{0};
};

/// The pulse: heartbeats to the node watchdog as worker "pulse" and asks it
/// for its status each `interval` (answers within `interval` count), so
/// `pulse_state` moves only while the scheduler, the pulse and the watchdog
/// all work. Timers from its own mailbox: a hung pulse stops beating and is
/// restarted by the watchdog through the node supervisor.
caf::behavior pulse_actor(caf::event_based_actor* self,
                          std::shared_ptr<pulse_state> st,
                          caf::timespan interval) {
  auto tick = [self, st, interval] {
    watchdog_ref wd{node::watchdog_name};
    watchdog_beat(self, wd, "pulse");
    if (auto h = wd.resolve(self->system()))
      self->request(h, interval, watchdog_status_atom::value)
        .then(
          [st](const std::vector<watchdog_worker_info>& xs) {
            st->workers = xs.size();
            st->last_ms = steady_ms();
          },
          [](const caf::error&) {
            // Late or gone: the stamp ages, which is the point.
          });
    self->delayed_send(self, interval, pulse_atom::value);
  };
  tick();
  return {
    [tick](pulse_atom) { tick(); },
  };
}

json worker_json(const watchdog_worker_info& x) {
  auto ms = [](caf::timespan t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
  };
  return json{{"id", x.id},
              {"child_id", x.child_id},
              {"actor", x.actor ? json(x.actor.id()) : json(nullptr)},
              {"alive", x.alive},
              {"incarnation", x.incarnation},
              {"silent_ms", ms(x.silent_for)},
              {"progress", x.has_progress ? json(x.progress) : json(nullptr)},
              {"since_progress_ms", ms(x.since_progress)},
              {"failed_recoveries", x.failed_recoveries},
              {"recovering", x.recovering},
              {"findings", x.findings},
              {"last_fault", x.last_fault.empty() ? json(nullptr)
                                                  : json(x.last_fault)}};
}

caf::error make_dirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        return make_error(errc::store_unavailable,
                          "cannot create directory " + cur + ": "
                            + std::strerror(errno));
    }
    if (i < path.size())
      cur += path[i];
  }
  return caf::none;
}

json record_json(const entity_record& x) {
  return json{{"key", x.key},
              {"type", x.type},
              {"node", x.home},
              {"epoch", x.epoch},
              {"state", to_string(x.state)}};
}

} // namespace

// -- node::impl ---------------------------------------------------------------

class node::impl {
public:
  impl(node_config cfg, entity_types types) {
    sh_ = std::make_shared<node_shared>();
    sh_->name = cfg.name;
    sh_->config = std::move(cfg);
    sh_->types = std::move(types);
    sh_->telemetry = std::make_shared<detail::node_telemetry>(
      sh_->config.name, sh_->config.alerts);
  }

  ~impl() {
    shutdown();
  }

  caf::error start(std::function<void(caf::actor_system_config&)> customize) {
    auto& cfg = sh_->config;
    if (auto err = validate(cfg))
      return err;
    auto secret = read_cluster_secret(cfg);
    if (!secret)
      return std::move(secret.error());
    sh_->secret = std::move(*secret);
    if (cfg.data_dir.empty())
      return make_error(errc::invalid_config,
                        "data_dir is not set (the snapshot store needs it)");
    auto snap_dir = cfg.data_dir + "/snapshots";
    if (auto err = make_dirs(snap_dir))
      return err;
    sys_cfg_.load<caf::io::middleman>();
    bool tls = !cfg.tls_cert_file.empty();
    if (tls) {
      // All three are set (validated): every connection between nodes is
      // TLS with certificates checked against the CA, so a node without a
      // certificate from that CA cannot even connect.
      sys_cfg_.load<caf::openssl::manager>();
      sys_cfg_.openssl_certificate = cfg.tls_cert_file;
      sys_cfg_.openssl_key = cfg.tls_key_file;
      sys_cfg_.openssl_cafile = cfg.tls_ca_file;
    }
    detail::add_cluster_types(sys_cfg_);
    sys_cfg_.set("logger.verbosity", caf::atom("quiet"));
    // CAF's work-stealing workers poll for ~25 ms after every wake-up; with
    // heartbeats arriving many times a second that kept an idle node at
    // 20% of a core. Poll briefly, then sleep.
    sys_cfg_.set("work-stealing.aggressive-poll-attempts", size_t{10});
    sys_cfg_.set("work-stealing.moderate-poll-attempts", size_t{20});
    sys_cfg_.set("work-stealing.moderate-sleep-duration",
                 caf::timespan{std::chrono::microseconds(200)});
    if (customize)
      customize(sys_cfg_);
    sys_ = std::make_unique<caf::actor_system>(sys_cfg_);
    auto& sys = *sys_;
    // Events from every part of the node go to one sink (journal, metrics,
    // alerts); it must exist before anything that publishes starts.
    sink_ = detail::spawn_telemetry_sink(sys, sh_->telemetry);
    registry_options ropts;
    ropts.default_config = cfg.breaker_defaults;
    ropts.scopes = cfg.breaker_scopes;
    ropts.subscribers.push_back(sink_);
    auto breakers = spawn_breaker_registry(sys, std::move(ropts));
    if (!breakers)
      return std::move(breakers.error());
    breakers_ = *breakers;
    // Snapshot writer: group commit, so entities that checkpoint every
    // message share fsyncs.
    snapshot_writer_options wopts;
    wopts.dir = snap_dir;
    wopts.store.mode = durability::group_commit;
    wopts.keep_per_key = cfg.fault_tolerance.keep_snapshots;
    wopts.on_commit = [t = sh_->telemetry](const snapshot_commit_info& x) {
      t->on(x);
    };
    auto writer = spawn_snapshot_writer(sys, wopts);
    if (!writer)
      return std::move(writer.error());
    writer_ = *writer;
    // Entity supervisor: one_for_one, generous intensity (each entity
    // has its own poison-snapshot protection); its death ends the node.
    supervisor_flags flags;
    flags.name = "entities@" + cfg.name;
    flags.strategy = supervision_strategy::one_for_one;
    flags.intensity = 1000;
    flags.period = std::chrono::seconds(10);
    flags.subscribers.push_back(sink_);
    auto sup = spawn_supervisor(sys, flags, {});
    if (!sup)
      return std::move(sup.error());
    sup_ = *sup;
    auto sh = sh_;
    counter_ = sys.spawn([sh](caf::event_based_actor*) -> caf::behavior {
      return {
        [sh](supervisor_event& ev) {
          if (ev.kind == event_kind::child_restarted)
            sh->restarts.fetch_add(1);
        },
      };
    });
    caf::anon_send(sup_, subscribe_atom::value, counter_);
    if (auto err = start_watchdog())
      return err;
    router_ = detail::spawn_router(sys, sh_);
    sys.registry().put(node::router_name, router_);
    sys.registry().put(node::breakers_name, breakers_);
    replicator_ = detail::spawn_replicator(sys, sh_, writer_);
    agent_ = detail::spawn_agent(sys, sh_, router_, replicator_, sup_);
    caf::anon_send(router_, agent_);
    // The cluster port.
    // SO_REUSEADDR: a restarted node takes its port back although the
    // connections of its previous incarnation linger in TIME_WAIT (Linux
    // still refuses a second listener, so a port in use is still found).
    auto port = tls ? caf::openssl::publish(agent_, cfg.port,
                                            cfg.host.c_str(), true)
                    : sys.middleman().publish(agent_, cfg.port,
                                              cfg.host.c_str(), true);
    if (!port)
      return make_error(errc::invalid_config,
                        "cannot listen on cluster port " + cfg.host + ":"
                          + std::to_string(cfg.port) + ": "
                          + render(port.error())
                          + " (port in use or address not local?)");
    port_ = *port;
    // The HTTP endpoint.
    if (auto err = start_http())
      return err;
    caf::anon_send(agent_, detail::ports_atom::value, port_, http_port_);
    // Join (or found) the cluster.
    caf::scoped_actor self{sys};
    caf::error result;
    self
      ->request(agent_, cfg.join_timeout + std::chrono::seconds(5),
                join_atom::value)
      .receive([](bool) {}, [&](caf::error& err) { result = std::move(err); });
    if (!result)
      started_flag_ = true;
    return result;
  }

  /// The node supervisor with the node watchdog and its pulse.
  caf::error start_watchdog() {
    auto& cfg = sh_->config;
    auto& sys = *sys_;
    supervisor_flags flags;
    flags.name = "node@" + cfg.name;
    flags.strategy = supervision_strategy::one_for_one;
    flags.intensity = 10;
    flags.period = std::chrono::seconds(60);
    flags.subscribers.push_back(sink_);
    auto nsup = spawn_supervisor(sys, flags, {});
    if (!nsup)
      return std::move(nsup.error());
    node_sup_ = *nsup;
    auto wcfg = cfg.watchdog;
    if (wcfg.node.empty())
      wcfg.node = cfg.name;
    // Weak: the spec lives in the supervisor, a strong handle would be a
    // reference cycle.
    caf::actor_addr weak_sup = node_sup_.address();
    auto sink = sink_;
    auto start_wd = [wcfg, weak_sup, sink](caf::actor_system& sys,
                                           const caf::message&)
      -> caf::expected<caf::actor> {
      auto sup = caf::actor_cast<caf::actor>(weak_sup);
      if (!sup)
        return make_error(errc::start_failed, "node supervisor gone");
      watchdog_options opts;
      opts.registered_name = node::watchdog_name;
      opts.subscribers.push_back(sink);
      return spawn_watchdog(sys, wcfg, sup, std::move(opts));
    };
    auto st = pulse_;
    auto interval = wcfg.heartbeat_interval;
    auto start_pulse = [st, interval](caf::actor_system& sys,
                                      const caf::message&)
      -> caf::expected<caf::actor> {
      return sys.spawn(pulse_actor, st, interval);
    };
    caf::scoped_actor self{sys};
    caf::error result;
    for (auto& spec : {worker("watchdog", start_wd), worker("pulse", start_pulse)})
      if (!result)
        self->request(node_sup_, std::chrono::seconds(10),
                      start_child_atom::value, spec)
          .receive([](const caf::actor&) {},
                   [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  /// The node watchdog's state for `/api/status`.
  void watchdog_status(node_status& st) const {
    auto last = pulse_->last_ms.load();
    auto now = steady_ms();
    auto age = last < 0 ? uptime_ms() : now - last;
    auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(
                   sh_->config.watchdog.heartbeat_timeout)
                   .count();
    st.watchdog_last_beat_ms = age;
    st.watchdog_workers = pulse_->workers.load();
    st.watchdog_state = age > limit ? "stale" : "ok";
  }

  caf::actor watchdog() const {
    if (!sys_)
      return {};
    return sys_->registry().get<caf::actor>(node::watchdog_name);
  }

  caf::error start_http() {
    auto& cfg = sh_->config;
    http_ = std::make_unique<httplib::Server>();
    install_routes(*http_);
    auto ctx = std::make_shared<detail::operator_context>();
    ctx->sys = sys_.get();
    ctx->sh = sh_;
    ctx->breakers = breakers_;
    ctx->supervisors = [this] { return supervisors(); };
    ctx->status = [this] { return status(); };
    ctx->view = [this] { return view(); };
    ctx->started = [this] { return started_flag_.load(); };
    detail::install_operator_routes(*http_, std::move(ctx));
    int port = 0;
    if (cfg.http_port == 0) {
      port = http_->bind_to_any_port(cfg.http_host.c_str());
    } else if (http_->bind_to_port(cfg.http_host.c_str(), cfg.http_port)) {
      port = cfg.http_port;
    } else {
      port = -1;
    }
    if (port <= 0)
      return make_error(errc::invalid_config,
                        "cannot listen on http port " + cfg.http_host + ":"
                          + std::to_string(cfg.http_port)
                          + " (port in use?)");
    http_port_ = static_cast<uint16_t>(port);
    http_thread_ = std::thread([this] { http_->listen_after_bind(); });
    return caf::none;
  }

  void install_routes(httplib::Server& srv) {
    srv.Get("/api/status", [this](const httplib::Request&,
                                  httplib::Response& res) {
      auto st = status();
      reply_json(res, json{{"node", st.name},
                           {"state", to_string(st.state)},
                           {"incarnation", st.incarnation},
                           {"leader", st.leader.empty() ? json(nullptr)
                                                        : json(st.leader)},
                           {"members", st.members},
                           {"entities", st.entities},
                           {"restarts", st.restarts},
                           {"actors", st.actors},
                           {"failovers", sh_->failovers.load()},
                           {"lease", st.lease},
                           {"uptime_ms", uptime_ms()},
                           {"port", st.port},
                           {"http_port", st.http_port},
                           {"pid", static_cast<int64_t>(::getpid())},
                           {"wall_ms", detail::wall_clock_ms()},
                           {"restart_history",
                            json{{"interval_ms", 1000},
                                 {"counts",
                                  sh_->telemetry->restart_history()}}},
                           {"watchdog",
                            json{{"state", st.watchdog_state},
                                 {"last_beat_ms", st.watchdog_last_beat_ms},
                                 {"workers", st.watchdog_workers}}}});
    });
    srv.Get("/api/watchdog", [this](const httplib::Request&,
                                    httplib::Response& res) {
      auto st = status();
      auto wd = watchdog();
      auto fail = [&](const caf::error& err) {
        reply_error(res, err);
        res.status = 503; // the node watchdog is down or hangs
      };
      if (!wd) {
        fail(make_error(errc::not_found, "the node watchdog is not running "
                                         "(restarting?)"));
        return;
      }
      caf::scoped_actor self{*sys_};
      self
        ->request(wd, std::chrono::seconds(2), watchdog_status_atom::value)
        .receive(
          [&](std::vector<watchdog_worker_info>& xs) {
            auto workers = json::array();
            for (auto& x : xs)
              workers.push_back(worker_json(x));
            reply_json(res, json{{"node", st.name},
                                 {"watchdog", sh_->config.watchdog.name},
                                 {"state", st.watchdog_state},
                                 {"last_beat_ms", st.watchdog_last_beat_ms},
                                 {"workers", workers}});
          },
          [&](caf::error& err) { fail(err); });
    });
    srv.Get("/api/nodes", [this](const httplib::Request&,
                                 httplib::Response& res) {
      auto st = status();
      auto nodes = json::array();
      for (auto& e : view()) {
        auto labels = json::object();
        for (auto& [k, v] : e.info.labels)
          labels[k] = v;
        nodes.push_back(json{
          {"name", e.info.name},
          {"host", e.info.host},
          {"port", e.info.port},
          {"http_port", e.info.http_port},
          {"state", to_string(e.info.status)},
          {"incarnation", e.info.incarnation},
          {"labels", labels},
          {"entities", e.entities},
          {"last_heartbeat_ms", e.last_heartbeat_ms < 0
                                  ? json(nullptr)
                                  : json(e.last_heartbeat_ms)},
          {"phi", e.phi}});
      }
      reply_json(res, json{{"leader", st.leader.empty() ? json(nullptr)
                                                        : json(st.leader)},
                           {"nodes", nodes}});
    });
    srv.Get("/api/entities", [this](const httplib::Request&,
                                    httplib::Response& res) {
      auto arr = json::array();
      {
        std::lock_guard<std::mutex> guard{sh_->mtx};
        for (auto& rec : sh_->directory)
          arr.push_back(record_json(rec));
      }
      reply_json(res, json{{"entities", arr}});
    });
    srv.Post("/api/entities", [this](const httplib::Request& req,
                                     httplib::Response& res) {
      auto body = body_object(req, res);
      if (!body)
        return;
      if (!body->contains("type") || !(*body)["type"].is_string()
          || !body->contains("key") || !(*body)["key"].is_string()) {
        reply_error(res, make_error(errc::invalid_argument,
                                    "spawn needs string fields 'type' and "
                                    "'key'"));
        return;
      }
      placement_request preq;
      preq.strategy = sh_->config.placement;
      if (body->contains("on") && (*body)["on"].is_string()) {
        preq.strategy = placement_strategy::pinned;
        preq.node = (*body)["on"].get<std::string>();
      }
      if (body->contains("requires")) {
        auto& r = (*body)["requires"];
        if (!r.is_object()) {
          reply_error(res, make_error(errc::invalid_argument,
                                      "'requires' must be an object"));
          return;
        }
        for (auto& [k, v] : r.items())
          preq.requires_labels[k] = v.is_string() ? v.get<std::string>()
                                                  : v.dump();
        if (preq.strategy != placement_strategy::pinned)
          preq.strategy = placement_strategy::label_aware;
      }
      caf::scoped_actor self{*sys_};
      self
        ->request(router_, std::chrono::seconds(40), entity_spawn_atom::value,
                  (*body)["type"].get<std::string>(),
                  (*body)["key"].get<std::string>(), preq)
        .receive(
          [&](entity_record& rec) { reply_json(res, record_json(rec), 201); },
          [&](caf::error& err) { reply_error(res, err); });
    });
    srv.Get(R"(/api/entities/([^/]+))", [this](const httplib::Request& req,
                                               httplib::Response& res) {
      auto key = req.matches[1].str();
      caf::scoped_actor self{*sys_};
      self
        ->request(router_, std::chrono::seconds(5), entity_where_atom::value,
                  key)
        .receive([&](entity_record& rec) { reply_json(res, record_json(rec)); },
                 [&](caf::error& err) { reply_error(res, err); });
    });
    srv.Post(R"(/api/entities/([^/]+)/ask)", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
      auto key = req.matches[1].str();
      auto body = body_object(req, res);
      if (!body)
        return;
      if (!body->contains("message") || !(*body)["message"].is_string()) {
        reply_error(res, make_error(errc::invalid_argument,
                                    "ask needs a string field 'message'"));
        return;
      }
      text_args args;
      if (body->contains("args")) {
        auto& a = (*body)["args"];
        if (!a.is_array()) {
          reply_error(res, make_error(errc::invalid_argument,
                                      "'args' must be an array"));
          return;
        }
        for (auto& x : a)
          args.push_back(x.is_string() ? x.get<std::string>() : x.dump());
      }
      auto msg = caf::make_message((*body)["message"].get<std::string>(),
                                   std::move(args));
      caf::scoped_actor self{*sys_};
      self
        ->request(router_, std::chrono::seconds(30), entity_ask_atom::value,
                  key, std::move(msg))
        .receive(
          [&](std::string& text) {
            auto value = json::parse(text, nullptr, false);
            if (value.is_discarded())
              value = text;
            reply_json(res, json{{"key", key},
                                 {"node", home_of(key)},
                                 {"result", value}});
          },
          [&](caf::error& err) { reply_error(res, err); });
    });
    srv.Post(R"(/api/entities/([^/]+)/migrate)",
             [this](const httplib::Request& req, httplib::Response& res) {
               auto key = req.matches[1].str();
               auto body = body_object(req, res);
               if (!body)
                 return;
               if (!body->contains("to") || !(*body)["to"].is_string()) {
                 reply_error(res, make_error(errc::invalid_argument,
                                             "migrate needs a string field "
                                             "'to'"));
                 return;
               }
               caf::scoped_actor self{*sys_};
               self
                 ->request(router_, std::chrono::seconds(60),
                           entity_migrate_atom::value, key,
                           (*body)["to"].get<std::string>())
                 .receive(
                   [&](entity_record& rec) {
                     reply_json(res, record_json(rec));
                   },
                   [&](caf::error& err) { reply_error(res, err); });
             });
  }

  /// The roots of `GET /api/tree`: the node supervisor, the entity
  /// supervisor and what user code attached.
  std::vector<caf::actor> supervisors() {
    std::vector<caf::actor> result{node_sup_, sup_};
    std::lock_guard<std::mutex> guard{attached_mtx_};
    result.insert(result.end(), attached_.begin(), attached_.end());
    return result;
  }

  void attach_supervisor(caf::actor sup) {
    if (!sup)
      return;
    caf::anon_send(sup, subscribe_atom::value, sink_);
    std::lock_guard<std::mutex> guard{attached_mtx_};
    attached_.push_back(std::move(sup));
  }

  std::string home_of(const std::string& key) {
    std::lock_guard<std::mutex> guard{sh_->mtx};
    for (auto& rec : sh_->directory)
      if (rec.key == key)
        return rec.home;
    return {};
  }

  int64_t uptime_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now() - started_)
      .count();
  }

  node_status status() const {
    std::lock_guard<std::mutex> guard{sh_->mtx};
    auto st = sh_->status;
    st.lease = sh_->lease_valid();
    st.restarts = sh_->restarts.load();
    st.actors = sys_ ? sys_->registry().running() : 0;
    watchdog_status(st);
    return st;
  }

  std::vector<node_view_entry> view() const {
    std::lock_guard<std::mutex> guard{sh_->mtx};
    return sh_->view;
  }

  void stop() {
    if (!sys_ || stopped_)
      return;
    stopped_ = true;
    {
      // Scoped: a scoped actor still alive would count as running and
      // make the actor system's destructor wait for it forever.
      caf::scoped_actor self{*sys_};
      self->request(agent_, std::chrono::seconds(2), leave_atom::value)
        .receive([](bool) {}, [](caf::error&) {});
    }
    // Let the farewell reach the others before the connections close.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    shutdown();
  }

  void shutdown() {
    if (http_) {
      http_->stop();
      if (http_thread_.joinable())
        http_thread_.join();
      http_.reset();
    }
    if (sys_) {
      // In dependency order, each waited for (bounded): the writer last,
      // so it commits what the entities sent before they stopped.
      {
        caf::scoped_actor self{*sys_};
        for (auto& a : {node_sup_, agent_, router_, replicator_, sup_,
                        counter_, breakers_, writer_, sink_}) {
          if (!a)
            continue;
          self->monitor(a);
          self->send_exit(a, caf::exit_reason::user_shutdown);
          bool down = false;
          self->receive([&](caf::down_msg&) { down = true; },
                        caf::after(std::chrono::seconds(5)) >> [] {});
          if (!down)
            self->send_exit(a, caf::exit_reason::kill);
        }
      }
      sys_->registry().erase(node::router_name);
      sys_->registry().erase(node::breakers_name);
      node_sup_ = agent_ = router_ = replicator_ = sup_ = counter_ = writer_
        = breakers_ = sink_ = nullptr;
      {
        std::lock_guard<std::mutex> guard{attached_mtx_};
        attached_.clear();
      }
      sys_.reset();
    }
  }

  caf::actor_system& system() {
    return *sys_;
  }

  node_shared_ptr sh_;
  caf::actor_system_config sys_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::actor writer_;
  caf::actor sup_;
  /// Runs the node watchdog and its pulse.
  caf::actor node_sup_;
  std::shared_ptr<pulse_state> pulse_ = std::make_shared<pulse_state>();
  caf::actor counter_;
  /// The node's circuit breakers (`GET /api/circuit-breakers`).
  caf::actor breakers_;
  /// Records supervisor, breaker, watchdog and recovery events.
  caf::actor sink_;
  /// Supervisors user code attached (shown in `GET /api/tree`).
  std::mutex attached_mtx_;
  std::vector<caf::actor> attached_;
  /// Set once the node joined or founded its cluster (startup probe).
  std::atomic<bool> started_flag_{false};
  caf::actor router_;
  caf::actor replicator_;
  caf::actor agent_;
  uint16_t port_ = 0;
  uint16_t http_port_ = 0;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point started_
    = std::chrono::steady_clock::now();
};

// -- node ---------------------------------------------------------------------

node::node(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

node::~node() = default;

caf::expected<std::unique_ptr<node>>
node::start(node_config cfg, entity_types types,
            std::function<void(caf::actor_system_config&)> customize) {
  auto ptr = std::make_unique<impl>(std::move(cfg), std::move(types));
  if (auto err = ptr->start(std::move(customize)))
    return err;
  return std::unique_ptr<node>(new node(std::move(ptr)));
}

void node::stop() {
  impl_->stop();
}

node_status node::status() const {
  return impl_->status();
}

std::vector<node_view_entry> node::view() const {
  return impl_->view();
}

caf::actor node::router() const {
  return impl_->router_;
}

caf::actor node::watchdog() const {
  return impl_->watchdog();
}

caf::actor node_router(caf::actor_system& sys) {
  return sys.registry().get<caf::actor>(node::router_name);
}

caf::actor node_breakers(caf::actor_system& sys) {
  return sys.registry().get<caf::actor>(node::breakers_name);
}

caf::actor node::breakers() const {
  return impl_->breakers_;
}

caf::actor node::event_sink() const {
  return impl_->sink_;
}

void node::attach_supervisor(caf::actor sup) {
  impl_->attach_supervisor(std::move(sup));
}

caf::actor_system& node::system() {
  return impl_->system();
}

uint16_t node::port() const {
  return impl_->port_;
}

uint16_t node::http_port() const {
  return impl_->http_port_;
}

// -- node_main ----------------------------------------------------------------

namespace {

bool write_ready_file(const std::string& path, const json& body) {
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp};
    if (!out)
      return false;
    out << body.dump() << "\n";
    if (!out)
      return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

} // namespace

int node_main(int argc, char** argv, entity_types types,
              std::function<void(caf::actor_system_config&)> customize) {
  auto cl = parse_node_command_line(argc, argv);
  if (!cl) {
    std::fprintf(stderr, "ft-node: %s\n", render(cl.error()).c_str());
    return 1;
  }
  if (cl->help) {
    std::fputs(cl->help_text.c_str(), stdout);
    return 0;
  }
  // Before the actor system starts: the snapshot writer's group commits
  // need the heap to keep what each transaction frees (see the function).
  set_heap_headroom(default_heap_headroom);
  // Signals are taken by sigwait below, so every thread must block them
  // (threads inherit the mask): block before the actor system starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  auto name = cl->config.name;
  auto n = node::start(cl->config, std::move(types), std::move(customize));
  if (!n) {
    std::fprintf(stderr, "ft-node %s: cannot start: %s\n", name.c_str(),
                 render(n.error()).c_str());
    return 1;
  }
  auto& nd = **n;
  std::fprintf(stderr, "ft-node %s: up (cluster %s:%u, http %s:%u, pid %d)\n",
               name.c_str(), cl->config.host.c_str(), nd.port(),
               cl->config.http_host.c_str(), nd.http_port(),
               static_cast<int>(::getpid()));
  if (!cl->ready_file.empty()) {
    json body{{"name", name},
              {"pid", static_cast<int64_t>(::getpid())},
              {"port", nd.port()},
              {"http_port", nd.http_port()}};
    if (!write_ready_file(cl->ready_file, body))
      std::fprintf(stderr, "ft-node %s: cannot write ready file %s: %s\n",
                   name.c_str(), cl->ready_file.c_str(), std::strerror(errno));
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "ft-node %s: %s: leaving the cluster\n", name.c_str(),
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  nd.stop();
  return 0;
}

} // namespace ft
