#include "outcome.h"

namespace dynkv {

bool answered(ReplicaError error) {
  switch (error) {
    case ReplicaError::INVALID_REQUEST:
    case ReplicaError::REFUSED:
    case ReplicaError::MALFORMED:
      return true;
    case ReplicaError::UNREACHABLE:
    case ReplicaError::TIMEOUT:
    case ReplicaError::OVERLOADED:
    case ReplicaError::NO_COPY:
      return false;
  }
  return false;
}

const char* toString(ReplicaError error) {
  switch (error) {
    case ReplicaError::UNREACHABLE:
      return "unreachable";
    case ReplicaError::TIMEOUT:
      return "no answer within the replica timeout";
    case ReplicaError::OVERLOADED:
      return "overloaded";
    case ReplicaError::INVALID_REQUEST:
      return "invalid request";
    case ReplicaError::REFUSED:
      return "refused";
    case ReplicaError::MALFORMED:
      return "malformed answer";
    case ReplicaError::NO_COPY:
      return "fallback holds no copy of the key";
  }
  return "unknown";
}

}  // namespace dynkv
