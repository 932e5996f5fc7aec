// The process's operator new, counting. A file of its own: the compiler must not see these next
// to the code whose allocations they count (it would pair them with its own new and delete).
#include "allocation-count.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<size_t> allocations{0};
std::atomic<size_t> largest{0};

void noteSize(size_t size) {
  size_t seen = largest.load();
  while (size > seen && !largest.compare_exchange_weak(seen, size)) {
  }
}
}  // namespace

// Every form of the global allocation functions is replaced, so that whatever memory one of
// them hands out, the matching delete frees it the same way (a sanitizer checks that they pair).
void* operator new(size_t size) {
  allocations++;
  noteSize(size);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  allocations++;
  noteSize(size);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace dynkv {

size_t allocationCount() { return allocations.load(); }

size_t largestAllocation() { return largest.load(); }

void resetLargestAllocation() { largest = 0; }

}  // namespace dynkv
