// The YCSB core workloads (Cooper et al., SoCC 2010) and their key choosers, as YCSB's
// CoreWorkload defines them:
//   A  update heavy   50% read, 50% update
//   B  read mostly    95% read,  5% update
//   C  read only     100% read
//   F  read-modify-write  50% read, 50% read-modify-write (a read, then a write with its context)
// plus W, writes only (not a YCSB workload: it measures the put rate on its own).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>

namespace dynkv::bench {

enum class OpKind { READ, UPDATE, READ_MODIFY_WRITE };

struct Workload {
  char name = 'a';
  double readFraction = 0.5;
  double updateFraction = 0.5;  // the rest is read-modify-write
  const char* description = "";

  static Workload parse(const std::string& name) {
    if (name == "a" || name == "A") return {'a', 0.5, 0.5, "50% read, 50% update"};
    if (name == "b" || name == "B") return {'b', 0.95, 0.05, "95% read, 5% update"};
    if (name == "c" || name == "C") return {'c', 1.0, 0.0, "100% read"};
    if (name == "f" || name == "F") return {'f', 0.5, 0.0, "50% read, 50% read-modify-write"};
    if (name == "w" || name == "W") return {'w', 0.0, 1.0, "100% update (not YCSB)"};
    throw std::invalid_argument("--workload: expected a, b, c, f or w, got '" + name + "'");
  }

  template <typename Rng>
  OpKind next(Rng& rng) const {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    if (u < readFraction) return OpKind::READ;
    if (u < readFraction + updateFraction) return OpKind::UPDATE;
    return OpKind::READ_MODIFY_WRITE;
  }
};

inline uint64_t fnvHash64(uint64_t value) {
  // YCSB's Utils.fnvhash64: FNV-1a over the value's 8 bytes, little end first.
  uint64_t hash = 0xCBF29CE484222325ull;
  for (int i = 0; i < 8; i++) {
    hash ^= value & 0xff;
    hash *= 1099511628211ull;
    value >>= 8;
  }
  return hash & 0x7fffffffffffffffull;  // YCSB takes Math.abs of a signed long
}

class ScrambledZipfian {
  // YCSB's ScrambledZipfianGenerator: a Zipfian rank over 10^10 items with θ = 0.99 (Gray et
  // al.'s generator, using YCSB's precomputed zeta), hashed onto the key space so that the
  // popular keys are scattered rather than clustered at the low indexes.
 public:
  static constexpr double THETA = 0.99;

  explicit ScrambledZipfian(uint64_t keys) : keys_(keys) {
    alpha_ = 1.0 / (1.0 - THETA);
    double zeta2 = 1.0 + std::pow(0.5, THETA);
    eta_ = (1.0 - std::pow(2.0 / double(ITEMS), 1.0 - THETA)) / (1.0 - zeta2 / ZETA_N);
  }

  template <typename Rng>
  uint64_t next(Rng& rng) {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    double uz = u * ZETA_N;
    uint64_t rank;
    if (uz < 1.0) {
      rank = 0;
    } else if (uz < 1.0 + std::pow(0.5, THETA)) {
      rank = 1;
    } else {
      rank = uint64_t(double(ITEMS) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
    }
    return fnvHash64(rank) % keys_;
  }

 private:
  static constexpr uint64_t ITEMS = 10000000000ull;
  static constexpr double ZETA_N = 26.46902820178302;  // zeta(10^10, 0.99), as in YCSB
  uint64_t keys_;
  double alpha_;
  double eta_;
};

class KeyChooser {
 public:
  KeyChooser(uint64_t keys, bool zipfian) : keys_(keys), zipfian_(zipfian), zipf_(keys) {}

  template <typename Rng>
  uint64_t next(Rng& rng) {
    if (zipfian_) return zipf_.next(rng);
    return std::uniform_int_distribution<uint64_t>(0, keys_ - 1)(rng);
  }

 private:
  uint64_t keys_;
  bool zipfian_;
  ScrambledZipfian zipf_;
};

inline std::string keyName(uint64_t index) {
  char buf[32];
  snprintf(buf, sizeof(buf), "user%010llu", static_cast<unsigned long long>(index));
  return buf;
}

}  // namespace dynkv::bench
