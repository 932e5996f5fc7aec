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
}

enum NamespaceKind {
  vectorClock @0;
  lastWriteWins @1;
}

struct Object {
  kind @0 :NamespaceKind;
  vv @1 :List(VvEntry);
  siblings @2 :List(Sibling);
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
  authenticate @0 (cluster :Text, secret :Data) -> (node :Node);
}

interface Node {
  # Every request carries the sender's partition-map version; every reply carries the
  # node's, so whichever side is behind fetches the newer view.

  get @0 (mapVersion :UInt64, key :Key) -> (mapVersion :UInt64, found :Bool, object :Object);
  # The node's local copy of the object.

  coordinatePut @1 (mapVersion :UInt64, key :Key, kind :NamespaceKind, context :List(VvEntry),
                    value :Data, tombstone :Bool) -> (mapVersion :UInt64, object :Object);
  # Acts as coordinator replica: mints a new dot for this node, stores, and returns the
  # whole stored object for the client to replicate.

  replicate @2 (mapVersion :UInt64, key :Key, object :Object, hintFor :UInt64)
            -> (mapVersion :UInt64);
  # Stores `sync(local, object)`. hintFor is 0 for an owner; otherwise the id of the
  # intended owner, and the write goes to this node's hint store (sloppy quorum).

  getView @3 () -> (map :PartitionMap, limits :Limits);

  ping @4 (mapVersion :UInt64) -> (mapVersion :UInt64);
  # No storage work: the transport floor.
}

# ---- Client-side only ----

struct ReadContext {
  # What dynkv::Context's opaque bytes hold.
  vv @0 :List(VvEntry);   # the merged version vector of the read
  fastest @1 :UInt64;     # id of the replica that answered the read first: the next put's
                          # coordinator, as in the paper (§6.4)
}
