#pragma once

// Private to ft_core (and its tests): the implementations behind
// `ft::crc32c`, exposed so the tests can check that they agree. All of them
// take and return a finished CRC (0 to start), like `ft::crc32c`.

#include <cstddef>
#include <cstdint>

namespace ft::detail {

/// Table-driven CRC-32C (slicing-by-8): the reference, and the fallback on
/// CPUs without SSE 4.2 or other architectures.
uint32_t crc32c_portable(const void* data, size_t size, uint32_t crc) noexcept;

/// Whether this CPU has the SSE 4.2 `crc32` instruction (and this build can
/// use it).
bool crc32c_hw_available() noexcept;

/// CRC-32C with the SSE 4.2 `crc32` instruction, three streams interleaved
/// for large inputs. Only call it when `crc32c_hw_available()`; on builds
/// without the fast path it is the portable one.
uint32_t crc32c_hw(const void* data, size_t size, uint32_t crc) noexcept;

/// Whether this CPU (and OS) has AVX-512 with VPCLMULQDQ, for the folding
/// path.
bool crc32c_fold_available() noexcept;

/// CRC-32C by carry-less multiplication, folding 256 bytes per step with
/// AVX-512 VPCLMULQDQ, the `crc32` instruction for what is left. Only call
/// it when `crc32c_fold_available()`; on builds without the fast paths it
/// is the portable one.
uint32_t crc32c_fold(const void* data, size_t size, uint32_t crc) noexcept;

/// Copies `size` bytes from `src` to `dst` (not overlapping) and returns
/// their CRC-32C continued from `crc`: one pass over the bytes where the
/// folding path is available, else `memcpy` then `crc32c`. The encoder uses
/// it for the payload, the bulk of a snapshot.
uint32_t crc32c_copy(void* dst, const void* src, size_t size,
                     uint32_t crc) noexcept;

} // namespace ft::detail
