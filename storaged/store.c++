#include "store.h"

#include <kj/debug.h>

#include "codec.h"

namespace dynkv::storaged {

namespace {

kj::ArrayPtr<const kj::byte> bytesOf(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

kj::ArrayPtr<const kj::byte> bytesOf(const kj::Array<capnp::word>& words) {
  return words.asBytes();
}

// Hint keys are [storage key length: 2 bytes BE][storage key][owner id: 8 bytes BE]: the
// length prefix makes every hint for one key a contiguous range whatever its owner, so a
// fallback answering a read can include the writes it holds for others.
std::string hintPrefix(const std::string& storageKey) {
  std::string out;
  out.push_back(char(storageKey.size() >> 8));
  out.push_back(char(storageKey.size() & 0xff));
  return out + storageKey;
}

std::string hintKey(uint64_t ownerId, const std::string& storageKey) {
  std::string out = hintPrefix(storageKey);
  for (int i = 0; i < 8; i++) out.push_back(char(ownerId >> (56 - 8 * i)));
  return out;
}

struct ParsedHintKey {
  uint64_t owner;
  kj::ArrayPtr<const kj::byte> storageKey;
};

ParsedHintKey parseHintKey(kj::ArrayPtr<const kj::byte> key) {
  KJ_REQUIRE(key.size() >= 10, "malformed hint key");
  size_t len = (size_t(key[0]) << 8) | key[1];
  KJ_REQUIRE(key.size() == 2 + len + 8, "malformed hint key");
  uint64_t id = 0;
  for (size_t i = 2 + len; i < key.size(); i++) id = (id << 8) | key[i];
  return ParsedHintKey{id, key.slice(2, 2 + len)};
}

std::string prefixEnd(std::string prefix) {
  // The smallest key greater than every key starting with `prefix` ("" = no bound).
  while (!prefix.empty() && uint8_t(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = char(uint8_t(prefix.back()) + 1);
  return prefix;
}

}  // namespace

std::string encodeStorageKey(const StorageKey& key) {
  KJ_REQUIRE(key.partition <= 0xffff, "partition out of range", key.partition);
  KJ_REQUIRE(key.ns.size() <= Limits::MAX_NAMESPACE_BYTES, "namespace too long");
  std::string out;
  out.reserve(3 + key.ns.size() + key.key.size());
  out.push_back(char(key.partition >> 8));
  out.push_back(char(key.partition & 0xff));
  out.push_back(char(key.ns.size()));
  out += key.ns;
  out += key.key;
  return out;
}

StorageKey decodeStorageKey(kj::ArrayPtr<const kj::byte> bytes) {
  KJ_REQUIRE(bytes.size() >= 3, "malformed storage key");
  StorageKey key;
  key.partition = (uint32_t(bytes[0]) << 8) | bytes[1];
  size_t nsLen = bytes[2];
  KJ_REQUIRE(bytes.size() >= 3 + nsLen, "malformed storage key");
  key.ns.assign(reinterpret_cast<const char*>(bytes.begin() + 3), nsLen);
  key.key.assign(reinterpret_cast<const char*>(bytes.begin() + 3 + nsLen),
                 bytes.size() - 3 - nsLen);
  return key;
}

struct Store::PendingWrite {
  enum class Op { COORDINATE, REPLICATE, HINT, REMOVE_HINT };
  Op op;
  Table table;
  std::string engineKey;
  NamespaceKind kind = NamespaceKind::VECTOR_CLOCK;
  VersionVector context;
  std::optional<std::string> value;
  int64_t nowMicros = 0;
  Object object;  // REPLICATE, HINT: what to merge in; REMOVE_HINT: what was delivered
  kj::Own<kj::PromiseFulfiller<Object>> fulfiller;
  kj::Maybe<kj::Exception> refusal;  // set when this write alone is refused
  Object result;
};

Store::Store(StorageEngine& engine, const Actor& self, const Limits& limits, kj::Timer& timer)
    : engine_(engine), self_(self), limits_(limits), timer_(timer) {
  if (engine_.durability() == Durability::BUFFERED) {
    flusher_ = std::thread([this]() { flusherLoop(); });
  }
}

Store::~Store() noexcept(false) {
  if (flusher_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(flusherMutex_);
      stopFlusher_ = true;
    }
    flusherWake_.notify_all();
    flusher_.join();
  }
}

void Store::flusherLoop() {
  std::unique_lock<std::mutex> lock(flusherMutex_);
  while (!stopFlusher_) {
    flusherWake_.wait_for(lock, BUFFERED_FLUSH_INTERVAL, [this]() { return stopFlusher_; });
    if (dirty_.exchange(false) || stopFlusher_) {
      lock.unlock();
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([this]() { engine_.flush(); })) {
        KJ_LOG(ERROR, "buffered flush failed; will retry", *e);
        dirty_ = true;
      }
      lock.lock();
    }
  }
}

std::optional<Object> Store::get(const StorageKey& key) {
  std::optional<Object> result;
  auto engineKey = encodeStorageKey(key);
  engine_.read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(engineKey))) {
      result = objectFromBytes(*bytes, limits_);
    }
    // Writes held here for an unreachable owner are part of what this node knows of the key.
    auto prefix = hintPrefix(engineKey);
    auto end = prefixEnd(prefix);
    txn.scan(Table::HINTS, bytesOf(prefix), bytesOf(end), [&](Bytes, Bytes value) {
      auto hinted = objectFromBytes(value, limits_);
      if (!result) {
        result = kj::mv(hinted);
      } else if (result->kind == hinted.kind) {
        result = sync(*result, hinted);
      }
      return true;
    });
  });
  return result;
}

kj::Promise<Object> Store::coordinatePut(StorageKey key, NamespaceKind kind,
                                         VersionVector context, std::optional<std::string> value,
                                         int64_t nowMicros) {
  auto write = kj::heap<PendingWrite>();
  write->op = PendingWrite::Op::COORDINATE;
  write->table = Table::OBJECTS;
  write->engineKey = encodeStorageKey(key);
  write->kind = kind;
  write->context = kj::mv(context);
  write->value = kj::mv(value);
  write->nowMicros = nowMicros;
  return enqueue(kj::mv(write));
}

kj::Promise<void> Store::replicate(StorageKey key, Object object) {
  auto write = kj::heap<PendingWrite>();
  write->op = PendingWrite::Op::REPLICATE;
  write->table = Table::OBJECTS;
  write->engineKey = encodeStorageKey(key);
  write->object = kj::mv(object);
  return enqueue(kj::mv(write)).ignoreResult();
}

kj::Promise<void> Store::storeHint(uint64_t ownerId, StorageKey key, Object object) {
  auto write = kj::heap<PendingWrite>();
  write->op = PendingWrite::Op::HINT;
  write->table = Table::HINTS;
  write->engineKey = hintKey(ownerId, encodeStorageKey(key));
  write->object = kj::mv(object);
  return enqueue(kj::mv(write)).ignoreResult();
}

kj::Promise<void> Store::removeHint(const Hint& delivered) {
  auto write = kj::heap<PendingWrite>();
  write->op = PendingWrite::Op::REMOVE_HINT;
  write->table = Table::HINTS;
  write->engineKey = hintKey(delivered.ownerId, encodeStorageKey(delivered.key));
  write->object = delivered.object;
  return enqueue(kj::mv(write)).ignoreResult();
}

std::vector<Store::Hint> Store::hintsFor(kj::Maybe<uint64_t> ownerId, size_t max) {
  std::vector<Hint> hints;
  engine_.read([&](ReadTransaction& txn) {
    txn.scan(Table::HINTS, nullptr, nullptr, [&](Bytes key, Bytes value) {
      auto parsed = parseHintKey(key);
      KJ_IF_MAYBE(id, ownerId) {
        if (parsed.owner != *id) return true;
      }
      hints.push_back(Hint{parsed.owner, decodeStorageKey(parsed.storageKey),
                           objectFromBytes(value, limits_)});
      return hints.size() < max;
    });
  });
  return hints;
}

uint64_t Store::hintCount() {
  uint64_t count = 0;
  engine_.read([&](ReadTransaction& txn) {
    txn.scan(Table::HINTS, nullptr, nullptr, [&](Bytes, Bytes) {
      count++;
      return true;
    });
  });
  return count;
}

Store::PartitionChunk Store::scanPartition(uint32_t partition, const std::string& after,
                                           size_t maxBytes) {
  PartitionChunk chunk;
  std::string begin = after.empty() ? encodeStorageKey(StorageKey{partition, "", ""})
                                    : after + std::string(1, '\0');  // the next key after
  std::string end = partition + 1 > 0xffff ? std::string()
                                           : encodeStorageKey(StorageKey{partition + 1, "", ""});
  size_t bytes = 0;
  chunk.done = true;
  engine_.read([&](ReadTransaction& txn) {
    txn.scan(Table::OBJECTS, bytesOf(begin), bytesOf(end), [&](Bytes key, Bytes value) {
      if (bytes >= maxBytes) {
        chunk.done = false;
        return false;
      }
      chunk.entries.emplace_back(decodeStorageKey(key), objectFromBytes(value, limits_));
      chunk.next.assign(reinterpret_cast<const char*>(key.begin()), key.size());
      bytes += key.size() + value.size();
      return true;
    });
  });
  if (chunk.entries.empty()) chunk.next = after;
  return chunk;
}

kj::Promise<Object> Store::enqueue(kj::Own<PendingWrite> write) {
  auto paf = kj::newPromiseAndFulfiller<Object>();
  write->fulfiller = kj::mv(paf.fulfiller);
  pending_.push_back(kj::mv(write));
  if (!flushScheduled_) {
    // Group commit: writes arriving in this turn of the event loop share one transaction.
    flushScheduled_ = true;
    batchTask_ = kj::evalLater([this]() { commitBatch(); }).eagerlyEvaluate([](kj::Exception&& e) {
      KJ_LOG(ERROR, "write batch failed", e);
    });
  }
  return kj::mv(paf.promise);
}

void Store::commitBatch() {
  flushScheduled_ = false;
  auto batch = kj::mv(pending_);
  pending_.clear();

  auto failure = kj::runCatchingExceptions([&]() {
    engine_.write([&](WriteTransaction& txn) {
      for (auto& w : batch) {
        w->refusal = nullptr;
        Object current;
        KJ_IF_MAYBE(bytes, txn.get(w->table, bytesOf(w->engineKey))) {
          current = objectFromBytes(*bytes, limits_);
        }
        bool kindsDiffer = !current.empty() && !w->object.empty() && current.kind != w->object.kind;
        switch (w->op) {
          case PendingWrite::Op::COORDINATE:
            if (!current.empty() && current.kind != w->kind) {
              w->refusal = KJ_EXCEPTION(FAILED, "namespace kind mismatch: the stored object is "
                                                "last-write-wins, the write is vector-clock");
              continue;
            }
            w->result = dynkv::coordinatePut(current, self_, w->context, w->value, w->nowMicros);
            if (w->result.siblings.size() > Limits::MAX_SIBLINGS) {
              w->refusal = KJ_EXCEPTION(
                  FAILED, kj::str("too many siblings: the write would leave ",
                                  w->result.siblings.size(), " concurrent versions; the limit is ",
                                  Limits::MAX_SIBLINGS, ". Read the key, resolve and write with "
                                  "its context."));
              continue;
            }
            break;
          case PendingWrite::Op::REPLICATE:
          case PendingWrite::Op::HINT:
            if (kindsDiffer) {
              w->refusal = KJ_EXCEPTION(FAILED, "namespace kind mismatch between the stored "
                                                "object and the replicated one");
              continue;
            }
            w->result = sync(current, w->object);
            if (w->result == current) continue;  // nothing new: no write
            break;
          case PendingWrite::Op::REMOVE_HINT:
            if (current == w->object) txn.remove(w->table, bytesOf(w->engineKey));
            continue;
        }
        auto words = objectToWords(w->result);
        txn.put(w->table, bytesOf(w->engineKey), bytesOf(words));
      }
    });
  });

  KJ_IF_MAYBE(e, failure) {
    for (auto& w : batch) w->fulfiller->reject(kj::cp(*e));
    return;
  }
  dirty_ = true;
  for (auto& w : batch) {
    KJ_IF_MAYBE(refusal, w->refusal) {
      w->fulfiller->reject(kj::mv(*refusal));
    } else {
      w->fulfiller->fulfill(kj::mv(w->result));
    }
  }
}


}  // namespace dynkv::storaged
