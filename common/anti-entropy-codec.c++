#include "anti-entropy-codec.h"

#include <kj/debug.h>

#include <algorithm>
#include <map>

namespace dynkv {

namespace {

// ---- Writing ----

void putVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}

uint64_t zigzag(int64_t v) { return (uint64_t(v) << 1) ^ uint64_t(v >> 63); }
int64_t unzigzag(uint64_t v) { return int64_t(v >> 1) ^ -int64_t(v & 1); }

void putFixed64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(char(v >> (8 * i)));
}

class KeyWriter {
  // Each key as (bytes shared with the previous key, the rest's length, the rest).
 public:
  void put(std::string& out, std::string_view key) {
    size_t shared = 0;
    size_t max = std::min(key.size(), previous_.size());
    while (shared < max && key[shared] == previous_[shared]) shared++;
    putVarint(out, shared);
    putVarint(out, key.size() - shared);
    out.append(key.substr(shared));
    previous_.assign(key);
  }

 private:
  std::string previous_;
};

class ActorTable {
  // The actors of a blob, each written once, in order of first use.
 public:
  uint64_t index(const Actor& actor) {
    auto [it, added] = indices_.emplace(actor, actors_.size());
    if (added) actors_.push_back(actor);
    return it->second;
  }
  void put(std::string& out) const {
    putVarint(out, actors_.size());
    for (auto& a : actors_) {
      putVarint(out, a.node);
      putVarint(out, a.epoch);
    }
  }

 private:
  std::map<Actor, uint64_t> indices_;
  std::vector<Actor> actors_;
};

class TimeWriter {
  // Timestamps as signed differences from the previous one: those of one blob are close.
 public:
  void put(std::string& out, int64_t t) {
    putVarint(out, zigzag(int64_t(uint64_t(t) - uint64_t(previous_))));
    previous_ = t;
  }

 private:
  int64_t previous_ = 0;
};

constexpr size_t MAX_VV_ACTORS = 4 * VersionVector::MAX_ENTRIES;  // as decodeVersionVector
constexpr size_t MAX_ACTORS = 1 << 16;
constexpr uint8_t LWW = 1, TOMBSTONE = 2, FOUND = 4;

// ---- Reading ----

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  uint64_t varint(const char* what) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      KJ_REQUIRE(pos_ < bytes_.size(), "anti-entropy blob truncated", what);
      uint8_t b = uint8_t(bytes_[pos_++]);
      KJ_REQUIRE(shift < 63 || b <= 1, "anti-entropy blob has an overlong varint", what);
      v |= uint64_t(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    KJ_FAIL_REQUIRE("anti-entropy blob has an overlong varint", what);
  }

  uint64_t fixed64(const char* what) {
    KJ_REQUIRE(remaining() >= 8, "anti-entropy blob truncated", what);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= uint64_t(uint8_t(bytes_[pos_ + size_t(i)])) << (8 * i);
    pos_ += 8;
    return v;
  }

  uint8_t byte(const char* what) {
    KJ_REQUIRE(pos_ < bytes_.size(), "anti-entropy blob truncated", what);
    return uint8_t(bytes_[pos_++]);
  }

  std::string_view take(size_t n, const char* what) {
    KJ_REQUIRE(n <= remaining(), "anti-entropy blob truncated", what);
    auto out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  size_t count(const char* what, size_t max, const char* limit, size_t minBytesEach) {
    // A count of things that follow: within the limit, and no more than the bytes left could
    // hold, so nothing is reserved for elements that are not there.
    uint64_t n = varint(what);
    KJ_REQUIRE(n <= max, "anti-entropy blob over a limit", what, n, limit, max);
    KJ_REQUIRE(minBytesEach == 0 || n <= remaining() / minBytesEach,
               "anti-entropy blob claims more elements than its bytes hold", what, n);
    return size_t(n);
  }

  size_t remaining() const { return bytes_.size() - pos_; }
  void end() const { KJ_REQUIRE(pos_ == bytes_.size(), "anti-entropy blob has trailing bytes"); }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

class KeyReader {
 public:
  explicit KeyReader(size_t maxKeyBytes) : max_(maxKeyBytes) {}

  std::string get(Reader& in) {
    uint64_t shared = in.varint("key prefix");
    KJ_REQUIRE(shared <= previous_.size(), "anti-entropy key shares more than the previous key");
    uint64_t rest = in.varint("key length");
    KJ_REQUIRE(rest <= max_ && shared + rest <= max_,
               "anti-entropy key longer than a storage key may be (maxKeyBytes)", shared + rest,
               max_);
    std::string key = previous_.substr(0, size_t(shared));
    key.append(in.take(size_t(rest), "key"));
    previous_ = key;
    return key;
  }

 private:
  size_t max_;
  std::string previous_;
};

std::vector<Actor> readActors(Reader& in) {
  // Bounded by the bytes (two each at least) and by a count no honest blob nears: actors are
  // storage-node incarnations.
  size_t n = in.count("actors", MAX_ACTORS, "actors per blob", 2);
  std::vector<Actor> actors(n);
  for (auto& a : actors) {
    a.node = in.varint("actor node");
    a.epoch = in.varint("actor epoch");
  }
  return actors;
}

const Actor& actorAt(const std::vector<Actor>& actors, uint64_t index) {
  KJ_REQUIRE(index < actors.size(), "anti-entropy blob names an actor it does not list");
  return actors[size_t(index)];
}

class TimeReader {
 public:
  int64_t get(Reader& in) {
    previous_ = int64_t(uint64_t(previous_) + uint64_t(unzigzag(in.varint("timestamp"))));
    return previous_;
  }

 private:
  int64_t previous_ = 0;
};


void putObject(std::string& body, const Object& o, ActorTable& actors, TimeWriter& times) {
  putVarint(body, o.vv.size());
  for (auto& e : o.vv.entries()) {
    putVarint(body, actors.index(e.actor));
    putVarint(body, e.counter);
    times.put(body, e.timestamp);
  }
  putVarint(body, o.siblings.size());
  for (auto& s : o.siblings) {
    putVarint(body, actors.index(s.dot.actor));
    putVarint(body, s.dot.counter);
    times.put(body, s.timestamp);
    putVarint(body, s.value ? s.value->size() + 1 : 0);  // 0: a tombstone
    if (s.value) body.append(*s.value);
  }
}

Object getObject(Reader& in, bool lww, const std::vector<Actor>& actors, TimeReader& times,
                 const Limits& limits) {
  Object o;
  o.kind = lww ? Versioning::LAST_WRITE_WINS : Versioning::VECTOR_CLOCK;
  size_t vv = in.count("version vector", MAX_VV_ACTORS, "4 * VersionVector::MAX_ENTRIES", 3);
  std::optional<Actor> last;
  for (size_t i = 0; i < vv; i++) {
    auto& actor = actorAt(actors, in.varint("vv actor"));
    uint64_t counter = in.varint("vv counter");
    int64_t timestamp = times.get(in);
    KJ_REQUIRE(!last || *last < actor, "object's version vector is not sorted by actor");
    last = actor;
    o.vv.set(actor, counter, timestamp);
  }
  size_t siblings = in.count("siblings", Limits::MAX_SIBLINGS, "Limits::MAX_SIBLINGS", 4);
  o.siblings.reserve(siblings);
  for (size_t i = 0; i < siblings; i++) {
    Sibling s;
    s.dot.actor = actorAt(actors, in.varint("dot actor"));
    s.dot.counter = in.varint("dot counter");
    s.timestamp = times.get(in);
    uint64_t length = in.varint("value length");
    if (length > 0) {
      KJ_REQUIRE(length - 1 <= limits.maxValueBytes, "sibling value exceeds maxValueBytes",
                 length - 1, limits.maxValueBytes);
      s.value = std::string(in.take(size_t(length - 1), "value"));
    }
    o.siblings.push_back(std::move(s));
  }
  // What decodeObject() requires of an object from the wire.
  std::sort(o.siblings.begin(), o.siblings.end(),
            [](const Sibling& a, const Sibling& b) { return a.dot < b.dot; });
  for (size_t i = 1; i < o.siblings.size(); i++) {
    KJ_REQUIRE(o.siblings[i - 1].dot != o.siblings[i].dot,
               "object has two siblings with the same dot");
  }
  if (lww) {
    KJ_REQUIRE(o.siblings.size() <= 1 && o.vv.empty(),
               "a last-write-wins object holds at most one version and no version vector");
  } else {
    for (auto& s : o.siblings) {
      KJ_REQUIRE(o.vv.covers(s.dot), "object's version vector does not cover a sibling");
    }
  }
  return o;
}

}  // namespace

size_t maxStorageKeyBytes(const Limits& limits) {
  return 3 + Limits::MAX_NAMESPACE_BYTES + limits.maxKeyBytes;
}

// ---- Partitions, tree nodes, segments ----

std::string encodePartitions(const std::vector<uint32_t>& partitions) {
  std::string list;
  list.push_back(0);
  putVarint(list, partitions.size());
  uint32_t previous = 0;
  bool ascending = true;
  for (size_t i = 0; i < partitions.size(); i++) {
    uint32_t p = partitions[i];
    KJ_REQUIRE(p <= 0xffff, "no such partition", p);
    ascending &= i == 0 || p > previous;
    putVarint(list, zigzag(int64_t(p) - int64_t(previous)));
    previous = p;
  }
  if (!ascending || partitions.empty()) return list;
  uint32_t first = partitions.front(), span = partitions.back() - first + 1;
  std::string bitmap;
  bitmap.push_back(1);
  putVarint(bitmap, first);
  putVarint(bitmap, span);
  if (1 + 3 + 3 + (span + 7) / 8 >= list.size()) return list;
  size_t at = bitmap.size();
  bitmap.resize(at + (span + 7) / 8, '\0');
  for (auto p : partitions) bitmap[at + (p - first) / 8] |= char(1 << ((p - first) % 8));
  return bitmap;
}

std::vector<uint32_t> decodePartitions(std::string_view bytes, size_t maxPartitions) {
  Reader in(bytes);
  std::vector<uint32_t> out;
  uint8_t form = in.byte("partition list form");
  if (form == 0) {
    size_t n = in.count("partitions", maxPartitions, "partitions per request", 1);
    int64_t previous = 0;
    for (size_t i = 0; i < n; i++) {
      int64_t p = previous + unzigzag(in.varint("partition"));
      KJ_REQUIRE(p >= 0 && p <= 0xffff, "no such partition", p);
      out.push_back(uint32_t(p));
      previous = p;
    }
  } else {
    KJ_REQUIRE(form == 1, "unknown partition list form", form);
    uint64_t first = in.varint("first partition");
    uint64_t span = in.varint("partition span");
    KJ_REQUIRE(first <= 0xffff && span <= 0x10000 - first, "partition bitmap past 2^16");
    auto bits = in.take(size_t((span + 7) / 8), "partition bitmap");
    for (uint64_t i = 0; i < span; i++) {
      if ((uint8_t(bits[size_t(i / 8)]) >> (i % 8)) & 1) {
        KJ_REQUIRE(out.size() < maxPartitions, "anti-entropy blob over a limit", "partitions",
                   "partitions per request", maxPartitions);
        out.push_back(uint32_t(first + i));
      }
    }
  }
  in.end();
  return out;
}

std::string encodeTreeNodes(const std::vector<TreeNodeRef>& nodes) {
  std::string out;
  putVarint(out, nodes.size());
  uint32_t previous = 0;
  for (auto& n : nodes) {
    putVarint(out, zigzag(int64_t(n.partition) - int64_t(previous)));
    out.push_back(char(n.level));
    putVarint(out, n.index);
    previous = n.partition;
  }
  return out;
}

std::vector<TreeNodeRef> decodeTreeNodes(std::string_view bytes, size_t maxNodes,
                                         TreeShape shape) {
  Reader in(bytes);
  size_t n = in.count("tree nodes", maxNodes, "tree nodes per request", 3);
  std::vector<TreeNodeRef> out(n);
  int64_t previous = 0;
  for (auto& node : out) {
    int64_t p = previous + unzigzag(in.varint("node partition"));
    KJ_REQUIRE(p >= 0 && p <= 0xffff, "no such partition", p);
    node.partition = uint32_t(p);
    node.level = in.byte("node level");
    uint64_t index = in.varint("node index");
    KJ_REQUIRE(node.level < shape.segmentLevel() && index < TreeShape::nodesAt(node.level),
               "no such tree node", node.level, index);
    node.index = uint32_t(index);
    previous = p;
  }
  in.end();
  return out;
}

std::string encodeSegments(const std::vector<SegmentRef>& segments) {
  std::string out;
  putVarint(out, segments.size());
  uint32_t previous = 0;
  for (auto& s : segments) {
    putVarint(out, zigzag(int64_t(s.partition) - int64_t(previous)));
    putVarint(out, s.segment);
    previous = s.partition;
  }
  return out;
}

std::vector<SegmentRef> decodeSegments(std::string_view bytes, size_t maxSegments,
                                       TreeShape shape) {
  Reader in(bytes);
  size_t n = in.count("segments", maxSegments, "segments per request", 2);
  std::vector<SegmentRef> out(n);
  int64_t previous = 0;
  for (auto& s : out) {
    int64_t p = previous + unzigzag(in.varint("segment partition"));
    KJ_REQUIRE(p >= 0 && p <= 0xffff, "no such partition", p);
    uint64_t segment = in.varint("segment");
    KJ_REQUIRE(segment < shape.segments(), "no such segment", segment, shape.segments());
    s = SegmentRef{uint32_t(p), uint32_t(segment)};
    previous = p;
  }
  in.end();
  return out;
}

// ---- Keys, listings, objects ----

std::string encodeKeyDigests(const std::vector<KeyDigest>& keys) {
  ActorTable actors;
  TimeWriter times;
  KeyWriter keyWriter;
  std::string body;
  putVarint(body, keys.size());
  for (auto& k : keys) {
    keyWriter.put(body, k.key);
    putFixed64(body, k.digest);
    auto& s = k.summary;
    bool lww = s.kind == Versioning::LAST_WRITE_WINS;
    body.push_back(char((lww ? LWW : 0) | (s.tombstone ? TOMBSTONE : 0)));
    if (lww) {
      times.put(body, s.timestamp);
    } else {
      putVarint(body, s.counters.size());
      for (auto& dot : s.counters) {
        putVarint(body, actors.index(dot.actor));
        putVarint(body, dot.counter);
      }
    }
  }
  std::string out;
  actors.put(out);
  return out + body;
}

std::vector<KeyDigest> decodeKeyDigests(std::string_view bytes, size_t maxKeys,
                                        const Limits& limits) {
  Reader in(bytes);
  auto actors = readActors(in);
  TimeReader times;
  KeyReader keys(maxStorageKeyBytes(limits));
  size_t n = in.count("listed keys", maxKeys, "keys per listing", 12);
  std::vector<KeyDigest> out(n);
  for (auto& k : out) {
    k.key = keys.get(in);
    k.digest = in.fixed64("digest");
    uint8_t flags = in.byte("summary flags");
    KJ_REQUIRE((flags & ~(LWW | TOMBSTONE)) == 0, "unknown summary flags", flags);
    auto& s = k.summary;
    s.tombstone = (flags & TOMBSTONE) != 0;
    if (flags & LWW) {
      s.kind = Versioning::LAST_WRITE_WINS;
      s.timestamp = times.get(in);
    } else {
      KJ_REQUIRE(!s.tombstone, "a version vector summary has no tombstone flag");
      size_t m = in.count("summary counters", MAX_VV_ACTORS, "4 * VersionVector::MAX_ENTRIES", 2);
      for (size_t i = 0; i < m; i++) {
        Dot dot{actorAt(actors, in.varint("summary actor")), in.varint("summary counter")};
        KJ_REQUIRE(s.counters.empty() || s.counters.back().actor < dot.actor,
                   "summary counters are not sorted by actor");
        s.counters.push_back(dot);
      }
    }
  }
  in.end();
  return out;
}

std::string encodeKeys(const std::vector<std::string>& keys) {
  std::string out;
  KeyWriter writer;
  putVarint(out, keys.size());
  for (auto& k : keys) writer.put(out, k);
  return out;
}

std::vector<std::string> decodeKeys(std::string_view bytes, size_t maxKeys, const Limits& limits) {
  Reader in(bytes);
  KeyReader reader(maxStorageKeyBytes(limits));
  size_t n = in.count("keys", maxKeys, "keys per request", 2);
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; i++) out.push_back(reader.get(in));
  in.end();
  return out;
}

std::string encodeEntries(const std::vector<KeyObject>& entries) {
  ActorTable actors;
  TimeWriter times;
  KeyWriter keys;
  std::string body;
  putVarint(body, entries.size());
  for (auto& e : entries) {
    keys.put(body, e.key);
    if (!e.object) {
      body.push_back(0);
      continue;
    }
    bool lww = e.object->kind == Versioning::LAST_WRITE_WINS;
    body.push_back(char(FOUND | (lww ? LWW : 0)));
    putObject(body, *e.object, actors, times);
  }
  std::string out;
  actors.put(out);
  return out + body;
}

std::vector<KeyObject> decodeEntries(std::string_view bytes, size_t maxEntries,
                                     const Limits& limits) {
  Reader in(bytes);
  auto actors = readActors(in);
  TimeReader times;
  KeyReader keys(maxStorageKeyBytes(limits));
  size_t n = in.count("entries", maxEntries, "entries per request", 3);
  std::vector<KeyObject> out(n);
  for (auto& e : out) {
    e.key = keys.get(in);
    uint8_t flags = in.byte("entry flags");
    KJ_REQUIRE((flags & ~(FOUND | LWW)) == 0, "unknown entry flags", flags);
    if (flags & FOUND) e.object = getObject(in, (flags & LWW) != 0, actors, times, limits);
  }
  in.end();
  return out;
}

size_t encodedSize(const Object& object) {
  size_t bytes = 4 + object.vv.size() * 8;
  for (auto& s : object.siblings) bytes += 12 + (s.value ? s.value->size() : 0);
  return bytes;
}

}  // namespace dynkv
