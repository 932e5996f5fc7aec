// The checker's rules are in checker.h. Two choices here go beyond the header's words, both so
// that a correct dynkv is never reported as broken:
// - An operation with outcome UNKNOWN may or may not have happened, so it is given the benefit
//   of the doubt both ways: its value or element is never unexpected, and a value that a
//   non-FAIL PUT or DELETE observed (superseded) is not lost when it is gone. Only what an
//   acknowledged one observed counts as resurrected when it is live again, and only when an
//   acknowledged put wrote it (an unknown put may take effect after the delete).
// - A PUT on a "del-*" key carries the context of its read, so it supersedes what that read
//   saw, exactly like a DELETE; its `observed` (when the workload records it) counts the same.

#include "checker.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <utility>

namespace dynkv::faults {

namespace {

constexpr size_t MAX_ANOMALIES = 1000;

enum class Family { NONE, SET, BLIND, DEL, LWW };

Family familyOf(const std::string& ns, const std::string& key) {
  auto startsWith = [&key](const char* prefix) { return key.rfind(prefix, 0) == 0; };
  if (ns == "lww") return startsWith("lww-") ? Family::LWW : Family::NONE;
  if (!ns.empty()) return Family::NONE;
  if (startsWith("set-")) return Family::SET;
  if (startsWith("blind-")) return Family::BLIND;
  if (startsWith("del-")) return Family::DEL;
  return Family::NONE;
}

std::string namespaceOf(OpKind kind) {
  return kind == OpKind::LWW ? "lww" : "";
}

// A set key's value is its elements joined by ' '.
std::vector<std::string> elementsOf(const std::string& value) {
  std::vector<std::string> elements;
  size_t begin = 0;
  while (begin <= value.size()) {
    size_t end = std::min(value.find(' ', begin), value.size());
    if (end > begin) elements.push_back(value.substr(begin, end - begin));
    begin = end + 1;
  }
  return elements;
}

struct KeyRecord {
  const KeyState* state = nullptr;    // nullptr: the observer never read the key
  std::vector<const Operation*> ops;  // every operation on the key, by invokeMicros
};

// Where one live value (for set keys, one element) was seen at the end.
struct Sighting {
  bool inRead = false;                // in the final read's live values
  std::vector<std::string> replicas;  // the reachable replicas whose copy holds it
};

// The values (or elements) of a key live at the end, sorted.
std::map<std::string, Sighting> sightingsOf(const KeyState* state, bool splitElements) {
  std::map<std::string, Sighting> sightings;
  if (state == nullptr) return sightings;
  auto each = [splitElements](const std::string& value, auto&& f) {
    if (splitElements) {
      for (const std::string& element : elementsOf(value)) f(element);
    } else {
      f(value);
    }
  };
  if (state->readOk) {
    for (const std::string& value : state->values) {
      each(value, [&](const std::string& v) { sightings[v].inRead = true; });
    }
  }
  // An unreachable replica's values are meaningless; a reachable one's count even where the
  // quorum read disagrees (it is what a later read or repair would spread).
  for (const ReplicaCopy& copy : state->replicas) {
    if (!copy.reachable) continue;
    for (const std::string& value : copy.values) {
      each(value, [&](const std::string& v) {
        std::vector<std::string>& replicas = sightings[v].replicas;
        if (replicas.empty() || replicas.back() != copy.node) replicas.push_back(copy.node);
      });
    }
  }
  return sightings;
}

std::string whereSeen(const Sighting& sighting) {
  std::string text;
  if (sighting.inRead) text = "in the final read";
  if (!sighting.replicas.empty()) {
    text += text.empty() ? "on " : " and on ";
    for (size_t i = 0; i < sighting.replicas.size(); ++i) {
      text += (i == 0 ? "" : ", ") + sighting.replicas[i];
    }
  }
  return text;
}

class Checker {
 public:
  Checker(CheckResult& result, int64_t originMicros)
      : result_(result), originMicros_(originMicros) {}

  void checkKey(const std::string& ns, const std::string& key, const KeyRecord& record) {
    Family family = familyOf(ns, key);
    std::string name = ns.empty() ? key : ns + "/" + key;
    std::map<std::string, Sighting> sightings = sightingsOf(record.state, family == Family::SET);
    switch (family) {
      case Family::SET:
        checkLostAndUnexpected(name, record, sightings, OpKind::ADD, {});
        break;
      case Family::BLIND:
        checkLostAndUnexpected(name, record, sightings, OpKind::BLIND, {});
        break;
      case Family::DEL:
        checkDeletable(name, record, sightings);
        break;
      case Family::LWW:
        checkRegister(name, record, sightings);
        break;
      case Family::NONE:  // not judged: only its siblings count, in check()
        break;
    }
    checkTombstones(name, record);
  }

 private:
  CheckResult& result_;
  int64_t originMicros_;  // times in details are relative to the history's first invocation

  void report(uint64_t& counter, const char* kind, const std::string& key, const std::string& value,
              std::string detail) {
    ++counter;
    if (result_.anomalies.size() < MAX_ANOMALIES) {
      result_.anomalies.push_back(Anomaly{kind, key, value, std::move(detail)});
    }
  }

  std::string at(int64_t micros) const {
    char text[32];
    std::snprintf(text, sizeof(text), "+%.3f s", double(micros - originMicros_) / 1e6);
    return text;
  }

  std::string by(const Operation& op) const {
    return "client " + std::to_string(op.client) + " thread " + std::to_string(op.thread) + " at " +
           at(op.invokeMicros);
  }

  static std::string absence(const KeyState* state) {
    if (state == nullptr) return "but the key was never read at the end";
    if (!state->readOk) return "but the final read failed: " + state->readError;
    return "absent from the final read (" + std::to_string(state->siblings) + " siblings)";
  }

  // Acknowledged `kind` writes whose value is not in the final read, except the values in
  // `exempt`, are lost (once per value); live values that no non-FAIL `kind` write tried are
  // unexpected.
  void checkLostAndUnexpected(const std::string& name, const KeyRecord& record,
                              const std::map<std::string, Sighting>& sightings, OpKind kind,
                              const std::set<std::string>& exempt) {
    std::set<std::string> reported;
    for (const Operation* op : record.ops) {
      if (op->kind != kind || op->outcome != Outcome::OK) continue;
      auto seen = sightings.find(op->value);
      bool live = seen != sightings.end() && seen->second.inRead;
      if (live || exempt.count(op->value) || !reported.insert(op->value).second) continue;
      report(result_.lost, "lost", name, op->value,
             "acknowledged by " + by(*op) + ", " + absence(record.state));
    }
    checkUnexpected(name, record, sightings, kind);
  }

  void checkUnexpected(const std::string& name, const KeyRecord& record,
                       const std::map<std::string, Sighting>& sightings, OpKind kind) {
    std::set<std::string> tried;
    std::map<std::string, const Operation*> failed;  // the first FAIL op for each value
    for (const Operation* op : record.ops) {
      if (op->kind != kind) continue;
      if (op->outcome == Outcome::FAIL) {
        failed.emplace(op->value, op);
      } else {
        tried.insert(op->value);
      }
    }
    for (const auto& [value, sighting] : sightings) {
      if (tried.count(value)) continue;
      auto fail = failed.find(value);
      std::string writers = fail == failed.end()
                                ? "no " + toString(kind) + " wrote it"
                                : "only failed " + toString(kind) + "s wrote it (the first by " +
                                      by(*fail->second) + ")";
      report(result_.unexpected, "unexpected", name, value, whereSeen(sighting) + "; " + writers);
    }
  }

  void checkDeletable(const std::string& name, const KeyRecord& record,
                      const std::map<std::string, Sighting>& sightings) {
    std::set<std::string> maybeSuperseded;
    std::map<std::string, const Operation*> superseded;  // the first acknowledged superseder
    for (const Operation* op : record.ops) {
      if (op->kind != OpKind::PUT && op->kind != OpKind::DELETE) continue;
      if (op->outcome == Outcome::FAIL) continue;
      for (const std::string& value : op->observed) {
        maybeSuperseded.insert(value);
        if (op->outcome == Outcome::OK) superseded.emplace(value, op);
      }
    }
    // A write whose outcome is unknown may still land at any time, later than the delete
    // that saw it (e.g. an attempt a timed-out call left in a partitioned node's hints): its
    // value coming back is that write taking effect, concurrent with the delete, not a
    // resurrection. Only values written by acknowledged puts can be resurrected.
    std::set<std::string> indeterminate;
    for (const Operation* op : record.ops) {
      if (op->kind == OpKind::PUT && op->outcome == Outcome::UNKNOWN) {
        indeterminate.insert(op->value);
      }
    }
    for (const auto& [value, op] : superseded) {
      auto seen = sightings.find(value);
      if (seen == sightings.end() || indeterminate.count(value) != 0) continue;
      report(result_.resurrected, "resurrected", name, value,
             "superseded by the acknowledged " + toString(op->kind) + " of " + by(*op) +
                 ", live again " + whereSeen(seen->second));
    }
    checkLostAndUnexpected(name, record, sightings, OpKind::PUT, maybeSuperseded);
  }

  // Every key of every family: once all replicas hold a delete, it is collected, and the key
  // is simply absent from every replica.
  void checkTombstones(const std::string& name, const KeyRecord& record) {
    if (record.state == nullptr) return;
    for (const ReplicaCopy& copy : record.state->replicas) {
      if (!copy.onlyTombstones()) continue;
      report(result_.tombstonesLeft, "tombstone", name, "",
             "a copy of only " + std::to_string(copy.tombstones) + " tombstone(s) left on " +
                 copy.node + " when the wait for collection ended");
    }
  }

  // A last-write-wins register: the write whose value won must not have completed before an
  // acknowledged write began (that one has the later timestamp and should have won). At most
  // one lost per key: the register holds one value, so one wrong value is one failure.
  void checkRegister(const std::string& name, const KeyRecord& record,
                     const std::map<std::string, Sighting>& sightings) {
    const Operation* winner = nullptr;  // the latest-completing non-FAIL write of a live value
    const Operation* latest = nullptr;  // the acknowledged write that began last
    for (const Operation* op : record.ops) {
      if (op->kind != OpKind::LWW || op->outcome == Outcome::FAIL) continue;
      auto seen = sightings.find(op->value);
      bool live = seen != sightings.end() && seen->second.inRead;
      if (live && (winner == nullptr || op->completeMicros > winner->completeMicros)) winner = op;
      if (op->outcome == Outcome::OK &&
          (latest == nullptr || op->invokeMicros > latest->invokeMicros)) {
        latest = op;
      }
    }
    bool readOk = record.state != nullptr && record.state->readOk;
    if (latest != nullptr && winner == nullptr) {
      report(result_.lost, "lost", name, latest->value,
             "acknowledged by " + by(*latest) + ", " + absence(record.state) +
                 (readOk ? ", which holds no value any write tried" : ""));
    } else if (latest != nullptr && latest->invokeMicros > winner->completeMicros) {
      report(result_.lost, "stale-lww", name, latest->value,
             "acknowledged by " + by(*latest) + ", which began after the write of \"" +
                 winner->value + "\" by " + by(*winner) + " completed at " +
                 at(winner->completeMicros) + ", yet the final read holds \"" + winner->value +
                 "\"");
    }
    checkUnexpected(name, record, sightings, OpKind::LWW);
  }
};

}  // namespace

CheckResult check(const std::vector<Operation>& history, const FinalState& final) {
  CheckResult result;
  result.ops = history.size();
  int64_t originMicros = history.empty() ? 0 : std::numeric_limits<int64_t>::max();
  for (const Operation& op : history) {
    originMicros = std::min(originMicros, op.invokeMicros);
    switch (op.outcome) {
      case Outcome::OK:
        ++result.acknowledged;
        break;
      case Outcome::FAIL:
        ++result.failed;
        break;
      case Outcome::UNKNOWN:
        ++result.unknown;
        break;
    }
  }

  // Keyed by (namespace, key): sorted, so anomalies come out in a deterministic order.
  std::map<std::pair<std::string, std::string>, KeyRecord> keys;
  for (const KeyState& state : final.keys) {
    KeyRecord& record = keys[{state.ns, state.key}];
    if (record.state == nullptr) record.state = &state;
  }
  for (const Operation& op : history) keys[{namespaceOf(op.kind), op.key}].ops.push_back(&op);

  Checker checker(result, originMicros);
  for (auto& [id, record] : keys) {
    std::stable_sort(
        record.ops.begin(), record.ops.end(),
        [](const Operation* a, const Operation* b) { return a->invokeMicros < b->invokeMicros; });
    if (record.state == nullptr || !record.state->readOk) {
      ++result.unreadable;
    } else {
      result.maxSiblings = std::max(result.maxSiblings, record.state->siblings);
    }
    checker.checkKey(id.first, id.second, record);
  }

  result.convergedWithoutReads = final.withoutReads.converged;
  result.convergeSeconds = final.withoutReads.seconds;
  result.tombstonesCollected = final.tombstones.collected;
  result.tombstoneSeconds = final.tombstones.seconds;
  result.convergedAfterReads = final.afterReads.converged;
  result.convergeAfterReadsSeconds = final.afterReads.seconds;
  return result;
}

}  // namespace dynkv::faults
