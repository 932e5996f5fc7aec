#include "anti-entropy.h"

#include <kj/debug.h>
#include <kj/time.h>
#include <kj/vector.h>

#include <algorithm>
#include <map>
#include <set>

#include "admission.h"
#include "anti-entropy-codec.h"
#include "codec.h"
#include "hash.h"
#include "request-age.h"
#include "storage-key.h"

namespace dynkv::storaged {

namespace {

template <typename T>
uint64_t bytesOf(const T& message) {
  return message.totalSize().wordCount * sizeof(capnp::word);
}

SegmentRef segmentOfKey(const std::string& storageKey, TreeShape shape) {
  auto key = decodeStorageKey(kj::arrayPtr(reinterpret_cast<const kj::byte*>(storageKey.data()),
                                           storageKey.size()));
  return SegmentRef{key.partition,
                    uint32_t(MerkleTree::fineSegmentOf(key.ns, key.key) >> shape.fineShift())};
}

kj::Exception invalid(kj::StringPtr what) {
  return KJ_EXCEPTION(FAILED, kj::str("invalid argument: ", what));
}

template <typename F>
auto decodeOrRefuse(F&& decode) -> decltype(decode()) {
  // A peer's blob that the codec refuses is the peer's invalid argument, said with the codec's
  // reason (which names the limit).
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { (void)decode(); })) {
    throw invalid(e->getDescription());
  }
  return decode();
}

}  // namespace

struct AntiEntropy::Run {
  Run(ExchangePlan plan, std::string address, uint64_t salt, Exchange::Trees trees,
      ExchangeLimits limits, TreeShape shape, std::set<uint32_t> owned, bool throttled,
      bool deferrable)
      : plan(plan),
        address(kj::mv(address)),
        exchange(plan.partitions, salt, kj::mv(trees), limits, shape),
        owned(kj::mv(owned)),
        throttled(throttled),
        deferrable(deferrable) {}

  ExchangePlan plan;
  std::string address;
  Exchange exchange;
  std::set<uint32_t> owned;  // partitions of the plan this node is a replica of: it takes the
                             // peer's copies of those; of the others it only hands its own over
  bool throttled;
  bool deferrable;             // a round's: it may find the peer busy and wait (see aeRoots)
  bool rootsAnswered = false;  // the peer has answered a roots step: it is exchanging with us
  bool busy = false;           // the peer answered busy: nothing was exchanged
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
  return exchangeAll(map, kj::mv(plans), true, true).then([this, map](Report report) {
    lastRoundSegments_ = report.segmentsDiffering;
    if (report.deferred > 0) {
      KJ_LOG(INFO, "anti-entropy left exchanges to the next round: their peers stayed busy "
                   "exchanging with this node",
             report.deferred);
    }
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
  if (tried == 0) {
    KJ_LOG(INFO, "a streamed partition's exchange waits: every other replica is suspected",
           partition);
    return false;
  }
  return exchangeAll(map, kj::mv(plans), true).then([partition](Report report) {
    if (report.failed > 0) {
      KJ_LOG(INFO, "a streamed partition's exchange failed", partition, report.failed,
             report.message);
    }
    return report.failed == 0;
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
                                                           bool throttled, bool deferrable) {
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
      .then([this, map, plans = kj::mv(plans), throttled, deferrable, &r]() mutable {
        running_++;
        return exchangeEach(map, kj::mv(plans), throttled, deferrable, r)
            .then([this, map, throttled, &r](std::vector<ExchangePlan> deferred) {
              return retryDeferred(map, kj::mv(deferred), throttled, r, DEFER_ATTEMPTS);
            })
            .attach(kj::defer([this]() { running_--; }));
      })
      .attach(kj::mv(turn))
      .then([report = kj::mv(report)]() mutable { return kj::mv(*report); });
}

kj::Promise<std::vector<ExchangePlan>> AntiEntropy::exchangeEach(MapSnapshot map,
                                                                 std::vector<ExchangePlan> plans,
                                                                 bool throttled, bool deferrable,
                                                                 Report& report) {
  auto busy = kj::heap<std::vector<ExchangePlan>>();
  auto& b = *busy;
  kj::Promise<void> chain = kj::READY_NOW;
  for (auto& plan : plans) {
    chain = chain.then([this, map, plan = kj::mv(plan), throttled, deferrable, &report,
                        &b]() mutable {
      auto copy = plan;
      return exchangeOne(map, kj::mv(plan), throttled, deferrable, report)
          .then([&b, copy = kj::mv(copy)](bool peerBusy) mutable {
            if (peerBusy) b.push_back(kj::mv(copy));
          });
    });
  }
  return chain.then([&b]() { return kj::mv(b); }).attach(kj::mv(busy));
}

kj::Promise<void> AntiEntropy::retryDeferred(MapSnapshot map, std::vector<ExchangePlan> plans,
                                             bool throttled, Report& report, int attempts) {
  // The peers these were deferred for are exchanging with this node: once they are done, what
  // differed is repaired, and these find equal roots (and record so in the ledger).
  if (plans.empty()) return kj::READY_NOW;
  if (attempts == 0) {
    report.deferred += uint32_t(plans.size());
    return kj::READY_NOW;
  }
  return timer_.afterDelay(DEFER_WAIT)
      .then([this, map, plans = kj::mv(plans), throttled, &report]() mutable {
        return exchangeEach(map, kj::mv(plans), throttled, true, report);
      })
      .then([this, map, throttled, &report, attempts](std::vector<ExchangePlan> still) {
        return retryDeferred(map, kj::mv(still), throttled, report, attempts - 1);
      });
}

kj::Promise<bool> AntiEntropy::exchangeOne(MapSnapshot map, ExchangePlan plan, bool throttled,
                                           bool deferrable, Report& report) {
  auto index = map->indexOf(plan.peer);
  if (!index) return false;
  std::set<uint32_t> owned;
  for (auto p : plan.partitions) {
    if (owns(*map, p)) owned.insert(p);
  }
  auto run = kj::heap<Run>(plan, map->nodes()[*index].address, nextSalt_++,
                           [this](uint32_t p) { return trees_.tree(p); }, options_.limits,
                           trees_.shape(), kj::mv(owned), throttled, deferrable);
  auto& r = *run;
  // While it runs, a round's exchange the peer starts with this node waits for it (aeRoots).
  exchangingWith_[plan.peer] = &r;
  auto registered = kj::defer([this, peer = plan.peer, &r]() {
    auto it = exchangingWith_.find(peer);
    if (it != exchangingWith_.end() && it->second == &r) exchangingWith_.erase(it);
  });
  return pool_.peer(r.address)
      .then([&r](wire::Peer::Client peer) { r.peer = kj::mv(peer); })
      .then([this, &r]() { return drive(r); },
            [this, &r](kj::Exception&& e) {
              pool_.reportFailure(r.address, e);
              r.failure = e.getDescription().cStr();
              r.exchange.failed();
            })
      .then([this, &r, &report]() {
        // The peer is exchanging with this node: nothing happened here, and nothing is learnt.
        if (r.busy) return true;
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
        return false;
      })
      .attach(kj::mv(registered), kj::mv(run));
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
        request.setPartitions(asData(encodePartitions(s.partitions)));
        request.setRootsHash(s.rootsHash);
        request.setTreeSegments(uint32_t(trees_.shape().segments()));
        request.setDeferrable(run.deferrable);
        countSent(Call::ROOTS, bytesOf(request));
        return pool_.track(run.address, request.send()).then([this, &run](auto&& response) {
          countReceived(Call::ROOTS, bytesOf(response));
          if (response.getBusy()) {
            KJ_REQUIRE(run.deferrable, "peer answered busy to an exchange that cannot wait");
            run.busy = true;
            return run.exchange.failed();
          }
          run.rootsAnswered = true;
          if (response.getEqual()) return run.exchange.rootsEqual();
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
        request.setNodes(asData(encodeTreeNodes(s.nodes)));
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
        request.setSegments(asData(encodeSegments(s.segments)));
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
          auto theirs = decodeKeyDigests(asStringView(response.getEntries()),
                                         MAX_KEYS_PER_LISTING, store_.limits());
          for (auto& k : theirs) {
            auto segment = segmentOfKey(k.key, trees_.shape());
            KJ_REQUIRE(allowed.count({segment.partition, segment.segment}) == 1,
                       "peer listed a key outside the segments asked for");
          }
          auto mine = listWithSummaries(segments, SIZE_MAX);
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
  request.setKeys(asData(encodeKeys(std::vector<std::string>(
      wanted.begin() + ptrdiff_t(next), wanted.begin() + ptrdiff_t(next + count)))));
  countSent(Call::FETCH, bytesOf(request));
  return pool_.track(run.address, request.send())
      .then([this, &run, &wanted, next, count, &fetched](auto&& response) {
        countReceived(Call::FETCH, bytesOf(response));
        auto entries =
            decodeEntries(asStringView(response.getEntries()), count, store_.limits());
        KJ_REQUIRE(entries.size() >= 1, "peer answered a fetch with no key");
        for (size_t i = 0; i < entries.size(); i++) {
          KJ_REQUIRE(entries[i].key == wanted[next + i], "peer answered a fetch with other keys");
          if (entries[i].object) fetched.emplace(wanted[next + i], kj::mv(*entries[i].object));
        }
        // The peer sends what fits in one message: ask again for the rest.
        return fetch(run, wanted, next + entries.size(), fetched);
      });
}

kj::Promise<size_t> AntiEntropy::repairKeys(Run& run, std::vector<KeyRepair> repairs) {
  // Each key's versions move only the way repairNeeds() said they must (a stale peer is sent
  // this node's copy and nothing is fetched; a stale copy here is fetched and nothing pushed).
  // 1. The peer's copies this node must take: of the partitions it is a replica of only (of
  // the others it holds data just to hand it over), in as many replies as their size needs.
  auto fetched = kj::heap<std::map<std::string, Object>>();
  auto wanted = kj::heap<std::vector<std::string>>();
  for (auto& r : repairs) {
    if (r.needs.fetch && run.owned.count(segmentOfKey(r.key, trees_.shape()).partition)) {
      wanted->push_back(r.key);
    }
  }
  auto fetching = fetch(run, *wanted, 0, *fetched);
  return fetching.attach(kj::mv(wanted))
      .then([this, &fetched = *fetched]() {
        // 2. Merged into this node's store.
        auto merges = kj::heapArrayBuilder<kj::Promise<std::pair<std::string, uint64_t>>>(
            fetched.size());
        for (auto& [key, theirs] : fetched) {
          merges.add(store_.syncEncoded(key, theirs)
                         .then([key = key](Object o) { return std::make_pair(key, causalDigest(o)); },
                               [key = key](kj::Exception&& e) {
                                 KJ_LOG(WARNING, "anti-entropy could not merge a key", e);
                                 return std::make_pair(key, uint64_t(0));
                               }));
        }
        return kj::joinPromises(merges.finish());
      })
      .then([this, &run, repairs = kj::mv(repairs)](
                kj::Array<std::pair<std::string, uint64_t>> merged) mutable {
        // 3. This node's copy, as it is now, to the peer wherever it holds versions the peer
        // lacks: the peer syncs it, so it then holds a version covering this node's copy.
        // A key counts once as repaired, whether its copy changed here, there or both.
        std::set<std::string> changed;
        for (auto& [key, digest] : merged) {
          for (auto& r : repairs) {
            if (r.key == key && r.local != digest) changed.insert(key);
          }
        }
        std::vector<std::string> pushKeys;
        for (auto& r : repairs) {
          if (r.needs.push) pushKeys.push_back(r.key);
        }
        auto copies = store_.ownCopies(pushKeys);
        auto pushes = kj::heap<std::vector<KeyObject>>();
        for (size_t i = 0; i < pushKeys.size(); i++) {
          if (!copies[i]) continue;  // collected meanwhile: nothing left to hand over
          changed.insert(pushKeys[i]);
          pushes->push_back(KeyObject{pushKeys[i], kj::mv(copies[i])});
        }
        size_t repaired = changed.size();
        auto& peer = KJ_ASSERT_NONNULL(run.peer);
        kj::Promise<void> sending = kj::READY_NOW;
        size_t i = 0;
        while (i < pushes->size()) {
          size_t count = 0, bytes = 0;
          while (i + count < pushes->size() && count < MAX_ENTRIES_PER_REQUEST &&
                 (count == 0 || bytes < MAX_OBJECT_BYTES_PER_MESSAGE)) {
            bytes += encodedSize(*(*pushes)[i + count].object);
            count++;
          }
          auto request = peer.aePushRequest();
          request.setEntries(asData(encodeEntries(std::vector<KeyObject>(
              pushes->begin() + ptrdiff_t(i), pushes->begin() + ptrdiff_t(i + count)))));
          countSent(Call::PUSH, bytesOf(request));
          sending = sending.then([this, &run, request = kj::mv(request)]() mutable {
            // Stamped as it leaves: a push held back in a cut link past half the step's
            // timeout is refused where it lands, as a replicate is (request-age.h).
            request.setSentAtMicros(monotonicMicros());
            request.setPatienceMicros(uint64_t(options_.stepTimeout / kj::MICROSECONDS));
            return pool_.track(run.address, request.send()).then([this](auto&& response) {
              countReceived(Call::PUSH, bytesOf(response));
            });
          });
          i += count;
        }
        return sending.attach(kj::mv(pushes)).then([repaired]() { return repaired; });
      })
      .attach(kj::mv(fetched));
}

HashTrees::Listing AntiEntropy::listWithSummaries(const std::vector<SegmentRef>& segments,
                                                  size_t maxEntries) {
  // The index knows digests only; the objects listed (those of differing segments: few) are
  // read for their summaries, and their digests taken from the same read, so that the two
  // always describe one object even if a write landed since the index was read. A key removed
  // meanwhile is left out.
  auto listing = trees_.list(segments, maxEntries);
  std::vector<std::string> keys;
  for (auto& k : listing.entries) keys.push_back(k.key);
  auto copies = store_.ownCopies(keys);
  std::vector<KeyDigest> out;
  for (size_t i = 0; i < keys.size(); i++) {
    if (!copies[i]) continue;
    out.push_back(KeyDigest{kj::mv(keys[i]), causalDigest(*copies[i]), causalSummary(*copies[i])});
  }
  listing.entries = kj::mv(out);
  return listing;
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
  auto outside = options_.outsideWrites ? options_.outsideWrites() : OutsideWrites();
  for (auto& state : held) {
    if (options_.streaming && options_.streaming(state.partition)) {
      outside.handoff.insert(state.partition);
    }
  }
  auto plan = planCollection(*map, self_, options_.replicas, held, ledger_, outside);
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
  // Every replica holds these tombstones, and no node has said it holds hints for the
  // partition (planCollection). One that stored such a hint a moment ago may not have said so
  // yet: gossip carries it within a few rounds, so a tombstone younger than reapAfter waits.
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
    if (options_.dropped) options_.dropped();
    KJ_LOG(INFO, "handed-over partition dropped: every replica holds it", partition, dropped);
  });
}

// ---- What this node holds --------------------------------------------------------------------

bool AntiEntropy::owns(const PartitionMap& map, uint32_t partition) const {
  auto replicas = replicasOf(map, partition, options_.replicas);
  return std::find(replicas.begin(), replicas.end(), self_) != replicas.end();
}

std::vector<uint32_t> AntiEntropy::heldNotOwned() const {
  auto map = membership_.current();
  return map->empty() ? std::vector<uint32_t>() : heldNotOwned(*map);
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
  auto partitions = decodeOrRefuse([&]() {
    return decodePartitions(asStringView(in.getPartitions()), MAX_PARTITIONS_PER_REQUEST);
  });
  countReceived(Call::ROOTS, bytesOf(in));
  if (in.getTreeSegments() != trees_.shape().segments()) {
    // The trees would not compare: their shapes follow from the ring's size, which the two
    // nodes do not agree on.
    throw invalid(kj::str("this node's anti-entropy trees have ", trees_.shape().segments(),
                          " segments per partition and the requester's ", in.getTreeSegments(),
                          ": every node of a cluster must run with the same --partition-bits"));
  }
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
  auto now = timer_.now();
  if (in.getDeferrable() && requester != 0) {
    for (auto p : partitions) {
      auto other = answering_.find(uint32_t(p));
      if (other != answering_.end() && other->second.requester != requester &&
          other->second.until > now) {
        out.setBusy(true);
        countSent(Call::ROOTS, bytesOf(out));
        return;
      }
    }
  }
  if (in.getDeferrable()) {
    auto mine = exchangingWith_.find(requester);
    // Of two exchanges between the same nodes, the one that got going first goes on: the other
    // would list and repair the same keys again, each side pushing what the other fetches. If
    // both are at their first step, the lower node id's goes on. Exactly one of two crossing
    // requests is answered busy, so the two never wait for each other.
    if (mine != exchangingWith_.end() && (mine->second->rootsAnswered || self_ < requester)) {
      out.setBusy(true);
      countSent(Call::ROOTS, bytesOf(out));
      return;
    }
  }
  std::vector<uint64_t> roots;
  for (auto p : partitions) {
    auto tree = trees_.tree(p);
    roots.push_back(tree ? tree->root() : 0);
  }
  if (combinedRoots(roots) == in.getRootsHash()) {
    out.setEqual(true);
  } else {
    auto list = out.initRoots(uint32_t(roots.size()));
    for (uint32_t i = 0; i < roots.size(); i++) list.set(i, roots[i]);
    if (requester != 0) {
      for (auto p : partitions) {
        // Only the ring's partitions: a peer cannot grow the map past the ring's size.
        if (!map->empty() && p < map->partitionCount()) {
          answering_[uint32_t(p)] = Answering{requester, now + ANSWERING_LEASE};
        }
      }
    }
  }
  countSent(Call::ROOTS, bytesOf(out));
}

void AntiEntropy::answerChildren(wire::Peer::AeChildrenParams::Reader in,
                                 wire::Peer::AeChildrenResults::Builder out) {
  auto nodes = decodeOrRefuse([&]() {
    return decodeTreeNodes(asStringView(in.getNodes()), MAX_NODES_PER_REQUEST, trees_.shape());
  });
  countReceived(Call::CHILDREN, bytesOf(in));
  auto salt = in.getSalt();
  auto hashes = out.initHashes(uint32_t(nodes.size() * MerkleTree::FANOUT));
  const MerkleTree EMPTY(trees_.shape());
  for (uint32_t i = 0; i < nodes.size(); i++) {
    auto tree = trees_.tree(nodes[i].partition);
    auto children = (tree ? *tree : EMPTY).children(nodes[i].level, nodes[i].index);
    for (uint32_t c = 0; c < MerkleTree::FANOUT; c++) {
      hashes.set(i * uint32_t(MerkleTree::FANOUT) + c, saltedHash(children[c], salt));
    }
  }
  countSent(Call::CHILDREN, bytesOf(out));
}

void AntiEntropy::answerKeys(wire::Peer::AeKeysParams::Reader in,
                             wire::Peer::AeKeysResults::Builder out) {
  auto refs = decodeOrRefuse([&]() {
    return decodeSegments(asStringView(in.getSegments()), MAX_SEGMENTS_PER_REQUEST,
                          trees_.shape());
  });
  if (refs.empty()) throw invalid("an anti-entropy listing must name at least one segment");
  countReceived(Call::KEYS, bytesOf(in));
  size_t max = std::min(size_t(in.getMaxEntries()), MAX_KEYS_PER_REPLY);
  auto listing = listWithSummaries(refs, std::max(max, size_t(1)));
  out.setEntries(asData(encodeKeyDigests(listing.entries)));
  out.setSegmentsCovered(uint32_t(listing.segmentsCovered));
  countSent(Call::KEYS, bytesOf(out));
}

void AntiEntropy::answerFetch(wire::Peer::AeFetchParams::Reader in,
                              wire::Peer::AeFetchResults::Builder out) {
  auto wanted = decodeOrRefuse([&]() {
    return decodeKeys(asStringView(in.getKeys()), MAX_ENTRIES_PER_REQUEST, store_.limits());
  });
  if (wanted.empty()) throw invalid("an anti-entropy fetch must name at least one key");
  for (auto& key : wanted) {
    decodeStorageKey(asData(key));  // refuses what cannot be a storage key
  }
  countReceived(Call::FETCH, bytesOf(in));
  auto copies = store_.ownCopies(wanted);
  // As many as fit in one message (at least one): the caller asks again for the rest.
  std::vector<KeyObject> entries;
  size_t bytes = 0;
  for (size_t i = 0; i < copies.size() && (i == 0 || bytes < MAX_OBJECT_BYTES_PER_MESSAGE); i++) {
    if (copies[i]) bytes += encodedSize(*copies[i]);
    entries.push_back(KeyObject{kj::mv(wanted[i]), kj::mv(copies[i])});
  }
  out.setEntries(asData(encodeEntries(entries)));
  countSent(Call::FETCH, bytesOf(out));
}

kj::Promise<void> AntiEntropy::answerPush(wire::Peer::AePushParams::Reader in) {
  // Decode everything before storing anything: a bad entry refuses the whole push.
  auto entries = decodeOrRefuse([&]() {
    return decodeEntries(asStringView(in.getEntries()), MAX_ENTRIES_PER_REQUEST, store_.limits());
  });
  for (auto& e : entries) decodeStorageKey(asData(e.key));
  countReceived(Call::PUSH, bytesOf(in));
  auto writes = kj::heapArrayBuilder<kj::Promise<void>>(entries.size());
  for (auto& e : entries) {
    if (e.object) writes.add(store_.syncEncoded(e.key, kj::mv(*e.object)).ignoreResult());
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
