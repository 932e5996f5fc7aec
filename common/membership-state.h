// Cluster membership as a mergeable value (DESIGN.md, "Membership and failure detection").
// Pure: no I/O, no clock. storaged gossips it; a deterministic simulation runs a thousand
// of them in one process.
//
// Every node's record is a small lattice, merged field by field, so merge is commutative,
// associative and idempotent and gossip converges whatever the order of exchanges:
// - status (joining/up/leaving/removed) is set by admin commands and by the node itself;
//   the change with the higher statusVersion wins, ties go to the later status;
// - liveness fields (address, heartbeat, adopted map version, pending transfers) belong to
//   the node alone; the copy with the higher (generation, heartbeat) wins.
// The partition map is versioned; everyone adopts the highest version. One designated node
// (the lowest-id live ring member) recomputes it when the ring's member set changes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "partition-map.h"

namespace dynkv {

enum class MemberStatus : uint8_t {
  JOINING = 0,  // running and known, not (yet) in the ring: `dynkv admin join` adds it
  UP = 1,       // in the ring
  LEAVING = 2,  // taken out of the ring; hands its partitions off, then becomes REMOVED
  REMOVED = 3,  // gone for good; the record stays so gossip never resurrects it
};

const char* toString(MemberStatus status);

struct Member {
  NodeInfo info;
  MemberStatus status = MemberStatus::JOINING;
  uint64_t statusVersion = 0;
  uint64_t generation = 0;  // the node process's start time: a restart supersedes old state
  uint64_t heartbeat = 0;   // bumped by the node every gossip round
  uint64_t mapVersion = 0;  // the map version the node has adopted
  uint32_t pendingTransfers = 0;  // partitions the node is still streaming in
  std::vector<uint32_t> handoffPartitions;
  // Ascending, at most MAX_HANDOFF_PARTITIONS: the partitions the node holds writes of that it
  // is still to hand off — hints it keeps as a fallback for their owners, and data of
  // partitions it is not (or no longer) a replica of. Those writes may be in no replica's hash
  // tree, so a partition's tombstones are not collected while anyone still holds such writes.
  bool handoffEverywhere = false;
  // It holds such writes for more partitions than the list may name: take every partition.
  std::string httpAddress;
  // HOST:PORT of the node's HTTP port (metrics, status page); empty: none. The node's own, like
  // its address: a liveness field, at most NodeInfo::MAX_FIELD_BYTES.

  static constexpr size_t MAX_HANDOFF_PARTITIONS = 256;

  bool holdsHandoffFor(uint32_t partition) const;
  void setHandoffPartitions(const std::vector<uint32_t>& ascending);
  // The list and the flag for these partitions (ascending, distinct): the list if it fits,
  // else an empty list and handoffEverywhere.

  bool operator==(const Member& o) const;
  bool operator!=(const Member& o) const { return !(*this == o); }
};

Member mergeMember(const Member& a, const Member& b);
// Field-wise join of two copies of the same node's record (a.info.id == b.info.id).

enum class ForceRemoval : uint8_t {
  // What `dynkv admin remove --force` does with a member (riak-admin's force-remove): a node
  // that is dead for good is taken out of the ring at once, without the hand-off a leaving
  // node does itself; the other replicas hold its data (N >= 2) and anti-entropy refills the
  // partitions' new owners.
  REMOVE,           // set it REMOVED now (it was joining, up, or leaving)
  ALREADY_REMOVED,  // nothing to do: idempotent
  REFUSE_ALIVE,     // the node asked does not suspect it (or it is that node itself): it is
                    // alive, and `dynkv admin leave` hands its partitions off properly
};

ForceRemoval decideForceRemoval(MemberStatus status, bool suspected, bool evenIfAlive);
// `suspected`: the asked node's failure detector believes the member down (never true of the
// asked node itself). `evenIfAlive`: the operator insists; a live member is removed too.

using MapPtr = std::shared_ptr<const PartitionMap>;

class MembershipState {
 public:
  MembershipState();

  const std::map<uint64_t, Member>& members() const { return members_; }
  const MapPtr& map() const { return map_; }
  const Member* find(uint64_t id) const;

  bool merge(const Member& member);
  // Joins one record in; true if anything changed.

  bool merge(const MembershipState& other);
  // Joins every record and adopts the other's map if it is newer; true if anything changed.

  bool adoptMap(MapPtr map);
  // Takes `map` if its version is higher than the current one; true if it did.

  Member& mutableMember(uint64_t id);
  // For the node updating its own record or an admin command: the caller bumps the right
  // version (heartbeat or statusVersion) so the change wins the merge.

  void setStatus(uint64_t id, MemberStatus status);
  // An admin change: status with statusVersion one past the current one.

  void forceRemove(uint64_t id);
  // Sets the member REMOVED at once (see ForceRemoval; the caller has decided): it leaves
  // ringMembers(), so the designated node's next map spreads its partitions over the rest. The
  // record stays, and its status version wins every merge with older copies (its own, should
  // it come back), so gossip never resurrects it.

  std::vector<NodeInfo> ringMembers() const;
  // The members whose partitions the ring should hold: status UP, by id.

  bool mapIsCurrent() const;
  // True when the map holds exactly ringMembers() (same ids, addresses, zones, weights).

  std::optional<uint64_t> designated(const std::function<bool(uint64_t)>& alive) const;
  // The node that recomputes the map: the lowest-id UP member that `alive` accepts.

  MapPtr recomputedMap(uint32_t partitionBits, uint64_t designatorId) const;
  // The map for ringMembers(), moving as few partitions as possible
  // (PartitionMap::rebalanced); null when there are no ring members. Its version is
  // nextMapVersion(current, designatorId).

  static uint64_t nextMapVersion(uint64_t current, uint64_t designatorId);
  // ((current >> 16) + 1) << 16 | (designatorId & 0xffff): two nodes that both believed
  // themselves designated (a failure detector disagreeing) mint different versions, and
  // everyone converges on the higher one instead of splitting over one version number.

 private:
  std::map<uint64_t, Member> members_;
  MapPtr map_;
};

}  // namespace dynkv
