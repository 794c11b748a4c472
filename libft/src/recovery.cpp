#include "ft/recovery.hpp"

#include "yaml_reader.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>
#include <cmath>
#include <iomanip>
#include <set>
#include <sstream>

#include <caf/atom.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"

namespace ft {

using detail::context_of;

namespace {

constexpr recovery_step_kind all_kinds[] = {
  recovery_step_kind::immediate_retry, recovery_step_kind::delayed_retry,
  recovery_step_kind::restart,         recovery_step_kind::switch_worker,
  recovery_step_kind::switch_resource, recovery_step_kind::degrade,
  recovery_step_kind::escalate,
};

/// `RestartKernel` → `restart_kernel`; snake_case stays as is.
std::string snake_case(const std::string& x) {
  std::string result;
  for (size_t i = 0; i < x.size(); ++i) {
    auto c = static_cast<unsigned char>(x[i]);
    if (std::isupper(c)) {
      if (i > 0)
        result += '_';
      result += static_cast<char>(std::tolower(c));
    } else {
      result += x[i];
    }
  }
  return result;
}

/// Calls `fun(name)` for every libft, `caf::sec` and exit reason name.
template <class F>
void for_each_known_error_name(F fun) {
  for (int i = 1; i < 256; ++i) {
    std::string x = to_string(static_cast<errc>(i));
    if (x != "unknown_ft_error")
      fun(x);
  }
  for (int i = 1; i < 256; ++i) {
    auto x = caf::to_string(static_cast<caf::sec>(i));
    if (!x.empty() && x.find_first_of("<>?") == std::string::npos)
      fun(x);
  }
  for (int i = 1; i < 256; ++i) {
    auto x = caf::to_string(static_cast<caf::exit_reason>(i));
    if (!x.empty() && x.find_first_of("<>?") == std::string::npos)
      fun(x);
  }
}

bool contains(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

/// A YAML flow sequence of quoted names (`gpu:3` must not read as a map).
std::string join(const std::vector<std::string>& xs) {
  std::string result = "[";
  for (auto& x : xs)
    result += (result.size() > 1 ? ", \"" : "\"") + x + "\"";
  return result + "]";
}

caf::error config_error(std::string context) {
  return make_error(errc::invalid_config, std::move(context));
}


bool pauses_per_delay(recovery_step_kind x) {
  return x == recovery_step_kind::restart
         || x == recovery_step_kind::switch_worker
         || x == recovery_step_kind::switch_resource
         || x == recovery_step_kind::degrade;
}

} // namespace

// -- step kinds ---------------------------------------------------------------

const char* to_string(recovery_step_kind x) noexcept {
  switch (x) {
    case recovery_step_kind::immediate_retry: return "immediate_retry";
    case recovery_step_kind::delayed_retry: return "delayed_retry";
    case recovery_step_kind::restart: return "restart";
    case recovery_step_kind::switch_worker: return "switch_worker";
    case recovery_step_kind::switch_resource: return "switch_resource";
    case recovery_step_kind::degrade: return "degrade";
    case recovery_step_kind::escalate: return "escalate";
  }
  return "invalid";
}

std::optional<recovery_step_kind>
parse_recovery_step_kind(const std::string& x) {
  auto name = snake_case(x);
  for (auto k : all_kinds)
    if (name == to_string(k))
      return k;
  if (name == "restart_kernel")
    return recovery_step_kind::restart;
  if (name == "use_replica")
    return recovery_step_kind::switch_worker;
  if (name == "failover")
    return recovery_step_kind::switch_resource;
  if (name == "notify_operator")
    return recovery_step_kind::escalate;
  return std::nullopt;
}

// -- error names --------------------------------------------------------------

std::string recovery_error_name(const caf::error& err) {
  if (!err)
    return {};
  if (err.category() == error_category)
    return to_string(static_cast<errc>(err.code()));
  if (err.category() == caf::atom("system"))
    return caf::to_string(static_cast<caf::sec>(err.code()));
  if (err.category() == caf::atom("exit"))
    return caf::to_string(static_cast<caf::exit_reason>(err.code()));
  return caf::to_string(err.category()) + ":" + std::to_string(err.code());
}

bool is_recovery_error_name(const std::string& x) {
  auto colon = x.find(':');
  if (colon != std::string::npos) {
    // `category:code`: an atom (at most 10 characters) and 1..255.
    auto cat = x.substr(0, colon);
    auto code = x.substr(colon + 1);
    if (cat.empty() || cat.size() > 10 || code.empty() || code.size() > 3
        || !std::all_of(code.begin(), code.end(),
                        [](char c) { return std::isdigit(
                                       static_cast<unsigned char>(c)); }))
      return false;
    auto n = std::stoi(code);
    return n >= 1 && n <= 255;
  }
  bool found = false;
  for_each_known_error_name([&](const std::string& name) {
    if (name == x)
      found = true;
  });
  return found;
}

// -- steps and chains ---------------------------------------------------------

int default_attempts(recovery_step_kind x) noexcept {
  switch (x) {
    case recovery_step_kind::immediate_retry: return 1;
    case recovery_step_kind::delayed_retry: return 3;
    case recovery_step_kind::restart: return 3;
    case recovery_step_kind::switch_worker:
    case recovery_step_kind::switch_resource: return INT_MAX;
    case recovery_step_kind::degrade: return 1;
    case recovery_step_kind::escalate: return 1;
  }
  return 1;
}

bool step_applies(const recovery_step& step, const caf::error& err) {
  auto name = recovery_error_name(err);
  if (!step.on.empty() && !contains(step.on, name))
    return false;
  if (contains(step.except, name))
    return false;
  return !step.applies || step.applies(err);
}

std::vector<recovery_step> default_recovery_steps() {
  recovery_step delayed{recovery_step_kind::delayed_retry, 3};
  delayed.backoff.backoff = backoff_kind::exponential;
  delayed.backoff.initial_delay = std::chrono::milliseconds(100);
  delayed.backoff.max_delay = std::chrono::seconds(2);
  delayed.backoff.multiplier = 2.0;
  return {
    {recovery_step_kind::immediate_retry, 1},
    delayed,
    {recovery_step_kind::switch_worker},
    {recovery_step_kind::switch_resource},
    {recovery_step_kind::degrade, 1},
    {recovery_step_kind::escalate},
  };
}

caf::error validate(const recovery_step& x) {
  auto fail = [](const char* field, const std::string& value,
                 const std::string& why) {
    return config_error(std::string{field} + " = " + value + " " + why);
  };
  if (x.kind > recovery_step_kind::escalate)
    return fail("step", std::to_string(static_cast<int>(x.kind)),
                "is not a recovery step");
  if (x.attempts < 0)
    return fail("attempts", std::to_string(x.attempts),
                "is < 0 (0 = the step's default)");
  if (x.kind == recovery_step_kind::escalate && x.attempts > 1)
    return fail("attempts", std::to_string(x.attempts),
                "must be 0 or 1 for escalate (it happens once)");
  if (x.delay.count() < 0)
    return fail("delay", render_seconds(x.delay), "is < 0");
  if (x.delay.count() > 0 && !pauses_per_delay(x.kind))
    return fail("delay", render_seconds(x.delay),
                std::string{"must be 0 for "} + to_string(x.kind)
                  + (x.kind == recovery_step_kind::delayed_retry
                       ? " (its pauses follow initial_delay and backoff)"
                       : ""));
  if (x.kind == recovery_step_kind::delayed_retry)
    if (auto err = validate(x.backoff)) {
      // Same field names, libft's config code.
      return config_error(context_of(err));
    }
  for (auto* list : {&x.on, &x.except})
    for (auto& name : *list)
      if (!is_recovery_error_name(name))
        return fail(list == &x.on ? "on" : "except", "'" + name + "'",
                    "is not an error name (a libft or caf::sec name, or "
                    "category:code)");
  return caf::none;
}

namespace {

/// Checks the chain-level rules for step `i`; context `chain[i].field ...`.
caf::error validate_position(const std::vector<recovery_step>& steps,
                             size_t i) {
  if (steps[i].kind == recovery_step_kind::escalate && i + 1 < steps.size())
    return config_error("chain[" + std::to_string(i)
                        + "].step = escalate must be the last step (it ends "
                          "the chain; "
                        + std::to_string(steps.size() - i - 1)
                        + " step(s) after it would never run)");
  return caf::none;
}

} // namespace

caf::error validate(const recovery_chain_config& cfg) {
  if (cfg.steps.empty())
    return config_error("chain = [] must have at least one step");
  for (size_t i = 0; i < cfg.steps.size(); ++i) {
    if (auto err = validate(cfg.steps[i]))
      return config_error("chain[" + std::to_string(i) + "]."
                          + context_of(err));
    if (auto err = validate_position(cfg.steps, i))
      return err;
  }
  if (cfg.call_timeout.count() < 0)
    return config_error("call_timeout = " + render_seconds(cfg.call_timeout)
                        + " is < 0 (0 = no limit)");
  return caf::none;
}

// -- policies -----------------------------------------------------------------

recovery_chain_config recovery_policy::to_chain() const {
  recovery_chain_config result;
  result.steps.clear();
  recovery_step main{strategy, 0};
  switch (strategy) {
    case recovery_step_kind::restart:
      main.attempts = max_restarts;
      main.delay = restart_delay;
      break;
    case recovery_step_kind::delayed_retry:
      main.attempts = max_restarts;
      main.backoff.backoff = backoff_kind::fixed;
      main.backoff.initial_delay = restart_delay;
      main.backoff.max_delay = restart_delay;
      break;
    case recovery_step_kind::immediate_retry:
    case recovery_step_kind::switch_worker:
    case recovery_step_kind::switch_resource:
      main.attempts = max_restarts;
      break;
    case recovery_step_kind::degrade:
    case recovery_step_kind::escalate:
      break;
  }
  // max_restarts = 0 means "do not apply the strategy" (a step's 0 would
  // mean its default).
  if (max_restarts > 0 || strategy == recovery_step_kind::degrade
      || strategy == recovery_step_kind::escalate)
    result.steps.push_back(std::move(main));
  if (escalation)
    result.steps.push_back(recovery_step{*escalation});
  return result;
}

caf::error validate(const recovery_policy& x) {
  if (x.strategy > recovery_step_kind::escalate)
    return config_error("strategy = "
                        + std::to_string(static_cast<int>(x.strategy))
                        + " is not a recovery strategy");
  if (x.max_restarts < 0)
    return config_error("max_restarts = " + std::to_string(x.max_restarts)
                        + " is < 0");
  if (x.restart_delay.count() < 0)
    return config_error("restart_delay = " + render_seconds(x.restart_delay)
                        + " is < 0");
  if (x.max_restarts == 0 && !x.escalation
      && x.strategy != recovery_step_kind::degrade
      && x.strategy != recovery_step_kind::escalate)
    return config_error(std::string{"max_restarts = 0 leaves no step: "}
                        + to_string(x.strategy)
                        + " never runs and there is no escalation");
  if (x.escalation) {
    if (*x.escalation > recovery_step_kind::escalate)
      return config_error("escalation = "
                          + std::to_string(static_cast<int>(*x.escalation))
                          + " is not a recovery strategy");
    if (*x.escalation == x.strategy)
      return config_error(std::string{"escalation = "}
                          + to_string(*x.escalation)
                          + " escalates to the strategy itself");
    if (x.strategy == recovery_step_kind::escalate)
      return config_error(std::string{"escalation = "}
                          + to_string(*x.escalation)
                          + " cannot follow strategy = escalate "
                            "(notify_operator), which ends the chain");
  }
  if (x.strategy == recovery_step_kind::delayed_retry) {
    // to_chain turns restart_delay into a fixed backoff.
    auto chain = x.to_chain();
    if (auto err = validate(chain.steps.front().backoff))
      return config_error("restart_delay = " + render_seconds(x.restart_delay)
                          + " makes an invalid backoff: " + context_of(err));
  }
  return caf::none;
}

// -- the chain's state machine -------------------------------------------------

const char* to_string(recovery_decision x) noexcept {
  switch (x) {
    case recovery_decision::attempt: return "attempt";
    case recovery_decision::skip: return "skip";
    case recovery_decision::exhausted: return "exhausted";
  }
  return "invalid";
}

recovery_plan::recovery_plan(recovery_chain_config cfg,
                             recovery_targets targets)
  : cfg_(std::move(cfg)), targets_(targets) {
  // nop
}

int recovery_plan::limit(const recovery_step& step) const noexcept {
  auto n = step.attempts > 0 ? step.attempts : default_attempts(step.kind);
  auto cap = [n](size_t alternatives) {
    return static_cast<int>(
      std::min(static_cast<size_t>(n), alternatives));
  };
  switch (step.kind) {
    case recovery_step_kind::switch_worker: return cap(targets_.workers);
    case recovery_step_kind::switch_resource: return cap(targets_.resources);
    case recovery_step_kind::escalate: return 1;
    default: return n;
  }
}

std::string recovery_plan::skip_reason(const recovery_step& step,
                                       const caf::error& last) const {
  switch (step.kind) {
    case recovery_step_kind::restart:
      if (!targets_.restartable)
        return "no supervisor and child id to restart";
      break;
    case recovery_step_kind::switch_worker:
      if (targets_.workers == 0)
        return "no other worker in the pool";
      break;
    case recovery_step_kind::switch_resource:
      if (targets_.resources == 0)
        return "no other resource";
      break;
    case recovery_step_kind::degrade:
      if (!targets_.fallback)
        return "no fallback";
      break;
    default:
      break;
  }
  if (!step_applies(step, last)) {
    auto name = recovery_error_name(last);
    return "does not apply to " + (name.empty() ? "no error" : name);
  }
  if (limit(step) <= 0)
    return "no attempts";
  return {};
}

void recovery_plan::advance() noexcept {
  ++index_;
  done_ = 0;
  previous_ = caf::timespan{0};
}

recovery_action recovery_plan::next(const caf::error& last, double random01) {
  recovery_action result;
  while (index_ < cfg_.steps.size()) {
    auto& step = cfg_.steps[index_];
    result.step = step.kind;
    result.step_index = index_;
    if (done_ == 0) {
      auto why = skip_reason(step, last);
      if (!why.empty()) {
        result.decision = recovery_decision::skip;
        result.reason = std::move(why);
        advance();
        return result;
      }
    } else if (done_ >= limit(step) || !step_applies(step, last)) {
      advance();
      continue;
    }
    ++done_;
    ++attempts_;
    result.decision = recovery_decision::attempt;
    result.attempt = done_;
    switch (step.kind) {
      case recovery_step_kind::delayed_retry:
        result.delay = backoff_delay(step.backoff, done_, previous_,
                                     random01);
        previous_ = result.delay;
        break;
      case recovery_step_kind::switch_worker:
      case recovery_step_kind::switch_resource:
        result.target = static_cast<size_t>(done_ - 1);
        result.delay = step.delay;
        break;
      case recovery_step_kind::escalate:
        // Ends the chain: nothing runs after it.
        index_ = cfg_.steps.size();
        break;
      case recovery_step_kind::immediate_retry:
        break;
      default:
        result.delay = step.delay;
        break;
    }
    return result;
  }
  result = recovery_action{};
  result.step_index = cfg_.steps.size();
  if (!cfg_.steps.empty())
    result.step = cfg_.steps.back().kind;
  return result;
}

// -- events -------------------------------------------------------------------

const char* to_string(recovery_outcome x) noexcept {
  switch (x) {
    case recovery_outcome::succeeded: return "succeeded";
    case recovery_outcome::failed: return "failed";
    case recovery_outcome::skipped: return "skipped";
    case recovery_outcome::escalated: return "escalated";
    case recovery_outcome::exhausted: return "exhausted";
  }
  return "invalid";
}

uint8_t severity_of(recovery_step_kind step,
                    recovery_outcome outcome) noexcept {
  switch (outcome) {
    case recovery_outcome::escalated: return 4;
    case recovery_outcome::exhausted: return 3;
    case recovery_outcome::failed: return 2;
    case recovery_outcome::succeeded:
      return step == recovery_step_kind::degrade ? 2 : 1;
    case recovery_outcome::skipped: return 1;
  }
  return 1;
}

std::string to_string(const recovery_event& x) {
  std::string result = "[" + x.name + "] " + to_string(x.step);
  if (x.attempt > 0)
    result += " #" + std::to_string(x.attempt);
  if (!x.target.empty())
    result += " " + x.target;
  result += " ";
  result += to_string(x.outcome);
  if (x.delay.count() > 0)
    result += " delay=" + std::to_string(std::chrono::duration_cast<
                                           std::chrono::milliseconds>(x.delay)
                                           .count())
              + "ms";
  if (!x.detail.empty())
    result += " (" + x.detail + ")";
  if (x.error)
    result += " error=" + render(x.error);
  result += " severity=" + std::to_string(x.severity);
  return result;
}

// -- YAML ---------------------------------------------------------------------

namespace {

constexpr errc yaml_code = errc::invalid_config;

/// Points an error of `validate(step)` (context `field = value ...`) at the
/// line of that field in `node` (or of the step) and names the field as
/// `chain[i].field`.
caf::error locate_step(const detail::yaml_reader& in, const YAML::Node& node,
                       size_t i, const caf::error& err) {
  auto ctx = context_of(err);
  auto field = ctx.substr(0, ctx.find(' '));
  auto position = [&] {
    if (node.IsMap())
      if (auto x = node[field])
        return in.where(x);
    return in.where(node);
  };
  return config_error(position() + ": chain[" + std::to_string(i) + "]."
                      + ctx);
}

/// Reads a step kind from `field` of `in` (canonical names and aliases).
caf::expected<recovery_step_kind> read_kind(const detail::yaml_reader& in,
                                            const std::string& field,
                                            const std::string& label) {
  auto x = in.text(field);
  if (!x)
    return x.error();
  if (auto k = parse_recovery_step_kind(*x))
    return *k;
  std::string names;
  for (auto k : all_kinds)
    names += (names.empty() ? "" : ", ") + std::string{to_string(k)};
  return in.fail(in.root()[field], label,
                 "= '" + *x + "' is not a recovery step (" + names
                   + "; aliases restart_kernel, use_replica, failover, "
                     "notify_operator)");
}

/// Reads an error-name list: a sequence of scalars or one scalar.
caf::expected<std::vector<std::string>>
read_names(const detail::yaml_reader& in, const std::string& field,
           const std::string& label) {
  auto node = in.root()[field];
  std::vector<std::string> result;
  if (node.IsScalar()) {
    result.push_back(node.Scalar());
  } else if (node.IsSequence()) {
    for (auto x : node) {
      if (!x.IsScalar())
        return in.fail(x, label, "must list error names");
      result.push_back(x.Scalar());
    }
  } else if (!node.IsNull()) {
    return in.fail(node, label, "must be a list of error names");
  }
  for (size_t i = 0; i < result.size(); ++i)
    if (!is_recovery_error_name(result[i])) {
      auto at = node.IsSequence() ? node[i] : node;
      return in.fail(at, label,
                     "= '" + result[i]
                       + "' is not an error name (a libft or caf::sec name, "
                         "or category:code)");
    }
  return result;
}

/// Reads step `i` of a chain from `node` (a mapping or a bare name).
caf::expected<recovery_step> read_step(const YAML::Node& node, size_t i,
                                       const std::string& source) {
  auto prefix = "chain[" + std::to_string(i) + "]";
  detail::yaml_reader in{node, source, yaml_code};
  recovery_step result;
  if (node.IsScalar()) {
    // A bare name: the kind with its defaults.
    auto k = parse_recovery_step_kind(node.Scalar());
    if (!k)
      return in.fail(node, prefix,
                     "= '" + node.Scalar() + "' is not a recovery step");
    result.kind = *k;
    if (result.kind == recovery_step_kind::delayed_retry)
      result.backoff = default_recovery_steps()[1].backoff;
    return result;
  }
  if (!node.IsMap())
    return in.fail(node, prefix, "must be a step name or a mapping");
  if (auto err = in.check_known({"step", "attempts", "delay", "backoff",
                                 "jitter", "initial_delay", "max_delay",
                                 "multiplier", "on", "except"}))
    return err;
  if (!in.has("step"))
    return in.fail(node, prefix + ".step", "is missing");
  auto kind = read_kind(in, "step", prefix + ".step");
  if (!kind)
    return kind.error();
  result.kind = *kind;
  auto delayed = result.kind == recovery_step_kind::delayed_retry;
  if (delayed)
    result.backoff = default_recovery_steps()[1].backoff;
  if (auto err = in.read_optional("attempts", result.attempts))
    return err;
  if (auto err = in.read_optional("delay", result.delay))
    return err;
  for (auto field : {"backoff", "jitter", "initial_delay", "max_delay",
                     "multiplier"})
    if (!delayed && in.has(field))
      return in.fail(node[field], prefix + "." + field,
                     std::string{"only applies to delayed_retry, not to "}
                       + to_string(result.kind));
  if (in.has("backoff")) {
    auto x = in.text("backoff");
    if (!x)
      return x.error();
    auto k = parse_backoff_kind(*x);
    if (!k)
      return in.fail(node["backoff"], prefix + ".backoff",
                     "= '" + *x
                       + "' is not fixed, linear, exponential or "
                         "exponential_with_jitter");
    result.backoff.backoff = *k;
  }
  if (in.has("jitter")) {
    auto x = in.text("jitter");
    if (!x)
      return x.error();
    auto k = parse_jitter_kind(*x);
    if (!k)
      return in.fail(node["jitter"], prefix + ".jitter",
                     "= '" + *x + "' is not full or decorrelated");
    result.backoff.jitter = *k;
  }
  if (in.has("initial_delay")) {
    auto x = in.seconds("initial_delay");
    if (!x)
      return x.error();
    result.backoff.initial_delay = *x;
    // A max_delay left at its default must not undercut the initial delay.
    if (!in.has("max_delay"))
      result.backoff.max_delay = std::max(result.backoff.max_delay, *x);
  }
  if (auto err = in.read_optional("max_delay", result.backoff.max_delay))
    return err;
  if (auto err = in.read_optional("multiplier", result.backoff.multiplier))
    return err;
  for (auto field : {"on", "except"}) {
    if (!in.has(field))
      continue;
    auto x = read_names(in, field, prefix + "." + field);
    if (!x)
      return x.error();
    (std::string{field} == "on" ? result.on : result.except) = std::move(*x);
  }
  if (auto err = validate(result))
    return locate_step(in, node, i, err);
  return result;
}

/// Reads the policy fields of `in` (they are known to be allowed).
caf::expected<recovery_policy> read_policy(const detail::yaml_reader& in) {
  recovery_policy result;
  if (in.has("strategy")) {
    auto k = read_kind(in, "strategy", "strategy");
    if (!k)
      return k.error();
    result.strategy = *k;
  }
  if (auto err = in.read_optional("max_restarts", result.max_restarts))
    return err;
  if (auto err = in.read_optional("restart_delay", result.restart_delay))
    return err;
  if (in.has("escalation")) {
    auto node = in.root()["escalation"];
    // `escalation: none` / `~` means no escalation step.
    if (!node.IsNull() && !(node.IsScalar() && node.Scalar() == "none")) {
      auto k = read_kind(in, "escalation", "escalation");
      if (!k)
        return k.error();
      result.escalation = *k;
    }
  }
  if (auto err = validate(result))
    return in.locate(err, "strategy");
  return result;
}

/// The mapping with the recovery fields: the root, or its `recovery:` entry.
YAML::Node recovery_root(const YAML::Node& root) {
  if (root.IsMap() && root.size() == 1 && root["recovery"])
    return root["recovery"];
  return root;
}

const std::set<std::string> policy_fields = {"strategy", "max_restarts",
                                             "restart_delay", "escalation"};

/// Renders seconds so that the reader gets exactly `x` back: the shortest
/// decimal whose truncation to nanoseconds (as `yaml_reader::seconds` does)
/// is `x`.
std::string render_exact_seconds(caf::timespan x) {
  auto secs = std::chrono::duration<double>(x).count();
  for (int digits = 1; digits <= 17; ++digits) {
    std::ostringstream out;
    out << std::setprecision(digits) << secs;
    auto back = std::chrono::duration_cast<caf::timespan>(
      std::chrono::duration<double>(std::stod(out.str())));
    if (back == x)
      return out.str();
  }
  // Half a nanosecond above: truncation lands on x.
  std::ostringstream out;
  out << std::setprecision(17) << (static_cast<double>(x.count()) + 0.5) / 1e9;
  return out.str();
}

} // namespace

caf::expected<recovery_policy>
recovery_policy_from_yaml(const std::string& text, const std::string& source) {
  auto loaded = detail::load_mapping(text, source, yaml_code,
                                     "recovery policy fields");
  if (!loaded)
    return loaded.error();
  auto root = recovery_root(*loaded);
  if (root.IsNull())
    return recovery_policy{};
  try {
    detail::yaml_reader in{root, source, yaml_code};
    if (!root.IsMap())
      return in.fail(root, "recovery", "must be a mapping");
    if (auto err = in.check_known(policy_fields))
      return err;
    return read_policy(in);
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, yaml_code);
  }
}

caf::expected<recovery_chain_config>
recovery_chain_from_yaml(const std::string& text, const std::string& source) {
  auto loaded = detail::load_mapping(text, source, yaml_code,
                                     "recovery chain fields");
  if (!loaded)
    return loaded.error();
  auto root = recovery_root(*loaded);
  if (root.IsNull())
    return recovery_chain_config{};
  try {
    detail::yaml_reader in{root, source, yaml_code};
    if (!root.IsMap())
      return in.fail(root, "recovery", "must be a mapping");
    auto known = policy_fields;
    known.insert("chain");
    known.insert("call_timeout");
    if (auto err = in.check_known(known))
      return err;
    recovery_chain_config result;
    auto policy_form = std::any_of(policy_fields.begin(), policy_fields.end(),
                                   [&](auto& f) { return in.has(f); });
    if (in.has("chain")) {
      if (policy_form) {
        for (auto& f : policy_fields)
          if (in.has(f))
            return in.fail(root[f], f,
                           "cannot be combined with chain (use either a "
                           "chain of steps or the policy form)");
      }
      auto chain = root["chain"];
      if (!chain.IsSequence())
        return in.fail(chain, "chain", "must be a list of steps");
      if (chain.size() == 0)
        return in.fail(chain, "chain", "= [] must have at least one step");
      result.steps.clear();
      for (size_t i = 0; i < chain.size(); ++i) {
        auto step = read_step(chain[i], i, source);
        if (!step)
          return step.error();
        result.steps.push_back(std::move(*step));
        if (result.steps[i].kind == recovery_step_kind::escalate
            && i + 1 < chain.size())
          return locate_step(in, chain[i], i,
                             config_error(
                               "step = escalate must be the last step (it "
                               "ends the chain; "
                               + std::to_string(chain.size() - i - 1)
                               + " step(s) after it would never run)"));
      }
    } else if (policy_form) {
      auto policy = read_policy(in);
      if (!policy)
        return policy.error();
      result = policy->to_chain();
    }
    if (auto err = in.read_optional("call_timeout", result.call_timeout))
      return err;
    if (auto err = validate(result))
      return in.locate(err, in.has("chain") ? "chain" : "strategy");
    return result;
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, yaml_code);
  }
}

std::string to_yaml(const recovery_chain_config& cfg) {
  std::ostringstream out;
  out << "call_timeout: " << render_exact_seconds(cfg.call_timeout) << "\n";
  out << "chain:\n";
  for (auto& step : cfg.steps) {
    out << "  - step: " << to_string(step.kind) << "\n";
    out << "    attempts: " << step.attempts << "\n";
    if (step.delay.count() != 0)
      out << "    delay: " << render_exact_seconds(step.delay) << "\n";
    if (step.kind == recovery_step_kind::delayed_retry) {
      auto& b = step.backoff;
      out << "    backoff: " << to_string(b.backoff) << "\n"
          << "    jitter: " << to_string(b.jitter) << "\n"
          << "    initial_delay: " << render_exact_seconds(b.initial_delay)
          << "\n"
          << "    max_delay: " << render_exact_seconds(b.max_delay) << "\n"
          << "    multiplier: " << std::setprecision(17) << b.multiplier
          << "\n";
    }
    if (!step.on.empty())
      out << "    on: " << join(step.on) << "\n";
    if (!step.except.empty())
      out << "    except: " << join(step.except) << "\n";
  }
  return out.str();
}

} // namespace ft
