#include "ft/membership.hpp"

#include <algorithm>

namespace ft {

namespace {

/// Precedence of statuses at equal incarnation: terminal statuses win, and
/// `down` (the cluster's verdict) wins over `left` (the node's own word).
int rank(member_status x) noexcept {
  switch (x) {
    case member_status::joining: return 0;
    case member_status::up: return 1;
    case member_status::suspect: return 1;
    case member_status::left: return 2;
    case member_status::down: return 3;
  }
  return 0;
}

} // namespace

const char* to_string(member_status x) noexcept {
  switch (x) {
    case member_status::joining: return "joining";
    case member_status::up: return "up";
    case member_status::suspect: return "suspect";
    case member_status::down: return "down";
    case member_status::left: return "left";
  }
  return "unknown";
}

bool membership::merge(const member& x) {
  auto in = x;
  if (in.status == member_status::suspect)
    in.status = member_status::up;
  auto i = members_.find(in.name);
  if (i == members_.end()) {
    members_.emplace(in.name, std::move(in));
    return true;
  }
  auto& cur = i->second;
  if (in.incarnation > cur.incarnation) {
    cur = std::move(in);
    return true;
  }
  if (in.incarnation < cur.incarnation)
    return false;
  if (rank(in.status) > rank(cur.status)) {
    // A local suspicion is overridden only by a terminal verdict.
    cur.status = in.status;
    return true;
  }
  return false;
}

bool membership::merge(const std::vector<member>& xs) {
  bool changed = false;
  for (auto& x : xs)
    changed |= merge(x);
  return changed;
}

std::vector<member> membership::records() const {
  std::vector<member> result;
  result.reserve(members_.size());
  for (auto& [name, m] : members_) {
    result.push_back(m);
    if (result.back().status == member_status::suspect)
      result.back().status = member_status::up;
  }
  return result;
}

const member* membership::find(const std::string& name) const {
  auto i = members_.find(name);
  return i == members_.end() ? nullptr : &i->second;
}

bool membership::set_status(const std::string& name, uint64_t incarnation,
                            member_status st) {
  auto i = members_.find(name);
  if (i == members_.end() || i->second.incarnation != incarnation
      || i->second.status == st)
    return false;
  auto& cur = i->second;
  // Terminal statuses stay terminal; suspicion comes and goes locally.
  if (!cur.alive())
    return false;
  cur.status = st;
  return true;
}

std::vector<std::string> membership::alive() const {
  std::vector<std::string> result;
  for (auto& [name, m] : members_)
    if (m.alive())
      result.push_back(name);
  return result;
}

std::optional<std::string> leader(const membership& view,
                                  const std::string& self,
                                  const std::vector<std::string>& reachable) {
  // Members still joining lead only when no up member is in reach (a
  // cluster being founded): a node that just (re)joined must not take the
  // lead from the node that admits it.
  for (bool joining_ok : {false, true}) {
    std::optional<std::string> result;
    auto consider = [&](const std::string& name) {
      auto m = view.find(name);
      if (m == nullptr || !m->alive())
        return;
      if (!joining_ok && m->status == member_status::joining)
        return;
      if (!result || name < *result)
        result = name;
    };
    consider(self);
    for (auto& name : reachable)
      consider(name);
    if (result)
      return result;
  }
  return std::nullopt;
}

bool is_quorum(size_t count, size_t alive) noexcept {
  return alive > 0 && count * 2 > alive;
}

int64_t lease_until(const std::map<std::string, int64_t>& acked_send_ns,
                    size_t alive_members, const std::string& self,
                    const std::optional<std::string>& leader,
                    int64_t lease_ns) {
  // The node counts itself; it needs `need` acknowledgements from others.
  size_t need = alive_members / 2; // majority of n: floor(n/2) + 1, self is 1
  std::vector<int64_t> times;
  times.reserve(acked_send_ns.size());
  for (auto& [peer, t] : acked_send_ns)
    if (peer != self)
      times.push_back(t);
  int64_t quorum_time;
  if (need == 0) {
    quorum_time = INT64_MAX; // alone (or with no one alive): its own quorum
  } else {
    if (times.size() < need)
      return 0;
    std::sort(times.begin(), times.end(), std::greater<>{});
    quorum_time = times[need - 1];
  }
  int64_t result = quorum_time;
  if (leader && *leader != self) {
    auto i = acked_send_ns.find(*leader);
    if (i == acked_send_ns.end())
      return 0;
    result = std::min(result, i->second);
  }
  if (result == INT64_MAX)
    return INT64_MAX;
  return result + lease_ns;
}

// -- entity directory ---------------------------------------------------------

const char* to_string(entity_state x) noexcept {
  switch (x) {
    case entity_state::starting: return "starting";
    case entity_state::active: return "active";
    case entity_state::migrating: return "migrating";
    case entity_state::orphaned: return "orphaned";
  }
  return "unknown";
}

bool entity_directory::merge(const entity_record& x) {
  max_epoch_ = std::max(max_epoch_, x.epoch);
  auto i = entries_.find(x.key);
  if (i == entries_.end()) {
    entries_.emplace(x.key, x);
    return true;
  }
  if (x.epoch <= i->second.epoch)
    return false;
  i->second = x;
  return true;
}

bool entity_directory::merge(const std::vector<entity_record>& xs) {
  bool changed = false;
  for (auto& x : xs)
    changed |= merge(x);
  return changed;
}

const entity_record* entity_directory::find(const std::string& key) const {
  auto i = entries_.find(key);
  return i == entries_.end() ? nullptr : &i->second;
}

void entity_directory::erase(const std::string& key) {
  entries_.erase(key);
}

std::vector<std::string>
entity_directory::homed_on(const std::string& node) const {
  std::vector<std::string> result;
  for (auto& [key, rec] : entries_)
    if (rec.home == node)
      result.push_back(key);
  return result;
}

std::map<std::string, size_t> entity_directory::load() const {
  std::map<std::string, size_t> result;
  for (auto& [key, rec] : entries_)
    ++result[rec.home];
  return result;
}

std::vector<entity_record> entity_directory::records() const {
  std::vector<entity_record> result;
  result.reserve(entries_.size());
  for (auto& [key, rec] : entries_)
    result.push_back(rec);
  return result;
}

} // namespace ft
