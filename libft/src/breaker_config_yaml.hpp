#pragma once

// Private to ft_core: the reader of one breaker mapping, shared by
// `breaker_config_from_yaml` (a document of its own) and the node config's
// `breakers:` section (one mapping per scope), so both accept the same
// fields and report the same errors. Defined in breaker_config.cpp.

#include <string>

#include <caf/error.hpp>

#include <yaml-cpp/yaml.h>

#include "ft/breaker_config.hpp"

namespace ft::detail {

/// Reads `root` (a mapping of breaker fields, or null for the defaults) into
/// `x`, rejecting unknown keys, then validates it. Errors are
/// `invalid_breaker_config` naming `source:line`, the field and the value.
/// May throw YAML::Exception.
caf::error read_breaker_config(const YAML::Node& root,
                               const std::string& source, breaker_config& x);

} // namespace ft::detail
