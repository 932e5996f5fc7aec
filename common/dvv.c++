// Dotted version vector sets. See dvv.h for the contract and DESIGN.md, "Versioning", for
// why dynkv uses them instead of per-node vector clocks.

#include "dvv.h"

#include <kj/debug.h>

#include <algorithm>
#include <tuple>

namespace dynkv {

namespace {

const Dot ZERO_DOT{};

// The order last-write-wins resolves by: newest timestamp, then a value beats a tombstone
// written at the same microsecond (a delete racing a write should not win by accident), then
// the value bytes, so two replicas that saw the same candidates always pick the same one.
bool lwwLess(const Sibling& a, const Sibling& b) {
  if (a.timestamp != b.timestamp) return a.timestamp < b.timestamp;
  if (a.value.has_value() != b.value.has_value()) return !a.value.has_value();
  if (!a.value.has_value()) return false;
  return *a.value < *b.value;
}

// Two siblings carrying the same dot are the same write; they can only differ if an actor's
// counters were reused (a node restored from an old backup without a new epoch). Picking by
// the LWW order keeps sync commutative and associative even then.
const Sibling& pickSameDot(const Sibling& a, const Sibling& b) {
  return lwwLess(a, b) ? b : a;
}

// Sorts by dot and collapses duplicate dots, giving the canonical sibling list.
void canonicalize(std::vector<Sibling>& siblings) {
  std::stable_sort(siblings.begin(), siblings.end(),
                   [](const Sibling& a, const Sibling& b) { return a.dot < b.dot; });
  std::vector<Sibling> out;
  out.reserve(siblings.size());
  for (auto& s : siblings) {
    if (!out.empty() && out.back().dot == s.dot) {
      out.back() = pickSameDot(out.back(), s);
    } else {
      out.push_back(std::move(s));
    }
  }
  siblings = std::move(out);
}

bool hasDot(const std::vector<Sibling>& siblings, const Dot& dot) {
  for (auto& s : siblings) {
    if (s.dot == dot) return true;
  }
  return false;
}

bool isSuperseded(const std::vector<SupersededWrite>& superseded, uint64_t writeId) {
  if (writeId == 0) return false;
  auto it = std::lower_bound(
      superseded.begin(), superseded.end(), writeId,
      [](const SupersededWrite& w, uint64_t id) { return w.writeId < id; });
  return it != superseded.end() && it->writeId == writeId;
}

// Brings `superseded` to canonical form (one entry per write, the latest time it was
// superseded; the newest MAX_SUPERSEDED; sorted by id) and drops every sibling of a write it
// names: the twins of a superseded version. Keeping the newest by (timestamp, id) is a
// deterministic choice from the union, so sync stays commutative; with at most
// MAX_SUPERSEDED entries in play it is associative too.
void dropSuperseded(Object& object) {
  auto& superseded = object.superseded;
  std::sort(superseded.begin(), superseded.end(),
            [](const SupersededWrite& a, const SupersededWrite& b) {
              return std::tie(a.writeId, b.timestamp) < std::tie(b.writeId, a.timestamp);
            });
  superseded.erase(std::unique(superseded.begin(), superseded.end(),
                               [](const SupersededWrite& a, const SupersededWrite& b) {
                                 return a.writeId == b.writeId;
                               }),
                   superseded.end());
  if (superseded.size() > Object::MAX_SUPERSEDED) {
    std::sort(superseded.begin(), superseded.end(),
              [](const SupersededWrite& a, const SupersededWrite& b) {
                return std::tie(b.timestamp, b.writeId) < std::tie(a.timestamp, a.writeId);
              });
    superseded.resize(Object::MAX_SUPERSEDED);
    std::sort(superseded.begin(), superseded.end(),
              [](const SupersededWrite& a, const SupersededWrite& b) {
                return a.writeId < b.writeId;
              });
  }
  auto& siblings = object.siblings;
  siblings.erase(std::remove_if(siblings.begin(), siblings.end(),
                                [&superseded](const Sibling& s) {
                                  return isSuperseded(superseded, s.writeId);
                                }),
                 siblings.end());
}

Object syncLastWriteWins(const Object& a, const Object& b) {
  const Sibling* best = nullptr;
  for (auto* side : {&a, &b}) {
    for (auto& s : side->siblings) {
      if (best == nullptr || lwwLess(*best, s)) best = &s;
    }
  }
  Object result;
  result.kind = Versioning::LAST_WRITE_WINS;
  if (best != nullptr) {
    Sibling winner = *best;
    winner.dot = ZERO_DOT;  // canonical form: LWW versions are ordered by time, not by dots
    winner.writeId = 0;     // and the last one wins: there are no twins to recognise
    result.siblings.push_back(std::move(winner));
  }
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// VersionVector

uint64_t VersionVector::counter(const Actor& actor) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), actor,
                             [](const VvEntry& e, const Actor& a) { return e.actor < a; });
  return it != entries_.end() && it->actor == actor ? it->counter : 0;
}

bool VersionVector::descends(const VersionVector& other) const {
  for (auto& e : other.entries_) {
    if (counter(e.actor) < e.counter) return false;
  }
  return true;
}

void VersionVector::merge(const VersionVector& other) {
  // Both sides are sorted by actor: a linear merge keeps the result sorted.
  boost::container::small_vector<VvEntry, 4> out;
  out.reserve(entries_.size() + other.entries_.size());
  auto i = entries_.begin();
  auto j = other.entries_.begin();
  while (i != entries_.end() || j != other.entries_.end()) {
    if (j == other.entries_.end() || (i != entries_.end() && i->actor < j->actor)) {
      out.push_back(*i++);
    } else if (i == entries_.end() || j->actor < i->actor) {
      out.push_back(*j++);
    } else {
      // (counter, timestamp) ordered lexicographically: the timestamp belongs to the event
      // the counter names, and max on equal counters keeps merge commutative.
      out.push_back(std::tie(i->counter, i->timestamp) < std::tie(j->counter, j->timestamp) ? *j
                                                                                            : *i);
      ++i;
      ++j;
    }
  }
  entries_ = std::move(out);
}

void VersionVector::set(const Actor& actor, uint64_t counter, int64_t timestamp) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), actor,
                             [](const VvEntry& e, const Actor& a) { return e.actor < a; });
  if (it != entries_.end() && it->actor == actor) {
    it->counter = counter;
    it->timestamp = timestamp;
  } else {
    entries_.insert(it, VvEntry{actor, counter, timestamp});
  }
}

void VersionVector::truncate(size_t maxEntries, const std::vector<Actor>& keep) {
  while (entries_.size() > maxEntries) {
    // The oldest droppable entry; equal timestamps fall back to the actor order so every
    // replica truncates the same way.
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (std::find(keep.begin(), keep.end(), it->actor) != keep.end()) continue;
      if (victim == entries_.end() || it->timestamp < victim->timestamp) victim = it;
    }
    if (victim == entries_.end()) return;  // everything left is the actor of a live sibling
    entries_.erase(victim);
  }
}

// ---------------------------------------------------------------------------------------
// Object

bool Object::allTombstones() const {
  // Vacuously true for an empty object: either way there is no live value to return.
  return std::all_of(siblings.begin(), siblings.end(),
                     [](const Sibling& s) { return s.isTombstone(); });
}

std::vector<uint64_t> writeIdsOf(const Object& object) {
  std::vector<uint64_t> ids;
  for (auto& s : object.siblings) {
    if (s.writeId != 0) ids.push_back(s.writeId);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<Sibling> distinctWrites(const Object& object) {
  std::vector<Sibling> out;
  out.reserve(object.siblings.size());
  for (auto& s : object.siblings) {
    bool twin = s.writeId != 0 && std::any_of(out.begin(), out.end(), [&s](const Sibling& o) {
                  return o.writeId == s.writeId;
                });
    if (!twin) out.push_back(s);
  }
  return out;
}

Object coordinatePut(const Object& local, const Actor& self, const WriteContext& writeContext,
                     std::optional<std::string> value, int64_t nowMicros,
                     uint64_t usedCounters, uint64_t writeId) {
  KJ_REQUIRE(local.kind == Versioning::VECTOR_CLOCK || local.empty(),
             "coordinatePut on a last-write-wins object; LWW writes are built by the client");

  const VersionVector& context = writeContext.vv;
  Object result;
  result.kind = Versioning::VECTOR_CLOCK;

  // Siblings the writer has seen are superseded; the others are concurrent with this write
  // and must survive it (a blind write with an empty context drops nothing).
  for (auto& s : local.siblings) {
    if (!context.covers(s.dot)) result.siblings.push_back(s);
  }

  // max(vv[self], context[self]) + 1: the local vv may lag a context minted elsewhere after
  // a sync we have not seen yet, and a reused counter would alias two different writes.
  uint64_t highest = std::max({local.vv.counter(self), context.counter(self), usedCounters});
  if (highest >= Dot::MAX_COUNTER) {
    // Only a forged context or replica gets here; + 1 would wrap, or come close enough that the
    // next wrap would alias a dot an acknowledged write holds.
    kj::throwFatalException(KJ_EXCEPTION(
        FAILED, kj::str("invalid argument: the context or the stored object names counter ",
                        highest, " for this node; counters are at most ", Dot::MAX_COUNTER,
                        " (Dot::MAX_COUNTER), so the write is refused")));
  }
  uint64_t counter = highest + 1;
  Dot dot{self, counter};

  result.vv = local.vv;
  result.vv.merge(context);
  result.vv.set(self, counter, nowMicros);
  result.siblings.push_back(Sibling{dot, nowMicros, std::move(value), writeId});
  canonicalize(result.siblings);
  // The writes the writer saw are superseded wherever a version of them turns up: here, a twin
  // its context's vv does not cover (one whose answer never reached the writer).
  result.superseded = local.superseded;
  for (uint64_t id : writeContext.writeIds) {
    if (id != 0) result.superseded.push_back(SupersededWrite{id, nowMicros});
  }
  dropSuperseded(result);

  std::vector<Actor> keep;
  keep.reserve(result.siblings.size());
  for (auto& s : result.siblings) keep.push_back(s.dot.actor);
  result.vv.truncate(VersionVector::MAX_ENTRIES, keep);
  return result;
}

Object retract(const Object& local, const Dot& dot, const Actor& self, int64_t nowMicros,
               uint64_t usedCounters) {
  auto minted = std::find_if(local.siblings.begin(), local.siblings.end(),
                             [&dot](const Sibling& s) { return s.dot == dot; });
  if (minted == local.siblings.end()) return local;
  if (local.siblings.size() == 1) {
    // Superseding by the vv alone: naming the write would drop its twin too.
    return coordinatePut(local, self, WriteContext{local.vv, {}}, std::nullopt, nowMicros,
                         usedCounters);
  }
  Object result = local;
  result.siblings.erase(result.siblings.begin() + (minted - local.siblings.begin()));
  return result;
}

Object sync(const Object& a, const Object& b) {
  bool aEmpty = a.empty();
  bool bEmpty = b.empty();
  KJ_REQUIRE(aEmpty || bEmpty || a.kind == b.kind, "sync of objects of different namespace kinds",
             int(a.kind), int(b.kind));

  // An empty side carries no versions, so the non-empty side decides the kind. Two empty
  // objects of different kinds are not expected; max keeps the choice symmetric.
  Versioning kind = aEmpty == bEmpty ? std::max(a.kind, b.kind) : (aEmpty ? b.kind : a.kind);
  if (kind == Versioning::LAST_WRITE_WINS) return syncLastWriteWins(a, b);

  // A sibling survives when every side either holds it or has not seen its dot: a side that
  // has seen the dot but no longer holds it has seen a write that superseded it. This rule
  // is a conjunction over the sides, which is what makes sync associative.
  Object result;
  result.kind = Versioning::VECTOR_CLOCK;
  result.siblings.reserve(a.siblings.size() + b.siblings.size());
  for (auto& s : a.siblings) {
    if (!b.vv.covers(s.dot) || hasDot(b.siblings, s.dot)) result.siblings.push_back(s);
  }
  for (auto& s : b.siblings) {
    if (!a.vv.covers(s.dot) || hasDot(a.siblings, s.dot)) result.siblings.push_back(s);
  }
  canonicalize(result.siblings);
  result.vv = a.vv;
  result.vv.merge(b.vv);
  result.superseded = a.superseded;
  result.superseded.insert(result.superseded.end(), b.superseded.begin(), b.superseded.end());
  dropSuperseded(result);
  return result;
}

Object lastWriteWinsObject(std::optional<std::string> value, int64_t timestampMicros) {
  Object result;
  result.kind = Versioning::LAST_WRITE_WINS;
  result.siblings.push_back(Sibling{ZERO_DOT, timestampMicros, std::move(value)});
  return result;
}

}  // namespace dynkv
