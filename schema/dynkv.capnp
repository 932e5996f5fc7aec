@0x90fdc7a67515a718;
# The dynkv wire protocol, spoken between the client SDK and storaged and between storaged
# nodes. See DESIGN.md, "Wire protocol". Every field is checked by its receiver before use.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("dynkv::wire");

# ---- Versioned objects (DESIGN.md, "Versioning: dotted version vectors") ----

struct Actor {
  # A storage-node incarnation: the node id plus the epoch minted when its data
  # directory was created.
  node @0 :UInt64;
  epoch @1 :UInt64;
}

struct VvEntry {
  actor @0 :Actor;
  counter @1 :UInt64;
  timestamp @2 :Int64;   # microseconds since the epoch of the actor's latest event
}

struct Sibling {
  dot :group {
    actor @0 :Actor;
    counter @1 :UInt64;
  }
  timestamp @2 :Int64;   # coordinator's wall clock, microseconds since the Unix epoch
  union {
    value @3 :Data;
    tombstone @4 :Void;
  }
  writeId @5 :UInt64;    # the writer's name for the write; its retries' versions share it (0: none)
}

struct SupersededWrite {
  # A named write a later write has seen: every version of it is superseded.
  writeId @0 :UInt64;
  timestamp @1 :Int64;   # when it was superseded, microseconds since the Unix epoch
}

enum NamespaceKind {
  vectorClock @0;
  lastWriteWins @1;
}

struct Object {
  kind @0 :NamespaceKind;
  vv @1 :List(VvEntry);
  siblings @2 :List(Sibling);
  superseded @3 :List(SupersededWrite);   # sorted by writeId; at most Object::MAX_SUPERSEDED
}

struct Key {
  namespace @0 :Data;    # empty is the default namespace
  key @1 :Data;
}

# ---- Membership (DESIGN.md, "Partitioning and placement") ----

struct NodeInfo {
  id @0 :UInt64;
  name @1 :Text;
  address @2 :Text;      # HOST:PORT clients and peers connect to
  zone @3 :Text;
  weight @4 :UInt32;
}

struct PartitionMap {
  version @0 :UInt64;
  partitionBits @1 :UInt8;    # Q = 2^partitionBits
  nodes @2 :List(NodeInfo);
  owners @3 :List(UInt16);    # owners[p] indexes `nodes`: the ring's owner of partition p
}

# ---- Services ----

struct Limits {
  maxKeyBytes @0 :UInt32;
  maxValueBytes @1 :UInt32;
}

interface Gateway {
  # The bootstrap capability. It grants nothing until the peer names the cluster it
  # expects to join (and, when the cluster has one, its shared secret).
  authenticate @0 (cluster :Text, secret :Data, clock :UInt64, protocol :UInt32)
      -> (node :Node, peer :Peer, admin :Admin, protocol :UInt32);
  # `clock` names the sender's monotonic clock (a random number its process draws once; 0:
  # not said), the one its requests' sentAtMicros are read on: the node measures request ages
  # against the fastest request of any connection from that process, so that the first
  # request of a new connection is not taken as fresh however long it waited.
  # `protocol` (both ways) is the sender's PROTOCOL_VERSION (common/protocol-version.h); 0, the
  # field absent, is a build from before it was exchanged, which speaks protocol 1. A node
  # refuses a caller whose protocol it does not speak (FAILED, "incompatible protocol: ..."
  # naming both), and a caller refuses a node's answer the same way.
}

interface Node {
  # Every request carries the sender's partition-map version; every reply carries the
  # node's, so whichever side is behind fetches the newer view.

  get @0 (mapVersion :UInt64, key :Key) -> (mapVersion :UInt64, found :Bool, object :Object);
  # The node's local copy of the object.

  coordinatePut @1 (mapVersion :UInt64, key :Key, kind :NamespaceKind, context :List(VvEntry),
                    value :Data, tombstone :Bool, sentAtMicros :Int64, patienceMicros :UInt64,
                    writeId :UInt64, supersedes :List(UInt64))
                -> (mapVersion :UInt64, object :Object);
  # writeId names the write (every retry of it elsewhere carries the same one); supersedes
  # names the writes among the versions the context was read from (dvv.h, WriteContext).
  # Acts as coordinator replica: mints a new dot for this node, stores, and returns the
  # whole stored object for the client to replicate. sentAtMicros is the sender's monotonic
  # clock when it sent the request, patienceMicros how long it waits for the answer before it
  # has another replica coordinate the write instead (0: not said). A request that waited
  # half of that before the node read it is refused, not minted (common/net/request-age.h).

  replicate @2 (mapVersion :UInt64, key :Key, object :Object, hintFor :UInt64,
                sentAtMicros :Int64, patienceMicros :UInt64)
            -> (mapVersion :UInt64);
  # Stores `sync(local, object)`. hintFor is 0 for an owner; otherwise the id of the
  # intended owner, and the write goes to this node's hint store (sloppy quorum).
  # sentAtMicros and patienceMicros as for coordinatePut: a copy that reached the node after
  # its sender counted it as failed is refused, not stored. Held back in a cut-off link, it
  # could land after a delete that covers it had been collected and bring the value back; the
  # write it carries reaches the node by hinted handoff or anti-entropy instead.

  getView @3 () -> (map :PartitionMap, limits :Limits);

  ping @4 (mapVersion :UInt64) -> (mapVersion :UInt64);
  # No storage work: the transport floor.

  # ---- Server-driven coordination (DESIGN.md, "Server-driven mode"; used by bench/) ----
  # The node coordinates the request itself, running the SDK's coordinator (client/) on its
  # own membership view, as a node behind a load balancer would. Quorum failures come back
  # as `error`, not as exceptions, so the caller can tell them from a broken connection.

  coordinateGet @5 (mapVersion :UInt64, key :Key, call :CallSettings)
                -> (mapVersion :UInt64, siblings :List(CoordinatedVersion), context :Data,
                    error :CoordinationError);

  coordinateWrite @6 (mapVersion :UInt64, key :Key, call :CallSettings, value :Data,
                      tombstone :Bool, context :Data)
                  -> (mapVersion :UInt64, context :Data, error :CoordinationError);
  # `context` is the opaque dynkv::Context of an earlier read or write (empty: blind write).

  struct CallSettings {
    kind @0 :NamespaceKind;
    n @1 :UInt32;              # 0: the SDK's default (3); likewise r and w (2)
    r @2 :UInt32;
    w @3 :UInt32;
    timeoutMillis @4 :UInt32;  # 0: the SDK's default (2000)
  }

  struct CoordinatedVersion {
    value @0 :Data;
    deleted @1 :Bool;
    timestamp @2 :Int64;
  }

  struct CoordinationError {
    kind @0 :Kind;             # none: the call succeeded
    message @1 :Text;
    enum Kind {
      none @0;
      invalidArgument @1;
      unavailable @2;
      timeout @3;
      rejected @4;
    }
  }
}

# ---- Membership, gossip and partition transfer (DESIGN.md, "Membership") ----

enum MemberStatus {
  joining @0;
  up @1;
  leaving @2;
  removed @3;
}

struct Member {
  info @0 :NodeInfo;
  status @1 :MemberStatus;
  statusVersion @2 :UInt64;
  generation @3 :UInt64;
  heartbeat @4 :UInt64;
  mapVersion @5 :UInt64;
  pendingTransfers @6 :UInt32;
  handoffPartitions @7 :List(UInt16);
  # Ascending, at most 256: the partitions the node holds writes of still to hand off (hints,
  # and data of partitions it is no replica of). Their tombstones are not collected meanwhile
  # (such a write may be one a tombstone covers).
  handoffEverywhere @8 :Bool;   # such writes for more partitions than the list may name
  httpAddress @9 :Text;
  # HOST:PORT of the node's HTTP port (/metrics, the status page); empty: it serves none. At
  # most 255 bytes, like the NodeInfo fields.
}

struct GossipState {
  members @0 :List(Member);
  mapVersion @1 :UInt64;
  map @2 :PartitionMap;     # present only when the receiver is known to be behind
  hasMap @3 :Bool;
}

struct StoredEntry {
  key @0 :Data;             # the user key (without partition or namespace)
  namespace @1 :Data;
  object @2 :Object;
}

interface Peer {
  # Node-to-node calls.

  gossip @0 (state :GossipState) -> (state :GossipState);
  # Both sides merge what the other sent. A side whose map is older than the other's gets it
  # in the reply (or asks for it by sending its version).

  fetchPartition @1 (partition :UInt16, after :Data, maxBytes :UInt32)
                 -> (entries :List(StoredEntry), next :Data, done :Bool);
  # Streams one partition in key order: entries after the storage key `after` (empty: from
  # the start), up to about maxBytes. `next` resumes the stream.

  # ---- Anti-entropy (DESIGN.md, "Anti-entropy"; common/coordinator/anti-entropy-exchange.h) ----
  # The steps of an exchange the caller drives against this node's hash trees and store. Every
  # list is bounded by the receiver (Limits in common/limits.h); a partition this node holds
  # nothing of has an empty tree. Lists whose elements are a few bytes each travel as one Data
  # blob in the compact encodings of common/anti-entropy-codec.h (a list of structs would spend
  # more on each element's layout than on its content).

  aeRoots @2 (partitions :Data, requester :UInt64, rootsHash :UInt64, treeSegments :UInt32,
              deferrable :Bool)
          -> (equal :Bool, roots :List(UInt64), busy :Bool);
  # `partitions` as encodePartitions(). If the combinedRoots() of this node's roots of them is
  # `rootsHash`, equal = true and no roots; else the full root hash of each, in the order asked.
  # `requester` is the asking node's id: one that is no replica of a partition holds data of it
  # to hand over, and its primary does not collect that partition's tombstones meanwhile.
  # `treeSegments` is the segments of the requester's trees (TreeShape in common/merkle-tree.h):
  # a node whose trees have another shape refuses the exchange, naming both.
  # `deferrable`: the requester's exchange is a periodic round's, which can wait. If this node is
  # itself exchanging with the requester already (its roots answered, or both just started and
  # this node's id is the lower), it answers busy = true and nothing else: that exchange is
  # repairing the same keys, and the requester asks again once it is over.

  aeChildren @3 (salt :UInt64, nodes :Data) -> (hashes :List(UInt32));
  # `nodes` as encodeTreeNodes(). For each node, the saltedHash of each of its 8 children: 8
  # hashes per node, in order.

  aeKeys @4 (segments :Data, maxEntries :UInt32) -> (entries :Data, segmentsCovered :UInt32);
  # `segments` as encodeSegments(). The (storage key, causal digest, causal summary) of every
  # object stored in the first `segmentsCovered` of them (at least one), as encodeKeyDigests(),
  # stopping at a segment boundary once about maxEntries are listed.

  aeFetch @5 (keys :Data) -> (entries :Data);
  # `keys` as encodeKeys(). This node's own copy of each storage key (not the hints it holds),
  # as encodeEntries() (no object: none held), for a prefix of the keys (at least one) that fits
  # one message: the caller asks again for the rest.

  aePush @6 (entries :Data, sentAtMicros :Int64, patienceMicros :UInt64) -> ();
  # `entries` as encodeEntries(). Stores sync(local, object) for each entry with an object, as
  # replication does. sentAtMicros and patienceMicros as for replicate: a push that reached the
  # node after half its sender's patience is refused (the exchange that sent it has given up
  # on it, and its copies may be older than a delete collected since).

  aeReap @7 (partition :UInt16, tombstones :List(AeKeyDigest)) -> (reaped :UInt32);
  # Sent by the partition's primary once every replica holds these tombstones: each one is
  # deleted here if its digest is still the one given (a newer write keeps it).
}

struct AeKeyDigest {
  key @0 :Data;          # the encoded storage key
  digest @1 :UInt64;
}

struct MemberStatusInfo {
  member @0 :Member;
  partitions @1 :UInt32;     # ring partitions it owns in the reporting node's map
  phi @2 :Float64;           # the reporting node's failure-detector suspicion of it
  suspected @3 :Bool;
}

interface Admin {
  join @0 (address :Text) -> ();
  # Adds a running (joining) node to the ring. It streams the partitions it gains before it
  # serves reads for them.

  leave @1 (address :Text) -> ();
  # Takes a node out of the ring; it hands its partitions off and then is removed.

  status @2 () -> (members :List(MemberStatusInfo), mapVersion :UInt64, reporter :Text);

  nodeStats @3 () -> (stats :NodeStats);
  # This node's own background state: hints, anti-entropy, tombstones, admission.

  repair @4 (partition :Int32) -> (report :RepairReport);
  # Runs an anti-entropy exchange now with every replica this node shares `partition` with
  # (-1: every partition it holds), and answers once they have ended.

  forceRemove @5 (address :Text, evenIfAlive :Bool) -> ();
  # Takes a node that is dead for good out of the ring at once (status removed), without the
  # hand-off a leaving node does itself: the other replicas hold its data and anti-entropy
  # refills the new owners. Refused (FAILED, "refused: ...") when the node asked does not
  # suspect it, unless evenIfAlive: a live node should `leave`.

  snapshot @6 (dir :Text) -> (bytes :UInt64, keys :UInt64);
  # Copies this node's whole storage (LMDB environment, its identity included), consistent and
  # compacted, into `dir` on the node's host while the node keeps serving; answers the copy's
  # size and the objects it holds. `dir` must be absolute and must not exist or be empty
  # ("invalid argument: ..." / "refused: ..." otherwise); one snapshot at a time per node.

  inspect @7 (key :Key, replicas :UInt32)
      -> (partition :UInt32, replica :Bool, copies :List(HeldCopy));
  # Every copy of `key` this node holds, each apart (no merge, no read repair): its own
  # store's, and each hint it keeps for another node. `replica`: this node is one of the first
  # `replicas` (N) owners of the key's partition in its map, i.e. on the preference list.
}

struct HeldCopy {
  standIn @0 :Bool;        # a hint kept for `owner` (sloppy quorum); false: its own store's
  owner @1 :UInt64;        # the node a stand-in copy is for (0 for the store's copy)
  ownerAddress @2 :Text;   # empty if that node is not in this node's map any more
  object @3 :Object;
}

struct HintsHeld {
  owner @0 :UInt64;         # node id of the owner the hints stand in for
  ownerAddress @1 :Text;    # empty if the owner is not in this node's map any more
  count @2 :UInt64;
}

struct AntiEntropyStats {
  lastCompleteAgeMillis @0 :Int64;  # since the last exchange that finished; -1: none yet
  exchangesFinished @1 :UInt64;
  exchangesFailed @2 :UInt64;
  segmentsDiffering @3 :UInt64;     # in the last finished exchange round
  keysRepaired @4 :UInt64;          # since start
  bytesSent @5 :UInt64;             # anti-entropy requests and replies this node sent
  bytesReceived @6 :UInt64;
  treesDigest @7 :UInt64;           # a hash of the roots of every partition held: two nodes
                                    # holding the same partitions agree iff their trees do
  partitionsHeld @8 :UInt32;
  treeMemoryBytes @9 :UInt64;
  running @10 :Bool;                # an exchange is in progress
  byCall @11 :List(AeCallBytes);    # bytesSent and bytesReceived split by Peer call, both as
                                    # the caller and as the callee: which step costs the bytes
}

struct AeCallBytes {
  call @0 :Text;                    # the Peer method: aeRoots, aeChildren, aeKeys, ...
  sent @1 :UInt64;                  # requests this node made and replies it gave
  received @2 :UInt64;
}

struct NodeStats {
  node @0 :NodeInfo;
  epoch @1 :UInt64;                 # the incarnation of the data directory
  rebuilding @2 :Bool;              # started with an empty data directory as a ring member and
                                    # not yet refilled by anti-entropy
  hints @3 :List(HintsHeld);
  antiEntropy @4 :AntiEntropyStats;
  tombstones @5 :UInt64;            # objects held that are only tombstones
  tombstonesReaped @6 :UInt64;      # since start
  partitionsDropped @7 :UInt64;     # partitions handed over and deleted here, since start
  admissionSlots @8 :UInt32;        # background slots the admission controller grants now
  admissionEnabled @9 :Bool;
  foregroundP99Micros @10 :Int64;   # what the controller last measured
  engineBytes @11 :UInt64;          # the space the stored data takes (StorageEngine::bytesUsed)
}

struct RepairReport {
  exchanges @0 :UInt32;
  failed @1 :UInt32;
  partitions @2 :UInt32;
  segmentsDiffering @3 :UInt64;
  keysRepaired @4 :UInt64;
  message @5 :Text;                 # why exchanges failed, if any did
}

# ---- Client-side only ----

struct ReadContext {
  # What dynkv::Context's opaque bytes hold.
  vv @0 :List(VvEntry);   # the merged version vector of the read
  fastest @1 :UInt64;     # id of the replica that answered the read first: the next put's
                          # coordinator, as in the paper (§6.4)
  writeIds @2 :List(UInt64);  # the named writes among the versions read (sorted, unique)
}
