#include "anti-entropy.h"

#include <kj/debug.h>
#include <kj/time.h>
#include <kj/vector.h>

#include <algorithm>
#include <map>
#include <set>

#include "admission.h"
#include "codec.h"
#include "hash.h"
#include "storage-key.h"

namespace dynkv::storaged {

namespace {

template <typename T>
uint64_t bytesOf(const T& message) {
  return message.totalSize().wordCount * sizeof(capnp::word);
}

SegmentRef segmentOfKey(const std::string& storageKey) {
  auto key = decodeStorageKey(kj::arrayPtr(reinterpret_cast<const kj::byte*>(storageKey.data()),
                                           storageKey.size()));
  return SegmentRef{key.partition, uint32_t(MerkleTree::segmentOf(key.ns, key.key))};
}

kj::Exception invalid(kj::StringPtr what) {
  return KJ_EXCEPTION(FAILED, kj::str("invalid argument: ", what));
}

}  // namespace

struct AntiEntropy::Run {
  Run(ExchangePlan plan, std::string address, uint64_t salt, Exchange::Trees trees,
      ExchangeLimits limits, std::set<uint32_t> owned, bool throttled)
      : plan(plan),
        address(kj::mv(address)),
        exchange(plan.partitions, salt, kj::mv(trees), limits),
        owned(kj::mv(owned)),
        throttled(throttled) {}

  ExchangePlan plan;
  std::string address;
  Exchange exchange;
  std::set<uint32_t> owned;  // partitions of the plan this node is a replica of: it takes the
                             // peer's copies of those; of the others it only hands its own over
  bool throttled;
  kj::Maybe<wire::Peer::Client> peer;
  std::string failure;
};

AntiEntropy::AntiEntropy(VersionedStore& store, HashTrees& trees, Membership& membership,
                         NodePool& pool, kj::Timer& timer, BackgroundAdmission* admission,
                         AntiEntropyOptions options)
    : store_(store),
      trees_(trees),
      membership_(membership),
      pool_(pool),
      timer_(timer),
      admission_(admission),
      options_(options),
      self_(store.self().node),
      // Salts differ between nodes and between runs; an exchange's salt only needs to be one
      // its peer cannot have tuned a collision to.
      nextSalt_(hash64(kj::str(store.self().node, '/', store.self().epoch, '/',
                               (timer.now() - kj::origin<kj::TimePoint>()) / kj::NANOSECONDS)
                           .cStr())) {
  KJ_REQUIRE(options_.replicas >= 1, "anti-entropy needs N >= 1 replicas", options_.replicas);
}

// ---- Rounds ----------------------------------------------------------------------------------

kj::Promise<void> AntiEntropy::run() {
  return round()
      .catch_([](kj::Exception&& e) { KJ_LOG(WARNING, "anti-entropy round failed", e); })
      .then([this]() {
        return timer_.afterDelay(rebuilding_ ? 1 * kj::SECONDS : options_.interval);
      })
      .then([this]() { return run(); });
}

kj::Promise<void> AntiEntropy::round() {
  auto map = membership_.current();
  if (map->empty()) return kj::READY_NOW;
  updateRebuilding(*map);
  auto suspected = [this, map](uint64_t node) {
    auto index = map->indexOf(node);
    return !index || pool_.isSuspect(map->nodes()[*index].address);
  };
  auto plans = planExchanges(*map, self_, options_.replicas, heldNotOwned(*map), suspected);
  if (options_.streaming) {
    for (auto& plan : plans) {
      plan.partitions.erase(std::remove_if(plan.partitions.begin(), plan.partitions.end(),
                                           options_.streaming),
                            plan.partitions.end());
    }
  }
  return exchangeAll(map, kj::mv(plans), true).then([this, map](Report report) {
    lastRoundSegments_ = report.segmentsDiffering;
    if (report.keysRepaired > 0) {
      KJ_LOG(INFO, "anti-entropy repaired keys", report.keysRepaired, report.exchanges);
    }
    updateRebuilding(*map);
    return collect(map, true);
  });
}

kj::Promise<AntiEntropy::Report> AntiEntropy::repair(std::optional<uint32_t> partition) {
  auto map = membership_.current();
  if (map->empty()) {
    return KJ_EXCEPTION(FAILED, "this node is not in a ring yet: nothing to repair");
  }
  if (partition && *partition >= map->partitionCount()) {
    return invalid(kj::str("partition ", *partition, " does not exist; the ring has ",
                           map->partitionCount(), " (0 to ", map->partitionCount() - 1, ")"));
  }
  auto plans = plansFor(*map, partition, [](uint64_t) { return false; });
  return exchangeAll(map, kj::mv(plans), false).then([this, map](Report report) {
    updateRebuilding(*map);
    return collect(map, false).then([report = kj::mv(report)]() mutable { return kj::mv(report); });
  });
}

kj::Promise<bool> AntiEntropy::exchangePartition(uint32_t partition) {
  auto map = membership_.current();
  if (map->empty() || partition >= map->partitionCount()) return false;
  auto plans = plansFor(*map, partition, [this, map](uint64_t node) {
    auto index = map->indexOf(node);
    return !index || pool_.isSuspect(map->nodes()[*index].address);
  });
  size_t tried = plans.size();
  return exchangeAll(map, kj::mv(plans), true).then([tried](Report report) {
    return tried > 0 && report.failed == 0;
  });
}

std::vector<ExchangePlan> AntiEntropy::plansFor(
    const PartitionMap& map, std::optional<uint32_t> partition,
    const std::function<bool(uint64_t node)>& suspected) const {
  auto plans = planExchanges(map, self_, options_.replicas, heldNotOwned(map), suspected);
  if (partition) {
    for (auto& plan : plans) {
      bool has = std::binary_search(plan.partitions.begin(), plan.partitions.end(), *partition);
      plan.partitions = has ? std::vector<uint32_t>{*partition} : std::vector<uint32_t>{};
    }
    plans.erase(std::remove_if(plans.begin(), plans.end(),
                               [](const ExchangePlan& p) { return p.partitions.empty(); }),
                plans.end());
  }
  return plans;
}

kj::Promise<AntiEntropy::Report> AntiEntropy::exchangeAll(MapSnapshot map,
                                                           std::vector<ExchangePlan> plans,
                                                           bool throttled) {
  // One batch of exchanges at a time, whoever asked (a round, a transfer, an operator): what
  // one finds is in the next one's trees, and two never repair the same keys at once.
  struct Turn {
    // Lets the next batch start however this one ends (done, failed or cancelled).
    explicit Turn(kj::Own<kj::PromiseFulfiller<void>> next) : next(kj::mv(next)) {}
    ~Turn() { next->fulfill(); }
    kj::Own<kj::PromiseFulfiller<void>> next;
  };
  auto done = kj::newPromiseAndFulfiller<void>();
  auto previous = kj::mv(idle_);
  idle_ = kj::mv(done.promise);
  auto turn = kj::heap<Turn>(kj::mv(done.fulfiller));
  auto report = kj::heap<Report>();
  auto& r = *report;
  return previous.catch_([](kj::Exception&&) {})
      .then([this, map, plans = kj::mv(plans), throttled, &r]() mutable {
        running_++;
        kj::Promise<void> chain = kj::READY_NOW;
        for (auto& plan : plans) {
          chain = chain.then([this, map, plan = kj::mv(plan), throttled, &r]() mutable {
            return exchangeOne(map, kj::mv(plan), throttled, r);
          });
        }
        return chain.attach(kj::defer([this]() { running_--; }));
      })
      .attach(kj::mv(turn))
      .then([report = kj::mv(report)]() mutable { return kj::mv(*report); });
}

kj::Promise<void> AntiEntropy::exchangeOne(MapSnapshot map, ExchangePlan plan, bool throttled,
                                           Report& report) {
  auto index = map->indexOf(plan.peer);
  if (!index) return kj::READY_NOW;
  std::set<uint32_t> owned;
  for (auto p : plan.partitions) {
    if (owns(*map, p)) owned.insert(p);
  }
  auto run = kj::heap<Run>(plan, map->nodes()[*index].address, nextSalt_++,
                           [this](uint32_t p) { return trees_.tree(p); }, options_.limits,
                           kj::mv(owned), throttled);
  auto& r = *run;
  return pool_.peer(r.address)
      .then([&r](wire::Peer::Client peer) { r.peer = kj::mv(peer); })
      .then([this, &r]() { return drive(r); },
            [this, &r](kj::Exception&& e) {
              pool_.reportFailure(r.address, e);
              r.failure = e.getDescription().cStr();
              r.exchange.failed();
            })
      .then([this, &r, &report]() {
        bool finished = r.exchange.step().kind == Exchange::Step::Kind::DONE;
        ledger_.record(r.plan.peer, r.plan.partitions, r.exchange.covered(), finished,
                       [this](uint32_t p) {
                         auto tree = trees_.tree(p);
                         return tree ? tree->root() : uint64_t(0);
                       });
        auto& stats = r.exchange.stats();
        report.exchanges++;
        report.partitions += uint32_t(r.plan.partitions.size());
        report.segmentsDiffering += stats.segmentsDiffering;
        report.keysRepaired += stats.keysRepaired;
        keysRepaired_ += stats.keysRepaired;
        if (finished) {
          exchangesFinished_++;
          lastFinished_ = timer_.now();
        } else {
          exchangesFailed_++;
          report.failed++;
          if (report.message.empty()) {
            report.message = "exchange with " + r.address + " failed: " + r.failure;
          }
          KJ_LOG(WARNING, "anti-entropy exchange failed", r.address.c_str(), r.failure.c_str());
        }
      })
      .attach(kj::mv(run));
}

kj::Promise<void> AntiEntropy::drive(Run& run) {
  if (run.exchange.finished()) return kj::READY_NOW;
  return timer_.timeoutAfter(options_.stepTimeout, step(run))
      .then([this, &run]() { return drive(run); },
            [this, &run](kj::Exception&& e) {
              pool_.reportFailure(run.address, e);
              run.failure = e.getDescription().cStr();
              run.exchange.failed();
            });
}

template <typename T>
kj::Promise<T> AntiEntropy::throttle(bool throttled, kj::Function<kj::Promise<T>()> work) {
  // One slot per step, given back when the step ends (never held across the wait between
  // steps, nor asked for while holding one). An operator's repair is not throttled.
  if (!throttled) return work();
  return acquireSlot(admission_).then(
      [work = kj::mv(work)](BackgroundAdmission::Slot slot) mutable {
        return work().attach(kj::mv(slot));
      });
}

kj::Promise<void> AntiEntropy::step(Run& run) {
  return throttle<void>(run.throttled, [this, &run]() -> kj::Promise<void> {
    auto& s = run.exchange.step();
    auto& peer = KJ_ASSERT_NONNULL(run.peer);
    switch (s.kind) {
      case Exchange::Step::Kind::ASK_ROOTS: {
        auto request = peer.aeRootsRequest();
        request.setRequester(self_);
        auto list = request.initPartitions(uint32_t(s.partitions.size()));
        for (size_t i = 0; i < s.partitions.size(); i++) list.set(uint32_t(i), uint16_t(s.partitions[i]));
        countSent(Call::ROOTS, bytesOf(request));
        return pool_.track(run.address, request.send()).then([this, &run](auto&& response) {
          countReceived(Call::ROOTS, bytesOf(response));
          auto roots = response.getRoots();
          KJ_REQUIRE(roots.size() == run.exchange.step().partitions.size(),
                     "peer answered roots for other partitions");
          std::vector<uint64_t> out;
          for (auto root : roots) out.push_back(root);
          run.exchange.rootsReceived(out);
        });
      }
      case Exchange::Step::Kind::ASK_CHILDREN: {
        auto request = peer.aeChildrenRequest();
        request.setSalt(s.salt);
        auto list = request.initNodes(uint32_t(s.nodes.size()));
        for (size_t i = 0; i < s.nodes.size(); i++) {
          list[uint32_t(i)].setPartition(uint16_t(s.nodes[i].partition));
          list[uint32_t(i)].setLevel(s.nodes[i].level);
          list[uint32_t(i)].setIndex(s.nodes[i].index);
        }
        countSent(Call::CHILDREN, bytesOf(request));
        return pool_.track(run.address, request.send()).then([this, &run](auto&& response) {
          countReceived(Call::CHILDREN, bytesOf(response));
          auto hashes = response.getHashes();
          size_t nodes = run.exchange.step().nodes.size();
          KJ_REQUIRE(hashes.size() == nodes * MerkleTree::FANOUT,
                     "peer answered a different number of tree nodes");
          std::vector<std::array<uint32_t, MerkleTree::FANOUT>> children(nodes);
          for (size_t i = 0; i < nodes; i++) {
            for (size_t c = 0; c < MerkleTree::FANOUT; c++) {
              children[i][c] = hashes[uint32_t(i * MerkleTree::FANOUT + c)];
            }
          }
          run.exchange.childrenReceived(children);
        });
      }
      case Exchange::Step::Kind::LIST_KEYS: {
        auto request = peer.aeKeysRequest();
        auto list = request.initSegments(uint32_t(s.segments.size()));
        for (size_t i = 0; i < s.segments.size(); i++) {
          list[uint32_t(i)].setPartition(uint16_t(s.segments[i].partition));
          list[uint32_t(i)].setSegment(uint16_t(s.segments[i].segment));
        }
        request.setMaxEntries(uint32_t(MAX_KEYS_PER_REPLY));
        countSent(Call::KEYS, bytesOf(request));
        return pool_.track(run.address, request.send()).then([this, &run](auto&& response) {
          countReceived(Call::KEYS, bytesOf(response));
          auto& asked = run.exchange.step().segments;
          size_t covered = response.getSegmentsCovered();
          KJ_REQUIRE(covered >= 1 && covered <= asked.size(),
                     "peer listed keys of segments not asked for");
          std::vector<SegmentRef> segments(asked.begin(), asked.begin() + long(covered));
          std::set<std::pair<uint32_t, uint32_t>> allowed;
          for (auto& s : segments) allowed.emplace(s.partition, s.segment);
          std::vector<KeyDigest> theirs;
          for (auto entry : response.getEntries()) {
            std::string key(asStringView(entry.getKey()));
            auto segment = segmentOfKey(key);
            KJ_REQUIRE(allowed.count({segment.partition, segment.segment}) == 1,
                       "peer listed a key outside the segments asked for");
            theirs.push_back(KeyDigest{kj::mv(key), entry.getDigest()});
          }
          auto mine = trees_.list(segments, SIZE_MAX);
          run.exchange.keysListed(mine.entries, theirs, covered);
        });
      }
      case Exchange::Step::Kind::REPAIR:
        return repairKeys(run, s.repairs).then([&run](size_t repaired) {
          run.exchange.repaired(repaired);
        });
      case Exchange::Step::Kind::DONE:
      case Exchange::Step::Kind::FAILED:
        break;
    }
    return kj::READY_NOW;
  });
}

kj::Promise<void> AntiEntropy::fetch(Run& run, const std::vector<std::string>& wanted,
                                     size_t next, std::map<std::string, Object>& fetched) {
  if (next >= wanted.size()) return kj::READY_NOW;
  auto request = KJ_ASSERT_NONNULL(run.peer).aeFetchRequest();
  size_t count = std::min(wanted.size() - next, MAX_ENTRIES_PER_REQUEST);
  auto list = request.initKeys(uint32_t(count));
  for (size_t i = 0; i < count; i++) list.set(uint32_t(i), asData(wanted[next + i]));
  countSent(Call::FETCH, bytesOf(request));
  return pool_.track(run.address, request.send())
      .then([this, &run, &wanted, next, count, &fetched](auto&& response) {
        countReceived(Call::FETCH, bytesOf(response));
        auto entries = response.getEntries();
        KJ_REQUIRE(entries.size() >= 1 && entries.size() <= count,
                   "peer answered a fetch with another number of keys");
        for (size_t i = 0; i < entries.size(); i++) {
          auto entry = entries[uint32_t(i)];
          KJ_REQUIRE(asStringView(entry.getKey()) == wanted[next + i],
                     "peer answered a fetch with other keys");
          if (entry.getFound()) {
            fetched.emplace(wanted[next + i],
                            objectFromPackedBytes(entry.getObject(), store_.limits()));
          }
        }
        // The peer sends what fits in one message: ask again for the rest.
        return fetch(run, wanted, next + entries.size(), fetched);
      });
}

kj::Promise<size_t> AntiEntropy::repairKeys(Run& run, std::vector<KeyRepair> repairs) {
  // 1. The peer's copies of the keys it holds, in as many replies as their size needs.
  auto fetched = kj::heap<std::map<std::string, Object>>();
  auto wanted = kj::heap<std::vector<std::string>>();
  for (auto& r : repairs) {
    if (r.peer) wanted->push_back(r.key);
  }
  auto fetching = fetch(run, *wanted, 0, *fetched);
  return fetching.attach(kj::mv(wanted))
      .then([this, &run, repairs = kj::mv(repairs), &fetched = *fetched]() mutable {
        // 2. Merge: into this node's store for the partitions it is a replica of; in memory only
        // for the others, which it only hands over.
        std::vector<std::string> localKeys;
        for (auto& r : repairs) localKeys.push_back(r.key);
        auto local = store_.ownCopies(localKeys);
        auto merges = kj::heapArrayBuilder<kj::Promise<std::optional<Object>>>(repairs.size());
        for (size_t i = 0; i < repairs.size(); i++) {
          auto& r = repairs[i];
          auto theirs = fetched.find(r.key);
          auto segment = segmentOfKey(r.key);
          if (theirs != fetched.end() && run.owned.count(segment.partition)) {
            merges.add(store_.syncEncoded(r.key, theirs->second)
                           .then([](Object o) { return std::optional<Object>(kj::mv(o)); },
                                 [key = r.key](kj::Exception&& e) {
                                   KJ_LOG(WARNING, "anti-entropy could not merge a key", e);
                                   return std::optional<Object>();
                                 }));
          } else if (theirs != fetched.end() && local[i]) {
            if (local[i]->kind == theirs->second.kind) {
              merges.add(std::optional<Object>(sync(*local[i], theirs->second)));
            } else {
              merges.add(std::optional<Object>());
            }
          } else {
            merges.add(kj::mv(local[i]));
          }
        }
        return kj::joinPromises(merges.finish())
            .then([this, &run, repairs = kj::mv(repairs)](
                      kj::Array<std::optional<Object>> merged) mutable {
              // 3. Hand the peer every merge that differs from what it has.
              // A key counts once as repaired, whether its copy changed here, there or both.
              size_t repaired = 0;
              auto pushes = kj::heap<std::vector<std::pair<std::string, Object>>>();
              for (size_t i = 0; i < repairs.size(); i++) {
                if (!merged[i]) continue;
                auto digest = causalDigest(*merged[i]);
                bool changedHere = repairs[i].local != digest &&
                                   run.owned.count(segmentOfKey(repairs[i].key).partition) > 0;
                bool changedThere = repairs[i].peer != digest;
                if (changedHere || changedThere) repaired++;
                if (changedThere) pushes->emplace_back(repairs[i].key, kj::mv(*merged[i]));
              }
              auto& peer = KJ_ASSERT_NONNULL(run.peer);
              kj::Promise<void> sending = kj::READY_NOW;
              size_t i = 0;
              while (i < pushes->size()) {
                auto request = peer.aePushRequest();
                size_t count = 0, bytes = 0;
                while (i + count < pushes->size() && count < MAX_ENTRIES_PER_REQUEST &&
                       (count == 0 || bytes < MAX_OBJECT_BYTES_PER_MESSAGE)) {
                  bytes += (*pushes)[i + count].second.siblings.size() * 64;
                  for (auto& s : (*pushes)[i + count].second.siblings) {
                    bytes += s.value ? s.value->size() : 0;
                  }
                  count++;
                }
                auto list = request.initEntries(uint32_t(count));
                for (size_t j = 0; j < count; j++) {
                  list[uint32_t(j)].setKey(asData((*pushes)[i + j].first));
                  list[uint32_t(j)].setFound(true);
                  list[uint32_t(j)].setObject(objectToPackedBytes((*pushes)[i + j].second));
                }
                countSent(Call::PUSH, bytesOf(request));
                sending = sending.then(
                    [this, &run, request = kj::mv(request)]() mutable {
                      return pool_.track(run.address, request.send()).then([this](auto&& response) {
                        countReceived(Call::PUSH, bytesOf(response));
                      });
                    });
                i += count;
              }
              return sending.attach(kj::mv(pushes)).then([repaired]() { return repaired; });
            });
      })
      .attach(kj::mv(fetched));
}

// ---- Collection ------------------------------------------------------------------------------

kj::Promise<void> AntiEntropy::collect(MapSnapshot map, bool throttled) {
  std::vector<PartitionState> held;
  auto recent = timer_.now() - HELD_ELSEWHERE_ROUNDS * options_.interval;
  for (auto it = heldElsewhere_.begin(); it != heldElsewhere_.end();) {
    it = it->second < recent ? heldElsewhere_.erase(it) : std::next(it);
  }
  for (auto p : trees_.partitions()) {
    if (p >= map->partitionCount()) continue;
    held.push_back(PartitionState{p, trees_.tree(p)->root(), trees_.tombstones(p),
                                  heldElsewhere_.count(p) > 0});
  }
  auto plan = planCollection(*map, self_, options_.replicas, held, ledger_);
  kj::Promise<void> chain = kj::READY_NOW;
  for (auto p : plan.reap) {
    chain = chain.then([this, map, p, throttled]() {
      return throttle<void>(throttled, [this, map, p]() { return reap(map, p); });
    });
  }
  for (auto p : plan.drop) {
    chain = chain.then([this, p, throttled]() {
      return throttle<void>(throttled, [this, p]() { return drop(p); });
    });
  }
  return chain;
}

kj::Promise<void> AntiEntropy::reap(MapSnapshot map, uint32_t partition) {
  // Every replica holds these tombstones; a write they cover may still be held as a hint by a
  // fallback that has not handed it over yet (hints are not in the trees). Hints go out within
  // seconds of their owner answering again, so a tombstone younger than reapAfter waits.
  auto candidates = trees_.tombstonesOf(partition);
  std::vector<std::string> keys;
  for (auto& t : candidates) keys.push_back(t.key);
  auto copies = store_.ownCopies(keys);
  auto youngest = (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS -
                  options_.reapAfter / kj::MICROSECONDS;
  auto held = kj::heap<std::vector<KeyDigest>>();
  auto& tombstones = *held;
  for (size_t i = 0; i < candidates.size() && tombstones.size() < MAX_ENTRIES_PER_REQUEST; i++) {
    if (!copies[i]) continue;
    int64_t newest = 0;
    for (auto& sibling : copies[i]->siblings) newest = std::max(newest, sibling.timestamp);
    if (newest <= youngest) tombstones.push_back(kj::mv(candidates[i]));
  }
  if (tombstones.empty()) return kj::READY_NOW;
  // Every other replica first; this node's own copies only once they all have collected
  // theirs, so that a replica that missed the request does not hand its copy back to the others
  // for nothing.
  kj::Vector<kj::Promise<void>> requests;
  for (auto node : replicasOf(*map, partition, options_.replicas)) {
    if (node == self_) continue;
    auto index = map->indexOf(node);
    KJ_ASSERT(index.has_value(), "a replica of the map is a node of the map");
    auto address = map->nodes()[*index].address;
    requests.add(pool_.peer(address).then([this, address, partition,
                                           &tombstones](wire::Peer::Client peer) {
      auto request = peer.aeReapRequest();
      request.setPartition(uint16_t(partition));
      auto list = request.initTombstones(uint32_t(tombstones.size()));
      for (size_t i = 0; i < tombstones.size(); i++) {
        list[uint32_t(i)].setKey(asData(tombstones[i].key));
        list[uint32_t(i)].setDigest(tombstones[i].digest);
      }
      countSent(Call::REAP, bytesOf(request));
      return timer_.timeoutAfter(options_.stepTimeout, pool_.track(address, request.send()))
          .then([this](auto&& response) { countReceived(Call::REAP, bytesOf(response)); });
    }));
  }
  auto all = requests.releaseAsArray();
  return kj::joinPromises(kj::mv(all))
      .then([this, &tombstones]() {
        auto local = kj::heapArrayBuilder<kj::Promise<bool>>(tombstones.size());
        for (auto& t : tombstones) local.add(store_.reap(t.key, t.digest));
        return kj::joinPromises(local.finish());
      })
      .then(
          [this, partition](kj::Array<bool> reaped) {
            size_t n = size_t(std::count(reaped.begin(), reaped.end(), true));
            tombstonesReaped_ += n;
            if (n > 0) KJ_LOG(INFO, "anti-entropy collected tombstones", partition, n);
          },
          [partition](kj::Exception&& e) {
            KJ_LOG(WARNING, "tombstone collection postponed: a replica did not answer",
                   partition, e.getDescription());
          })
      .attach(kj::mv(held));
}

kj::Promise<void> AntiEntropy::drop(uint32_t partition) {
  auto tree = trees_.tree(partition);
  if (!tree) return kj::READY_NOW;
  return store_.dropPartition(partition, tree->root()).then([this, partition](size_t dropped) {
    if (dropped == 0) return;
    ledger_.forget(partition);
    partitionsDropped_++;
    KJ_LOG(INFO, "handed-over partition dropped: every replica holds it", partition, dropped);
  });
}

// ---- What this node holds --------------------------------------------------------------------

bool AntiEntropy::owns(const PartitionMap& map, uint32_t partition) const {
  auto replicas = replicasOf(map, partition, options_.replicas);
  return std::find(replicas.begin(), replicas.end(), self_) != replicas.end();
}

std::vector<uint32_t> AntiEntropy::heldNotOwned(const PartitionMap& map) const {
  std::vector<uint32_t> out;
  for (auto p : trees_.partitions()) {
    if (p < map.partitionCount() && !owns(map, p)) out.push_back(p);
  }
  return out;
}

void AntiEntropy::updateRebuilding(const PartitionMap& map) {
  if (!rebuildDecided_) {
    // A new cluster's nodes start empty too: they are "rebuilding" only until their first round
    // finds that there was nothing to refill.
    rebuildDecided_ = true;
    rebuilding_ = options_.rebuilding && map.indexOf(self_).has_value();
    return;
  }
  if (rebuilding_ && rebuilt(map, self_, options_.replicas, ledger_)) {
    rebuilding_ = false;
    if (keysRepaired_ > 0) {
      KJ_LOG(WARNING, "rebuilt: this node started with an empty data directory, and anti-entropy "
                      "has exchanged each of its partitions with another replica",
             keysRepaired_);
    }
  }
}

// ---- A peer's steps --------------------------------------------------------------------------

void AntiEntropy::answerRoots(wire::Peer::AeRootsParams::Reader in,
                              wire::Peer::AeRootsResults::Builder out) {
  auto partitions = in.getPartitions();
  if (partitions.size() > MAX_PARTITIONS_PER_REQUEST) {
    throw invalid(kj::str("an anti-entropy request may name at most ",
                          MAX_PARTITIONS_PER_REQUEST, " partitions; this one named ",
                          partitions.size()));
  }
  countReceived(Call::ROOTS, bytesOf(in));
  auto map = membership_.current();
  auto requester = in.getRequester();
  if (requester != 0 && !map->empty()) {
    for (auto p : partitions) {
      if (p >= map->partitionCount()) continue;
      auto replicas = replicasOf(*map, p, options_.replicas);
      if (std::find(replicas.begin(), replicas.end(), requester) == replicas.end()) {
        heldElsewhere_.insert_or_assign(uint32_t(p), timer_.now());
      }
    }
  }
  auto roots = out.initRoots(partitions.size());
  for (uint32_t i = 0; i < partitions.size(); i++) {
    auto tree = trees_.tree(partitions[i]);
    roots.set(i, tree ? tree->root() : 0);
  }
  countSent(Call::ROOTS, bytesOf(out));
}

void AntiEntropy::answerChildren(wire::Peer::AeChildrenParams::Reader in,
                                 wire::Peer::AeChildrenResults::Builder out) {
  auto nodes = in.getNodes();
  if (nodes.size() > MAX_NODES_PER_REQUEST) {
    throw invalid(kj::str("an anti-entropy request may name at most ", MAX_NODES_PER_REQUEST,
                          " tree nodes; this one named ", nodes.size()));
  }
  for (auto node : nodes) {
    if (node.getLevel() >= MerkleTree::SEGMENT_LEVEL ||
        node.getIndex() >= MerkleTree::nodesAt(node.getLevel())) {
      throw invalid(kj::str("no tree node ", node.getIndex(), " at level ", node.getLevel()));
    }
  }
  countReceived(Call::CHILDREN, bytesOf(in));
  auto salt = in.getSalt();
  auto hashes = out.initHashes(nodes.size() * uint32_t(MerkleTree::FANOUT));
  static const MerkleTree EMPTY;
  for (uint32_t i = 0; i < nodes.size(); i++) {
    auto tree = trees_.tree(nodes[i].getPartition());
    auto children = (tree ? *tree : EMPTY).children(nodes[i].getLevel(), nodes[i].getIndex());
    for (uint32_t c = 0; c < MerkleTree::FANOUT; c++) {
      hashes.set(i * uint32_t(MerkleTree::FANOUT) + c, saltedHash(children[c], salt));
    }
  }
  countSent(Call::CHILDREN, bytesOf(out));
}

void AntiEntropy::answerKeys(wire::Peer::AeKeysParams::Reader in,
                             wire::Peer::AeKeysResults::Builder out) {
  auto segments = in.getSegments();
  if (segments.size() > MAX_SEGMENTS_PER_REQUEST || segments.size() == 0) {
    throw invalid(kj::str("an anti-entropy request must name 1 to ", MAX_SEGMENTS_PER_REQUEST,
                          " segments; this one named ", segments.size()));
  }
  std::vector<SegmentRef> refs;
  for (auto s : segments) {
    if (s.getSegment() >= MerkleTree::SEGMENTS) {
      throw invalid(kj::str("no segment ", s.getSegment(), ": a tree has ", MerkleTree::SEGMENTS));
    }
    refs.push_back(SegmentRef{s.getPartition(), s.getSegment()});
  }
  countReceived(Call::KEYS, bytesOf(in));
  size_t max = std::min(size_t(in.getMaxEntries()), MAX_KEYS_PER_REPLY);
  auto listing = trees_.list(refs, std::max(max, size_t(1)));
  auto entries = out.initEntries(uint32_t(listing.entries.size()));
  for (size_t i = 0; i < listing.entries.size(); i++) {
    entries[uint32_t(i)].setKey(asData(listing.entries[i].key));
    entries[uint32_t(i)].setDigest(listing.entries[i].digest);
  }
  out.setSegmentsCovered(uint32_t(listing.segmentsCovered));
  countSent(Call::KEYS, bytesOf(out));
}

void AntiEntropy::answerFetch(wire::Peer::AeFetchParams::Reader in,
                              wire::Peer::AeFetchResults::Builder out) {
  auto keys = in.getKeys();
  if (keys.size() > MAX_ENTRIES_PER_REQUEST || keys.size() == 0) {
    throw invalid(kj::str("an anti-entropy fetch must name 1 to ", MAX_ENTRIES_PER_REQUEST,
                          " keys; this one named ", keys.size()));
  }
  std::vector<std::string> wanted;
  for (auto key : keys) {
    decodeStorageKey(key);  // refuses what cannot be a storage key
    wanted.emplace_back(asStringView(key));
  }
  countReceived(Call::FETCH, bytesOf(in));
  auto copies = store_.ownCopies(wanted);
  // As many as fit in one message (at least one): the caller asks again for the rest.
  size_t count = 0, bytes = 0;
  while (count < copies.size() && (count == 0 || bytes < MAX_OBJECT_BYTES_PER_MESSAGE)) {
    if (copies[count]) {
      for (auto& s : copies[count]->siblings) bytes += 64 + (s.value ? s.value->size() : 0);
    }
    count++;
  }
  auto entries = out.initEntries(uint32_t(count));
  for (size_t i = 0; i < count; i++) {
    entries[uint32_t(i)].setKey(asData(wanted[i]));
    if (copies[i]) {
      entries[uint32_t(i)].setFound(true);
      entries[uint32_t(i)].setObject(objectToPackedBytes(*copies[i]));
    }
  }
  countSent(Call::FETCH, bytesOf(out));
}

kj::Promise<void> AntiEntropy::answerPush(wire::Peer::AePushParams::Reader in) {
  auto entries = in.getEntries();
  if (entries.size() > MAX_ENTRIES_PER_REQUEST) {
    throw invalid(kj::str("an anti-entropy push may carry at most ", MAX_ENTRIES_PER_REQUEST,
                          " objects; this one carried ", entries.size()));
  }
  // Decode everything before storing anything: a bad entry refuses the whole push.
  std::vector<std::pair<std::string, Object>> objects;
  for (auto entry : entries) {
    if (!entry.getFound()) continue;
    decodeStorageKey(entry.getKey());
    objects.emplace_back(std::string(asStringView(entry.getKey())),
                         objectFromPackedBytes(entry.getObject(), store_.limits()));
  }
  countReceived(Call::PUSH, bytesOf(in));
  auto writes = kj::heapArrayBuilder<kj::Promise<void>>(objects.size());
  for (auto& [key, object] : objects) {
    writes.add(store_.syncEncoded(key, kj::mv(object)).ignoreResult());
  }
  return kj::joinPromises(writes.finish());
}

kj::Promise<uint32_t> AntiEntropy::answerReap(wire::Peer::AeReapParams::Reader in) {
  auto tombstones = in.getTombstones();
  if (tombstones.size() > MAX_ENTRIES_PER_REQUEST) {
    throw invalid(kj::str("a tombstone collection may name at most ", MAX_ENTRIES_PER_REQUEST,
                          " keys; this one named ", tombstones.size()));
  }
  auto reaps = kj::heapArrayBuilder<kj::Promise<bool>>(tombstones.size());
  for (auto t : tombstones) {
    auto key = decodeStorageKey(t.getKey());
    if (key.partition != in.getPartition()) {
      throw invalid("a tombstone collection named a key of another partition");
    }
  }
  countReceived(Call::REAP, bytesOf(in));
  for (auto t : tombstones) {
    reaps.add(store_.reap(std::string(asStringView(t.getKey())), t.getDigest()));
  }
  return kj::joinPromises(reaps.finish()).then([this](kj::Array<bool> reaped) {
    auto n = uint32_t(std::count(reaped.begin(), reaped.end(), true));
    tombstonesReaped_ += n;
    return n;
  });
}

void AntiEntropy::fillStats(wire::AntiEntropyStats::Builder out) const {
  out.setLastCompleteAgeMillis(
      lastFinished_ ? (timer_.now() - *lastFinished_) / kj::MILLISECONDS : -1);
  out.setExchangesFinished(exchangesFinished_);
  out.setExchangesFailed(exchangesFailed_);
  out.setSegmentsDiffering(lastRoundSegments_);
  out.setKeysRepaired(keysRepaired_);
  out.setBytesSent(bytesSent_);
  out.setBytesReceived(bytesReceived_);
  out.setTreesDigest(trees_.digest());
  out.setPartitionsHeld(uint32_t(trees_.partitions().size()));
  out.setTreeMemoryBytes(trees_.memoryBytes());
  out.setRunning(running_ > 0);
  auto byCall = out.initByCall(uint32_t(Call::COUNT));
  for (size_t i = 0; i < size_t(Call::COUNT); i++) {
    byCall[uint32_t(i)].setCall(CALL_NAMES[i]);
    byCall[uint32_t(i)].setSent(byCall_[i].sent);
    byCall[uint32_t(i)].setReceived(byCall_[i].received);
  }
}

void AntiEntropy::countSent(Call call, uint64_t bytes) {
  bytesSent_ += bytes;
  byCall_[size_t(call)].sent += bytes;
}

void AntiEntropy::countReceived(Call call, uint64_t bytes) {
  bytesReceived_ += bytes;
  byCall_[size_t(call)].received += bytes;
}

}  // namespace dynkv::storaged
