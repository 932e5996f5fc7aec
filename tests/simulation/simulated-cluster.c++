#include "simulated-cluster.h"

#include "hash.h"

namespace dynkv::sim {

namespace {

constexpr uint32_t MAX_FALLBACKS = 8;

}  // namespace

class SimulatedCluster::SimHealth final : public Health {
 public:
  explicit SimHealth(const SimulatedCluster& cluster) : cluster_(cluster) {}
  bool suspect(uint16_t node) const override {
    auto it = cluster_.suspected_.find(node);
    return it != cluster_.suspected_.end() && it->second > cluster_.clock_.now();
  }

 private:
  const SimulatedCluster& cluster_;
};

SimulatedCluster::SimulatedCluster(uint64_t seed, uint32_t nodes, uint32_t n) : rng_(seed), n_(n) {
  std::vector<NodeInfo> infos;
  for (uint64_t id = 1; id <= nodes; id++) {
    infos.push_back(NodeInfo{id, "n" + std::to_string(id), "sim:" + std::to_string(id), "", 1});
  }
  map_ = PartitionMap::build(infos, 6, 1);
  for (auto& info : infos) {
    SimNode node;
    node.id = info.id;
    nodes_.push_back(node);
  }
}

void SimulatedCluster::crash(uint16_t node) {
  nodes_.at(node).up = false;
}
void SimulatedCluster::restart(uint16_t node) {
  nodes_.at(node).up = true;
}
void SimulatedCluster::cutOff(std::set<uint16_t> nodes) {
  cutOff_ = std::move(nodes);
}
void SimulatedCluster::muffle(std::set<uint16_t> nodes) {
  muffled_ = std::move(nodes);
}
void SimulatedCluster::heal() {
  cutOff_.clear();
  muffled_.clear();
}
bool SimulatedCluster::reachable(uint16_t node) const {
  return cutOff_.count(node) == 0;
}

void SimulatedCluster::at(Micros when, std::function<void()> action) {
  clock_.at(when, std::move(action));
}

void SimulatedCluster::runUntil(Micros when) { clock_.runUntil(when); }

void SimulatedCluster::runUntilIdle(Micros limit) { clock_.runUntilIdle(limit); }

Micros SimulatedCluster::delay() {
  // Mostly fast, sometimes slow: a long tail makes replies race the replica timeout.
  std::uniform_int_distribution<Micros> fast(200, 2'000);
  std::uniform_int_distribution<Micros> slow(2'000, 80'000);
  return (rng_() % 20 == 0) ? slow(rng_) : fast(rng_);
}

PreferenceList SimulatedCluster::preferenceList(const std::string& key) const {
  return map_.preferenceList(map_.partitionOf(keyHash("", key)), n_, MAX_FALLBACKS);
}

Object SimulatedCluster::localCopy(uint16_t node, const std::string& key) const {
  // As storaged answers a get: its own copy, with the writes it holds for others merged in.
  auto& n = nodes_.at(node);
  Object copy;
  auto own = n.data.find(key);
  if (own != n.data.end()) copy = own->second;
  for (auto& [hintKey, object] : n.hints) {
    if (hintKey.second == key) copy = sync(copy, object);
  }
  return copy;
}

void SimulatedCluster::store(uint16_t node, const std::string& key, const Object& object,
                             uint64_t hintFor) {
  auto& n = nodes_.at(node);
  Object& slot = hintFor == 0 ? n.data[key] : n.hints[{hintFor, key}];
  slot = sync(slot, object);
}

void SimulatedCluster::call(uint16_t node, std::function<void()> atNode,
                            std::function<void()> reply, std::function<void()> refused) {
  if (!reachable(node)) return;  // lost on the way there
  at(clock_.now() + delay(), [this, node, atNode = std::move(atNode), reply = std::move(reply),
                      refused = std::move(refused)]() {
    if (!reachable(node)) return;
    if (!nodes_[node].up) {
      at(clock_.now() + delay(), refused);
      return;
    }
    atNode();
    at(clock_.now() + delay(), [this, node, reply]() {
      if (reachable(node) && muffled_.count(node) == 0) reply();
    });
  });
}

void SimulatedCluster::get(const std::string& key, uint32_t r,
                           std::function<void(ReadResult)> done) {
  struct State {
    ReadCoordinator read;
    std::function<void(ReadResult)> done;
    std::vector<bool> slotDone;
    bool reported = false;
  };
  auto state = std::make_shared<State>(
      State{ReadCoordinator(map_, preferenceList(key), r, Versioning::VECTOR_CLOCK), done, {}});
  auto report = [state]() {
    if (state->reported || !state->read.decided()) return;
    state->reported = true;
    ReadResult result;
    result.ok = state->read.succeeded();
    if (result.ok) {
      result.merged = state->read.merged();
      result.fastest = state->read.fastest();
    }
    state->done(result);
  };
  auto apply = std::make_shared<std::function<void(ReadActions)>>();
  // The step holds itself weakly (holding itself would be a cycle that is never freed); the
  // replies and timeouts it schedules hold it while they are pending.
  *apply = [this, state, key, report, self = std::weak_ptr(apply)](ReadActions actions) {
    auto apply = self.lock();
    for (size_t slot : actions.send) {
      if (state->slotDone.size() <= slot) state->slotDone.resize(slot + 1);
      uint16_t node = state->read.target(slot).node;
      auto copy = std::make_shared<Object>();
      auto finish = [this, state, slot, node, apply](bool ok, std::optional<Object> answer,
                                                     ReplicaError error) {
        if (state->slotDone[slot]) return;
        state->slotDone[slot] = true;
        if (ok) {
          trust(node);
          (*apply)(state->read.onAnswer(slot, std::move(answer), SimHealth(*this)));
        } else {
          suspect(node);
          (*apply)(state->read.onFailure(slot, error, "", SimHealth(*this)));
        }
      };
      call(
          node, [this, node, key, copy]() { *copy = localCopy(node, key); },
          [finish, copy]() {
            finish(true, copy->empty() ? std::nullopt : std::make_optional(*copy),
                   ReplicaError::TIMEOUT);
          },
          [finish]() { finish(false, std::nullopt, ReplicaError::UNREACHABLE); });
      at(clock_.now() + replicaTimeout, [finish]() { finish(false, std::nullopt, ReplicaError::TIMEOUT); });
    }
    for (size_t slot : actions.repair) {
      uint16_t node = state->read.target(slot).node;
      auto merged = state->read.merged();
      call(
          node, [this, node, key, merged]() { store(node, key, merged, 0); }, []() {}, []() {});
    }
    report();
  };
  (*apply)(state->read.start(SimHealth(*this)));
  at(clock_.now() + callTimeout, [state, report]() {
    state->read.onDeadline();
    report();
  });
}

void SimulatedCluster::put(const std::string& key, std::optional<std::string> value,
                           WriteContext context, uint64_t fastest,
                           std::function<void(WriteResult)> done) {
  uint64_t writeId = ++writeIds_;
  struct State {
    WriteCoordinator write;
    std::function<void(WriteResult)> done;
    std::vector<bool> slotDone;
    bool reported = false;
  };
  auto state = std::make_shared<State>(
      State{WriteCoordinator(map_, preferenceList(key), w, Versioning::VECTOR_CLOCK, fastest,
                             std::nullopt),
            done,
            {}});
  auto report = [state]() {
    if (state->reported || !state->write.decided()) return;
    state->reported = true;
    WriteResult result;
    result.ok = state->write.succeeded();
    if (result.ok) {
      result.object = state->write.object();
      result.coordinator = state->write.coordinator();
    } else {
      result.failure = state->write.failure().kind;
    }
    state->done(result);
  };
  auto apply = std::make_shared<std::function<void(WriteActions)>>();
  // The step holds itself weakly (holding itself would be a cycle that is never freed); the
  // replies and timeouts it schedules hold it while they are pending.
  *apply = [this, state, key, value, context, writeId, report,
            self = std::weak_ptr(apply)](WriteActions actions) {
    auto apply = self.lock();
    auto track = [state](size_t slot) {
      if (state->slotDone.size() <= slot) state->slotDone.resize(slot + 1);
    };
    auto failure = [this, state, apply](size_t slot, uint16_t node, ReplicaError error) {
      if (state->slotDone[slot]) return;
      state->slotDone[slot] = true;
      suspect(node);
      (*apply)(state->write.onFailure(slot, error, "", SimHealth(*this)));
    };
    if (actions.coordinate) {
      size_t slot = *actions.coordinate;
      track(slot);
      uint16_t node = state->write.target(slot).node;
      auto minted = std::make_shared<Object>();
      call(
          node,
          [this, node, key, value, context, writeId, minted]() {
            // storaged's coordinatePut: mint a dot for this node over its own copy, store.
            auto& n = nodes_[node];
            *minted = coordinatePut(n.data[key], Actor{n.id, 1}, context, value, clock_.now(),
                                    0, writeId);
            n.data[key] = *minted;
          },
          [this, state, slot, node, minted, apply]() {
            if (state->slotDone[slot]) return;
            state->slotDone[slot] = true;
            trust(node);
            (*apply)(state->write.onCoordinated(slot, *minted));
          },
          [failure, slot, node]() { failure(slot, node, ReplicaError::UNREACHABLE); });
      at(clock_.now() + replicaTimeout,
         [failure, slot, node]() { failure(slot, node, ReplicaError::TIMEOUT); });
    }
    for (size_t slot : actions.replicate) {
      track(slot);
      auto target = state->write.target(slot);
      auto object = state->write.object();
      call(
          target.node,
          [this, target, key, object]() { store(target.node, key, object, target.hintFor); },
          [this, state, slot, target, apply]() {
            if (state->slotDone[slot]) return;
            state->slotDone[slot] = true;
            trust(target.node);
            (*apply)(state->write.onAck(slot));
          },
          [failure, slot, target]() { failure(slot, target.node, ReplicaError::UNREACHABLE); });
      at(clock_.now() + replicaTimeout,
         [failure, slot, target]() { failure(slot, target.node, ReplicaError::TIMEOUT); });
    }
    report();
  };
  (*apply)(state->write.start(SimHealth(*this)));
  at(clock_.now() + callTimeout, [state, report]() {
    state->write.onDeadline();
    report();
  });
}

void SimulatedCluster::deliverHints() {
  for (uint16_t holder = 0; holder < nodes_.size(); holder++) {
    auto& h = nodes_[holder];
    if (!h.up || !reachable(holder)) continue;
    for (auto it = h.hints.begin(); it != h.hints.end();) {
      auto owner = map_.indexOf(it->first.first);
      if (owner && nodes_[*owner].up && reachable(*owner)) {
        store(*owner, it->first.second, it->second, 0);
        it = h.hints.erase(it);
      } else {
        ++it;
      }
    }
  }
}

Object SimulatedCluster::everyCopy(const std::string& key) const {
  Object all;
  for (uint16_t i = 0; i < nodes_.size(); i++) all = sync(all, localCopy(i, key));
  return all;
}

}  // namespace dynkv::sim
