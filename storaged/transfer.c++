#include "transfer.h"

#include <algorithm>
#include <kj/debug.h>
#include <kj/encoding.h>
#include <sstream>

#include "codec.h"

namespace dynkv::storaged {

namespace {

const kj::byte TRANSFERS_KEY[] = {'t', 'r', 'a', 'n', 's', 'f', 'e', 'r', 's'};

}  // namespace

TransferManager::TransferManager(VersionedStore& store, StorageEngine& engine, NodePool& pool,
                                 kj::Timer& timer, uint64_t selfId, uint32_t replicas,
                                 uint64_t bytesPerSecond, BackgroundAdmission* admission)
    : store_(store),
      engine_(engine),
      pool_(pool),
      timer_(timer),
      selfId_(selfId),
      replicas_(replicas),
      bytesPerSecond_(bytesPerSecond),
      admission_(admission) {
  load();
}

std::vector<uint32_t> TransferManager::partitionsOf(const PartitionMap& map) const {
  std::vector<uint32_t> out;
  auto self = map.indexOf(selfId_);
  if (!self) return out;
  for (uint32_t p = 0; p < map.partitionCount(); p++) {
    auto pref = map.preferenceList(p, replicas_, 0);
    for (uint32_t i = 0; i < pref.primaries; i++) {
      if (pref.nodes[i] == *self) {
        out.push_back(p);
        break;
      }
    }
  }
  return out;
}

void TransferManager::mapChanged(const PartitionMap& previous, const PartitionMap& current) {
  auto wanted = partitionsOf(current);
  // Partitions no longer ours need no stream.
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!std::binary_search(wanted.begin(), wanted.end(), it->first)) {
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  if (!previous.empty() && previous.partitionCount() == current.partitionCount()) {
    auto held = partitionsOf(previous);
    for (uint32_t p : wanted) {
      if (std::binary_search(held.begin(), held.end(), p) || pending_.count(p)) continue;
      auto pref = previous.preferenceList(p, replicas_, 0);
      Pending pending;
      for (uint32_t i = 0; i < pref.primaries; i++) {
        auto& node = previous.nodes()[pref.nodes[i]];
        if (node.id != selfId_) pending.sources.push_back(node.address);
      }
      if (!pending.sources.empty()) pending_.emplace(p, kj::mv(pending));
    }
  }
  persist();
}

kj::Promise<std::optional<Object>> TransferManager::readThrough(StorageKey key,
                                                                std::optional<Object> local) {
  auto it = pending_.find(key.partition);
  if (it == pending_.end()) return kj::mv(local);
  return readFrom(it->second.sources, 0, kj::mv(key), kj::mv(local));
}

kj::Promise<std::optional<Object>> TransferManager::readFrom(std::vector<std::string> sources,
                                                             size_t i, StorageKey key,
                                                             std::optional<Object> local) {
  if (i >= sources.size()) {
    return KJ_EXCEPTION(OVERLOADED, "partition is still streaming in to this node and no "
                                    "previous owner answered", key.partition);
  }
  auto source = sources[i];
  auto call = pool_.node(source).then(
      [ns = key.ns, k = key.key](wire::Node::Client node)
          -> kj::Promise<capnp::Response<wire::Node::GetResults>> {
        auto request = node.getRequest();
        auto wireKey = request.initKey();
        wireKey.setNamespace(asData(ns));
        wireKey.setKey(asData(k));
        return request.send();
      });
  return timer_.timeoutAfter(2 * kj::SECONDS, kj::mv(call))
      .then(
          [this, local](capnp::Response<wire::Node::GetResults>&& response) mutable
          -> kj::Promise<std::optional<Object>> {
            if (!response.getFound()) return kj::mv(local);
            auto theirs = decodeObject(response.getObject(), store_.limits());
            if (!local) return std::optional<Object>(kj::mv(theirs));
            if (local->kind != theirs.kind) return kj::mv(local);
            return std::optional<Object>(sync(*local, theirs));
          },
          [this, sources = kj::mv(sources), i, key, local, source](kj::Exception&& e) mutable {
            pool_.reportFailure(source, e);
            return readFrom(kj::mv(sources), i + 1, kj::mv(key), kj::mv(local));
          });
}

kj::Promise<void> TransferManager::run() {
  return step().then([this]() { return run(); });
}

void TransferManager::finishWith(kj::Function<kj::Promise<bool>(uint32_t partition)> exchange) {
  finisher_ = kj::mv(exchange);
}

kj::Promise<void> TransferManager::step() {
  // The first pending partition not waiting to retry its exchange: one whose replicas are all
  // unreachable does not hold up the others.
  auto now = timer_.now();
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [now](auto& entry) { return entry.second.retryAfter <= now; });
  if (it == pending_.end()) return timer_.afterDelay(200 * kj::MILLISECONDS);
  uint32_t partition = it->first;
  // The slot covers the fetch and the writes of what it brought, not the pause after them.
  return acquireSlot(admission_)
      .then(
          [this, partition](BackgroundAdmission::Slot slot) {
            auto work = pending_.count(partition) && pending_.at(partition).streamed
                            ? finish(partition)
                            : fetchChunk(partition);
            return work.attach(kj::mv(slot));
          },
          [](kj::Exception&& e) {
            KJ_LOG(WARNING, "partition transfer: no background slot; trying again later", e);
            return kj::Promise<kj::Duration>(500 * kj::MILLISECONDS);
          })
      .then([this](kj::Duration pause) { return timer_.afterDelay(pause); });
}

kj::Promise<kj::Duration> TransferManager::finish(uint32_t partition) {
  auto done = [this, partition]() {
    pending_.erase(partition);
    persist();
    KJ_LOG(INFO, "partition transfer complete", partition, pending_.size());
  };
  KJ_IF_MAYBE(exchange, finisher_) {
    return (*exchange)(partition).then(
        [this, partition, done](bool finished) -> kj::Duration {
          auto it = pending_.find(partition);
          if (it == pending_.end()) return 0 * kj::NANOSECONDS;  // dropped meanwhile
          if (finished) {
            done();
          } else {
            KJ_LOG(WARNING, "partition streamed, but its exchange with the other replicas did "
                            "not finish; it stays unreadable and is tried again", partition);
            it->second.retryAfter = timer_.now() + RETRY_DELAY;
          }
          return 0 * kj::NANOSECONDS;
        });
  }
  done();
  return 0 * kj::NANOSECONDS;
}

std::string TransferManager::chooseSource(Pending& pending) {
  // From where the last failure left off, the first source the failure detector does not
  // suspect; if it suspects them all, the next in turn (it may be wrong).
  for (size_t i = 0; i < pending.sources.size(); i++) {
    size_t candidate = (pending.nextSource + i) % pending.sources.size();
    if (!pool_.isSuspect(pending.sources[candidate])) {
      pending.nextSource = candidate;
      break;
    }
  }
  return pending.sources[pending.nextSource % pending.sources.size()];
}

kj::Promise<kj::Duration> TransferManager::fetchChunk(uint32_t partition) {
  // One chunk of `partition`; resolves to how long to pause before the next.
  auto found = pending_.find(partition);
  if (found == pending_.end()) return 0 * kj::NANOSECONDS;  // dropped while waiting for a slot
  auto& pending = found->second;
  auto source = chooseSource(pending);
  auto call = pool_.peer(source).then(
      [this, source, partition, cursor = pending.cursor](wire::Peer::Client peer)
          -> kj::Promise<capnp::Response<wire::Peer::FetchPartitionResults>> {
        auto request = peer.fetchPartitionRequest();
        request.setPartition(uint16_t(partition));
        request.setAfter(asData(cursor));
        request.setMaxBytes(CHUNK_BYTES);
        return pool_.track(source, request.send());
      });
  return timer_.timeoutAfter(10 * kj::SECONDS, kj::mv(call))
      .then(
          [this, partition](capnp::Response<wire::Peer::FetchPartitionResults>&& response)
              -> kj::Promise<kj::Duration> {
            auto it = pending_.find(partition);
            if (it == pending_.end()) return 0 * kj::NANOSECONDS;  // dropped
            size_t bytes = 0;
            auto writes = kj::heapArrayBuilder<kj::Promise<void>>(response.getEntries().size());
            for (auto entry : response.getEntries()) {
              StorageKey key{partition, std::string(asStringView(entry.getNamespace())),
                             std::string(asStringView(entry.getKey()))};
              auto object = decodeObject(entry.getObject(), store_.limits());
              bytes += key.key.size() + entry.getObject().totalSize().wordCount * 8;
              writes.add(store_.replicate(kj::mv(key), kj::mv(object)));
            }
            std::string next(asStringView(response.getNext()));
            bool done = response.getDone();
            // Rate limit: pause as long as this chunk should take at the configured rate.
            kj::Duration pause = 0 * kj::NANOSECONDS;
            if (bytesPerSecond_ > 0) {
              pause = int64_t(bytes * 1000000 / bytesPerSecond_) * kj::MICROSECONDS;
            }
            return kj::joinPromises(writes.finish())
                .then([this, partition, next = kj::mv(next), done]() {
                  auto it = pending_.find(partition);
                  if (it == pending_.end()) return;
                  it->second.cursor = next;
                  it->second.streamed = done;  // finish() runs its exchange next
                  persist();
                })
                .then([pause]() { return pause; });
          },
          [this, partition, source](kj::Exception&& e) {
            KJ_LOG(WARNING, "partition transfer failed; trying another source", partition,
                   source.c_str(), e.getDescription());
            pool_.reportFailure(source, e);
            auto it = pending_.find(partition);
            if (it != pending_.end()) it->second.nextSource++;
            return kj::Promise<kj::Duration>(500 * kj::MILLISECONDS);
          });
}

void TransferManager::persist() {
  std::ostringstream out;
  for (auto& [p, pending] : pending_) {
    auto cursor = kj::encodeHex(kj::arrayPtr(
        reinterpret_cast<const kj::byte*>(pending.cursor.data()), pending.cursor.size()));
    // The cursor, "-" before the first chunk, "*" once streamed (the exchange still to come).
    out << p << ' ' << (pending.streamed ? "*" : pending.cursor.empty() ? "-" : cursor.cStr())
        << ' ';
    for (size_t i = 0; i < pending.sources.size(); i++) {
      out << (i ? "," : "") << pending.sources[i];
    }
    out << '\n';
  }
  auto text = out.str();
  engine_.write([&](WriteTransaction& txn) {
    txn.put(Table::META, kj::arrayPtr(TRANSFERS_KEY, sizeof(TRANSFERS_KEY)),
            kj::arrayPtr(reinterpret_cast<const kj::byte*>(text.data()), text.size()));
  });
}

void TransferManager::load() {
  std::string text;
  engine_.read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::META, kj::arrayPtr(TRANSFERS_KEY, sizeof(TRANSFERS_KEY)))) {
      text.assign(reinterpret_cast<const char*>(bytes->begin()), bytes->size());
    }
  });
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    uint32_t p;
    std::string cursor, sources;
    if (!(fields >> p >> cursor >> sources)) continue;
    Pending pending;
    if (cursor == "*") {
      pending.streamed = true;
    } else if (cursor != "-") {
      auto bytes = kj::decodeHex(kj::arrayPtr(cursor.data(), cursor.size()));
      pending.cursor.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
    }
    std::istringstream list(sources);
    for (std::string s; std::getline(list, s, ',');) pending.sources.push_back(s);
    if (!pending.sources.empty()) pending_.emplace(p, kj::mv(pending));
  }
  if (!pending_.empty()) KJ_LOG(INFO, "resuming partition transfers", pending_.size());
}

}  // namespace dynkv::storaged
