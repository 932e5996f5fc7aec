// What the opaque context of a read holds (the SDK's dynkv::Context, the `context` bytes of
// server-driven calls): the read's merged version vector and the replica that answered it
// first (DESIGN.md, "Data model"). Both the SDK and a node coordinating on a caller's behalf
// make and read these bytes, so their format is defined once, here; the bytes are a Cap'n
// Proto message (wire::ReadContext), so contexts outlive a version of either side.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dvv.h"

namespace dynkv {

struct ReadContext {
  WriteContext seen;     // what the read saw: a put with this context supersedes all of it
  uint64_t fastest = 0;  // node id of the replica that answered first (the next put's
                         // coordinator, the paper's section 6.4); 0 if unknown
};

ReadContext contextOf(const Object& object, uint64_t fastest);
// The context of a read (or write) that returned `object`: its vv and its named writes.

std::string encodeReadContext(const ReadContext& context);

std::optional<std::string> decodeReadContext(std::string_view bytes, ReadContext& out);
// nullopt when `bytes` decoded into `out` (empty bytes: an empty context, the blind write's);
// else a message saying what is wrong with them, and `out` is unspecified.

}  // namespace dynkv
