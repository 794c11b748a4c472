// ftctl's snapshot commands, run as a user runs them: a real store made with
// the library, the real binary (FTCTL), its output and exit code.

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "ft/snapshot_store.hpp"

using Catch::Matchers::Contains;

namespace {

namespace fs = std::filesystem;

struct run_result {
  int rc = -1;
  std::string out; // stdout and stderr, in order
};

run_result ftctl(const std::string& args) {
  run_result res;
  auto cmd = std::string{FTCTL} + " " + args + " 2>&1";
  auto* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0)
    res.out.append(buf.data(), n);
  auto status = pclose(pipe);
  res.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return res;
}

struct store_fixture {
  fs::path dir;

  store_fixture() {
    static std::atomic<int> n{0};
    dir = fs::temp_directory_path()
          / ("ft-ftctl-" + std::to_string(::getpid()) + "-"
             + std::to_string(n++));
    fs::remove_all(dir);
    ft::snapshot_store_options opts;
    opts.mode = ft::durability::nosync;
    auto store = ft::snapshot_store::open(dir.string(), opts);
    REQUIRE(store);
    for (uint64_t seq = 1; seq <= 3; ++seq)
      REQUIRE_FALSE(store->write(envelope("account/alice", seq, "alice")));
    REQUIRE_FALSE(
      store->write(envelope("account/bob", 7, "BOB-PAYLOAD-TO-CORRUPT-0123")));
  }

  ~store_fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  static ft::snapshot_envelope envelope(const std::string& key, uint64_t seq,
                                        const std::string& payload) {
    ft::snapshot_envelope x;
    x.key = key;
    x.actor_type = "account";
    x.schema_version = 2;
    x.sequence = seq;
    x.timestamp_ms = 1'700'000'000'000;
    x.node_id = "node-a";
    x.payload.assign(payload.begin(), payload.end());
    return x;
  }

  std::string d() const {
    return "--dir " + dir.string();
  }

  /// Flips one byte of `needle` inside the data file.
  void corrupt(const std::string& needle) {
    auto path = dir / "data.mdb";
    std::string bytes;
    {
      std::ifstream in{path, std::ios::binary};
      bytes.assign(std::istreambuf_iterator<char>{in}, {});
    }
    auto pos = bytes.find(needle);
    REQUIRE(pos != std::string::npos);
    REQUIRE(bytes.find(needle, pos + 1) == std::string::npos);
    bytes[pos + needle.size() / 2] ^= 0x20;
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
};

} // namespace

TEST_CASE_METHOD(store_fixture, "ftctl snapshot ls lists keys",
                 "[ftctl]") {
  auto res = ftctl("snapshot ls " + d());
  INFO(res.out);
  REQUIRE(res.rc == 0);
  CHECK_THAT(res.out, Contains("KEY"));
  CHECK_THAT(res.out, Contains("account/alice"));
  CHECK_THAT(res.out, Contains("account/bob"));
  auto js = ftctl("snapshot ls --format json " + d());
  REQUIRE(js.rc == 0);
  auto doc = nlohmann::json::parse(js.out);
  REQUIRE(doc.size() == 2);
  CHECK(doc[0]["key"] == "account/alice");
  CHECK(doc[0]["latest_sequence"] == 3);
  CHECK(doc[0]["snapshots"] == 3);
  CHECK(doc[0]["actor_type"] == "account");
  CHECK(doc[0]["latest_size"].get<size_t>() > 5);
  CHECK(doc[0]["age_seconds"].get<double>() > 0);
  CHECK(doc[1]["key"] == "account/bob");
  CHECK(doc[1]["latest_sequence"] == 7);
}

TEST_CASE_METHOD(store_fixture, "ftctl snapshot show decodes the header",
                 "[ftctl]") {
  auto js = ftctl("snapshot show --format json " + d() + " account/alice");
  INFO(js.out);
  REQUIRE(js.rc == 0);
  auto doc = nlohmann::json::parse(js.out);
  CHECK(doc["sequence"] == 3);
  CHECK(doc["schema_version"] == 2);
  CHECK(doc["node_id"] == "node-a");
  CHECK(doc["payload_size"] == 5);
  CHECK(doc["timestamp"] == "2023-11-14T22:13:20.000Z");
  auto one = ftctl("snapshot show --seq 2 " + d() + " account/alice");
  REQUIRE(one.rc == 0);
  CHECK_THAT(one.out, Contains("sequence"));
  CHECK_THAT(one.out, Contains("2"));
  auto missing = ftctl("snapshot show " + d() + " account/carol");
  CHECK(missing.rc == 3);
  CHECK_THAT(missing.out, Contains("snapshot_not_found"));
  CHECK_THAT(missing.out, Contains("account/carol"));
}

TEST_CASE_METHOD(store_fixture, "ftctl snapshot rm deletes", "[ftctl]") {
  auto one = ftctl("snapshot rm --seq 1 " + d() + " account/alice");
  INFO(one.out);
  REQUIRE(one.rc == 0);
  auto all = ftctl("snapshot rm " + d() + " account/alice");
  INFO(all.out);
  REQUIRE(all.rc == 0);
  CHECK_THAT(all.out, Contains("removed 2 snapshots"));
  auto again = ftctl("snapshot rm " + d() + " account/alice");
  CHECK(again.rc == 3);
  auto js = ftctl("snapshot ls --format json " + d());
  REQUIRE(js.rc == 0);
  auto doc = nlohmann::json::parse(js.out);
  REQUIRE(doc.size() == 1);
  CHECK(doc[0]["key"] == "account/bob");
}

TEST_CASE_METHOD(store_fixture,
                 "ftctl snapshot verify reports exactly the bad records",
                 "[ftctl]") {
  auto clean = ftctl("snapshot verify " + d());
  INFO(clean.out);
  REQUIRE(clean.rc == 0);
  CHECK_THAT(clean.out, Contains("4 records checked, 0 bad"));
  corrupt("BOB-PAYLOAD-TO-CORRUPT-0123");
  auto bad = ftctl("snapshot verify --format json " + d());
  INFO(bad.out);
  REQUIRE(bad.rc == 2);
  auto doc = nlohmann::json::parse(bad.out);
  CHECK(doc["records"] == 4);
  CHECK(doc["bad"] == 1);
  REQUIRE(doc["problems"].size() == 1);
  CHECK(doc["problems"][0]["key"] == "account/bob");
  CHECK(doc["problems"][0]["sequence"] == 7);
  CHECK_THAT(doc["problems"][0]["error"].get<std::string>(),
             Contains("checksum_mismatch"));
  // The other keys stay readable.
  auto alice = ftctl("snapshot show " + d() + " account/alice");
  CHECK(alice.rc == 0);
}

TEST_CASE("ftctl names a bad directory and usage errors", "[ftctl]") {
  auto missing = ftctl("snapshot ls --dir /nonexistent/ft-store");
  CHECK(missing.rc == 1);
  CHECK_THAT(missing.out, Contains("store_unavailable"));
  CHECK_THAT(missing.out, Contains("/nonexistent/ft-store"));
  auto no_dir = ftctl("snapshot ls");
  CHECK(no_dir.rc == 1);
  CHECK_THAT(no_dir.out, Contains("--dir"));
  auto bad_format = ftctl("snapshot ls --dir /tmp --format xml");
  CHECK(bad_format.rc == 1);
  CHECK_THAT(bad_format.out, Contains("xml"));
  auto unknown = ftctl("snapshot frobnicate");
  CHECK(unknown.rc == 1);
}
