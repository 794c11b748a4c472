#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "ft/child_spec.hpp"

namespace ft {

/// A user-written policy for failures, for cases a restart type cannot
/// express (e.g. "after three OOM kills, stop that worker and page someone").
/// The supervisor calls `handle_failure` for every abnormal exit of a
/// permanent or transient child, then `recover` if `can_recover` says yes,
/// and escalates otherwise.
class fault_handler {
public:
  virtual ~fault_handler();

  /// Records a failure of `child_id` with `reason`.
  virtual void handle_failure(const std::string& child_id,
                              const caf::error& reason)
    = 0;

  /// Whether this handler can still recover `child_id`.
  virtual bool can_recover(const std::string& child_id) = 0;

  /// How to recover `child_id`; called only after `can_recover` said yes.
  virtual directive recover(const std::string& child_id) = 0;
};

using fault_handler_factory = std::function<std::shared_ptr<fault_handler>()>;

/// Registers `factory` under `name`, so a config can pick the handler with
/// `strategy: <name>`. Replaces an earlier registration of the same name.
/// Thread-safe.
void register_fault_handler(const std::string& name,
                            fault_handler_factory factory);

/// Creates the handler registered as `name`, or `unknown_fault_handler`.
caf::expected<std::shared_ptr<fault_handler>>
make_fault_handler(const std::string& name);

/// Names of all registered handlers, sorted.
std::vector<std::string> registered_fault_handlers();

/// Whether a handler is registered as `name`.
bool has_fault_handler(const std::string& name);

} // namespace ft
