#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "ft/error.hpp"
#include "ft/snapshot.hpp"

// Private to ft_core: the two CRC-32C implementations, to check they agree.
#include "../../libft/src/crc32c.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using ft::byte_buffer;
using ft::snapshot_envelope;

std::string context_of(const caf::error& err) {
  if (err.context().size() == 1 && err.context().match_element<std::string>(0))
    return err.context().get_as<std::string>(0);
  return "";
}

byte_buffer bytes_of(const std::string& x) {
  return byte_buffer(x.begin(), x.end());
}

byte_buffer random_bytes(std::mt19937_64& rng, size_t n) {
  byte_buffer result(n);
  for (auto& b : result)
    b = static_cast<uint8_t>(rng());
  return result;
}

/// Lengths around a CRC path's boundaries: 0 to `small`, each of `marks`
/// give or take up to `spread`, and 200 random ones below 20,000.
std::vector<size_t> crc_lengths(std::mt19937_64& rng, size_t small,
                                std::initializer_list<size_t> marks,
                                size_t spread) {
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= small; ++n)
    lengths.push_back(n);
  for (size_t mark : marks)
    for (size_t d = 0; d <= spread; ++d) {
      lengths.push_back(mark + d);
      lengths.push_back(mark - d);
    }
  for (int i = 0; i < 200; ++i)
    lengths.push_back(static_cast<size_t>(rng() % 20000));
  return lengths;
}

snapshot_envelope sample(byte_buffer payload = {1, 2, 3, 4, 5}) {
  snapshot_envelope x;
  x.key = "counter/42";
  x.actor_type = "counter";
  x.schema_version = 3;
  x.sequence = 7;
  x.timestamp_ms = 1700000000123;
  x.node_id = "node-a";
  x.payload = std::move(payload);
  return x;
}

/// Encodes `x`, failing the test on error; sets `x.checksum` to the
/// checksum the encoder computed, so `x` compares equal to the decoded one.
byte_buffer encode_ok(snapshot_envelope& x) {
  auto buf = ft::encode_snapshot(x);
  REQUIRE(buf);
  x.checksum = ft::snapshot_checksum(x);
  return std::move(*buf);
}

/// Decodes from an 8-byte-aligned copy (or at `offset` bytes past one).
caf::expected<snapshot_envelope> decode_at(const byte_buffer& buf,
                                           size_t offset = 0,
                                           const std::string& what = "") {
  std::vector<uint64_t> storage((buf.size() + offset) / 8 + 1);
  auto p = reinterpret_cast<uint8_t*>(storage.data()) + offset;
  if (!buf.empty())
    std::memcpy(p, buf.data(), buf.size());
  return ft::decode_snapshot(p, buf.size(), what);
}

bool is_detected(const caf::error& err) {
  return ft::is(err, ft::errc::corrupt_snapshot)
         || ft::is(err, ft::errc::checksum_mismatch);
}

/// Checks that decoding `buf` (aligned and unaligned) either fails with a
/// snapshot error or returns exactly `original`; returns whether it failed.
bool fails_or_same(const byte_buffer& buf, const snapshot_envelope& original) {
  auto aligned = decode_at(buf, 0);
  auto unaligned = decode_at(buf, 3);
  CHECK(static_cast<bool>(aligned) == static_cast<bool>(unaligned));
  if (!aligned) {
    CHECK(is_detected(aligned.error()));
    CHECK(aligned.error() == unaligned.error());
    size_t payload_size = 0;
    // The header decoder sees the same bytes: it may accept them (it does
    // not verify the checksum) but must not crash.
    auto header = ft::decode_snapshot_header(buf.data(), buf.size(),
                                             &payload_size);
    if (!header)
      CHECK(ft::is(header.error(), ft::errc::corrupt_snapshot));
    return true;
  }
  CHECK(*aligned == original);
  if (unaligned)
    CHECK(*unaligned == original);
  return false;
}

/// The canonical layout of `snapshot_checksum`, written out independently.
byte_buffer canonical_layout(const snapshot_envelope& x) {
  byte_buffer out;
  auto put = [&](uint64_t v, int width) {
    for (int i = 0; i < width; ++i)
      out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto put_bytes = [&](const void* data, size_t n) {
    put(n, 8);
    auto p = static_cast<const uint8_t*>(data);
    out.insert(out.end(), p, p + n);
  };
  put_bytes(x.key.data(), x.key.size());
  put_bytes(x.actor_type.data(), x.actor_type.size());
  put(x.schema_version, 4);
  put(x.sequence, 8);
  put(static_cast<uint64_t>(x.timestamp_ms), 8);
  put_bytes(x.node_id.data(), x.node_id.size());
  put_bytes(x.payload.data(), x.payload.size());
  return out;
}

} // namespace

// -- CRC-32C ------------------------------------------------------------------

TEST_CASE("crc32c matches the published test vectors", "[snapshot]") {
  // RFC 3720 (iSCSI) appendix B.4 and the "123456789" check value.
  byte_buffer zeros(32, 0);
  byte_buffer ones(32, 0xFF);
  byte_buffer ascending(32);
  byte_buffer descending(32);
  for (size_t i = 0; i < 32; ++i) {
    ascending[i] = static_cast<uint8_t>(i);
    descending[i] = static_cast<uint8_t>(31 - i);
  }
  auto digits = bytes_of("123456789");
  struct vector_case {
    const byte_buffer* data;
    uint32_t crc;
  };
  std::vector<vector_case> cases{{&digits, 0xE3069283u},
                                 {&zeros, 0x8A9136AAu},
                                 {&ones, 0x62A8AB43u},
                                 {&ascending, 0x46DD794Eu},
                                 {&descending, 0x113FDB5Cu}};
  for (auto& c : cases) {
    CAPTURE(c.data->size(), c.crc);
    CHECK(ft::crc32c(c.data->data(), c.data->size()) == c.crc);
    CHECK(ft::detail::crc32c_portable(c.data->data(), c.data->size(), 0)
          == c.crc);
    if (ft::detail::crc32c_hw_available())
      CHECK(ft::detail::crc32c_hw(c.data->data(), c.data->size(), 0)
            == c.crc);
  }
  CHECK(ft::crc32c(nullptr, 0) == 0);
  CHECK(ft::crc32c(nullptr, 0, 0xE3069283u) == 0xE3069283u);
}

TEST_CASE("crc32c continues from a previous CRC", "[snapshot]") {
  std::mt19937_64 rng{42};
  auto data = random_bytes(rng, 300);
  auto whole = ft::crc32c(data.data(), data.size());
  CHECK(whole == ft::detail::crc32c_portable(data.data(), data.size(), 0));
  for (size_t split = 0; split <= data.size(); ++split) {
    CAPTURE(split);
    auto first = ft::crc32c(data.data(), split);
    CHECK(ft::crc32c(data.data() + split, data.size() - split, first)
          == whole);
    auto first_p = ft::detail::crc32c_portable(data.data(), split, 0);
    CHECK(ft::detail::crc32c_portable(data.data() + split,
                                      data.size() - split, first_p)
          == whole);
  }
}

TEST_CASE("crc32c: the SSE 4.2 and portable paths agree", "[snapshot]") {
  if (!ft::detail::crc32c_hw_available()) {
    WARN("this CPU has no SSE 4.2: only the portable CRC-32C is tested");
    return;
  }
  std::mt19937_64 rng{7};
  // 3 x 512-byte streams make one interleaved block: cover lengths around
  // block and word boundaries, at every alignment.
  auto lengths = crc_lengths(rng, 80, {1536, 3072, 4608, 65536}, 17);
  auto data = random_bytes(rng, 70000);
  for (auto n : lengths)
    for (size_t offset = 0; offset < 16; ++offset) {
      CAPTURE(n, offset);
      auto seed = static_cast<uint32_t>(rng());
      auto p = data.data() + offset;
      auto hw = ft::detail::crc32c_hw(p, n, seed);
      auto portable = ft::detail::crc32c_portable(p, n, seed);
      REQUIRE(hw == portable);
      REQUIRE(ft::crc32c(p, n, seed) == portable);
    }
}

TEST_CASE("crc32c: the folding path and crc32c_copy agree with the portable "
          "one",
          "[snapshot]") {
  std::mt19937_64 rng{11};
  // The folding path takes 256-byte steps, then 16-byte blocks, then the
  // crc32 instruction: cover lengths around each of those boundaries.
  auto lengths = crc_lengths(rng, 40, {256, 512, 768, 4096, 65536}, 33);
  auto data = random_bytes(rng, 70000);
  auto fold = ft::detail::crc32c_fold_available();
  if (!fold)
    WARN("this CPU has no AVX-512 VPCLMULQDQ: crc32c_copy is tested on its "
         "memcpy path only");
  for (auto n : lengths)
    for (size_t offset = 0; offset < 16; offset += 3) {
      CAPTURE(n, offset);
      auto seed = static_cast<uint32_t>(rng());
      auto p = data.data() + offset;
      auto portable = ft::detail::crc32c_portable(p, n, seed);
      if (fold)
        REQUIRE(ft::detail::crc32c_fold(p, n, seed) == portable);
      // The copy lands at another alignment and touches nothing past it.
      byte_buffer out(n + 32, 0xA5);
      auto dst = out.data() + 8 + offset % 5;
      REQUIRE(ft::detail::crc32c_copy(dst, p, n, seed) == portable);
      REQUIRE(std::memcmp(dst, p, n) == 0);
      auto untouched = [](uint8_t b) { return b == 0xA5; };
      REQUIRE(std::all_of(out.data(), dst, untouched));
      REQUIRE(std::all_of(dst + n, out.data() + out.size(), untouched));
    }
}

// -- checksum -----------------------------------------------------------------

TEST_CASE("snapshot_checksum is CRC-32C of the documented canonical layout",
          "[snapshot]") {
  auto x = sample();
  auto layout = canonical_layout(x);
  CHECK(ft::snapshot_checksum(x) == ft::crc32c(layout.data(), layout.size()));
  // Golden values from an independent (bitwise) CRC-32C: the checksum is an
  // on-disk format and must never change by accident.
  CHECK(ft::snapshot_checksum(x) == 0x3CE4C4E0u);
  snapshot_envelope y;
  y.key = "k";
  y.timestamp_ms = -1;
  CHECK(ft::snapshot_checksum(y) == 0xC520F93Fu);
  // The checksum field itself is not covered.
  x.checksum = 0xDEADBEEF;
  CHECK(ft::snapshot_checksum(x) == 0x3CE4C4E0u);
}

TEST_CASE("the checksum changes with every header field and payload byte",
          "[snapshot]") {
  auto base = sample(byte_buffer(64, 0x5A));
  auto c0 = ft::snapshot_checksum(base);
  SECTION("header fields") {
    std::vector<std::pair<const char*, void (*)(snapshot_envelope&)>> edits{
      {"key", [](snapshot_envelope& x) { x.key = "counter/43"; }},
      {"key length", [](snapshot_envelope& x) { x.key += "0"; }},
      {"actor_type", [](snapshot_envelope& x) { x.actor_type = "gauge"; }},
      {"actor_type empty", [](snapshot_envelope& x) { x.actor_type.clear(); }},
      {"schema_version", [](snapshot_envelope& x) { x.schema_version = 4; }},
      {"sequence", [](snapshot_envelope& x) { x.sequence = 8; }},
      {"sequence high bit",
       [](snapshot_envelope& x) { x.sequence ^= uint64_t{1} << 63; }},
      {"timestamp_ms", [](snapshot_envelope& x) { x.timestamp_ms += 1; }},
      {"timestamp_ms sign", [](snapshot_envelope& x) { x.timestamp_ms *= -1; }},
      {"node_id", [](snapshot_envelope& x) { x.node_id = "node-b"; }},
      {"node_id empty", [](snapshot_envelope& x) { x.node_id.clear(); }},
      {"payload longer", [](snapshot_envelope& x) { x.payload.push_back(0); }},
      {"payload shorter", [](snapshot_envelope& x) { x.payload.pop_back(); }},
      {"payload empty", [](snapshot_envelope& x) { x.payload.clear(); }},
    };
    for (auto& [name, edit] : edits) {
      CAPTURE(name);
      auto x = base;
      edit(x);
      CHECK(ft::snapshot_checksum(x) != c0);
    }
  }
  SECTION("every bit of the payload") {
    for (size_t i = 0; i < base.payload.size(); ++i)
      for (int bit = 0; bit < 8; ++bit) {
        CAPTURE(i, bit);
        auto x = base;
        x.payload[i] ^= static_cast<uint8_t>(1u << bit);
        CHECK(ft::snapshot_checksum(x) != c0);
      }
  }
  SECTION("bytes moved between adjacent fields") {
    // Length prefixes keep field boundaries part of the checksum.
    auto x = base;
    x.key = "ab";
    x.actor_type = "c";
    auto y = base;
    y.key = "a";
    y.actor_type = "bc";
    CHECK(ft::snapshot_checksum(x) != ft::snapshot_checksum(y));
    auto u = base;
    u.node_id = "n1";
    u.payload = {2};
    auto v = base;
    v.node_id = "n";
    v.payload = {'1', 2};
    CHECK(ft::snapshot_checksum(u) != ft::snapshot_checksum(v));
  }
}

// -- round trips --------------------------------------------------------------

TEST_CASE("envelopes survive encode and decode", "[snapshot]") {
  std::mt19937_64 rng{1};
  auto x = sample();
  SECTION("empty payload") {
    x.payload.clear();
  }
  SECTION("one byte") {
    x.payload = {0xAB};
  }
  SECTION("64 KiB") {
    x.payload = random_bytes(rng, 64 * 1024);
  }
  SECTION("unicode keys and names") {
    x.key = u8"zähler/Ωmega/計数器/🦀";
    x.actor_type = u8"zähler";
    x.node_id = u8"nœud-1";
  }
  SECTION("extreme integers and empty optional fields") {
    x.actor_type.clear();
    x.node_id.clear();
    x.schema_version = UINT32_MAX;
    x.sequence = UINT64_MAX;
    x.timestamp_ms = INT64_MIN;
  }
  SECTION("payload sizes around word boundaries") {
    auto n = GENERATE(range(size_t{2}, size_t{25}));
    x.payload = random_bytes(rng, n);
  }
  x.checksum = 0x12345678; // ignored by the encoder
  auto buf = encode_ok(x);
  CHECK(buf.size() % 8 == 0);
  auto y = decode_at(buf, 0, "t");
  REQUIRE(y);
  CHECK(*y == x);
  CHECK(y->checksum == ft::snapshot_checksum(x));
  // Encoding is deterministic (the store compares bytes when replicating).
  auto again = ft::encode_snapshot(*y);
  REQUIRE(again);
  CHECK(*again == buf);
}

TEST_CASE("encoding is one unpacked segment of the exact size", "[snapshot]") {
  // 1 root pointer + 7-word struct (3 data words, 4 pointers) + each set
  // Text (bytes + NUL, in words) + the payload (in words), after an 8-byte
  // segment table: no slack, no second segment.
  auto words = [](size_t n) { return (n + 7) / 8; };
  std::mt19937_64 rng{5};
  for (size_t key : {1, 7, 8, 15})
    for (size_t type : {0, 1, 8})
      for (size_t payload : {0, 1, 7, 8, 9, 4096, 65536}) {
        CAPTURE(key, type, payload);
        snapshot_envelope x;
        x.key.assign(key, 'k');
        x.actor_type.assign(type, 't');
        x.payload = random_bytes(rng, payload);
        auto buf = ft::encode_snapshot(x);
        REQUIRE(buf);
        auto expected_words = 1 + 7 + words(key + 1)
                              + (type ? words(type + 1) : 0) + words(payload);
        CHECK(buf->size() == 8 + 8 * expected_words);
        uint32_t segments_minus_one = 0;
        uint32_t segment_words = 0;
        std::memcpy(&segments_minus_one, buf->data(), 4);
        std::memcpy(&segment_words, buf->data() + 4, 4);
        CHECK(segments_minus_one == 0);
        CHECK(segment_words == expected_words);
      }
}

TEST_CASE("encoding in place gives the same bytes, whatever was there before",
          "[snapshot]") {
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9},
                   size_t{255}, size_t{4096}, size_t{65536}}) {
    CAPTURE(n);
    byte_buffer payload(n);
    for (size_t i = 0; i < n; ++i)
      payload[i] = static_cast<uint8_t>(i * 31 + 7);
    auto x = sample(payload);
    x.actor_type = n % 2 == 0 ? "counter" : "";
    auto expected = ft::encode_snapshot(x);
    REQUIRE(expected);
    auto size = ft::encoded_snapshot_size(x);
    REQUIRE(size);
    REQUIRE(*size == expected->size());
    // Word-aligned storage filled with garbage: only what the encoder
    // zeroes or writes may remain.
    std::vector<uint64_t> room(*size / 8, 0xABABABABABABABABull);
    REQUIRE_FALSE(ft::encode_snapshot_to(x, room.data(), *size));
    auto* bytes = reinterpret_cast<const uint8_t*>(room.data());
    CHECK(byte_buffer(bytes, bytes + *size) == *expected);
    auto back = ft::decode_snapshot(room.data(), *size, "in place");
    REQUIRE(back);
    CHECK(back->payload == payload);
  }
  auto x = sample();
  auto size = ft::encoded_snapshot_size(x);
  REQUIRE(size);
  std::vector<uint64_t> room(*size / 8 + 1);
  auto* unaligned = reinterpret_cast<uint8_t*>(room.data()) + 1;
  CHECK(ft::is(ft::encode_snapshot_to(x, unaligned, *size), ft::errc::corrupt_snapshot));
  CHECK(ft::is(ft::encode_snapshot_to(x, room.data(), *size + 8),
           ft::errc::corrupt_snapshot));
}

TEST_CASE("payloads beyond Cap'n Proto's default traversal limit decode",
          "[snapshot]") {
  // The default limit is 64 MiB of traversal per message: the decoder must
  // size its limit to the input instead.
  auto x = sample(byte_buffer(65 * 1024 * 1024 + 3, 0x11));
  x.payload[12345] = 0x22;
  auto buf = encode_ok(x);
  auto y = ft::decode_snapshot(buf.data(), buf.size());
  REQUIRE(y);
  CHECK(*y == x);
}

TEST_CASE("unaligned input decodes", "[snapshot]") {
  std::mt19937_64 rng{3};
  for (size_t n : {0, 1, 100, 4096}) {
    auto x = sample(random_bytes(rng, n));
    auto buf = encode_ok(x);
    for (size_t offset = 0; offset < 8; ++offset) {
      CAPTURE(n, offset);
      auto y = decode_at(buf, offset);
      REQUIRE(y);
      CHECK(*y == x);
      size_t payload_size = 0;
      std::vector<uint64_t> storage(buf.size() / 8 + 2);
      auto p = reinterpret_cast<uint8_t*>(storage.data()) + offset;
      std::memcpy(p, buf.data(), buf.size());
      auto h = ft::decode_snapshot_header(p, buf.size(), &payload_size);
      REQUIRE(h);
      CHECK(payload_size == n);
      CHECK(h->key == x.key);
    }
  }
}

TEST_CASE("header-only decode reports the payload size, not the payload",
          "[snapshot]") {
  std::mt19937_64 rng{9};
  auto x = sample(random_bytes(rng, 64 * 1024));
  auto buf = encode_ok(x);
  size_t payload_size = 0;
  auto h = ft::decode_snapshot_header(buf.data(), buf.size(), &payload_size);
  REQUIRE(h);
  CHECK(payload_size == 64 * 1024);
  CHECK(h->payload.empty());
  auto header_only = x;
  header_only.payload.clear();
  CHECK(*h == header_only);
  SECTION("payload_size may be null") {
    CHECK(ft::decode_snapshot_header(buf.data(), buf.size(), nullptr));
  }
  SECTION("the payload is not verified") {
    buf.back() ^= 0x01; // the payload is the last thing in the message
    CHECK(ft::decode_snapshot_header(buf.data(), buf.size(), &payload_size));
    auto full = ft::decode_snapshot(buf.data(), buf.size());
    REQUIRE_FALSE(full);
    CHECK(ft::is(full.error(), ft::errc::checksum_mismatch));
  }
  SECTION("the structure is") {
    buf.resize(buf.size() - 8);
    auto bad = ft::decode_snapshot_header(buf.data(), buf.size(),
                                          &payload_size, "k #1");
    REQUIRE_FALSE(bad);
    CHECK(ft::is(bad.error(), ft::errc::corrupt_snapshot));
    CHECK_THAT(context_of(bad.error()), StartsWith("k #1: "));
  }
}

// -- errors -------------------------------------------------------------------

TEST_CASE("bad keys are rejected on encode", "[snapshot]") {
  auto x = sample();
  SECTION("empty") {
    x.key.clear();
    auto buf = ft::encode_snapshot(x);
    REQUIRE_FALSE(buf);
    CHECK(ft::is(buf.error(), ft::errc::corrupt_snapshot));
    CHECK_THAT(context_of(buf.error()), Contains("key is empty"));
  }
  SECTION("NUL byte") {
    x.key = std::string{"counter\0/42", 11};
    auto buf = ft::encode_snapshot(x);
    REQUIRE_FALSE(buf);
    CHECK(ft::is(buf.error(), ft::errc::corrupt_snapshot));
    CHECK_THAT(context_of(buf.error()), Contains("NUL byte at offset 7"));
  }
  SECTION("only a NUL byte") {
    x.key = std::string(1, '\0');
    auto buf = ft::encode_snapshot(x);
    REQUIRE_FALSE(buf);
    CHECK(ft::is(buf.error(), ft::errc::corrupt_snapshot));
  }
}

TEST_CASE("a checksum mismatch names what and both checksums",
          "[snapshot]") {
  auto x = sample(byte_buffer(16, 0x33));
  auto buf = encode_ok(x);
  buf[buf.size() - 1] ^= 0x80; // last payload byte
  auto damaged = x;
  damaged.payload.back() ^= 0x80;
  auto y = decode_at(buf, 0, "counter/42 #7");
  REQUIRE_FALSE(y);
  CHECK(ft::is(y.error(), ft::errc::checksum_mismatch));
  char expected[100];
  std::snprintf(expected, sizeof(expected),
                "counter/42 #7: stored checksum 0x%08x, computed 0x%08x",
                x.checksum, ft::snapshot_checksum(damaged));
  CHECK(context_of(y.error()) == expected);
  SECTION("without what") {
    auto z = decode_at(buf, 0);
    REQUIRE_FALSE(z);
    CHECK_THAT(context_of(z.error()), StartsWith("snapshot: stored checksum"));
  }
}

TEST_CASE("a flipped byte anywhere is detected or harmless", "[snapshot]") {
  auto x = sample({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  auto buf = encode_ok(x);
  size_t detected = 0;
  size_t trials = 0;
  for (size_t i = 0; i < buf.size(); ++i) {
    for (unsigned mask : {0xFFu, 0x01u, 0x02u, 0x04u, 0x08u, 0x10u, 0x20u,
                          0x40u, 0x80u}) {
      CAPTURE(i, mask);
      auto bad = buf;
      bad[i] ^= static_cast<uint8_t>(mask);
      ++trials;
      if (fails_or_same(bad, x))
        ++detected;
    }
  }
  // Only padding (after each Text's NUL and after the payload) and unused
  // high bits may be harmless: most flips must be caught.
  CAPTURE(detected, trials);
  CHECK(detected * 10 >= trials * 8);
}

TEST_CASE("truncated buffers fail cleanly at every length", "[snapshot]") {
  std::mt19937_64 rng{11};
  auto x = sample(random_bytes(rng, 40));
  auto buf = encode_ok(x);
  for (size_t n = 0; n < buf.size(); ++n) {
    CAPTURE(n);
    byte_buffer prefix(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n));
    auto y = decode_at(prefix, 0, "t");
    REQUIRE_FALSE(y);
    CHECK(ft::is(y.error(), ft::errc::corrupt_snapshot));
    auto h = ft::decode_snapshot_header(prefix.data(), n, nullptr, "t");
    REQUIRE_FALSE(h);
    CHECK(ft::is(h.error(), ft::errc::corrupt_snapshot));
    if (n % 8 != 0)
      CHECK_THAT(context_of(y.error()),
                 Contains("is not a whole number of words"));
  }
}

TEST_CASE("sizes that are not whole words fail with the truncated message",
          "[snapshot]") {
  auto x = sample();
  auto buf = encode_ok(x);
  buf.push_back(0); // one byte too many
  auto y = decode_at(buf, 0, "counter/42 #7");
  REQUIRE_FALSE(y);
  CHECK(ft::is(y.error(), ft::errc::corrupt_snapshot));
  CHECK(context_of(y.error())
        == "counter/42 #7: truncated: " + std::to_string(buf.size())
             + " bytes is not a whole number of words");
  auto h = ft::decode_snapshot_header(buf.data(), 13, nullptr);
  REQUIRE_FALSE(h);
  CHECK(context_of(h.error())
        == "snapshot: truncated: 13 bytes is not a whole number of words");
}

TEST_CASE("words after the end of the message are rejected", "[snapshot]") {
  auto x = sample();
  auto buf = encode_ok(x);
  buf.resize(buf.size() + 8, 0);
  auto y = decode_at(buf, 0, "t");
  REQUIRE_FALSE(y);
  CHECK(ft::is(y.error(), ft::errc::corrupt_snapshot));
  CHECK_THAT(context_of(y.error()), Contains("8 bytes after the end"));
}

TEST_CASE("a message without a key is corrupt", "[snapshot]") {
  // Hand-made: one segment of two words, a root struct pointer (offset 0,
  // one data word, no pointers) and a zero data word.
  byte_buffer buf{0, 0, 0, 0, 2, 0, 0, 0, // segment table
                  0, 0, 0, 0, 1, 0, 0, 0, // root pointer
                  0, 0, 0, 0, 0, 0, 0, 0};
  auto y = decode_at(buf, 0, "counter/42 #7");
  REQUIRE_FALSE(y);
  CHECK(ft::is(y.error(), ft::errc::corrupt_snapshot));
  CHECK(context_of(y.error()) == "counter/42 #7: missing key");
  auto h = ft::decode_snapshot_header(buf.data(), buf.size(), nullptr);
  REQUIRE_FALSE(h);
  CHECK(ft::is(h.error(), ft::errc::corrupt_snapshot));
}

TEST_CASE("random garbage fails cleanly", "[snapshot]") {
  std::mt19937_64 rng{13};
  for (int i = 0; i < 2000; ++i) {
    auto n = 8 * static_cast<size_t>(rng() % 64);
    auto buf = random_bytes(rng, n);
    if (i % 2 == 1 && n >= 8) {
      // A plausible segment table, so the reader gets to the pointers.
      uint32_t zero = 0;
      auto words = static_cast<uint32_t>(n / 8 - 1);
      std::memcpy(buf.data(), &zero, 4);
      std::memcpy(buf.data() + 4, &words, 4);
    }
    CAPTURE(i, n);
    auto y = decode_at(buf, i % 8, "garbage");
    REQUIRE_FALSE(y);
    CHECK(is_detected(y.error()));
    CHECK_THAT(context_of(y.error()), StartsWith("garbage: "));
    size_t payload_size = 0;
    auto h = ft::decode_snapshot_header(buf.data(), buf.size(), &payload_size);
    if (!h)
      CHECK(ft::is(h.error(), ft::errc::corrupt_snapshot));
  }
  SECTION("null data") {
    auto y = ft::decode_snapshot(nullptr, 0);
    REQUIRE_FALSE(y);
    CHECK(ft::is(y.error(), ft::errc::corrupt_snapshot));
  }
}
