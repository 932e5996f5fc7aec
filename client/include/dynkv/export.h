// DYNKV_EXPORT marks what libdynkv exports. The library is built with hidden visibility, so
// everything else in it (the core, kj, Cap'n Proto and standard-library code it instantiates)
// stays private to it and cannot clash with an application's own copies.
#pragma once

#define DYNKV_EXPORT __attribute__((visibility("default")))
