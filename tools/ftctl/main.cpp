// ftctl -- the operator's command line for libft nodes and their data.
//
//   ftctl snapshot ls     --dir DIR [--key KEY] [--format table|json]
//   ftctl snapshot show   --dir DIR KEY [--seq N] [--format table|json]
//   ftctl snapshot rm     --dir DIR KEY [--seq N]
//   ftctl snapshot verify --dir DIR [--format table|json]
//
//   ftctl nodes                          (cluster commands: cluster.cpp)
//   ftctl entity ls | spawn | ask | where | migrate
//
//   ftctl health [--component NAME]     (operations: ops.cpp)
//   ftctl tree
//   ftctl circuits | circuits reset [KEY] [--scope S] [--all]
//   ftctl events [--since ID] [--min-severity S] [--follow]
//   ftctl kill actor PATH | kill node NAME
//   ftctl doctor [--config FILE] [--node H:P] [--secret-file F]
//
// Exit codes: 0 ok; 1 usage or runtime error (the message names the cause;
// `doctor`: a check failed); 2 `verify` found bad records; 3 the key,
// snapshot, entity, health component or actor does not exist; 4 `health`:
// the node (or the component asked for) is unhealthy.

#include <chrono>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "ft/error.hpp"
#include "ft/snapshot_store.hpp"

#include "ftctl.hpp"

namespace ftctl {

/// Prints rows as aligned columns under a header.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i)
    width[i] = header[i].size();
  for (auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  auto print_row = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) {
      std::cout << row[i];
      if (i + 1 < row.size())
        std::cout << std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << '\n';
  };
  print_row(header);
  for (auto& row : rows)
    print_row(row);
}

std::string iso_time(int64_t ms) {
  auto secs = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf,
                static_cast<int>(ms % 1000));
  return out;
}

caf::expected<store_report> verify_store(const std::string& dir) {
  ft::snapshot_store_options opts;
  opts.create = false;
  opts.read_only = true;
  auto store = ft::snapshot_store::open(dir, opts);
  if (!store)
    return std::move(store.error());
  auto records = store->list();
  if (!records)
    return std::move(records.error());
  auto bad = store->verify();
  if (!bad)
    return std::move(bad.error());
  return store_report{records->size(), std::move(*bad)};
}

} // namespace ftctl

namespace {

using json = nlohmann::json;

using ftctl::exit_bad_records;
using ftctl::exit_error;
using ftctl::exit_not_found;
using ftctl::iso_time;

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

/// `3.2s`, `5m`, `2h`, `4d`.
std::string human_age(int64_t ms) {
  if (ms < 0)
    ms = 0;
  std::ostringstream os;
  if (ms < 60'000)
    os << std::fixed << std::setprecision(1) << ms / 1000.0 << "s";
  else if (ms < 3'600'000)
    os << ms / 60'000 << "m";
  else if (ms < 86'400'000)
    os << ms / 3'600'000 << "h";
  else
    os << ms / 86'400'000 << "d";
  return os.str();
}

std::string hex32(uint32_t x) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", x);
  return buf;
}

using ftctl::print_table;

int fail(const caf::error& err) {
  std::cerr << "ftctl: error: " << ft::render(err) << '\n';
  if (ft::is(err, ft::errc::snapshot_not_found))
    return exit_not_found;
  return exit_error;
}

/// Opens the store for reading (never creates a directory).
caf::expected<ft::snapshot_store> open_store(const std::string& dir,
                                             bool read_only) {
  ft::snapshot_store_options opts;
  opts.create = false;
  opts.read_only = read_only;
  return ft::snapshot_store::open(dir, opts);
}

// -- snapshot ls --------------------------------------------------------------

/// One line per key: its newest snapshot and totals over all of them.
struct key_summary {
  ft::snapshot_info newest;
  size_t snapshots = 0;
  size_t stored_bytes = 0;
};

int snapshot_ls(const std::string& dir, const std::optional<std::string>& key,
                bool as_json) {
  auto store = open_store(dir, true);
  if (!store)
    return fail(store.error());
  auto infos = store->list(key);
  if (!infos)
    return fail(infos.error());
  std::map<std::string, key_summary> keys;
  for (auto& x : *infos) {
    auto& k = keys[x.key];
    if (k.snapshots == 0 || x.sequence > k.newest.sequence)
      k.newest = x;
    ++k.snapshots;
    k.stored_bytes += x.stored_size;
  }
  if (key && keys.empty())
    return fail(ft::make_error(ft::errc::snapshot_not_found,
                               "no snapshots of key " + *key + " in " + dir));
  auto now = now_ms();
  if (as_json) {
    auto out = json::array();
    for (auto& [name, k] : keys)
      out.push_back({{"key", name},
                     {"actor_type", k.newest.actor_type},
                     {"latest_sequence", k.newest.sequence},
                     {"schema_version", k.newest.schema_version},
                     {"node_id", k.newest.node_id},
                     {"timestamp_ms", k.newest.timestamp_ms},
                     {"age_seconds", (now - k.newest.timestamp_ms) / 1000.0},
                     {"latest_size", k.newest.stored_size},
                     {"snapshots", k.snapshots},
                     {"stored_bytes", k.stored_bytes}});
    std::cout << out.dump(2) << '\n';
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (auto& [name, k] : keys)
    rows.push_back({name, k.newest.actor_type,
                    std::to_string(k.newest.sequence),
                    std::to_string(k.snapshots),
                    std::to_string(k.newest.stored_size),
                    human_age(now - k.newest.timestamp_ms)});
  print_table({"KEY", "TYPE", "SEQ", "SNAPSHOTS", "SIZE", "AGE"}, rows);
  return 0;
}

// -- snapshot show ------------------------------------------------------------

int snapshot_show(const std::string& dir, const std::string& key,
                  std::optional<uint64_t> seq, bool as_json) {
  auto store = open_store(dir, true);
  if (!store)
    return fail(store.error());
  auto x = seq ? store->read(key, *seq) : store->latest(key);
  if (!x)
    return fail(x.error());
  const size_t preview = std::min<size_t>(x->payload.size(), 32);
  std::ostringstream hex;
  for (size_t i = 0; i < preview; ++i)
    hex << std::hex << std::setw(2) << std::setfill('0')
        << static_cast<int>(x->payload[i]) << (i + 1 < preview ? " " : "");
  if (as_json) {
    json out = {{"key", x->key},
                {"actor_type", x->actor_type},
                {"schema_version", x->schema_version},
                {"sequence", x->sequence},
                {"timestamp_ms", x->timestamp_ms},
                {"timestamp", iso_time(x->timestamp_ms)},
                {"node_id", x->node_id},
                {"checksum", hex32(x->checksum)},
                {"checksum_ok", true},
                {"payload_size", x->payload.size()},
                {"payload_head", hex.str()}};
    std::cout << out.dump(2) << '\n';
    return 0;
  }
  print_table({"FIELD", "VALUE"},
              {{"key", x->key},
               {"actor_type", x->actor_type},
               {"schema_version", std::to_string(x->schema_version)},
               {"sequence", std::to_string(x->sequence)},
               {"timestamp", iso_time(x->timestamp_ms)},
               {"node_id", x->node_id.empty() ? "-" : x->node_id},
               {"checksum", hex32(x->checksum) + " (ok)"},
               {"payload_size", std::to_string(x->payload.size())},
               {"payload_head", hex.str()}});
  return 0;
}

// -- snapshot rm --------------------------------------------------------------

int snapshot_rm(const std::string& dir, const std::string& key,
                std::optional<uint64_t> seq) {
  auto store = open_store(dir, false);
  if (!store)
    return fail(store.error());
  if (seq) {
    if (auto err = store->remove(key, *seq))
      return fail(err);
    std::cout << "removed " << key << " #" << *seq << '\n';
    return 0;
  }
  auto n = store->remove(key);
  if (!n)
    return fail(n.error());
  std::cout << "removed " << *n << " snapshot" << (*n == 1 ? "" : "s")
            << " of " << key << '\n';
  return 0;
}

// -- snapshot verify ----------------------------------------------------------

int snapshot_verify(const std::string& dir, bool as_json) {
  auto report = ftctl::verify_store(dir);
  if (!report)
    return fail(report.error());
  auto& bad = report->bad;
  if (as_json) {
    auto problems = json::array();
    for (auto& p : bad)
      problems.push_back({{"key", p.key},
                          {"sequence", p.sequence},
                          {"error", ft::render(p.reason)}});
    json out = {{"records", report->records},
                {"bad", bad.size()},
                {"problems", problems}};
    std::cout << out.dump(2) << '\n';
  } else {
    std::vector<std::vector<std::string>> rows;
    for (auto& p : bad)
      rows.push_back({p.key, std::to_string(p.sequence), ft::render(p.reason)});
    if (!rows.empty())
      print_table({"KEY", "SEQ", "PROBLEM"}, rows);
    std::cout << report->records << " records checked, " << bad.size()
              << " bad\n";
  }
  return bad.empty() ? 0 : exit_bad_records;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ftctl: operate libft nodes and their data"};
  app.require_subcommand(1);
  auto* snap = app.add_subcommand("snapshot", "inspect a snapshot store");
  snap->require_subcommand(1);

  std::string dir;
  std::string format = "table";
  std::string key;
  std::optional<std::string> key_filter;
  std::optional<uint64_t> seq;

  auto add_dir = [&](CLI::App* cmd) {
    cmd->add_option("--dir", dir, "the store's directory")->required();
  };
  auto add_format = [&](CLI::App* cmd) {
    cmd->add_option("--format", format, "output format")
      ->check(CLI::IsMember({"table", "json"}));
  };

  auto* ls = snap->add_subcommand("ls", "list keys: newest sequence, size, age");
  add_dir(ls);
  add_format(ls);
  ls->add_option("--key", key_filter, "only this key");

  auto* show = snap->add_subcommand("show", "show one envelope's header");
  add_dir(show);
  add_format(show);
  show->add_option("key", key, "the snapshot key")->required();
  show->add_option("--seq", seq, "a sequence (default: the newest)");

  auto* rm = snap->add_subcommand("rm", "delete a key's snapshots (or one)");
  add_dir(rm);
  rm->add_option("key", key, "the snapshot key")->required();
  rm->add_option("--seq", seq, "only this sequence");

  auto* verify = snap->add_subcommand(
    "verify", "check every record's checksum; exit 2 if any is bad");
  add_dir(verify);
  add_format(verify);

  auto run_cluster_command = ftctl::add_cluster_commands(app);
  auto run_ops_command = ftctl::add_ops_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints help (exit 0) or the usage error (exit != 0).
    auto rc = app.exit(e);
    return rc == 0 ? 0 : exit_error;
  }
  auto as_json = format == "json";
  if (*ls)
    return snapshot_ls(dir, key_filter, as_json);
  if (*show)
    return snapshot_show(dir, key, seq, as_json);
  if (*rm)
    return snapshot_rm(dir, key, seq);
  if (*verify)
    return snapshot_verify(dir, as_json);
  if (auto rc = run_cluster_command(); rc >= 0)
    return rc;
  if (auto rc = run_ops_command(); rc >= 0)
    return rc;
  return exit_error;
}
