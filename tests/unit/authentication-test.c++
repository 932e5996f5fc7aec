// The cluster-secret check and the per-connection guard against guessing (authentication.h):
// pure, so the whole policy is visible here without a clock or a connection.
#include <catch2/catch.hpp>

#include <string>

#include "authentication.h"

namespace dynkv::storaged {
namespace {

using Verdict = AuthenticationGuard::Verdict;

TEST_CASE("authentication: only the exact secret matches") {
  CHECK(secretsMatch("s3cret", "s3cret"));
  CHECK(secretsMatch("", ""));
  CHECK_FALSE(secretsMatch("s3creT", "s3cret"));
  CHECK_FALSE(secretsMatch("x3cret", "s3cret"));
  CHECK_FALSE(secretsMatch("s3cre", "s3cret"));     // a prefix
  CHECK_FALSE(secretsMatch("s3crett", "s3cret"));   // an extension
  CHECK_FALSE(secretsMatch("", "s3cret"));
  CHECK_FALSE(secretsMatch("s3cret", ""));
  // A shorter secret padded with zero bytes is still another secret.
  CHECK_FALSE(secretsMatch(std::string("s3cret\0", 7), "s3cret"));
  CHECK_FALSE(secretsMatch("s3cret", std::string("s3cret\0", 7)));
}

TEST_CASE("authentication: a connection compares one guess per penalty, and a few in all") {
  AuthenticationGuard guard;
  for (uint32_t i = 0; i < AuthenticationGuard::MAX_FAILURES; i++) {
    REQUIRE(guard.attempt() == Verdict::COMPARE);
    guard.failed();
    // Until its answer has waited the penalty, no other attempt is compared.
    CHECK(guard.attempt() == (i + 1 < AuthenticationGuard::MAX_FAILURES ? Verdict::REFUSE_WAITING
                                                                         : Verdict::REFUSE_SPENT));
    guard.penaltyServed();
  }
  CHECK(guard.spent());
  CHECK(guard.attempt() == Verdict::REFUSE_SPENT);  // for good
}

TEST_CASE("authentication: a connection that never fails is never made to wait") {
  AuthenticationGuard guard;
  CHECK(guard.attempt() == Verdict::COMPARE);
  CHECK(guard.attempt() == Verdict::COMPARE);
  CHECK_FALSE(guard.spent());
}

}  // namespace
}  // namespace dynkv::storaged
