// The request driver (DESIGN.md, "Request paths"): runs a ReadCoordinator or WriteCoordinator
// (common/coordinator/) to completion against real replicas. It sends what the coordinator
// says over a Replicas (replicas.h), feeds back each reply, failure or per-replica timeout,
// enforces the call's deadline, and sends read repairs in the background. The SDK
// (client-driven mode) and storaged (server-driven mode) both coordinate through it; each
// converts the outcome into its own answer.
#pragma once

#include <kj/async.h>
#include <kj/time.h>
#include <kj/timer.h>

#include <memory>
#include <optional>
#include <string>

#include "dvv.h"
#include "outcome.h"
#include "partition-map.h"
#include "read-context.h"
#include "replicas.h"

namespace dynkv {

using MapSnapshot = std::shared_ptr<const PartitionMap>;
// An immutable, shared view: a call routes by one map from start to end.

struct Quorum {
  // The defaults are the SDK's (ClientOptions) and those a server-driven call without
  // settings gets (schema/dynkv.capnp, CallSettings).
  uint32_t n = 3;
  uint32_t r = 2;
  uint32_t w = 2;
  kj::Duration timeout = 2 * kj::SECONDS;  // the whole call

  kj::Duration replicaTimeout() const { return kj::max(timeout / 2, 1 * kj::MILLISECONDS); }
  // A replica silent this long is treated as failed and replaced by a fallback: half the call's
  // timeout, so that a fallback still has time to answer.

  static constexpr uint32_t MAX_N = 64;
};

std::optional<std::string> checkQuorum(uint32_t n, uint32_t r, uint32_t w, int64_t timeoutMillis);
// nullopt when 1 <= R <= N, 1 <= W <= N, N <= MAX_N and the timeout is positive; else a
// message saying which rule the settings break.

struct CoordinatedCall {
  MapSnapshot map;  // the view the call routes by
  std::string ns;
  std::string key;
  Versioning kind = Versioning::VECTOR_CLOCK;
  Quorum quorum;
};

struct ReadOutcome {
  std::optional<CallFailure> failure;  // the call failed, and why; then nothing else is set
  Object merged;                       // the sync of every answer that counted
  uint64_t fastest = 0;  // node id of the first replica whose answer counted (ReadContext)
};

struct WriteOutcome {
  std::optional<CallFailure> failure;  // the call failed, and why; then nothing else is set
  Object object;                       // the object written (its vv is the new context)
  uint64_t coordinator = 0;            // node id of the replica that minted it; 0 for LWW
};

struct Write {
  std::optional<std::string> value;  // nullopt: a tombstone (remove)
  ReadContext context;               // of the read the write supersedes; empty: a blind write
  int64_t nowMicros = 0;             // the timestamp of a last-write-wins write
  uint64_t writeId = 0;
  // The write's name, carried by every replica asked to coordinate it (dvv.h, Sibling): 0
  // draws a random one. A caller that retries the same write names it itself.
};

class RequestDriver final : private kj::TaskSet::ErrorHandler {
 public:
  RequestDriver(Replicas& replicas, kj::Timer& timer);
  // Both must outlive the driver. Destroying it cancels every call still running.
  ~RequestDriver() noexcept(false);

  kj::Promise<ReadOutcome> read(CoordinatedCall call);
  // Asks the key's N replicas (fallbacks for suspected or failed ones) and resolves once R
  // have answered, with the sync of the answers; or with a failure once R answers can no
  // longer come or call.quorum.timeout has passed. Replicas asked go on being awaited in
  // the background, and those whose copy differs from the merge are then repaired.

  kj::Promise<WriteOutcome> write(CoordinatedCall call, Write write);
  // Vector-clock: one replica coordinates (the context's fastest if it can, else the first
  // healthy owner), the others get its object. Last-write-wins: the object, timestamped
  // write.nowMicros, goes to all N. Resolves at W acknowledgements, or with a failure once
  // W can no longer come or call.quorum.timeout has passed.
  //
  // Both resolve at once with an INVALID_ARGUMENT failure when the map has fewer nodes than
  // R (or W). The caller checks the quorum (checkQuorum) and the key and value's limits.

 private:
  class ReadRun;
  class WriteRun;

  Replicas& replicas_;
  kj::Timer& timer_;
  kj::TaskSet tasks_;  // replica calls (answered or not) and read repairs

  template <typename Run, typename T, typename OnReply>
  void await(Run& run, size_t slot, const NodeInfo& node, kj::Promise<T> reply, OnReply onReply);
  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace dynkv
