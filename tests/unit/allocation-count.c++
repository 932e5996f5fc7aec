// The process's operator new, counting. A file of its own: the compiler must not see these next
// to the code whose allocations they count (it would pair them with its own new and delete).
#include "allocation-count.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<size_t> allocations{0};
}  // namespace

void* operator new(size_t size) {
  allocations++;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace dynkv {

size_t allocationCount() { return allocations.load(); }

}  // namespace dynkv
