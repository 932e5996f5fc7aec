// The fault suite's checker (in the spirit of Jepsen's set and register checkers): given what
// the clients did (history.h) and what the cluster held at the end, it says what the system
// broke. It reads only those records, never dynkv's code or internals, so a bug in dynkv
// cannot hide itself here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "history.h"

namespace dynkv::faults {

struct Anomaly {
  std::string kind;    // "lost", "unexpected", "resurrected", "stale-lww", "tombstone"
  std::string key;     // the key (namespace "lww" keys are written "lww/KEY")
  std::string value;   // the element or value concerned
  std::string detail;  // one line a person can act on: which op, when, what was read
};

struct CheckResult {
  uint64_t ops = 0;           // operations attempted
  uint64_t acknowledged = 0;  // of which OK
  uint64_t failed = 0;        // FAIL
  uint64_t unknown = 0;       // UNKNOWN

  uint64_t lost = 0;          // acknowledged writes the final state does not hold
  uint64_t unexpected = 0;    // values in the final state that no operation tried to write,
                              // or that only certainly-failed operations did
  uint64_t resurrected = 0;   // values an acknowledged delete superseded that are live again
  uint32_t maxSiblings = 0;   // most siblings any key's final read returned
  uint64_t unreadable = 0;    // keys whose final quorum read failed (their writes count as
                              // lost: nothing shows they survived)

  bool convergedWithoutReads = false;
  std::optional<double> convergeSeconds;       // without reads; nullopt if it never did
  bool convergedAfterReads = false;
  std::optional<double> convergeAfterReadsSeconds;

  bool tombstonesCollected = false;        // no replica kept a tombstone-only copy of any key
  std::optional<double> tombstoneSeconds;  // how long that took after convergence; nullopt if
                                           // it never happened
  uint64_t tombstonesLeft = 0;             // tombstone-only replica copies left when the wait ended

  std::vector<Anomaly> anomalies;  // every lost, unexpected and resurrected value, every stale
                                   // LWW register and every tombstone-only replica copy left
                                   // (the first 1000; the counts are exact)

  bool safe() const { return lost == 0 && unexpected == 0 && resurrected == 0; }
};

CheckResult check(const std::vector<Operation>& history, const FinalState& final);
// The rules, per key family:
// - ADD ("set-*"): the key's set is the union of the elements of every live value of its
//   final read (a value is elements joined by ' '). An acknowledged ADD whose element is not
//   in it is lost. An element that no ADD tried (or only FAIL ones did) is unexpected.
// - BLIND ("blind-*"): every acknowledged value must be a live value of the final read (no
//   one ever supersedes a blind write); a value no BLIND tried is unexpected.
// - PUT and DELETE ("del-*"): an acknowledged PUT's value must be live at the end unless a
//   DELETE that may have happened (OK or UNKNOWN) observed it (superseded it). A value an
//   acknowledged PUT wrote and an acknowledged DELETE observed that is live at the end, in the
//   final read or in any replica's copy, is resurrected (counted once per key and value); an
//   UNKNOWN PUT may take effect after the delete, so its value coming back is not. Values no
//   PUT tried are unexpected.
// - LWW ("lww-*" in namespace "lww"): the final read must hold one value, written by some
//   LWW op that was not FAIL (else unexpected). If an acknowledged write began after the
//   winning value's write completed, that later write was lost (stale-lww; counted in lost).
// Replica copies count too: a value live on any replica that no op tried is unexpected.
// Tombstones: a reachable replica copy that holds only deletion siblings is a tombstone left
// uncollected ("tombstone", counted in tombstonesLeft, one per copy). A key that no replica
// holds and whose final read found nothing was deleted (its tombstones were collected).
// Keys that appear only in the history (never in FinalState) are checked as if their final
// read had failed.

}  // namespace dynkv::faults
