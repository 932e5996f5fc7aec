// The local storage engine: the paper's pluggable persistence. LMDB by default, an
// in-memory engine for tests, both behind this one small interface.
//
// Contract (in LMDB's spirit):
// - A transaction runs entirely inside the call that opens it: `body` runs synchronously and
//   must not keep any pointer handed to it past its return (values are valid only inside
//   the transaction). Never hold one across a promise.
// - One write transaction at a time (the daemon is single-threaded); reads see the last
//   committed state.
// - Failures (disk full, map full, I/O errors) throw kj::Exception with a message that names
//   the limit or the cause. A write transaction whose body throws, or whose commit fails,
//   changes nothing.
#pragma once

#include <kj/common.h>
#include <kj/function.h>
#include <kj/memory.h>
#include <kj/string.h>
#include <cstdint>

namespace dynkv::storaged {

enum class Table : uint8_t {
  OBJECTS = 0,  // [partition: 2 bytes BE][namespace length: 1][namespace][key] -> Object
  HINTS = 1,    // hinted-handoff buffer: writes held for an unreachable owner
  META = 2,     // node identity, membership state
  DIGESTS = 3,  // anti-entropy's index of OBJECTS: [partition: 2][segment: 2][rest of the
                // storage key] -> [causal digest: 8 BE][tombstone only: 1] (hash-trees.h)
};

enum class Durability : uint8_t {
  SYNC,      // a write transaction is on disk (fsync) when write() returns
  BUFFERED,  // write() returns once committed in memory; flush() makes it durable
};

using Bytes = kj::ArrayPtr<const kj::byte>;

class ReadTransaction {
 public:
  virtual kj::Maybe<Bytes> get(Table table, Bytes key) = 0;
  // The stored value, valid until the transaction ends (in a write transaction: until its
  // next put() or remove() too, as LMDB may move pages); null if absent.

  virtual void scan(Table table, Bytes begin, Bytes end,
                    kj::FunctionParam<bool(Bytes key, Bytes value)> visit) = 0;
  // Visits keys in [begin, end) in byte order (an empty `end` means "to the end of the
  // table"), stopping early when `visit` returns false. What `visit` is handed stays valid as
  // get()'s results do. In a write transaction `visit` may put() and remove(); the scan then
  // goes on after the key just visited and sees those changes.

 protected:
  ~ReadTransaction() = default;
};

class WriteTransaction : public ReadTransaction {
 public:
  virtual void put(Table table, Bytes key, Bytes value) = 0;
  virtual void remove(Table table, Bytes key) = 0;
  // Removing an absent key is not an error. Keys may be of any length but must not be empty
  // (put() rejects an empty key; an empty key is never found).

 protected:
  ~WriteTransaction() = default;
};

class StorageEngine {
 public:
  virtual ~StorageEngine() noexcept(false) = default;

  virtual void read(kj::FunctionParam<void(ReadTransaction&)> body) = 0;

  virtual void write(kj::FunctionParam<void(WriteTransaction&)> body) = 0;
  // Runs `body` in one write transaction and commits it atomically when it returns. With
  // Durability::SYNC the commit is fsynced before write() returns; callers batch concurrent
  // writes into one transaction to group-commit them.

  virtual void flush() = 0;
  // Makes every committed transaction durable (BUFFERED mode's periodic flush; a no-op for
  // SYNC and for the in-memory engine). The one call that may be made from another thread,
  // concurrently with transactions (LMDB's mdb_env_sync only syncs the file).

  virtual Durability durability() const = 0;

  virtual uint64_t bytesUsed() = 0;
  // The space the data takes: LMDB's pages in use (its file may be larger: LMDB reuses freed
  // pages rather than shrink it); the in-memory engine's keys and values. For /metrics.

  struct SnapshotInfo {
    uint64_t bytes = 0;  // the size of the copy's data file
    uint64_t keys = 0;   // objects stored (the OBJECTS table's entries) as the copy began
  };

  virtual SnapshotInfo snapshot(kj::StringPtr directory) = 0;
  // Writes a consistent, compacted copy of the whole environment (every table, the node's
  // identity included) into `directory`, which must exist and be empty; a node restored from
  // it is the same node as of the moment the copy's read transaction began. Blocks for as long
  // as the copy takes, so the caller runs it on a thread of its own: like flush(), it may be
  // made from another thread, concurrently with transactions (the copy reads in its own LMDB
  // read transaction). Throws kj::Exception naming `directory` and the cause if it cannot
  // (the in-memory engine always refuses: it has nothing on disk to copy).
};

struct LmdbOptions {
  kj::String path;  // a directory; created if missing
  Durability durability = Durability::SYNC;
  uint64_t mapSizeBytes = uint64_t(16) << 30;  // the most the database may grow to
};

kj::Own<StorageEngine> openLmdbEngine(const LmdbOptions& options);
// Opens (creating if needed) the LMDB environment in options.path with its four tables.
// Throws kj::Exception with the path and LMDB's reason if it cannot.

kj::Own<StorageEngine> newMemoryEngine();
// Volatile engine with the same semantics, for tests. Durability is reported as SYNC.

}  // namespace dynkv::storaged
