#include "local-replica.h"

#include <kj/debug.h>

#include "hash.h"
#include "transfer.h"

namespace dynkv::storaged {

LocalReplica::LocalReplica(VersionedStore& store, HintStore& hints, Membership& membership,
                           TransferManager* transfers)
    : store_(store), hints_(hints), membership_(membership), transfers_(transfers) {}

MapSnapshot LocalReplica::observe(uint64_t senderVersion) {
  membership_.observeVersion(senderVersion);
  return membership_.current();
}

StorageKey LocalReplica::storageKey(const PartitionMap& map, std::string_view ns,
                                    std::string_view key) {
  // "invalid argument" first: the caller's classify() (common/net/replicas.h) reads it as the
  // request's fault, so no fallback is asked the same thing.
  if (auto error = checkKey(store_.limits(), ns, key)) {
    KJ_FAIL_REQUIRE("invalid argument", *error);
  }
  KJ_REQUIRE(!map.empty(), "this node has no partition map yet");
  return StorageKey{map.partitionOf(keyHash(ns, key)), std::string(ns), std::string(key)};
}

kj::Promise<std::optional<Object>> LocalReplica::get(StorageKey key) {
  auto local = store_.get(key);
  if (transfers_ != nullptr && !transfers_->readable(key.partition)) {
    // The partition is still streaming in: answer with what this node has merged with what
    // a previous owner has, so the read sees the key's history (Riak forwards likewise).
    return transfers_->readThrough(kj::mv(key), kj::mv(local));
  }
  return kj::mv(local);
}

kj::Promise<Object> LocalReplica::coordinatePut(StorageKey key, VersionVector context,
                                                std::optional<std::string> value,
                                                int64_t nowMicros) {
  if (value) {
    if (auto error = checkValue(store_.limits(), *value)) {
      KJ_FAIL_REQUIRE("invalid argument", *error);
    }
  }
  return store_.coordinatePut(kj::mv(key), Versioning::VECTOR_CLOCK, kj::mv(context), kj::mv(value),
                              nowMicros);
}

kj::Promise<void> LocalReplica::replicate(StorageKey key, Object object, uint64_t hintFor) {
  return hintFor == 0 ? store_.replicate(kj::mv(key), kj::mv(object))
                      : hints_.storeHint(hintFor, kj::mv(key), kj::mv(object));
}

}  // namespace dynkv::storaged
