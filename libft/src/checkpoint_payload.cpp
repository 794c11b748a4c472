// The payload of a checkpointed actor's snapshot: state bytes plus the
// dedupe window, as the Cap'n Proto struct `CheckpointPayload`
// (libft/schema/checkpoint.capnp). Declared in ft/checkpoint.hpp's detail
// namespace so ft_actors can use it without seeing generated types.

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <utility>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include "checkpoint.capnp.h"
#include "ft/checkpoint.hpp"
#include "ft/error.hpp"

namespace ft::detail {

namespace {

constexpr size_t word_bytes = sizeof(capnp::word);

std::string label(const std::string& what) {
  return what.empty() ? std::string{"checkpoint payload"} : what;
}

} // namespace

caf::expected<byte_buffer>
encode_checkpoint_payload(const checkpoint_payload& x) {
  try {
    capnp::MallocMessageBuilder msg;
    auto root = msg.initRoot<schema::CheckpointPayload>();
    root.setState(
      capnp::Data::Reader{x.state.data(), x.state.size()});
    auto ids = root.initAppliedIds(static_cast<unsigned>(x.applied_ids.size()));
    for (unsigned i = 0; i < x.applied_ids.size(); ++i)
      ids.set(i, capnp::Text::Reader{x.applied_ids[i].data(),
                                     x.applied_ids[i].size()});
    root.setHandled(x.handled);
    auto flat = capnp::messageToFlatArray(msg);
    auto bytes = flat.asBytes();
    return byte_buffer(bytes.begin(), bytes.end());
  } catch (const kj::Exception& e) {
    return make_error(errc::corrupt_snapshot,
                      std::string{"cannot encode checkpoint payload: "}
                        + e.getDescription().cStr());
  }
}

caf::expected<checkpoint_payload>
decode_checkpoint_payload(const byte_buffer& bytes, const std::string& what) {
  auto fail = [&](const std::string& why) {
    return make_error(errc::corrupt_snapshot,
                      label(what) + ": checkpoint payload " + why);
  };
  if (bytes.empty() || bytes.size() % word_bytes != 0)
    return fail("truncated: " + std::to_string(bytes.size())
                + " bytes is not a whole, non-zero number of words");
  // Copy into words: a byte_buffer is aligned in practice, but nothing
  // promises it, and the payload is small next to a restore's other costs.
  auto n = bytes.size() / word_bytes;
  auto words = kj::heapArray<capnp::word>(n);
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  try {
    capnp::ReaderOptions opts;
    // Each word is read at most once in a well-formed payload; the bound
    // keeps a hostile one from making us traverse more.
    opts.traversalLimitInWords = std::max<uint64_t>(2 * uint64_t{n}, 1024);
    capnp::FlatArrayMessageReader reader{words.asPtr(), opts};
    if (reader.getEnd() != words.end())
      return fail("has bytes after the end of the message");
    auto root = reader.getRoot<schema::CheckpointPayload>();
    checkpoint_payload result;
    auto state = root.getState();
    result.state.assign(state.begin(), state.end());
    for (auto id : root.getAppliedIds())
      result.applied_ids.emplace_back(id.begin(), id.size());
    result.handled = root.getHandled();
    return result;
  } catch (const kj::Exception& e) {
    return fail(std::string{"is not valid: "} + e.getDescription().cStr());
  } catch (const std::bad_alloc&) {
    // Says nothing about the bytes: must not make a restore skip a good
    // snapshot.
    throw;
  } catch (const std::exception& e) {
    return fail(std::string{"is not valid: "} + e.what());
  }
}

} // namespace ft::detail
