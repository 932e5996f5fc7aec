#include "protocol-version.h"

namespace dynkv {

uint32_t effectiveProtocol(uint32_t sent) { return sent == 0 ? UNVERSIONED_PROTOCOL : sent; }

std::string protocolText() {
  return "protocol " + std::to_string(PROTOCOL_VERSION) + ", accepts " +
         std::to_string(OLDEST_PROTOCOL_VERSION) + ".." + std::to_string(PROTOCOL_VERSION);
}

std::optional<std::string> protocolMismatch(uint32_t theirs, const std::string& us,
                                            const std::string& them, ProtocolRange ours) {
  uint32_t spoken = effectiveProtocol(theirs);
  if (spoken >= ours.oldest && spoken <= ours.newest) return std::nullopt;
  std::string said = std::to_string(spoken);
  if (theirs == 0) said += " (a build from before protocol versions were exchanged)";
  // The older side is the one to upgrade: the newer one may no longer speak its protocol.
  std::string advice = spoken < ours.oldest
                           ? "upgrade " + them + " to a build that speaks protocol " +
                                 std::to_string(ours.oldest) + " or newer"
                           : "upgrade " + us + " (or use " + them + " of a build that speaks " +
                                 "protocol " + std::to_string(ours.newest) + ")";
  return "incompatible protocol: " + us + " speaks protocol " + std::to_string(ours.oldest) +
         ".." + std::to_string(ours.newest) + "; " + them + " speaks " + said + " — " + advice;
}

}  // namespace dynkv
