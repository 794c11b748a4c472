#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>

/// Snapshots: the saved state of one actor, in a self-describing envelope.
/// The envelope is a Cap'n Proto message (`libft/schema/snapshot.capnp`) so
/// any node, any version of this library and `ftctl` can read its header
/// without knowing the actor's state format; the state itself is an opaque
/// payload the actor type encodes (with Cap'n Proto or CAF's `inspect`).
/// The generated Cap'n Proto types stay inside libft: this header is plain
/// C++.
namespace ft {

/// Raw bytes: encoded envelopes and state payloads.
using byte_buffer = std::vector<uint8_t>;

/// One snapshot of one actor's state.
struct snapshot_envelope {
  /// The entity's key, unique per store, e.g. `counter/42`. Not empty, no
  /// NUL bytes.
  std::string key;

  /// The actor type that wrote it, e.g. `counter`: tells a reader (and an
  /// operator) how to decode the payload.
  std::string actor_type;

  /// The version of the payload's format, so a reader detects (and may
  /// upgrade) snapshots written by an older version of the actor type.
  uint32_t schema_version = 1;

  /// Rises with every snapshot of a key: the store rejects a write whose
  /// sequence is not above the stored one, so replays are idempotent.
  uint64_t sequence = 0;

  /// Wall-clock time of the checkpoint, milliseconds since the Unix epoch.
  int64_t timestamp_ms = 0;

  /// The node that took the snapshot (empty on a single node).
  std::string node_id;

  /// CRC-32C over the header fields and the payload (see
  /// `snapshot_checksum`); set by `encode_snapshot`, verified by
  /// `decode_snapshot`.
  uint32_t checksum = 0;

  /// The actor's state, in the actor type's own format.
  byte_buffer payload;

  friend bool operator==(const snapshot_envelope& x,
                         const snapshot_envelope& y) {
    return x.key == y.key && x.actor_type == y.actor_type
           && x.schema_version == y.schema_version && x.sequence == y.sequence
           && x.timestamp_ms == y.timestamp_ms && x.node_id == y.node_id
           && x.checksum == y.checksum && x.payload == y.payload;
  }

  friend bool operator!=(const snapshot_envelope& x,
                         const snapshot_envelope& y) {
    return !(x == y);
  }
};

/// Lets envelopes travel in CAF messages (e.g. to the snapshot writer).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_envelope& x) {
  return f(caf::meta::type_name("ft.snapshot_envelope"), x.key, x.actor_type,
           x.schema_version, x.sequence, x.timestamp_ms, x.node_id,
           x.checksum, x.payload);
}

// -- checksums ----------------------------------------------------------------

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; "123456789" gives
/// 0xE3069283) of `size` bytes, continuing from `crc` (0 to start):
/// `crc32c(b, nb, crc32c(a, na))` is the CRC of `a` followed by `b`. Uses
/// the SSE 4.2 instruction where the CPU has it (chosen at run time).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0) noexcept;

/// The checksum of `x`: CRC-32C over the key, actor type, schema version,
/// sequence, timestamp, node id (each length-prefixed or fixed-width, little
/// endian) and the payload. The `checksum` field itself is not covered.
/// The exact byte layout is an on-disk format, documented at the definition
/// (libft/src/snapshot.cpp).
uint32_t snapshot_checksum(const snapshot_envelope& x) noexcept;

// -- codec --------------------------------------------------------------------

/// Encodes `x` as a Cap'n Proto message (unpacked, flat array) with its
/// checksum computed; `x.checksum` is ignored. The same envelope always
/// gives the same bytes. Errors: `corrupt_snapshot` if the key is empty or
/// contains a NUL byte, or a field exceeds Cap'n Proto's limit of
/// 2^29 - 1 bytes (512 MiB).
caf::expected<byte_buffer> encode_snapshot(const snapshot_envelope& x);

/// As `encode_snapshot`, into `out` (replacing its contents, reusing its
/// capacity): a writer that stores many snapshots encodes them all into one
/// buffer instead of allocating one per snapshot.
caf::error encode_snapshot_into(const snapshot_envelope& x, byte_buffer& out);

/// The exact size `encode_snapshot` produces for `x` (or why `x` cannot be
/// encoded), so a caller can reserve the room first (LMDB's `MDB_RESERVE`).
caf::expected<size_t> encoded_snapshot_size(const snapshot_envelope& x);

/// Encodes `x` straight into `size` bytes at `dst`, which must be exactly
/// `encoded_snapshot_size(x)` bytes, 8-byte aligned (`corrupt_snapshot`
/// otherwise). Saves the copy from a buffer into the final place.
caf::error encode_snapshot_to(const snapshot_envelope& x, void* dst,
                              size_t size);

/// Decodes bytes from `encode_snapshot`. Reads them in place when `data` is
/// 8-byte aligned, else from a word-aligned copy, so `data` may come
/// straight from LMDB. Errors name `what` (e.g. `counter/42 #7`; `snapshot`
/// if empty) and the cause:
/// - `corrupt_snapshot`: not a Cap'n Proto message, truncated (or a size
///   that is not a whole number of 8-byte words), bytes after the message's
///   end, or a missing, empty or NUL-containing key;
/// - `checksum_mismatch`: decodes, but the checksum does not match.
caf::expected<snapshot_envelope>
decode_snapshot(const void* data, size_t size, const std::string& what = "");

/// Decodes only the header (everything but the payload) and checks nothing
/// but the structure (the checksum is not verified): for listings that must
/// not copy large payloads. The returned envelope's payload is empty;
/// `payload_size` (may be null) receives its size. Errors as
/// `decode_snapshot`, except `checksum_mismatch`.
caf::expected<snapshot_envelope>
decode_snapshot_header(const void* data, size_t size, size_t* payload_size,
                       const std::string& what = "");

} // namespace ft
