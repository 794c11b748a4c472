#pragma once

// Private to ft_core: the reader of one watchdog mapping, shared by
// `watchdog_config_from_yaml` (a document of its own) and the node config's
// `watchdog:` section, so both accept the same fields and report the same
// errors whatever the document's layout (block or flow). Defined in
// watchdog.cpp.

#include <string>

#include <caf/error.hpp>

#include <yaml-cpp/yaml.h>

#include "ft/watchdog.hpp"

namespace ft::detail {

/// Reads `root` (a mapping of watchdog fields, or null for the defaults)
/// into `x`, rejecting unknown keys, then validates it. Errors are
/// `invalid_config` naming `source:line`, the field and the value. May throw
/// YAML::Exception.
caf::error read_watchdog_config(const YAML::Node& root,
                                const std::string& source,
                                watchdog_config& x);

} // namespace ft::detail
