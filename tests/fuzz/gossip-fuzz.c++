// libFuzzer target: a gossip exchange from a peer (wire::GossipState: members' records and
// perhaps a partition map), read as storaged reads it off an RPC connection (readerOptionsFor)
// and decoded by decodeGossipMessage, then merged into a fixed local state by the gossip round
// (common/coordinator/gossip-round.h), whose next round runs on what it merged.
// Refusal is fine. A message accepted must survive a round trip through the wire unchanged;
// merging it must not throw, must leave our own liveness ours, never go back to an older map,
// and merging it again must change nothing (merge is idempotent).
#include <optional>

#include "codec.h"
#include "fuzz-support.h"
#include "gossip.h"

namespace {

using namespace dynkv;

class NoLiveness final : public Liveness {
 public:
  void heartbeat(const std::string&, GossipMicros) override {}
  bool suspected(const std::string&, GossipMicros) const override { return false; }
};

Member record(uint64_t id, MemberStatus status) {
  Member m;
  m.info = NodeInfo{id, "n" + std::to_string(id), "a" + std::to_string(id), "", 1};
  m.status = status;
  m.statusVersion = 1;
  m.generation = 7;
  m.heartbeat = 3;
  return m;
}

const MembershipState& localState() {
  // Three nodes in the ring, one joining, and the map the ring's designated node made.
  static const MembershipState state = []() {
    MembershipState s;
    for (uint64_t id = 1; id <= 3; id++) s.merge(record(id, MemberStatus::UP));
    s.merge(record(5, MemberStatus::JOINING));
    s.adoptMap(s.recomputedMap(6, 1));
    return s;
  }();
  return state;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynkv::fuzz;
  using dynkv::storaged::decodeGossipMessage;
  using dynkv::storaged::encodeGossipMessage;
  static const Limits LIMITS;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::optional<GossipMessage> message;
  readAsPeerMessage<wire::GossipState>(bytes, readerOptionsFor(LIMITS.maxValueBytes),
                                       [&](wire::GossipState::Reader in) {
                                         message = decodeGossipMessage(in);
                                       });
  if (!message) return 0;

  capnp::MallocMessageBuilder builder;
  encodeGossipMessage(*message, builder.initRoot<wire::GossipState>());
  auto again = decodeGossipMessage(builder.getRoot<wire::GossipState>().asReader());
  require(again.members == message->members && again.mapVersion == message->mapVersion,
          "members round trip");
  require(!again.map == !message->map && (!again.map || *again.map == *message->map),
          "map round trip");

  NoLiveness liveness;
  GossipRoundOptions options;
  options.self = localState().find(2)->info;
  options.generation = 100;
  options.partitionBits = 6;
  GossipRound round(options, localState(), liveness);
  Member selfBefore = *round.state().find(2);
  uint64_t mapBefore = round.state().map()->version();
  round.receive(*message, 1000);
  const Member& self = *round.state().find(2);
  require(self.info == selfBefore.info && self.generation == selfBefore.generation &&
              self.heartbeat == selfBefore.heartbeat,
          "our liveness stays ours");
  require(round.state().map() && round.state().map()->version() >= mapBefore,
          "never an older map");
  auto members = round.state().members();
  auto map = round.state().map();
  auto repeated = round.receive(*message, 2000);
  require(!repeated.durable && repeated.adopted.empty() && round.state().members() == members &&
              round.state().map() == map,
          "merging the same message again changes nothing");
  round.beginRound(3000, 0);
  return 0;
}
