#pragma once

#include <string>

#include <caf/expected.hpp>

#include "ft/child_spec.hpp"

namespace ft {

/// Reads supervisor flags from YAML, e.g.
///
/// ```yaml
/// name: pool
/// strategy: rest_for_one        # or the name of a registered fault handler
/// intensity: 3
/// period: 5                     # seconds
/// auto_shutdown: never
/// buffer_capacity: 1024
/// restart_strategy: exponential # none | fixed | exponential | failure_rate
/// initial_delay: 0.1            # seconds (exponential)
/// max_delay: 5                  # seconds (exponential)
/// multiplier: 2                 # (exponential)
/// jitter: 0.2                   # in [0, 1] (exponential)
/// max_attempts: 10              # 0 = unlimited (fixed, exponential)
/// delay: 1                      # seconds (fixed, failure_rate)
/// max_failures_per_interval: 3  # (failure_rate)
/// interval_seconds: 60          # (failure_rate; the seed configs' name)
/// ```
///
/// Unknown fields, wrong types and out-of-range values are errors naming
/// `source:line`, the field and the value.
caf::expected<supervisor_flags>
supervisor_flags_from_yaml(const std::string& text,
                           const std::string& source = "<config>");

/// As above, reading the file at `path`.
caf::expected<supervisor_flags>
supervisor_flags_from_yaml_file(const std::string& path);

} // namespace ft
