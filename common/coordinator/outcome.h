// The coordinator's error taxonomy: what went wrong with one replica, and how a whole call
// failed. Typed values, so no layer above classifies errors by their text. The shells that
// talk to the network translate transport failures into ReplicaError at the edge (one
// function each), and translate CallFailure into the SDK's dynkv::Error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dynkv {

enum class ReplicaError : uint8_t {
  UNREACHABLE,      // no connection, or it broke: try a fallback
  TIMEOUT,          // no answer within the replica timeout: try a fallback
  OVERLOADED,       // the node asked us to back off: try a fallback
  INVALID_REQUEST,  // the node refused the request itself (a limit): the caller's mistake
  REFUSED,          // the node refused for its own reasons (storage full, partition arriving)
  MALFORMED,        // the answer did not decode, or holds the other namespace kind
  NO_COPY,          // a fallback answered a read but holds nothing: it is no answer
};

bool answered(ReplicaError error);
// True when the node itself answered (a refusal or a bad answer): a fallback would not help,
// so none is asked. False for faults of the node or the path to it.

const char* toString(ReplicaError error);

struct ReplicaFault {
  uint16_t node = 0;  // index into the call's PartitionMap::nodes()
  ReplicaError error = ReplicaError::UNREACHABLE;
  std::string detail;  // what the node or the transport said
};

enum class FailureKind : uint8_t {
  UNAVAILABLE,       // too few replicas answered or acknowledged
  REJECTED,          // a replica refused, and too few others acknowledged
  INVALID_ARGUMENT,  // every replica that failed refused the request as invalid
  TIMEOUT,           // the call's deadline passed first
};

struct CallFailure {
  FailureKind kind = FailureKind::UNAVAILABLE;
  std::string message;               // a line for a person: what was needed, who failed and why
  std::vector<ReplicaFault> faults;  // every replica that failed, in the order they were asked
  uint32_t got = 0;                  // answers (reads) or acknowledgements (writes)
  uint32_t required = 0;             // R or W
};

}  // namespace dynkv
