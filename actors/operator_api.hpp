#pragma once

// Private to ft_cluster: the operator routes of a node's HTTP endpoint —
// `/health`, `/metrics`, `/api/events`, `/api/tree`, `/api/circuit-breakers`
// (+ `/reset`), `/api/kill`, `/api/auth-check` and the dashboard at `/`.
// They read the node through `operator_context`, so they need nothing of
// the node's internals.

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "cluster_protocol.hpp"

namespace httplib {
class Server;
} // namespace httplib

namespace ft::detail {

struct operator_context {
  caf::actor_system* sys = nullptr;
  node_shared_ptr sh;
  caf::actor breakers;
  /// The roots of the supervision tree (node, entities, attached ones).
  std::function<std::vector<caf::actor>()> supervisors;
  std::function<node_status()> status;
  std::function<std::vector<node_view_entry>()> view;
  /// Whether the node finished starting.
  std::function<bool()> started;
};

void install_operator_routes(httplib::Server& srv,
                             std::shared_ptr<operator_context> ctx);

/// The dashboard page (generated from actors/dashboard/index.html).
extern const char* const dashboard_html;

} // namespace ft::detail
