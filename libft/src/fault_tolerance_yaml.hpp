#pragma once

// Private to ft_core: the reader of a `fault_tolerance:` mapping, shared by
// `fault_tolerance_from_yaml` (a document of its own) and the node config
// (a section of it, over the node's entity defaults), so both accept the same
// fields and report the same errors. Defined in checkpoint_config.cpp.

#include <string>

#include <caf/error.hpp>

#include <yaml-cpp/yaml.h>

#include "ft/checkpoint.hpp"

namespace ft::detail {

/// Reads the fields `section` sets over `x` (which holds the caller's
/// defaults), rejecting unknown keys, then validates the result. A null
/// section keeps `x` as it is; a scalar or list fails as `fault_tolerance
/// must be a mapping`. Errors are `invalid_config` naming `source:line`, the
/// field and the value (a rule between two fields points at the line of the
/// field it names, else of `checkpoint_every`). May throw YAML::Exception.
caf::error read_fault_tolerance(const YAML::Node& section,
                                const std::string& source,
                                fault_tolerance_config& x);

} // namespace ft::detail
