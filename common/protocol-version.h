// The wire protocol's version, exchanged in Gateway.authenticate, and the one rule that says
// whether two builds may talk. Pure: a unit test covers every case.
//
// The rule, for a rolling upgrade: a build speaks every protocol from OLDEST_PROTOCOL_VERSION
// to PROTOCOL_VERSION. Raise PROTOCOL_VERSION when the wire changes in a way an older build
// cannot read; raise OLDEST_PROTOCOL_VERSION only once no build that speaks only older ones
// may still run (one release later), so that old and new nodes overlap during the upgrade. A
// peer that sends 0 (the field absent) is a build from before the version was exchanged: it
// speaks protocol 1, and is judged as such.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dynkv {

inline constexpr uint32_t PROTOCOL_VERSION = 1;         // what this build sends
inline constexpr uint32_t OLDEST_PROTOCOL_VERSION = 1;  // the oldest it still accepts
inline constexpr uint32_t UNVERSIONED_PROTOCOL = 1;     // what a peer that sends 0 speaks

struct ProtocolRange {
  uint32_t oldest = OLDEST_PROTOCOL_VERSION;
  uint32_t newest = PROTOCOL_VERSION;
};

uint32_t effectiveProtocol(uint32_t sent);
// The protocol a peer speaks, given what it sent: `sent`, or UNVERSIONED_PROTOCOL for 0.

std::optional<std::string> protocolMismatch(uint32_t theirs, const std::string& us,
                                            const std::string& them,
                                            ProtocolRange ours = ProtocolRange());
// Nothing when a peer that sent `theirs` may talk to us; else the refusal, in the operator's
// terms, naming both versions and which side to upgrade, e.g. "incompatible protocol: this
// node speaks protocol 1..1; the client speaks 2 — upgrade this node". `us` and `them` name
// the two sides ("this node", "the client").

std::string protocolText();
// What --version prints of it: "protocol 1, accepts 1..1".

}  // namespace dynkv
