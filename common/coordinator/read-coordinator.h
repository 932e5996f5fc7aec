// The read coordinator (DESIGN.md, "Request paths"; shaped like Riak's riak_kv_get_core): the
// whole decision of a get, with no I/O and no clock. A shell sends what the actions say,
// feeds back each replica's answer or failure, and answers the caller once decided().
//
//   ReadCoordinator read(map, map.preferenceList(p, n, fallbacks), r, kind);
//   auto actions = read.start(health);   // send the get to each slot in actions.send
//   ...read.onAnswer(slot, copy, health) / read.onFailure(slot, error, detail, health)
//   ...read.onDeadline() when the call's deadline passes
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dvv.h"
#include "outcome.h"
#include "quorum.h"
#include "router.h"

namespace dynkv {

struct ReadActions {
  std::vector<size_t> send;    // slots to send the get to (target(slot) says where)
  std::vector<size_t> repair;  // slots to send merged() to: read repair, off the caller's path
  bool decided = false;        // this event decided the call: answer the caller now
};

class ReadCoordinator {
 public:
  ReadCoordinator(const PartitionMap& map, PreferenceList pref, uint32_t r, Versioning kind);
  // `map` must outlive the coordinator. The caller checks r <= the number of nodes.

  ReadActions start(const Health& health);
  ReadActions onAnswer(size_t slot, std::optional<Object> copy, const Health& health);
  // The replica's copy (nullopt: it holds none). A copy of the other namespace kind counts as
  // MALFORMED; a fallback that holds nothing is NO_COPY: neither counts toward R.
  ReadActions onFailure(size_t slot, ReplicaError error, std::string detail, const Health& health);
  // A failed replica that did not answer itself is replaced by the next fallback.
  void onDeadline();
  // The call's deadline passed: if undecided, it fails with TIMEOUT.

  const Target& target(size_t slot) const { return targets_.at(slot); }
  bool decided() const { return decided_; }
  bool succeeded() const { return decided_ && !failure_; }
  const Object& merged() const { return quorum_.merged(); }
  // The sync of every answer so far: the call's result once succeeded().
  uint64_t fastest() const { return fastest_; }
  // Node id of the first replica whose answer counted (the next put's coordinator), or 0.
  const CallFailure& failure() const { return *failure_; }  // once decided() && !succeeded()

 private:
  const PartitionMap& map_;
  Router router_;
  Versioning kind_;
  uint32_t r_;
  std::vector<Target> targets_;
  ReadQuorum quorum_;
  uint64_t fastest_ = 0;
  bool decided_ = false;
  bool repaired_ = false;
  std::optional<CallFailure> failure_;

  ReadActions check(ReadActions actions);
};

}  // namespace dynkv
