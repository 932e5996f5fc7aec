// Group commit over the in-memory engine: one transaction per turn, what a failure takes with
// it (and what it must not), commit hooks, and the buffered-durability flusher.
#include <catch2/catch.hpp>
#include <kj/async.h>
#include <kj/vector.h>

#include "store-fixture.h"

namespace dynkv::storaged {
namespace {

struct Fixture {
  kj::EventLoop loop;
  kj::WaitScope waitScope{loop};
  FaultyEngine engine{newMemoryEngine()};
  GroupCommit commits{engine};

  static Bytes bytes(const std::string& s) {
    return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
  }
  kj::Promise<void> put(std::string key, std::string value) {
    return commits.write([key = kj::mv(key), value = kj::mv(value)](BatchTransaction& txn) {
      txn.put(Table::META, bytes(key), bytes(value));
    });
  }
  std::optional<std::string> get(const std::string& key) {
    std::optional<std::string> out;
    engine.read([&](ReadTransaction& txn) {
      KJ_IF_MAYBE(value, txn.get(Table::META, bytes(key))) {
        out.emplace(value->asChars().begin(), value->size());
      }
    });
    return out;
  }
};

TEST_CASE("group commit: every write of a turn is one transaction, committed on a later turn") {
  Fixture f;
  kj::Vector<kj::Promise<void>> writes;
  for (int i = 0; i < 10; i++) writes.add(f.put("k" + std::to_string(i), "v"));
  CHECK(f.engine.writes == 0);  // queued, not yet committed
  CHECK_FALSE(f.get("k0"));
  kj::joinPromises(writes.releaseAsArray()).wait(f.waitScope);
  CHECK(f.engine.writes == 1);
  for (int i = 0; i < 10; i++) CHECK(f.get("k" + std::to_string(i)) == "v");

  // A write queued once that batch is committed starts the next one.
  f.put("later", "v").wait(f.waitScope);
  CHECK(f.engine.writes == 2);
}

TEST_CASE("group commit: writes run in the order queued and see the batch's earlier writes") {
  Fixture f;
  auto first = f.put("k", "1");
  auto second = f.commits.write<std::string>([](BatchTransaction& txn) {
    auto seen = KJ_ASSERT_NONNULL(txn.get(Table::META, Fixture::bytes("k")));
    std::string before(seen.asChars().begin(), seen.size());
    txn.put(Table::META, Fixture::bytes("k"), Fixture::bytes(before + "2"));
    return before;
  });
  first.wait(f.waitScope);
  CHECK(second.wait(f.waitScope) == "1");  // what the write returned, once committed
  CHECK(f.get("k") == "12");
  CHECK(f.engine.writes == 1);
}

TEST_CASE("group commit: a failed commit fails every write of its batch and loses nothing "
          "acknowledged") {
  Fixture f;
  f.put("acked", "v1").wait(f.waitScope);

  f.engine.failCommits = true;
  auto a = f.put("acked", "v2");
  auto b = f.put("new", "v");
  CHECK_THROWS_WITH(a.wait(f.waitScope), Catch::Contains("commit failed"));
  CHECK_THROWS_WITH(b.wait(f.waitScope), Catch::Contains("commit failed"));
  CHECK(f.get("acked") == "v1");
  CHECK_FALSE(f.get("new"));

  // The next batch commits as usual.
  f.engine.failCommits = false;
  f.put("new", "v").wait(f.waitScope);
  CHECK(f.get("new") == "v");
}

TEST_CASE("group commit: a write refused before it writes fails alone") {
  Fixture f;
  auto before = f.put("a", "v");
  auto refused = f.commits.write([](BatchTransaction&) {
    kj::throwFatalException(KJ_EXCEPTION(FAILED, "refused: not acceptable"));
  });
  auto after = f.put("b", "v");
  CHECK_THROWS_WITH(refused.wait(f.waitScope), Catch::Contains("not acceptable"));
  before.wait(f.waitScope);
  after.wait(f.waitScope);
  CHECK(f.get("a") == "v");
  CHECK(f.get("b") == "v");
  CHECK(f.engine.writes == 1);
}

TEST_CASE("group commit: a write that fails after writing fails its whole batch") {
  // Its half-done changes cannot be taken out of the transaction alone: the batch stores
  // nothing rather than half a write.
  Fixture f;
  auto other = f.put("a", "v");
  auto broken = f.commits.write([](BatchTransaction& txn) {
    txn.put(Table::META, Fixture::bytes("half"), Fixture::bytes("done"));
    kj::throwFatalException(KJ_EXCEPTION(FAILED, "broken half-way"));
  });
  CHECK_THROWS_WITH(broken.wait(f.waitScope), Catch::Contains("broken half-way"));
  CHECK_THROWS_WITH(other.wait(f.waitScope), Catch::Contains("broken half-way"));
  CHECK_FALSE(f.get("half"));
  CHECK_FALSE(f.get("a"));
}

TEST_CASE("group commit: commit hooks run once committed, before the promises resolve, and only "
          "for writes that were") {
  Fixture f;
  std::vector<std::string> events;
  auto hooked = [&](const char* name) {
    return f.commits.write([&events, name](BatchTransaction& txn) {
      txn.put(Table::META, Fixture::bytes(name), Fixture::bytes("v"));
      txn.onCommit([&events, name]() { events.push_back(std::string("hook ") + name); });
    });
  };
  { auto dropped = hooked("nobody waits"); }  // its caller went away: the hook still runs
  auto refused = f.commits.write([&](BatchTransaction& txn) {
    txn.onCommit([&events]() { events.push_back("hook of a refused write"); });
    kj::throwFatalException(KJ_EXCEPTION(FAILED, "refused"));
  });
  auto waited = hooked("waited").then([&events]() { events.push_back("resolved"); });
  waited.wait(f.waitScope);
  CHECK_THROWS(refused.wait(f.waitScope));
  CHECK(events == std::vector<std::string>{"hook nobody waits", "hook waited", "resolved"});

  events.clear();
  f.engine.failCommits = true;
  auto failed = hooked("failed");
  CHECK_THROWS(failed.wait(f.waitScope));
  CHECK(events.empty());
}

TEST_CASE("group commit: with buffered durability a flusher thread makes commits durable") {
  kj::EventLoop loop;
  kj::WaitScope waitScope(loop);
  auto put = []() {
    return [](BatchTransaction& txn) {
      txn.put(Table::META, Fixture::bytes("k"), Fixture::bytes("v"));
    };
  };
  {
    FaultyEngine engine(newMemoryEngine(), Durability::BUFFERED);
    GroupCommit commits(engine);
    commits.write(put()).wait(waitScope);
    // Flushed off the event loop, which is free meanwhile: nothing here runs it.
    CHECK(engine.awaitFlushes(1));
  }
  {
    // Stopping flushes what was committed, however little time has passed.
    FaultyEngine engine(newMemoryEngine(), Durability::BUFFERED);
    {
      GroupCommit commits(engine);
      commits.write(put()).wait(waitScope);
    }
    CHECK(engine.flushCount() >= 1);
  }
  {
    // A SYNC engine is durable at commit: no flusher.
    FaultyEngine engine(newMemoryEngine());
    {
      GroupCommit commits(engine);
      commits.write(put()).wait(waitScope);
    }
    CHECK(engine.flushCount() == 0);
  }
}

}  // namespace
}  // namespace dynkv::storaged
