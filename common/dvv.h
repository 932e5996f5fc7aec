// Dotted version vector sets (Preguiça et al., "Dotted Version Vectors"; DESIGN.md,
// "Versioning"). Pure value types and functions: no I/O, no clock (callers pass times in).
//
// A stored object is { vv, siblings }. Each sibling carries the dot (actor, counter) that
// created it; vv summarises every event the object has seen. The context handed to an
// application is vv. Actors are storage-node incarnations, never clients.
#pragma once

#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dynkv {

enum class Versioning : uint8_t {
  // How a namespace versions its values. The SDK's public NamespaceKind says the same to
  // applications; the SDK converts at its edge (common/ knows nothing of the SDK's types).
  VECTOR_CLOCK = 0,     // dotted version vectors: concurrent writes become siblings
  LAST_WRITE_WINS = 1,  // one version per key; the highest (timestamp, value) wins
};

struct Actor {
  uint64_t node = 0;   // node id
  uint64_t epoch = 0;  // minted when the node's data directory was created

  bool operator==(const Actor& o) const { return node == o.node && epoch == o.epoch; }
  bool operator!=(const Actor& o) const { return !(*this == o); }
  bool operator<(const Actor& o) const {
    return node != o.node ? node < o.node : epoch < o.epoch;
  }
};

struct Dot {
  static constexpr uint64_t MAX_COUNTER = uint64_t(1) << 62;
  // The highest counter a node may mint. No node makes 2^62 writes, so a counter near it comes
  // from a forged context or object; refusing it keeps `counter + 1` (and storaged's lease of
  // counters above it) from wrapping to a dot that an acknowledged write already holds.

  Actor actor;
  uint64_t counter = 0;

  bool operator==(const Dot& o) const { return actor == o.actor && counter == o.counter; }
  bool operator!=(const Dot& o) const { return !(*this == o); }
  bool operator<(const Dot& o) const {
    return actor != o.actor ? actor < o.actor : counter < o.counter;
  }
};

struct VvEntry {
  Actor actor;
  uint64_t counter = 0;
  int64_t timestamp = 0;  // microseconds; the latest event of this actor that we know of

  bool operator==(const VvEntry& o) const {
    return actor == o.actor && counter == o.counter && timestamp == o.timestamp;
  }
  bool operator!=(const VvEntry& o) const { return !(*this == o); }
};

class VersionVector {
  // actor -> (counter, timestamp), kept sorted by actor so equality and serialization are
  // deterministic. Few entries (only storage nodes are actors), hence a small_vector.
 public:
  static constexpr size_t MAX_ENTRIES = 10;

  VersionVector() = default;

  uint64_t counter(const Actor& actor) const;
  // 0 when the actor is absent.

  bool covers(const Dot& dot) const { return counter(dot.actor) >= dot.counter; }

  bool descends(const VersionVector& other) const;
  // True when every event of `other` is in this one (pointwise >=).

  void merge(const VersionVector& other);
  // Pointwise max of counters; the timestamp goes with the larger counter (max on ties).

  void set(const Actor& actor, uint64_t counter, int64_t timestamp);
  // Sets the entry outright, inserting it in order.

  void truncate(size_t maxEntries, const std::vector<Actor>& keep);
  // Drops the entries with the oldest timestamps until at most maxEntries remain, never
  // dropping an actor listed in `keep` (the actors of live siblings' dots). Dropping an entry
  // can only make later writes look concurrent (a sibling), never lose one.

  const boost::container::small_vector<VvEntry, 4>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

  bool operator==(const VersionVector& o) const { return entries_ == o.entries_; }
  bool operator!=(const VersionVector& o) const { return !(*this == o); }

 private:
  boost::container::small_vector<VvEntry, 4> entries_;  // sorted by actor, unique
};


struct Sibling {
  Dot dot;                           // zero dot in last-write-wins objects
  int64_t timestamp = 0;             // coordinator's (or LWW writer's) wall clock, microseconds
  std::optional<std::string> value;  // nullopt: a tombstone
  uint64_t writeId = 0;
  // The writer's name for the write this version belongs to (0: unnamed, and always 0 in
  // last-write-wins objects). A writer that gets no answer has the same write coordinated by
  // another replica: each attempt mints its own dot, but all carry the write's id, so they are
  // known as one write (twins) and a write that supersedes one of them supersedes them all.

  bool isTombstone() const { return !value.has_value(); }
  bool operator==(const Sibling& o) const {
    return dot == o.dot && timestamp == o.timestamp && value == o.value && writeId == o.writeId;
  }
  bool operator!=(const Sibling& o) const { return !(*this == o); }
};

struct SupersededWrite {
  // A named write (Sibling::writeId) that a later write has seen and replaced: every version
  // of it, wherever one turns up, is superseded.
  uint64_t writeId = 0;
  int64_t timestamp = 0;  // when it was superseded (the superseding write's timestamp)

  bool operator==(const SupersededWrite& o) const {
    return writeId == o.writeId && timestamp == o.timestamp;
  }
  bool operator!=(const SupersededWrite& o) const { return !(*this == o); }
};

struct Object {
  // Canonical form: siblings sorted by dot (LWW: exactly one sibling), superseded sorted by
  // write id, no sibling of a superseded write; so two objects holding the same versions
  // compare equal and serialize to the same bytes.
  static constexpr size_t MAX_SUPERSEDED = 8;
  // The most superseded writes an object remembers (the newest by `timestamp`). Twins are
  // minted within one call's retries, so a few suffice; past that an old twin that turns up
  // again comes back as a sibling (shown, never lost) instead of being dropped.

  Versioning kind = Versioning::VECTOR_CLOCK;
  VersionVector vv;
  std::vector<Sibling> siblings;
  std::vector<SupersededWrite> superseded;  // empty in last-write-wins objects

  bool empty() const { return siblings.empty(); }
  bool allTombstones() const;
  bool operator==(const Object& o) const {
    return kind == o.kind && vv == o.vv && siblings == o.siblings && superseded == o.superseded;
  }
  bool operator!=(const Object& o) const { return !(*this == o); }
};

struct WriteContext {
  // What a write supersedes: the version vector of what its writer read (or last wrote) and
  // the ids of the named writes among the versions it saw (writeIdsOf). A version vector
  // alone is a context too: one that names no writes.
  VersionVector vv;
  std::vector<uint64_t> writeIds;  // sorted, unique, no 0

  WriteContext() = default;
  WriteContext(const VersionVector& vvParam, std::vector<uint64_t> ids = {})  // NOLINT: implicit
      : vv(vvParam), writeIds(std::move(ids)) {}
};

std::vector<uint64_t> writeIdsOf(const Object& object);
// The ids of the named writes among the object's siblings, sorted, without duplicates.

std::vector<Sibling> distinctWrites(const Object& object);
// The object's siblings as a reader should see them: one per write (the first of twins, by
// dot), so a write coordinated twice does not show its value twice.

Object coordinatePut(const Object& local, const Actor& self, const WriteContext& context,
                     std::optional<std::string> value, int64_t nowMicros,
                     uint64_t usedCounters = 0, uint64_t writeId = 0);
// The coordinator replica's update (DESIGN.md): drop siblings whose dot `context` covers,
// remember context.writeIds as superseded (dropping their twins), mint dot
// (self, max(vv[self], context[self], usedCounters) + 1), set vv = merge(vv, context) with
// vv[self] = the new counter (timestamp nowMicros), add the new sibling (named `writeId`),
// then truncate vv to MAX_ENTRIES keeping the actors of surviving siblings. `local` must be VECTOR_CLOCK (or
// empty). nullopt value writes a tombstone. Throws (FAILED, "invalid argument: ...") when the
// new counter would pass Dot::MAX_COUNTER (a forged context), before anything is decided.
//
// `usedCounters` is the highest counter `self` may have minted for any key (storaged keeps one
// per incarnation). Once anti-entropy collects a key's tombstone, the key's own vv no longer
// remembers what `self` minted for it; a version vector that still does (a replica that kept a
// newer write, a client's context) would take a new dot with a reused counter for one it has
// already seen, and drop it. Counters above every one ever used cannot be mistaken so.

Object retract(const Object& local, const Dot& dot, const Actor& self, int64_t nowMicros,
               uint64_t usedCounters = 0);
// Takes back a version this node minted (coordinatePut) whose writer never had the answer: the
// writer gave up and had the same write coordinated by another replica, and two versions of
// one write would be concurrent with everything after it (a delete whose context saw only the
// other would leave this one standing). Removes the sibling of `dot` and keeps the vv, which
// still covers it, so every copy it reached drops it on sync. If no sibling would be left, the
// result is a tombstone minted as coordinatePut does (context local.vv): an object without
// siblings syncs as nothing and would not take the version back anywhere. The write is not
// marked superseded: its twin, minted by the replica the writer turned to, must live on.
// Returns `local` unchanged if `dot` is not one of its siblings (a later write superseded
// it already).

Object sync(const Object& a, const Object& b);
// Merge of two replicas' objects. VECTOR_CLOCK: keep each sibling that the other side also
// has or whose dot the other side's vv does not cover and whose write neither side knows as
// superseded; vv = merge; superseded = the union, newest MAX_SUPERSEDED. LAST_WRITE_WINS: keep
// the sibling with the greatest (timestamp, tombstone < value, value bytes). Commutative,
// associative, idempotent; an empty object is the identity. Both sides must be of the same
// kind unless one is empty (KJ_REQUIRE).

Object lastWriteWinsObject(std::optional<std::string> value, int64_t timestampMicros);
// A last-write-wins object holding one version, as the client coordinating an LWW write
// builds it.

}  // namespace dynkv
