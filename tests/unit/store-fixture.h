// What the storaged store tests share: an engine wrapper that counts and fails on demand (as
// LevelDB's FaultInjectionTestEnv wraps its Env), and a node's stores over it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <kj/async.h>
#include <kj/debug.h>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine.h"
#include "group-commit.h"
#include "hash-trees.h"
#include "hint-store.h"
#include "versioned-store.h"

namespace dynkv::storaged {

// Counts the keys a read visits, to show what a read costs.
class CountingRead final : public ReadTransaction {
 public:
  CountingRead(ReadTransaction& inner, size_t& visited) : inner_(inner), visited_(visited) {}
  kj::Maybe<Bytes> get(Table table, Bytes key) override { return inner_.get(table, key); }
  void scan(Table table, Bytes begin, Bytes end,
            kj::FunctionParam<bool(Bytes key, Bytes value)> visit) override {
    inner_.scan(table, begin, end, [&](Bytes key, Bytes value) {
      visited_++;
      return visit(key, value);
    });
  }

 private:
  ReadTransaction& inner_;
  size_t& visited_;
};

// Wraps an engine to count transactions, visited keys and flushes, and to fail on demand.
class FaultyEngine final : public StorageEngine {
 public:
  explicit FaultyEngine(kj::Own<StorageEngine> inner,
                        std::optional<Durability> durability = std::nullopt)
      : inner_(kj::mv(inner)), durability_(durability) {}
  void read(kj::FunctionParam<void(ReadTransaction&)> body) override {
    inner_->read([&](ReadTransaction& txn) {
      CountingRead counting(txn, visited);
      body(counting);
    });
  }
  void write(kj::FunctionParam<void(WriteTransaction&)> body) override {
    writes++;
    if (failWrites) KJ_FAIL_REQUIRE("storage full: injected");
    inner_->write([&](WriteTransaction& txn) {
      body(txn);
      // The body ran; the commit fails (as mdb_txn_commit can: a full disk, an I/O error).
      if (failCommits) KJ_FAIL_REQUIRE("commit failed: injected");
    });
  }
  void flush() override {
    inner_->flush();
    {
      std::lock_guard<std::mutex> lock(flushMutex_);
      flushes++;
    }
    flushed_.notify_all();
  }
  Durability durability() const override { return durability_.value_or(inner_->durability()); }
  uint64_t bytesUsed() override { return inner_->bytesUsed(); }
  SnapshotInfo snapshot(kj::StringPtr directory) override { return inner_->snapshot(directory); }

  bool awaitFlushes(int n) {
    // Waits for the flusher thread's n-th flush (an event, not a time); false if it never
    // comes within a deadline far beyond any flush interval.
    std::unique_lock<std::mutex> lock(flushMutex_);
    return flushed_.wait_for(lock, std::chrono::seconds(60), [&]() { return flushes >= n; });
  }
  int flushCount() {
    std::lock_guard<std::mutex> lock(flushMutex_);
    return flushes;
  }

  int writes = 0;
  size_t visited = 0;  // keys visited by reads' scans
  bool failWrites = false;   // write() throws before running the body
  bool failCommits = false;  // write() runs the body, then the commit throws

 private:
  kj::Own<StorageEngine> inner_;
  std::optional<Durability> durability_;
  std::mutex flushMutex_;
  std::condition_variable flushed_;
  int flushes = 0;  // guarded by flushMutex_: flush() runs on the flusher thread
};

// One node's stores over the in-memory engine, on an event loop of the test's own.
struct StoreFixture {
  kj::EventLoop loop;
  kj::WaitScope waitScope{loop};
  FaultyEngine engine{newMemoryEngine()};
  Actor self{42, 7};
  Limits limits;
  GroupCommit commits{engine};
  HintStore hints{commits, limits};
  HashTrees trees{engine, limits};
  VersionedStore store{commits, hints, trees, self, limits};

  StorageKey key(const char* k) { return StorageKey{5, "", k}; }
  Object put(const char* k, const char* value, VersionVector context = {}) {
    return store.coordinatePut(key(k), Versioning::VECTOR_CLOCK, kj::mv(context), value, 1000)
        .wait(waitScope);
  }
};

inline std::vector<std::string> values(const Object& o) {
  std::vector<std::string> out;
  for (auto& s : o.siblings) out.push_back(s.value.value_or("<deleted>"));
  return out;
}

}  // namespace dynkv::storaged
