// How a node checks the cluster secret a connection offers, and how it makes guessing that
// secret slow: the comparison and the per-connection policy, pure (no clock, no I/O), so that
// the Gateway (service.c++) is a thin shell that only waits and answers.
#pragma once

#include <cstdint>
#include <string_view>

namespace dynkv::storaged {

bool secretsMatch(std::string_view offered, std::string_view expected);
// True when `offered` is exactly `expected`. Its running time depends on the two lengths only,
// never on where the first differing byte is, so that timing answers cannot reveal the secret
// a prefix at a time.

class AuthenticationGuard {
  // One connection's record of failed authentications. A failure is answered only after a
  // penalty (FAILURE_PENALTY, waited by the caller on its timer), while it waits no other
  // attempt on that connection is compared, and after MAX_FAILURES failures none ever is:
  // a guesser gets at most a few guesses per penalty per connection, however many it
  // pipelines, while a legitimate client, which authenticates once, never waits.
 public:
  static constexpr uint32_t MAX_FAILURES = 3;
  static constexpr uint32_t FAILURE_PENALTY_MILLIS = 250;

  enum class Verdict {
    COMPARE,         // compare the offered secret, then report with succeeded() or failed()
    REFUSE_WAITING,  // a failed attempt on this connection is still serving its penalty
    REFUSE_SPENT,    // this connection has failed MAX_FAILURES times; it will never be granted
  };

  Verdict attempt() const;
  // What to do with an attempt arriving now. A refused attempt's secret is never compared.

  void failed();
  // The compared secret was wrong: the penalty starts (the caller answers once it is over and
  // then calls penaltyServed()).
  void penaltyServed();

  bool spent() const { return failures_ >= MAX_FAILURES; }
  // True once this connection may never authenticate: its owner may as well hang up.

 private:
  uint32_t failures_ = 0;
  bool waiting_ = false;
};

}  // namespace dynkv::storaged
