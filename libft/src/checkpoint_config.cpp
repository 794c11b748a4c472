// The `fault_tolerance` section: validation and YAML, plus the few plain
// helpers of ft/checkpoint.hpp that need no actor (names, the message-id
// envelope).

#include "ft/checkpoint.hpp"

#include "fault_tolerance_yaml.hpp"
#include "yaml_reader.hpp"

#include <optional>
#include <string>
#include <utility>

#include <caf/make_message.hpp>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"

namespace ft {

// -- names --------------------------------------------------------------------

const char* to_string(ft_strategy x) noexcept {
  switch (x) {
    case ft_strategy::checkpoint: return "checkpoint";
    case ft_strategy::restart: return "restart";
  }
  return "invalid";
}

namespace {

std::optional<ft_strategy> parse_ft_strategy(const std::string& x) {
  for (auto s : {ft_strategy::checkpoint, ft_strategy::restart})
    if (x == to_string(s))
      return s;
  return std::nullopt;
}

/// Ids travel in every snapshot; a window beyond this is a typo, not a
/// plan (a million ids of 16 bytes make 16 MB per snapshot).
constexpr size_t max_dedupe_window = 1'000'000;

} // namespace

// -- the message-id envelope ---------------------------------------------------

caf::message with_message_id(std::string id, caf::message inner) {
  return caf::make_message(message_id_atom::value, std::move(id),
                           std::move(inner));
}

// -- validation ---------------------------------------------------------------

caf::error validate(const fault_tolerance_config& x) {
  // Context `field = value (why)`: the YAML reader's `locate` finds the
  // field's line from the first word.
  auto fail = [](const char* field, const std::string& value,
                 const std::string& why) {
    return make_error(errc::invalid_config,
                      std::string{field} + " = " + value + " (" + why + ")");
  };
  if (x.strategy != ft_strategy::checkpoint
      && x.strategy != ft_strategy::restart)
    return fail("strategy", std::to_string(static_cast<int>(x.strategy)),
                "must be checkpoint or restart");
  if (x.checkpoint_interval.count() < 0)
    return fail("checkpoint_interval", render_seconds(x.checkpoint_interval),
                "must be >= 0; 0 = off");
  if (x.max_recovery_attempts < 1)
    return fail("max_recovery_attempts",
                std::to_string(x.max_recovery_attempts), "must be >= 1");
  if (x.dedupe_window > max_dedupe_window)
    return fail("dedupe_window", std::to_string(x.dedupe_window),
                "must be <= " + std::to_string(max_dedupe_window));
  if (x.keep_snapshots == 1)
    return fail("keep_snapshots", "1",
                "must be 0 (keep all) or >= 2: a restore falls back to the "
                "snapshot before a poison one");
  if (x.reply_after_checkpoint && x.checkpoint_every != 1)
    return fail("reply_after_checkpoint", "true",
                "needs checkpoint_every = 1, not "
                  + std::to_string(x.checkpoint_every)
                  + ": each reply waits for the snapshot after its message");
  return caf::none;
}

// -- YAML ---------------------------------------------------------------------

namespace {

/// A whole number >= 0 (the reader's integers are signed).
caf::expected<uint64_t> count(const detail::yaml_reader& in,
                              const char* field) {
  auto x = in.integer(field);
  if (!x)
    return x.error();
  if (*x < 0)
    return in.fail(in.root()[field], field,
                   "= " + std::to_string(*x) + " (must be >= 0)");
  return static_cast<uint64_t>(*x);
}

caf::error read_fields(const detail::yaml_reader& in,
                       fault_tolerance_config& x) {
  auto& root = in.root();
  if (in.has("strategy")) {
    auto v = in.text("strategy");
    if (!v)
      return v.error();
    auto s = parse_ft_strategy(*v);
    if (!s)
      return in.fail(root["strategy"], "strategy",
                     "= '" + *v + "' is not checkpoint or restart");
    x.strategy = *s;
  }
  if (auto err = in.read_optional("checkpoint_interval", x.checkpoint_interval))
    return err;
  if (in.has("checkpoint_every")) {
    auto v = count(in, "checkpoint_every");
    if (!v)
      return v.error();
    x.checkpoint_every = *v;
  }
  if (auto err = in.read_optional("max_recovery_attempts", x.max_recovery_attempts))
    return err;
  if (auto err = in.read_optional("checkpoint_dir", x.checkpoint_dir))
    return err;
  if (in.has("dedupe_window")) {
    auto v = count(in, "dedupe_window");
    if (!v)
      return v.error();
    x.dedupe_window = static_cast<size_t>(*v);
  }
  if (in.has("keep_snapshots")) {
    auto v = count(in, "keep_snapshots");
    if (!v)
      return v.error();
    x.keep_snapshots = static_cast<size_t>(*v);
  }
  for (auto [field, dst] :
       {std::pair<const char*, bool*>{"reply_after_checkpoint",
                                      &x.reply_after_checkpoint},
        std::pair<const char*, bool*>{"checkpoint_on_stop",
                                      &x.checkpoint_on_stop}}) {
    if (!in.has(field))
      continue;
    auto v = in.boolean(field);
    if (!v)
      return v.error();
    *dst = *v;
  }
  return caf::none;
}

} // namespace

caf::error detail::read_fault_tolerance(const YAML::Node& section,
                                        const std::string& source,
                                        fault_tolerance_config& x) {
  if (section.IsNull())
    return caf::none;
  detail::yaml_reader in{section, source, errc::invalid_config};
  if (!section.IsMap())
    return in.fail(section, "fault_tolerance", "must be a mapping");
  if (auto err = in.check_known(
        {"strategy", "checkpoint_interval", "checkpoint_every",
         "max_recovery_attempts", "checkpoint_dir", "dedupe_window",
         "keep_snapshots", "reply_after_checkpoint", "checkpoint_on_stop"}))
    return err;
  if (auto err = read_fields(in, x))
    return err;
  // A rule between two fields (reply_after_checkpoint needs
  // checkpoint_every = 1) points at the line of the field it names.
  if (auto err = validate(x))
    return in.locate(err, "checkpoint_every");
  return caf::none;
}

caf::expected<fault_tolerance_config>
fault_tolerance_from_yaml(const std::string& text, const std::string& source) {
  auto loaded = detail::load_mapping(text, source, errc::invalid_config,
                                     "fault_tolerance fields");
  if (!loaded)
    return loaded.error();
  const YAML::Node& doc = *loaded;
  fault_tolerance_config result;
  try {
    // A whole config file (other sections are someone else's) or the
    // section's own mapping. (Copy-constructed, never assigned: assigning a
    // YAML::Node writes into the document instead of rebinding.)
    bool nested = doc.IsMap() && doc["fault_tolerance"];
    const YAML::Node root = nested ? doc["fault_tolerance"] : doc;
    if (auto err = detail::read_fault_tolerance(root, source, result))
      return err;
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, errc::invalid_config);
  }
  return result;
}

} // namespace ft
