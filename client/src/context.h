// What a dynkv::Context holds: the merged version vector of a read and the replica that
// answered it first (the next put's coordinator).
#pragma once

#include <dynkv/types.h>

#include "dvv.h"

namespace dynkv {

struct DecodedContext {
  VersionVector vv;
  uint64_t fastest = 0;  // node id; 0 if unknown
};

Context encodeContext(const VersionVector& vv, uint64_t fastest);
DecodedContext decodeContext(const Context& context);
// Throws Error(INVALID_ARGUMENT) when the bytes are not a context.

}  // namespace dynkv
