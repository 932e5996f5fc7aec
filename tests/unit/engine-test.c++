// Behaviour of the storage engines (storaged/engine.h). The same cases run against the LMDB
// engine and the in-memory one, so the engine tests rely on really has LMDB's semantics.

#include "engine.h"

#include <kj/debug.h>
#include <kj/exception.h>
#include <stdio.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "temp-dir.h"

using namespace dynkv::storaged;
using dynkv::TempDir;

namespace {

Bytes bytes(const std::string& s) {
  return Bytes(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string str(Bytes b) {
  return std::string(reinterpret_cast<const char*>(b.begin()), b.size());
}

using Entries = std::vector<std::pair<std::string, std::string>>;

struct MemoryFixture {
  kj::Own<StorageEngine> open() { return newMemoryEngine(); }
};

struct LmdbFixture {
  TempDir dir{"dynkv-engine-test"};
  kj::Own<StorageEngine> open(Durability durability = Durability::SYNC,
                              uint64_t mapSizeBytes = uint64_t(64) << 20) {
    // A subdirectory that does not exist yet: opening creates it, parents included.
    LmdbOptions options{kj::str(dir.path.c_str(), "/node/data"), durability, mapSizeBytes};
    return openLmdbEngine(options);
  }
};

std::optional<std::string> get(StorageEngine& engine, Table table, const std::string& key) {
  std::optional<std::string> result;
  engine.read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE (value, txn.get(table, bytes(key))) {
      result = str(*value);
    }
  });
  return result;
}

void put(StorageEngine& engine, Table table, const std::string& key, const std::string& value) {
  engine.write([&](WriteTransaction& txn) { txn.put(table, bytes(key), bytes(value)); });
}

Entries scan(StorageEngine& engine, Table table, const std::string& begin = "",
             const std::string& end = "", size_t limit = SIZE_MAX) {
  Entries result;
  engine.read([&](ReadTransaction& txn) {
    txn.scan(table, bytes(begin), bytes(end), [&](Bytes key, Bytes value) {
      result.emplace_back(str(key), str(value));
      return result.size() < limit;
    });
  });
  return result;
}

Entries expectedRange(const std::map<std::string, std::string>& model, const std::string& begin,
                      const std::string& end, size_t limit = SIZE_MAX) {
  Entries result;
  for (auto it = model.lower_bound(begin); it != model.end() && result.size() < limit; ++it) {
    if (!end.empty() && it->first >= end) break;
    result.emplace_back(*it);
  }
  return result;
}

template <typename Func>
std::string failureOf(Func&& func) {
  KJ_IF_MAYBE (exception, kj::runCatchingExceptions(kj::fwd<Func>(func))) {
    return exception->getDescription().cStr();
  }
  return "";
}

}  // namespace

TEMPLATE_TEST_CASE("a stored value reads back until it is removed", "[engine]", MemoryFixture,
                   LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  std::string binaryKey("\x00\xff\x01", 3), binaryValue("\xff\x00", 2);

  CHECK(get(*engine, Table::OBJECTS, "k") == std::nullopt);
  put(*engine, Table::OBJECTS, "k", "v1");
  put(*engine, Table::OBJECTS, binaryKey, binaryValue);
  put(*engine, Table::OBJECTS, "empty", "");
  CHECK(get(*engine, Table::OBJECTS, "k") == "v1");
  CHECK(get(*engine, Table::OBJECTS, binaryKey) == binaryValue);
  CHECK(get(*engine, Table::OBJECTS, "empty") == "");

  put(*engine, Table::OBJECTS, "k", "v2");
  CHECK(get(*engine, Table::OBJECTS, "k") == "v2");

  engine->write([&](WriteTransaction& txn) {
    txn.remove(Table::OBJECTS, bytes("k"));
    txn.remove(Table::OBJECTS, bytes("never stored"));  // not an error
  });
  CHECK(get(*engine, Table::OBJECTS, "k") == std::nullopt);
  CHECK(get(*engine, Table::OBJECTS, binaryKey) == binaryValue);
  CHECK(engine->durability() == Durability::SYNC);
}

TEMPLATE_TEST_CASE("the bytes the data takes grow with what is stored", "[engine]",
                   MemoryFixture, LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  uint64_t before = engine->bytesUsed();
  std::string big(256 * 1024, 'x');
  for (int i = 0; i < 4; i++) put(*engine, Table::OBJECTS, "k" + std::to_string(i), big);
  uint64_t after = engine->bytesUsed();
  CHECK(after >= before + 4 * big.size());
  CHECK(after < before + 8 * big.size());  // pages in use, not the map size
}

TEMPLATE_TEST_CASE("empty keys are refused", "[engine]", MemoryFixture, LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  CHECK(failureOf([&] { put(*engine, Table::OBJECTS, "", "v"); }).find("empty") !=
        std::string::npos);
  CHECK(get(*engine, Table::OBJECTS, "") == std::nullopt);
}

TEMPLATE_TEST_CASE("scan visits a range in byte order and stops early", "[engine]", MemoryFixture,
                   LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  std::map<std::string, std::string> model;  // std::string orders as unsigned bytes
  for (std::string key : {std::string("a"), std::string("ab"), std::string("abc"), std::string("b"),
                          std::string("\x00\x01", 2), std::string("\x00", 1), std::string("\x7f"),
                          std::string("\x80"), std::string("\xff\xff"),
                          std::string("\x01\x00\x05key", 6), std::string("\x01\x01key", 5)}) {
    model[key] = "value of " + key;
  }
  engine->write([&](WriteTransaction& txn) {
    for (auto& [key, value] : model) txn.put(Table::OBJECTS, bytes(key), bytes(value));
  });

  CHECK(scan(*engine, Table::OBJECTS) == expectedRange(model, "", ""));
  CHECK(scan(*engine, Table::OBJECTS, "ab", "b") == expectedRange(model, "ab", "b"));
  CHECK(scan(*engine, Table::OBJECTS, "aa", "abc") == Entries{{"ab", "value of ab"}});
  CHECK(scan(*engine, Table::OBJECTS, "\x80", "") == expectedRange(model, "\x80", ""));
  // A partition's range: [partition][...] up to the next partition.
  CHECK(scan(*engine, Table::OBJECTS, std::string("\x01\x00", 2), std::string("\x01\x01", 2)) ==
        Entries{
            {std::string("\x01\x00\x05key", 6), "value of " + std::string("\x01\x00\x05key", 6)}});
  CHECK(scan(*engine, Table::OBJECTS, "c", "d").empty());
  CHECK(scan(*engine, Table::OBJECTS, "b", "a").empty());
  CHECK(scan(*engine, Table::OBJECTS, "", "", 3) == expectedRange(model, "", "", 3));
  CHECK(scan(*engine, Table::OBJECTS, "a", "", 1) == Entries{{"a", "value of a"}});
}

TEMPLATE_TEST_CASE("a write whose body throws stores nothing", "[engine]", MemoryFixture,
                   LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  put(*engine, Table::OBJECTS, "kept", "old");
  put(*engine, Table::HINTS, "hint", "h");

  std::string failure = failureOf([&] {
    engine->write([&](WriteTransaction& txn) {
      txn.put(Table::OBJECTS, bytes("new"), bytes("n"));
      txn.put(Table::OBJECTS, bytes("kept"), bytes("overwritten"));
      txn.remove(Table::HINTS, bytes("hint"));
      CHECK(txn.get(Table::OBJECTS, bytes("new")) != nullptr);  // sees its own writes
      KJ_FAIL_REQUIRE("the body gives up");
    });
  });
  CHECK(failure.find("the body gives up") != std::string::npos);
  CHECK(get(*engine, Table::OBJECTS, "new") == std::nullopt);
  CHECK(get(*engine, Table::OBJECTS, "kept") == "old");
  CHECK(get(*engine, Table::HINTS, "hint") == "h");

  // The failed transaction released the writer: the next write goes through.
  put(*engine, Table::OBJECTS, "after", "a");
  CHECK(get(*engine, Table::OBJECTS, "after") == "a");
}

TEMPLATE_TEST_CASE("tables are independent", "[engine]", MemoryFixture, LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  put(*engine, Table::OBJECTS, "k", "object");
  put(*engine, Table::HINTS, "k", "hint");
  put(*engine, Table::META, "k", "meta");
  CHECK(get(*engine, Table::OBJECTS, "k") == "object");
  CHECK(get(*engine, Table::HINTS, "k") == "hint");
  CHECK(get(*engine, Table::META, "k") == "meta");

  engine->write([&](WriteTransaction& txn) { txn.remove(Table::HINTS, bytes("k")); });
  CHECK(get(*engine, Table::HINTS, "k") == std::nullopt);
  CHECK(scan(*engine, Table::OBJECTS) == Entries{{"k", "object"}});
  CHECK(scan(*engine, Table::META) == Entries{{"k", "meta"}});
  CHECK(scan(*engine, Table::HINTS).empty());
}

TEMPLATE_TEST_CASE("reads see the last committed state", "[engine]", MemoryFixture, LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  put(*engine, Table::OBJECTS, "k", "committed");

  engine->write([&](WriteTransaction& txn) {
    txn.put(Table::OBJECTS, bytes("k"), bytes("staged"));
    CHECK(get(*engine, Table::OBJECTS, "k") == "committed");
  });
  CHECK(get(*engine, Table::OBJECTS, "k") == "staged");

  // A read keeps its snapshot while a write commits.
  engine->read([&](ReadTransaction& txn) {
    put(*engine, Table::OBJECTS, "k", "newer");
    KJ_IF_MAYBE (value, txn.get(Table::OBJECTS, bytes("k"))) {
      CHECK(str(*value) == "staged");
    } else {
      FAIL("the snapshot lost k");
    }
  });
  CHECK(get(*engine, Table::OBJECTS, "k") == "newer");
}

TEMPLATE_TEST_CASE("a nested write is refused", "[engine]", MemoryFixture, LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  std::string failure;
  engine->write([&](WriteTransaction& txn) {
    txn.put(Table::OBJECTS, bytes("outer"), bytes("o"));
    failure = failureOf([&] { put(*engine, Table::OBJECTS, "inner", "i"); });
  });
  CHECK(failure.find("already open") != std::string::npos);
  CHECK(get(*engine, Table::OBJECTS, "outer") == "o");
  CHECK(get(*engine, Table::OBJECTS, "inner") == std::nullopt);
}

TEMPLATE_TEST_CASE("a scan in a write transaction sees its changes, even the visitor's", "[engine]",
                   MemoryFixture, LmdbFixture) {
  TestType fixture;
  auto engine = fixture.open();
  engine->write([&](WriteTransaction& txn) {
    for (std::string key : {"a", "c", "e", "g"}) txn.put(Table::OBJECTS, bytes(key), bytes(key));
  });

  std::vector<std::string> visited;
  engine->write([&](WriteTransaction& txn) {
    txn.remove(Table::OBJECTS, bytes("g"));
    txn.put(Table::OBJECTS, bytes("f"), bytes("f"));
    txn.scan(Table::OBJECTS, {}, {}, [&](Bytes key, Bytes value) {
      std::string k = str(key);
      visited.push_back(k);
      if (k == "a") txn.put(Table::OBJECTS, bytes("b"), bytes("b"));  // ahead: visited
      if (k == "b") txn.put(Table::OBJECTS, bytes("a"), bytes("A"));  // behind: not revisited
      if (k == "c") {
        txn.remove(Table::OBJECTS, bytes("c"));  // itself
        txn.remove(Table::OBJECTS, bytes("e"));  // ahead: not visited
      }
      return true;
    });
  });
  CHECK(visited == std::vector<std::string>{"a", "b", "c", "f"});
  CHECK(scan(*engine, Table::OBJECTS) == Entries{{"a", "A"}, {"b", "b"}, {"f", "f"}});
}

TEMPLATE_TEST_CASE("long keys round-trip in byte order", "[engine]", MemoryFixture, LmdbFixture) {
  // Object keys reach 2 + 1 + 255 + 1024 bytes, past LMDB's 511-byte key limit.
  TestType fixture;
  auto engine = fixture.open();

  std::string prefix;
  for (int i = 0; i < 600; ++i) prefix.push_back(char((i * 7 + 3) % 256));
  std::map<std::string, std::string> model;
  for (int i = 0; i < 24; ++i) {
    std::string key = prefix;
    for (int j = 0; j < 700; ++j) key.push_back(char((i * 37 + j * (i + 1)) % 256));
    model[key] = "long " + std::to_string(i);  // 1300 bytes, sharing 600
  }
  for (size_t length : {502, 503, 504, 505, 510, 511, 512, 600}) {
    model[prefix.substr(0, length)] = "cut at " + std::to_string(length);
  }
  // Same first 503 bytes as the rest, then lower and higher bytes.
  model[prefix.substr(0, 503) + std::string(800, '\x00')] = "low";
  model[prefix.substr(0, 503) + std::string(800, '\xff')] = "high";
  model[prefix.substr(0, 503) + "\xff"] = "short high";
  model[std::string(1300, '\xff')] = "all ff";
  model["short"] = "short";

  engine->write([&](WriteTransaction& txn) {
    for (auto& [key, value] : model) txn.put(Table::OBJECTS, bytes(key), bytes(value));
  });
  for (auto& [key, value] : model) {
    CHECK(get(*engine, Table::OBJECTS, key) == value);
  }
  CHECK(get(*engine, Table::OBJECTS, prefix + "absent") == std::nullopt);
  CHECK(get(*engine, Table::OBJECTS, prefix.substr(0, 506)) == std::nullopt);

  CHECK(scan(*engine, Table::OBJECTS) == expectedRange(model, "", ""));
  std::vector<std::string> keys;
  for (auto& entry : model) keys.push_back(entry.first);
  for (auto [b, e] : {std::pair<size_t, size_t>{3, 17}, {0, 9}, {10, 11}, {8, keys.size()}}) {
    std::string end = e < keys.size() ? keys[e] : "";
    CHECK(scan(*engine, Table::OBJECTS, keys[b], end) == expectedRange(model, keys[b], end));
  }
  // Bounds that are not keys, cut in the middle of the shared prefix and past it.
  CHECK(scan(*engine, Table::OBJECTS, prefix.substr(0, 507), prefix + "\x80") ==
        expectedRange(model, prefix.substr(0, 507), prefix + "\x80"));
  CHECK(scan(*engine, Table::OBJECTS, prefix.substr(0, 300), prefix.substr(0, 504)) ==
        expectedRange(model, prefix.substr(0, 300), prefix.substr(0, 504)));
  CHECK(scan(*engine, Table::OBJECTS, std::string(1000, '\xff'), "") ==
        expectedRange(model, std::string(1000, '\xff'), ""));
  CHECK(scan(*engine, Table::OBJECTS, keys[4], "", 5) == expectedRange(model, keys[4], "", 5));

  // Overwrite and remove some.
  engine->write([&](WriteTransaction& txn) {
    for (size_t i = 0; i < keys.size(); i += 2) {
      txn.remove(Table::OBJECTS, bytes(keys[i]));
      model.erase(keys[i]);
    }
    txn.put(Table::OBJECTS, bytes(keys[1]), bytes("replaced"));
    model[keys[1]] = "replaced";
  });
  CHECK(scan(*engine, Table::OBJECTS) == expectedRange(model, "", ""));
  CHECK(get(*engine, Table::OBJECTS, keys[0]) == std::nullopt);
  CHECK(get(*engine, Table::OBJECTS, keys[1]) == "replaced");
}

TEMPLATE_TEST_CASE("a value read in a write transaction can be written back", "[engine]",
                   MemoryFixture, LmdbFixture) {
  // put() must copy its argument before it rearranges anything: LMDB moves the entries of a
  // page when it replaces a value with one of another size, and splits full pages.
  TestType fixture;
  auto engine = fixture.open();
  std::map<std::string, std::string> model;
  auto keyOf = [](int i) { return "k" + std::to_string(1000 + i); };
  engine->write([&](WriteTransaction& txn) {
    for (int i = 0; i < 200; ++i) {
      std::string value = std::string(100 + 3 * (i % 20), char('a' + i % 26)) + keyOf(i);
      txn.put(Table::OBJECTS, bytes(keyOf(i)), bytes(value));
      model[keyOf(i)] = value;
    }
  });
  engine->write([&](WriteTransaction& txn) {
    for (int i = 0; i < 199; ++i) {
      // Each key takes its successor's value (another size) ...
      KJ_IF_MAYBE (value, txn.get(Table::OBJECTS, bytes(keyOf(i + 1)))) {
        txn.put(Table::OBJECTS, bytes(keyOf(i)), *value);
        model[keyOf(i)] = model[keyOf(i + 1)];
      }
      // ... and a new key gets a copy, filling pages until they split.
      KJ_IF_MAYBE (value, txn.get(Table::OBJECTS, bytes(keyOf(i)))) {
        txn.put(Table::OBJECTS, bytes(keyOf(i) + "copy"), *value);
        model[keyOf(i) + "copy"] = model[keyOf(i)];
      }
    }
  });
  CHECK(scan(*engine, Table::OBJECTS) == expectedRange(model, "", ""));
}

TEST_CASE("LMDB keeps committed data across a reopen", "[engine][lmdb]") {
  LmdbFixture fixture;
  for (Durability durability : {Durability::SYNC, Durability::BUFFERED}) {
    std::string key = durability == Durability::SYNC ? "sync" : "buffered";
    {
      auto engine = fixture.open(durability);
      CHECK(engine->durability() == durability);
      put(*engine, Table::OBJECTS, key, "object");
      put(*engine, Table::META, key, "meta");
      engine->flush();
    }
    auto engine = fixture.open(durability);
    CHECK(get(*engine, Table::OBJECTS, key) == "object");
    CHECK(get(*engine, Table::META, key) == "meta");
  }
  auto engine = fixture.open();
  CHECK(scan(*engine, Table::OBJECTS) == Entries{{"buffered", "object"}, {"sync", "object"}});
}

TEST_CASE("an LMDB snapshot, taken from another thread, opens as the same store",
          "[engine][lmdb]") {
  LmdbFixture fixture;
  auto engine = fixture.open();
  put(*engine, Table::OBJECTS, "a", "1");
  put(*engine, Table::OBJECTS, "b", "2");
  put(*engine, Table::META, "identity", "me");
  std::string copy = fixture.dir.path + "/snapshot";
  std::filesystem::create_directories(copy);
  StorageEngine::SnapshotInfo info;
  // The daemon runs it off its event loop thread: so does the test.
  std::thread([&]() { info = engine->snapshot(copy.c_str()); }).join();
  CHECK(info.keys == 2);
  CHECK(info.bytes > 0);
  put(*engine, Table::OBJECTS, "c", "after the snapshot");

  auto restored = openLmdbEngine(LmdbOptions{kj::str(copy.c_str())});
  CHECK(scan(*restored, Table::OBJECTS) == Entries{{"a", "1"}, {"b", "2"}});
  CHECK(get(*restored, Table::META, "identity") == "me");
}

TEST_CASE("a snapshot names what went wrong; the memory engine refuses one", "[engine]") {
  LmdbFixture fixture;
  auto engine = fixture.open();
  std::string missing = fixture.dir.path + "/no/such/dir";
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { engine->snapshot(missing.c_str()); })) {
    CHECK_THAT(e->getDescription().cStr(), Catch::Contains(missing));
  } else {
    FAIL("a snapshot into a missing directory succeeded");
  }
  auto memory = newMemoryEngine();
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { memory->snapshot("/tmp/x"); })) {
    CHECK_THAT(e->getDescription().cStr(), Catch::Contains("refused: this node keeps its data in "
                                                           "memory"));
  } else {
    FAIL("the memory engine took a snapshot");
  }
}

TEST_CASE("LMDB reports a full map and keeps what was committed", "[engine][lmdb]") {
  LmdbFixture fixture;
  constexpr uint64_t MAP_BYTES = 1 << 20;
  auto engine = fixture.open(Durability::SYNC, MAP_BYTES);
  put(*engine, Table::OBJECTS, "kept", "committed before the map filled");

  std::string big(64 << 10, 'x');
  std::string failure;
  int stored = 0;
  while (failure.empty() && stored < 100) {
    failure = failureOf([&] { put(*engine, Table::OBJECTS, "big" + std::to_string(stored), big); });
    if (failure.empty()) ++stored;
  }
  INFO(failure);
  CHECK(stored > 0);
  CHECK(failure.find("full") != std::string::npos);
  CHECK(failure.find(std::to_string(MAP_BYTES)) != std::string::npos);

  CHECK(get(*engine, Table::OBJECTS, "kept") == "committed before the map filled");
  for (int i = 0; i < stored; ++i) {
    CHECK(get(*engine, Table::OBJECTS, "big" + std::to_string(i)) == big);
  }
  CHECK(get(*engine, Table::OBJECTS, "big" + std::to_string(stored)) == std::nullopt);

  // A transaction that fails part-way stores none of its writes.
  failure = failureOf([&] {
    engine->write([&](WriteTransaction& txn) {
      txn.put(Table::OBJECTS, bytes("small"), bytes("s"));
      txn.put(Table::OBJECTS, bytes("huge"), bytes(big + big));
    });
  });
  CHECK(failure.find("full") != std::string::npos);
  CHECK(get(*engine, Table::OBJECTS, "small") == std::nullopt);
  CHECK(get(*engine, Table::OBJECTS, "kept") == "committed before the map filled");
}

TEST_CASE("LMDB names the path when it cannot open", "[engine][lmdb]") {
  TempDir dir("dynkv-engine-test");
  std::string file = dir.path + "/not-a-directory";
  fclose(fopen(file.c_str(), "w"));
  std::string failure =
      failureOf([&] { openLmdbEngine(LmdbOptions{kj::str(file.c_str(), "/data")}); });
  INFO(failure);
  CHECK(failure.find(file) != std::string::npos);
}
