#include <catch2/catch.hpp>

#include "protocol-version.h"

using dynkv::protocolMismatch;
using dynkv::ProtocolRange;

TEST_CASE("this build talks to itself", "[protocol]") {
  CHECK_FALSE(protocolMismatch(dynkv::PROTOCOL_VERSION, "this node", "the client"));
  CHECK(dynkv::OLDEST_PROTOCOL_VERSION <= dynkv::PROTOCOL_VERSION);
}

TEST_CASE("a peer that sends no version speaks protocol 1", "[protocol]") {
  CHECK(dynkv::effectiveProtocol(0) == 1);
  CHECK(dynkv::effectiveProtocol(7) == 7);
  // Accepted while protocol 1 is; once it is not, the refusal says what 0 means.
  CHECK_FALSE(protocolMismatch(0, "this node", "the client", ProtocolRange{1, 2}));
  auto refused = protocolMismatch(0, "this node", "the client", ProtocolRange{2, 3});
  REQUIRE(refused);
  CHECK(*refused ==
        "incompatible protocol: this node speaks protocol 2..3; the client speaks 1 (a build "
        "from before protocol versions were exchanged) — upgrade the client to a build that "
        "speaks protocol 2 or newer");
}

TEST_CASE("a newer peer is told to wait for this side's upgrade", "[protocol]") {
  auto refused = protocolMismatch(2, "this node", "the client", ProtocolRange{1, 1});
  REQUIRE(refused);
  CHECK(*refused ==
        "incompatible protocol: this node speaks protocol 1..1; the client speaks 2 — upgrade "
        "this node (or use the client of a build that speaks protocol 1)");
}

TEST_CASE("a rolling upgrade overlaps: every version in the range is accepted", "[protocol]") {
  for (uint32_t v = 3; v <= 5; v++) {
    CHECK_FALSE(protocolMismatch(v, "this node", "the client", ProtocolRange{3, 5}));
  }
  CHECK(protocolMismatch(2, "this node", "the client", ProtocolRange{3, 5}));
  CHECK(protocolMismatch(6, "this node", "the client", ProtocolRange{3, 5}));
}
