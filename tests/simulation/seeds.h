// Which seeds a simulation scenario runs: DYNKV_SIM_SEEDS=K runs K of them (default 500), from
// seed 1; DYNKV_SIM_SEED=N replays seed N alone (a failure prints the value to use).
#pragma once

#include <cstdint>
#include <cstdlib>

namespace dynkv::sim {

struct Seeds {
  uint64_t first = 1;
  uint64_t count = 500;
  uint64_t end() const { return first + count; }
};

inline Seeds seedsToRun(uint64_t defaultCount = 500) {
  Seeds seeds;
  seeds.count = defaultCount;
  if (auto env = getenv("DYNKV_SIM_SEEDS")) seeds.count = std::strtoull(env, nullptr, 10);
  if (auto env = getenv("DYNKV_SIM_SEED")) {
    seeds.first = std::strtoull(env, nullptr, 10);
    seeds.count = 1;
  }
  return seeds;
}

}  // namespace dynkv::sim
