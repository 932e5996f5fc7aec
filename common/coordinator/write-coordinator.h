// The write coordinator (DESIGN.md, "Request paths"; Voldemort's routed-put pipeline as one
// pure state machine): coordinator choice, replication of the minted version, sloppy
// substitution with hints, and the decision, with no I/O and no clock.
//
// Vector-clock writes: one slot is asked to coordinate (mint a dot and store); once it has,
// the minted object is replicated to every other slot. Last-write-wins writes: the object is
// made by the caller and replicated to every slot at once. The call succeeds at W acks.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dvv.h"
#include "outcome.h"
#include "quorum.h"
#include "router.h"

namespace dynkv {

struct WriteActions {
  std::optional<size_t> coordinate;  // ask this slot to coordinate (coordinatePut)
  std::vector<size_t> replicate;     // send object() to these slots (with their hintFor)
  bool decided = false;              // this event decided the call: answer the caller now
};

class WriteCoordinator {
 public:
  WriteCoordinator(const PartitionMap& map, PreferenceList pref, uint32_t w, Versioning kind,
                   uint64_t preferredCoordinator, std::optional<Object> lastWriteWins);
  // `map` must outlive the coordinator. preferredCoordinator: node id of the replica that
  // answered the key's preceding read first (the paper's §6.4), 0 if unknown. lastWriteWins:
  // the object to replicate, for a LAST_WRITE_WINS kind (nullopt otherwise).

  WriteActions start(const Health& health);
  WriteActions onCoordinated(size_t slot, Object object);
  // The coordinator minted and stored `object` (counts as its ack); the others get it now.
  WriteActions onAck(size_t slot);
  WriteActions onFailure(size_t slot, ReplicaError error, std::string detail, const Health& health);
  // A replica that did not answer itself is replaced by a fallback holding a hint for its
  // owner; a coordinator that failed or refused (other than as INVALID_REQUEST) before
  // minting is replaced by the next candidate.
  void onDeadline();

  const Target& target(size_t slot) const { return targets_.at(slot); }
  bool decided() const { return decided_; }
  bool succeeded() const { return decided_ && !failure_; }
  const Object& object() const { return *object_; }  // once minted (or given)
  bool hasObject() const { return object_.has_value(); }
  uint64_t coordinator() const { return coordinator_; }  // node id that minted, 0 for LWW
  const CallFailure& failure() const { return *failure_; }
  uint32_t acks() const { return quorum_.acks(); }

 private:
  const PartitionMap& map_;
  Router router_;
  Versioning kind_;
  uint32_t w_;
  uint64_t preferredCoordinator_;
  std::vector<Target> targets_;
  WriteQuorum quorum_;
  std::optional<Object> object_;
  std::vector<size_t> triedAsCoordinator_;
  uint64_t coordinator_ = 0;
  bool decided_ = false;
  std::optional<CallFailure> failure_;

  std::optional<size_t> nextCoordinator() const;
  void substitute(size_t failed, const Health& health, WriteActions& actions);
  WriteActions check(WriteActions actions);
};

}  // namespace dynkv
