// How many times this test binary has allocated with operator new, and the most at once,
// for tests that show a piece of code allocates nothing, or little. Link allocation-count.c++
// into the binary: it replaces the global operator new and delete.
#pragma once

#include <cstddef>

namespace dynkv {

size_t allocationCount();

size_t largestAllocation();
void resetLargestAllocation();
// The largest single allocation since the last reset (or the start): for tests that show a
// decoder allocates what the bytes hold, not what they claim.

}  // namespace dynkv
