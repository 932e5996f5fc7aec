#include "read-context.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/debug.h>

#include <cstring>

#include "codec.h"

namespace dynkv {

namespace {
// A context's vector holds at most a few dozen entries; anything near this is not one.
constexpr size_t MAX_CONTEXT_BYTES = 64 * 1024;
}  // namespace

ReadContext contextOf(const Object& object, uint64_t fastest) {
  return ReadContext{WriteContext{object.vv, writeIdsOf(object)}, fastest};
}

std::string encodeReadContext(const ReadContext& context) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<wire::ReadContext>();
  encodeVersionVector(context.seen.vv, root.initVv(context.seen.vv.size()));
  root.setFastest(context.fastest);
  auto& ids = context.seen.writeIds;
  encodeWriteIds(ids, root.initWriteIds(ids.size()));
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::optional<std::string> decodeReadContext(std::string_view bytes, ReadContext& out) {
  out = ReadContext{};
  if (bytes.empty()) return std::nullopt;
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.size() > MAX_CONTEXT_BYTES) {
    return std::string("context is malformed (wrong size)");
  }
  // Copied: the caller's bytes need not be word-aligned.
  auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  memcpy(words.begin(), bytes.data(), bytes.size());
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                 capnp::FlatArrayMessageReader reader(words);
                 auto root = reader.getRoot<wire::ReadContext>();
                 out.seen.vv = decodeVersionVector(root.getVv());
                 out.seen.writeIds = decodeWriteIds(root.getWriteIds());
                 out.fastest = root.getFastest();
               })) {
    return std::string("context is malformed: ") + e->getDescription().cStr();
  }
  return std::nullopt;
}

}  // namespace dynkv
