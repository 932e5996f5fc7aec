// The dynkv tool's exit codes: one table for every command, so a script tells a missing key
// from a usage mistake from a cluster it cannot reach, whatever the command.
#pragma once

#include <string>

namespace dynkv::cli {

enum class ExitCode : int {
  OK = 0,           // the command did what it was asked
  NOT_FOUND = 1,    // get (or admin inspect) of a key that holds no value
  USAGE = 2,        // the command line is wrong: an unknown flag, a value out of range, a bad
                    // context token, a value over the size limit
  UNAVAILABLE = 3,  // no node answered, the quorum was not met, or the deadline passed; trying
                    // again later may succeed. Also: a port `local up` needs is taken
  REFUSED = 4,      // a node refused: wrong cluster name or secret, a certificate whose role may
                    // not make the call (permission denied), a protocol version one side
                    // does not speak (upgrade the older), or it rejected the write
                    // or an admin change (remove --force of a node it sees alive, a snapshot
                    // into a directory that is not empty)
};

inline bool saysRefused(const std::string& message) {
  // A node's answer that trying again will not change: the wrong cluster or secret, a role
  // that may not make the call (roles.h), or a protocol version one side does not speak
  // (protocol-version.h). Exit code REFUSED.
  return message.find("authentication") != std::string::npos ||
         message.find("permission denied") != std::string::npos ||
         message.find("wrong cluster") != std::string::npos ||
         message.find("incompatible protocol") != std::string::npos;
}

inline constexpr char EXIT_CODE_TABLE[] =
    "exit codes:\n"
    "  0  ok\n"
    "  1  not found: get or admin inspect of a key that holds no value\n"
    "  2  usage: unknown flag, missing argument, value out of range, bad context token,\n"
    "     value over the size limit\n"
    "  3  unavailable: no node reachable, quorum not met, deadline passed (retry later);\n"
    "     local up: a port it needs is taken\n"
    "  4  refused: wrong cluster name or secret, an incompatible protocol version, or a\n"
    "     node rejected the write or an admin change (admin remove --force of a node\n"
    "     it does not suspect, admin snapshot into a directory that is not empty)\n";

}  // namespace dynkv::cli
