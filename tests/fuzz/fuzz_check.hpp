// tests/fuzz/fuzz_check.hpp: an invariant check for fuzz targets that stays on under NDEBUG.
#pragma once

#include <cstdio>
#include <cstdlib>

// The default build is RelWithDebInfo (NDEBUG), where assert() is compiled out; a fuzz target
// that replays its corpus there must still fail loudly.
#define STANZAD_FUZZ_CHECK(cond)                                                             \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
