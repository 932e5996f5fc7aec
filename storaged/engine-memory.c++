// The in-memory storage engine: the same contract as the LMDB engine, for tests.
//
// Committed state is an immutable-while-shared Snapshot: a read transaction holds a reference,
// so it keeps seeing the state it began with even if a write commits meanwhile (as an LMDB
// reader does), and a commit copies the snapshot only if a reader still holds it. A write
// transaction stages its changes beside the snapshot and applies them only when its body
// returns, so a body that throws changes nothing.

#include <kj/debug.h>
#include <kj/refcount.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "engine.h"

namespace dynkv::storaged {
namespace {

constexpr size_t TABLE_COUNT = 4;

using TableMap = std::map<std::string, std::string, std::less<>>;
// std::string compares as unsigned bytes, which is the byte order scan() promises.

using StagedMap = std::map<std::string, std::optional<std::string>, std::less<>>;
// nullopt: removed in this transaction. Entries are never erased while the transaction runs,
// so iterators into it stay valid whatever a scan's visitor writes.

std::string_view view(Bytes bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

Bytes asBytes(const std::string& s) {
  return Bytes(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

size_t tableIndex(Table table) {
  size_t i = static_cast<size_t>(table);
  KJ_REQUIRE(i < TABLE_COUNT, "unknown storage table", i);
  return i;
}

struct Snapshot final : public kj::Refcounted {
  TableMap tables[TABLE_COUNT];
};

class MemoryRead final : public ReadTransaction {
 public:
  explicit MemoryRead(kj::Own<Snapshot> snapshot) : snapshot(kj::mv(snapshot)) {}

  kj::Maybe<Bytes> get(Table table, Bytes key) override {
    const TableMap& map = snapshot->tables[tableIndex(table)];
    auto it = map.find(view(key));
    if (it == map.end()) return nullptr;
    return asBytes(it->second);
  }

  void scan(Table table, Bytes begin, Bytes end,
            kj::FunctionParam<bool(Bytes key, Bytes value)> visit) override {
    const TableMap& map = snapshot->tables[tableIndex(table)];
    for (auto it = map.lower_bound(view(begin)); it != map.end(); ++it) {
      if (end.size() > 0 && std::string_view(it->first) >= view(end)) return;
      if (!visit(asBytes(it->first), asBytes(it->second))) return;
    }
  }

 private:
  kj::Own<Snapshot> snapshot;
};

class MemoryWrite final : public WriteTransaction {
 public:
  explicit MemoryWrite(const Snapshot& base) : base(base) {}

  kj::Maybe<Bytes> get(Table table, Bytes key) override {
    size_t t = tableIndex(table);
    auto staged = changes[t].find(view(key));
    if (staged != changes[t].end()) {
      if (!staged->second) return nullptr;
      return asBytes(*staged->second);
    }
    auto it = base.tables[t].find(view(key));
    if (it == base.tables[t].end()) return nullptr;
    return asBytes(it->second);
  }

  void scan(Table table, Bytes begin, Bytes end,
            kj::FunctionParam<bool(Bytes key, Bytes value)> visit) override {
    // Merges the snapshot with the staged changes, which take precedence.
    size_t t = tableIndex(table);
    const TableMap& committed = base.tables[t];
    StagedMap& staged = changes[t];
    auto b = committed.lower_bound(view(begin));
    auto s = staged.lower_bound(view(begin));
    auto inRange = [&](const std::string& key) {
      return end.size() == 0 || std::string_view(key) < view(end);
    };
    for (;;) {
      bool haveCommitted = b != committed.end() && inRange(b->first);
      bool haveStaged = s != staged.end() && inRange(s->first);
      if (!haveCommitted && !haveStaged) return;

      const std::string* key;
      const std::string* value;
      if (haveStaged && (!haveCommitted || s->first <= b->first)) {
        if (haveCommitted && s->first == b->first) ++b;  // the staged change replaces it
        auto current = s++;
        if (!current->second) continue;  // removed in this transaction
        key = &current->first;
        value = &*current->second;
      } else {
        key = &b->first;
        value = &b->second;
        ++b;
      }

      uint64_t before = updates;
      if (!visit(asBytes(*key), asBytes(*value))) return;
      if (updates != before) {
        // The visitor staged changes, possibly between `key` and the iterators' positions;
        // go on from just after `key` (a node of either map, so still valid) to see them.
        b = committed.upper_bound(*key);
        s = staged.upper_bound(*key);
      }
    }
  }

  void put(Table table, Bytes key, Bytes value) override {
    KJ_REQUIRE(key.size() > 0, "storage keys must not be empty");
    size_t t = tableIndex(table);
    // Copy both before touching the map: they may point into it.
    std::string keyCopy(view(key));
    std::string valueCopy(view(value));
    changes[t].insert_or_assign(kj::mv(keyCopy), kj::mv(valueCopy));
    ++updates;
  }

  void remove(Table table, Bytes key) override {
    if (key.size() == 0) return;
    size_t t = tableIndex(table);
    std::string keyCopy(view(key));
    changes[t].insert_or_assign(kj::mv(keyCopy), std::nullopt);
    ++updates;
  }

  void applyTo(Snapshot& snapshot) {
    // `snapshot` is the base's owner, or a fresh copy of it if a reader still holds the base.
    for (size_t t = 0; t < TABLE_COUNT; ++t) {
      TableMap& map = snapshot.tables[t];
      for (auto& [key, value] : changes[t]) {
        if (value) {
          map.insert_or_assign(key, kj::mv(*value));
        } else {
          map.erase(key);
        }
      }
    }
  }

 private:
  const Snapshot& base;
  StagedMap changes[TABLE_COUNT];
  uint64_t updates = 0;  // lets scan() notice a visitor that wrote
};

class MemoryEngine final : public StorageEngine {
 public:
  MemoryEngine() : current(kj::refcounted<Snapshot>()) {}

  void read(kj::FunctionParam<void(ReadTransaction&)> body) override {
    MemoryRead transaction(kj::addRef(*current));
    body(transaction);
  }

  void write(kj::FunctionParam<void(WriteTransaction&)> body) override {
    // One writer at a time, as with LMDB (where a nested write would deadlock).
    KJ_REQUIRE(!writing, "a write transaction is already open on this storage engine");
    writing = true;
    KJ_DEFER(writing = false);
    MemoryWrite transaction(*current);
    body(transaction);
    if (current->isShared()) {
      auto copy = kj::refcounted<Snapshot>();
      for (size_t t = 0; t < TABLE_COUNT; ++t) copy->tables[t] = current->tables[t];
      transaction.applyTo(*copy);
      current = kj::mv(copy);
    } else {
      transaction.applyTo(*current);
    }
  }

  void flush() override {}

  Durability durability() const override { return Durability::SYNC; }

  uint64_t bytesUsed() override {
    uint64_t bytes = 0;
    for (auto& table : current->tables) {
      for (auto& [key, value] : table) bytes += key.size() + value.size();
    }
    return bytes;
  }

  SnapshotInfo snapshot(kj::StringPtr directory) override {
    kj::throwFatalException(KJ_EXCEPTION(
        FAILED, kj::str("refused: this node keeps its data in memory (engine \"memory\"): "
                        "there is nothing on disk to snapshot into ", directory)));
  }

 private:
  kj::Own<Snapshot> current;
  bool writing = false;
};

}  // namespace

kj::Own<StorageEngine> newMemoryEngine() {
  return kj::heap<MemoryEngine>();
}

}  // namespace dynkv::storaged
