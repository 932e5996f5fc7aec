// The gossip round (DESIGN.md, "Membership and failure detection"; the paper's §4.8) as a pure
// state machine: it owns this node's MembershipState and makes every decision of the protocol
// (whom to gossip with, what to send, what to accept, when to recompute the partition map, when
// a leaving node is gone). Pure: no I/O, no clock; time comes in as a value and liveness
// through the Liveness interface. storaged/gossip.h is the shell that runs it over the network
// (timer, connection pool, wire codec, LMDB); the membership simulation (tests/simulation/)
// runs the same class over a simulated network and clock.
//
// One round, as the shell drives it:
//   1. beginRound(now, pendingTransfers): bump our heartbeat, and tick: the designated node
//      recomputes the map if the ring changed; a leaving node whose partitions are handed
//      off becomes removed.
//   2. the shell acts on the Changes (calls its map listener for each adopted map, then
//      publishes the transfers it started with setPendingTransfers; persists if durable);
//   3. pickExchange(now): the peer to gossip with and the message (or none);
//   4. the peer's shell hands the message to its round's receive() and answers with reply();
//   5. our shell hands the answer to receive() (or, if the call failed, tells its failure
//      detector, not the round).
// An incoming exchange is receive() then reply(), with the Changes acted on in between, so
// that a map adopted from the message goes out in the reply together with the transfers it
// started (nobody reading our record sees the new version with nothing pending and takes us
// for settled).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "membership-state.h"

namespace dynkv {

using GossipMicros = int64_t;  // microseconds on the shell's monotonic clock

class Liveness {
  // What the process's failure detector believes about the members, and what the round tells
  // it. storaged implements it over its one FailureDetector (shared with routing); so does the
  // simulation. The round keeps no detector of its own.
 public:
  virtual ~Liveness() = default;

  virtual void heartbeat(const std::string& address, GossipMicros now) = 0;
  // The member at `address` has a heartbeat fresher than any we knew: a sign of life, now.

  virtual bool suspected(const std::string& address, GossipMicros now) const = 0;
  // Whether the member at `address` is believed down now.
};

struct GossipMessage {
  // One side of an exchange, as a value (the shells convert it to and from wire::GossipState).
  std::vector<Member> members;  // every record the sender has, its own included
  uint64_t mapVersion = 0;      // the sender's map version
  MapPtr map;                   // the sender's map when the receiver is behind, else null
};

struct GossipRoundOptions {
  NodeInfo self;
  uint64_t generation = 0;         // this process's start time: supersedes earlier runs
  std::string httpAddress;         // our HTTP port for our record; empty: none
  std::vector<std::string> seeds;  // addresses
  uint32_t partitionBits = 10;     // for the first map
  uint32_t seedEvery = 10;         // gossip with a seed at least every this many rounds
};

struct GossipChanges {
  // What a call changed that the shell must act on.
  bool durable = false;
  // Something that must survive a restart changed: a member was added, a status, status
  // version or a member's address/zone/weight changed, or a map was adopted. Heartbeats and
  // other liveness fields alone never set it (a restart starts them afresh), so the shell
  // writes to disk only when this is set.

  std::vector<std::pair<MapPtr, MapPtr>> adopted;
  // Each map adopted, in order, with the one it replaced: the shell calls its map listener
  // (partition transfers), then setPendingTransfers().

  GossipChanges& operator|=(GossipChanges&& other);
};

class GossipRound {
 public:
  GossipRound(GossipRoundOptions options, MembershipState restored, Liveness& liveness);
  // `restored`: what the shell had persisted (empty for a new node). A node not in it is added
  // as JOINING. Our record takes options.self, options.generation, heartbeat 0 and the
  // restored map's version: this process's liveness supersedes whatever an earlier run
  // recorded, while the status (up, leaving, ...) survives. `liveness` must outlive the round.
  // The shell should persist once after construction.

  const MembershipState& state() const { return state_; }
  const GossipRoundOptions& options() const { return options_; }

  GossipChanges beginRound(GossipMicros now, uint32_t pendingTransfers);
  // Step 1 of a round: bump our heartbeat, publish `pendingTransfers` (partitions we are still
  // streaming in), then tick: the designated node (the lowest-id UP member we believe alive)
  // recomputes the map if it does not hold exactly the UP members; a LEAVING node that the map
  // no longer holds becomes REMOVED once every UP member has adopted that map and finished
  // streaming (its data has been handed off).

  struct Exchange {
    std::string peer;  // address
    GossipMessage message;
  };
  std::optional<Exchange> pickExchange(GossipMicros now);
  // Step 3: whom to gossip with, and what to send (our map too if the peer's record says it is
  // behind). A random member believed alive; every seedEvery-th round a seed instead (so the
  // cluster never splits into islands that each believe they are whole); a seed when no member
  // is believed alive; a random suspected member when there is no seed either (so a healed
  // partition is noticed). Never ourselves nor a REMOVED member; nullopt when nobody is left.

  GossipChanges receive(const GossipMessage& in, GossipMicros now);
  // Merges a peer's message or reply. Every record merges by the lattice of membership-state.h,
  // except ours: others may change only our status (admin commands), never our liveness. A
  // record with a fresher (generation, heartbeat) is reported to Liveness. A newer map is
  // adopted.

  GossipMessage reply(uint64_t peerMapVersion) const;
  // The answer to an exchange whose sender had `peerMapVersion`: our records, and our map if
  // the sender is behind.

  GossipMessage snapshot() const;
  // Every record and the map: what the shell persists.

  GossipChanges setPendingTransfers(uint32_t count);
  // Publishes in our record how many partitions we are still streaming in.

  bool setHandoffPartitions(const std::vector<uint32_t>& ascending);
  // Publishes in our record the partitions we hold writes of still to hand off (ascending,
  // distinct; see Member::handoffPartitions). A change bumps our heartbeat so that it wins over
  // the copies others hold; one that adds a partition also asks for an eager round, since a
  // tombstone that such a write may cover must not be collected before the collectors know of
  // it. True if it added a partition.

  GossipChanges join(const std::string& address);
  GossipChanges leave(const std::string& address);
  // Admin commands: set the member at `address` UP (join) or LEAVING (leave) with a new status
  // version; the designated node maps the change at its next round. Throws (KJ_REQUIRE) for an
  // address over NodeInfo::MAX_FIELD_BYTES (without echoing it), for an address no member has,
  // and for leaving a node that is not in the ring. Idempotent.

  GossipChanges forceRemove(const std::string& address, GossipMicros now, bool evenIfAlive);
  // Admin command `remove --force` (membership-state.h, ForceRemoval): sets the member at
  // `address` REMOVED at once — joining, up, or leaving but dead before its hand-off ended —
  // and the designated node maps the change at its next round. Refuses (FAILED, a message that
  // starts "refused:" and names `dynkv admin leave`) a member this round does not suspect
  // (ourselves included), or has not heard from since it started, unless `evenIfAlive`; throws as join() does for a bad or unknown
  // address. Idempotent.

  void observeVersion(uint64_t peerVersion);
  // A peer or client carried this map version: if it is newer, the next round should be eager.

  bool takeEager();
  // Whether the next round should go out at once (a newer map seen, an admin change), not
  // after the usual interval; clears the request.

  bool suspected(uint64_t id, GossipMicros now) const;
  // The round's own verdict: never ourselves; a member we have not heard a fresh heartbeat of
  // since this round was created is not (yet) known to be alive; otherwise Liveness decides.

  uint64_t rounds() const { return round_; }

 private:
  GossipRoundOptions options_;
  MembershipState state_;
  Liveness& liveness_;
  std::mt19937_64 rng_;
  uint64_t round_ = 0;
  bool eager_ = false;
  std::unordered_set<uint64_t> heard_;  // ids with a fresh heartbeat since we started

  Member& self() { return state_.mutableMember(options_.self.id); }
  const Member* byAddress(const std::string& address) const;
  GossipChanges adopt(MapPtr map);
  GossipMessage message(bool includeMap) const;
};

}  // namespace dynkv
