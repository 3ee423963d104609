// Counts every heap allocation (operator new) of the binary whose one source file includes
// this header: benchmarks and tests that check a path allocates nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace stanzad::testing {
inline std::atomic<std::uint64_t> allocations{0};
}  // namespace stanzad::testing

// The replaced operator new is malloc itself, so freeing with free() is right; GCC 12 cannot
// see that through the replacement and warns (-Wmismatched-new-delete).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t n) {
  stanzad::testing::allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
