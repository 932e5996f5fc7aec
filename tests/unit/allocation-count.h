// How many times this test binary has allocated with operator new, for tests that show a piece
// of code allocates nothing. Link allocation-count.c++ into the binary: it replaces the global
// operator new and delete.
#pragma once

#include <cstddef>

namespace dynkv {

size_t allocationCount();

}  // namespace dynkv
