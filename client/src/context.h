// The SDK's side of a dynkv::Context: its bytes are a ReadContext (common/read-context.h),
// the merged version vector of a read and the replica that answered it first (the next
// put's coordinator).
#pragma once

#include <dynkv/types.h>

#include "read-context.h"

namespace dynkv {

Context encodeContext(const ReadContext& context);

ReadContext decodeContext(const Context& context);
// Throws Error(INVALID_ARGUMENT) when the bytes are not a context.

}  // namespace dynkv
