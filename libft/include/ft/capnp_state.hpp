#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <type_traits>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "ft/checkpoint.hpp"
#include "ft/error.hpp"

/// State kept in a Cap'n Proto struct of the user's own schema: a
/// `state_codec` for it, so snapshots hold a message that other languages
/// and later versions of the actor read with Cap'n Proto's own evolution
/// rules. Include this header only where the actor type is defined (it
/// pulls in Cap'n Proto; link `CapnProto::capnp`).
///
/// Usage, for `struct counter { int64_t value; }` and a schema struct
/// `CounterState { value @0 :Int64; }`:
///
/// ```cpp
/// void to_capnp(const counter& x, CounterState::Builder out) {
///   out.setValue(x.value);
/// }
/// caf::error from_capnp(CounterState::Reader in, counter& x) {
///   x.value = in.getValue();
///   return caf::none;                    // (or return void)
/// }
/// template <>
/// struct ft::state_codec<counter>
///   : ft::capnp_state_codec<counter, CounterState> {
///   static constexpr uint32_t version = 2; // optional; defaults to 1
/// };
/// ```
///
/// `to_capnp` and `from_capnp` are found by argument-dependent lookup (put
/// them in the namespace of `State` or of the schema struct).
namespace ft {

template <class State, class Struct>
struct capnp_state_codec {
  static constexpr uint32_t version = 1;

  static caf::expected<byte_buffer> encode(const State& x) {
    try {
      capnp::MallocMessageBuilder msg;
      to_capnp(x, msg.initRoot<Struct>());
      auto flat = capnp::messageToFlatArray(msg);
      auto bytes = flat.asBytes();
      return byte_buffer(bytes.begin(), bytes.end());
    } catch (const kj::Exception& e) {
      // kj exceptions must not cross into the actor (no exceptions across
      // libft's API): a failed encode is an error the actor reports.
      return make_error(errc::corrupt_snapshot,
                        std::string{"cannot encode state: "}
                          + e.getDescription().cStr());
    }
  }

  static caf::error decode(const byte_buffer& bytes, State& x) {
    constexpr size_t word = sizeof(capnp::word);
    if (bytes.empty() || bytes.size() % word != 0)
      return make_error(errc::corrupt_snapshot,
                        "state of " + std::to_string(bytes.size())
                          + " bytes is not a Cap'n Proto message");
    // Cap'n Proto reads words in place: copy into word-aligned memory.
    auto n = bytes.size() / word;
    auto words = kj::heapArray<capnp::word>(n);
    std::memcpy(words.begin(), bytes.data(), bytes.size());
    try {
      capnp::ReaderOptions opts;
      // Bounds what a damaged message can make us traverse.
      opts.traversalLimitInWords = std::max<uint64_t>(4 * uint64_t{n}, 1024);
      capnp::FlatArrayMessageReader reader{words.asPtr(), opts};
      auto root = reader.getRoot<Struct>();
      using result_type = decltype(from_capnp(root, x));
      if constexpr (std::is_void<result_type>::value) {
        from_capnp(root, x);
        return caf::none;
      } else {
        return from_capnp(root, x);
      }
    } catch (const kj::Exception& e) {
      return make_error(errc::corrupt_snapshot,
                        std::string{"cannot decode state: "}
                          + e.getDescription().cStr());
    } catch (const std::bad_alloc&) {
      throw; // says nothing about the bytes
    } catch (const std::exception& e) {
      return make_error(errc::corrupt_snapshot,
                        std::string{"cannot decode state: "} + e.what());
    }
  }
};

} // namespace ft
