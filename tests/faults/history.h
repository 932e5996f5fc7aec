// What a fault run records, and what the checker reads: the operations the workload
// clients performed with their outcomes, the fault windows, and what the cluster held at the
// end. The formats are JSON lines / JSON documents in the run's directory, so a run can be
// checked again later (`dynkv-faults check DIR`) and read by other tools.
//
// A run directory holds:
//   history/client-K.jsonl   one Operation per line, appended as each operation completes
//   faults.jsonl             one FaultWindow per line
//   final.json               the FinalState the observer read after the workload stopped
//   scenario.json            the scenario's name and settings
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dynkv::faults {

enum class OpKind {
  ADD,     // read-modify-write: read the key's set (the union of all siblings' elements), add
           // `element`, put the union with the read's context. Keys "set-*".
  BLIND,   // put `value` with no context: must become a sibling, never destroy one. "blind-*".
  PUT,     // put `value` with the context of a read of the key. Keys "del-*".
  DELETE,  // remove with the context of a read; `observed` lists the live values that read
           // returned, which the delete supersedes. Keys "del-*".
  LWW,     // put `value` in the last-write-wins namespace "lww". Keys "lww-*".
};

enum class Outcome {
  OK,       // acknowledged: the system promised it
  FAIL,     // certainly not applied (refused before anything was sent anywhere)
  UNKNOWN,  // indeterminate: may or may not have been applied (timeouts, unavailable, ...)
};

struct Operation {
  uint32_t client = 0;   // client process number
  uint32_t thread = 0;   // thread within that process
  OpKind kind = OpKind::ADD;
  std::string key;       // the user key; LWW keys live in namespace "lww", the rest in ""
  std::string value;     // ADD: the element added; BLIND, PUT, LWW: the value written;
                         // DELETE: empty
  std::vector<std::string> observed;  // DELETE: live values its read saw (it supersedes them)
  int64_t invokeMicros = 0;    // wall clock (CLOCK_REALTIME) when the call began
  int64_t completeMicros = 0;  // ... and when it returned
  Outcome outcome = Outcome::UNKNOWN;
  std::string error;           // the error's kind and message when not OK
};

struct FaultWindow {
  std::string name;            // e.g. "kill -9 n2", "partition n1,n2,n3,c1,c2 | n4,n5,c3"
  int64_t startMicros = 0;
  int64_t endMicros = 0;       // 0 while the fault is still in force (never in a finished run)
};

struct ReplicaCopy {
  std::string node;            // HOST:PORT
  bool reachable = true;       // false: the node did not answer (then `found` is meaningless)
  bool found = false;          // the node holds an object for the key (live or tombstone)
  std::vector<std::string> values;  // its live sibling values, sorted
  uint32_t tombstones = 0;     // its deletion siblings
  std::string digest;          // hex digest of the whole object (version vector, dots,
                               // values): equal digests are identical copies

  bool onlyTombstones() const { return reachable && found && values.empty() && tombstones > 0; }
  // A copy whose every sibling is a deletion: what tombstone collection removes.
};

struct KeyState {
  // One key at the end of the run.
  std::string ns;              // "" or "lww"
  std::string key;
  bool readOk = false;         // the final quorum read (R = N, through the SDK) succeeded
  std::string readError;
  std::vector<std::string> values;  // that read's live sibling values
  uint32_t siblings = 0;       // that read's siblings, deletions included
  std::vector<ReplicaCopy> replicas;  // each preference-list node's own copy, read directly
                                      // (no read repair) at the end of the tombstone wait,
                                      // before the quorum read
};

struct Convergence {
  bool converged = false;      // every replica of every key held an identical copy
  std::optional<double> seconds;   // how long after the wait began that first held
  uint32_t divergentKeys = 0;  // keys whose replicas still differed when the wait ended
};

struct TombstoneCollection {
  // After the reads-free convergence wait: until no replica holds a tombstone-only copy (an
  // object all of whose siblings are deletions) of any key, or the time is up.
  bool collected = false;         // none was left
  std::optional<double> seconds;  // how long after the wait began that first held
  uint32_t copiesLeft = 0;        // tombstone-only replica copies when the wait ended
};

struct FinalState {
  std::vector<KeyState> keys;
  Convergence withoutReads;        // waited for first, with no client reading anything
  TombstoneCollection tombstones;  // waited for next, still without reads
  Convergence afterReads;          // waited for after the final quorum reads (read repair)
};

// ---- Reading and writing (history.c++, nlohmann-json) ----

std::string toString(OpKind kind);      // "add", "blind", "put", "delete", "lww"
std::string toString(Outcome outcome);  // "ok", "fail", "unknown"

std::string toJsonLine(const Operation& op);        // one line, no trailing newline
std::string toJsonLine(const FaultWindow& window);
std::string toJson(const FinalState& state);        // pretty-printed document

std::vector<Operation> readHistory(const std::string& runDir);
// Every history/client-*.jsonl in runDir, in file then line order. A truncated last line (a
// client killed mid-write) is skipped; any other malformed line throws std::runtime_error
// naming the file and line.
std::vector<FaultWindow> readFaults(const std::string& runDir);
FinalState readFinalState(const std::string& runDir);

}  // namespace dynkv::faults
