#pragma once

// Private to ft_core: the one YAML reader behind every libft config
// (supervisor flags, breakers, retry policies), so all of them report errors
// the same way: `source:line: field what`, naming the value.

#include <set>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"

namespace ft::detail {

/// The context string of `err` (empty when it has none, or not a string):
/// what config readers re-point and prefix.
std::string context_of(const caf::error& err);

/// Turns `source:line: field ...` from the reader of a nested mapping into
/// `source:line: section.field ...` (the name `validate` uses), as error
/// `code`; other errors pass unchanged.
caf::error in_section(const caf::error& err, const std::string& source,
                      const std::string& section, errc code);

class yaml_reader {
public:
  /// Reads fields of the mapping `root`; `code` is the error for bad values
  /// unless a call names another.
  yaml_reader(YAML::Node root, std::string source, errc code);

  /// `source:line` of `node`, or `source` if the node has no position.
  std::string where(const YAML::Node& node) const;

  caf::error fail(const YAML::Node& node, const std::string& field,
                  const std::string& what) const;

  caf::error fail(errc code, const YAML::Node& node, const std::string& field,
                  const std::string& what) const;

  /// Scalar text of `field`.
  caf::expected<std::string> text(const std::string& field) const;

  /// A finite number.
  caf::expected<double> number(const std::string& field) const;

  /// A whole number within +-1e9.
  caf::expected<int> integer(const std::string& field) const;
  caf::expected<int> integer(const std::string& field, errc code) const;

  /// Non-negative seconds (fractions allowed) as a timespan.
  caf::expected<caf::timespan> seconds(const std::string& field) const;
  caf::expected<caf::timespan> seconds(const std::string& field,
                                       errc code) const;

  /// `true` or `false` (YAML's spellings).
  caf::expected<bool> boolean(const std::string& field) const;

  /// Whether the mapping has `field`.
  bool has(const std::string& field) const;

  /// Reads `field` into `dst` when the mapping has it (and leaves `dst`, its
  /// default, alone when not), with the reader matching `dst`'s type
  /// (`integer`, `number`, `seconds`, `boolean`, `text`). Returns the read's
  /// error, naming the field and line.
  caf::error read_optional(const std::string& field, int& dst) const;
  caf::error read_optional(const std::string& field, double& dst) const;
  caf::error read_optional(const std::string& field, caf::timespan& dst) const;
  caf::error read_optional(const std::string& field, bool& dst) const;
  caf::error read_optional(const std::string& field, std::string& dst) const;

  /// Fails on the first key that is not in `known`, listing the known ones.
  caf::error check_known(const std::set<std::string>& known) const;

  /// Points an error from `validate()` (context `field = value ...`) at the
  /// line of that field, or of `fallback` when the document does not set the
  /// field (its default lost against a value it does set). Keeps the code.
  caf::error locate(const caf::error& err,
                    const std::string& fallback = {}) const;

  const YAML::Node& root() const {
    return root_;
  }

private:
  YAML::Node root_;
  std::string source_;
  errc code_;
};

/// Parses `text` into a mapping (or a null node for an empty document, which
/// means "all defaults"); syntax errors and non-mappings fail with `code`.
caf::expected<YAML::Node> load_mapping(const std::string& text,
                                       const std::string& source, errc code,
                                       const std::string& what);

/// Turns a yaml-cpp parse error into `code` naming `source:line`.
caf::error yaml_error(const YAML::Exception& ex, const std::string& source,
                      errc code);

} // namespace ft::detail
