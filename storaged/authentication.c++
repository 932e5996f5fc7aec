#include "authentication.h"

#include <algorithm>

namespace dynkv::storaged {

bool secretsMatch(std::string_view offered, std::string_view expected) {
  // Every byte position up to the longer length is visited, and differences are accumulated
  // rather than returned early: `==` (memcmp) stops at the first difference, which told a
  // patient guesser how many leading bytes it had right.
  size_t length = std::max(offered.size(), expected.size());
  unsigned difference = offered.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < length; i++) {
    unsigned char a = i < offered.size() ? static_cast<unsigned char>(offered[i]) : 0;
    unsigned char b = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
    difference |= unsigned(a ^ b);
  }
  return difference == 0;
}

AuthenticationGuard::Verdict AuthenticationGuard::attempt() const {
  if (spent()) return Verdict::REFUSE_SPENT;
  if (waiting_) return Verdict::REFUSE_WAITING;
  return Verdict::COMPARE;
}

void AuthenticationGuard::failed() {
  failures_++;
  waiting_ = true;
}

void AuthenticationGuard::penaltyServed() { waiting_ = false; }

}  // namespace dynkv::storaged
