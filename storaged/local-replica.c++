#include "local-replica.h"

#include <kj/debug.h>

#include "admission.h"
#include "hash.h"
#include "transfer.h"

namespace dynkv::storaged {

LocalReplica::LocalReplica(VersionedStore& store, HintStore& hints, Membership& membership,
                           TransferManager* transfers, BackgroundAdmission* admission)
    : store_(store),
      hints_(hints),
      membership_(membership),
      transfers_(transfers),
      admission_(admission) {}

template <typename Func>
auto LocalReplica::timed(Func&& operation) -> decltype(operation()) {
  // The service and server-driven coordination both answer through here, so every foreground
  // operation of the node is measured once, whichever way it came in (the paper's section 6.5:
  // the admission controller watches the foreground's own storage accesses).
  if (admission_ == nullptr) return operation();
  return admission_->timed(kj::fwd<Func>(operation));
}

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
  // A read-through's wait for a previous owner is the network's and the other node's, not this
  // node's storage; counted, it would throttle the very transfer that ends it.
  auto local = timed([&]() { return store_.get(key); });
  if (transfers_ != nullptr && !transfers_->readable(key.partition)) {
    // The partition is still streaming in: answer with what this node has merged with what
    // a previous owner has, so the read sees the key's history (Riak forwards likewise).
    return transfers_->readThrough(kj::mv(key), kj::mv(local));
  }
  return kj::mv(local);
}

kj::Promise<Object> LocalReplica::coordinatePut(StorageKey key, WriteContext context,
                                                std::optional<std::string> value,
                                                int64_t nowMicros, uint64_t writeId) {
  if (value) {
    if (auto error = checkValue(store_.limits(), *value)) {
      KJ_FAIL_REQUIRE("invalid argument", *error);
    }
  }
  return timed([&]() {
    return store_.coordinatePut(kj::mv(key), Versioning::VECTOR_CLOCK, kj::mv(context),
                                kj::mv(value), nowMicros, writeId);
  });
}

kj::Promise<void> LocalReplica::replicate(StorageKey key, Object object, uint64_t hintFor) {
  return timed([&]() {
    return hintFor == 0 ? store_.replicate(kj::mv(key), kj::mv(object))
                        : hints_.storeHint(hintFor, kj::mv(key), kj::mv(object));
  });
}

}  // namespace dynkv::storaged
