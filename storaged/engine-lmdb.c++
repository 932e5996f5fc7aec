// The LMDB storage engine (DESIGN.md, "Local storage"): one environment per node, one named
// database per Table. LMDB is wrapped here once: RAII transactions and cursors, and every
// return code goes through LmdbEngine::fail(), which names the path and the cause.
//
// Long keys. LMDB caps keys at 511 bytes (MDB_MAXKEYSIZE), but an object key is
// [partition: 2][namespace length: 1][namespace: <= 255][user key: <= 1 KiB]. So a key of
// CUT_KEY_BYTES (511) bytes or more is stored under its *cut form*
//   [its first KEPT_PREFIX_BYTES (503) bytes][XXH3-64 of the whole key, big-endian]
// (exactly CUT_KEY_BYTES long), and its LMDB value is
//   [full key length: 4 bytes little-endian][full key][value].
// Shorter keys are stored as they are, with their value as is: an LMDB key's length tells which
// form an entry has (only cut forms are CUT_KEY_BYTES long, which is why a key of exactly 511
// bytes, though LMDB would take it, is cut too), so only the rare long keys pay for a second
// copy of the key.
// - get() compares the full key, so a cut-form collision reads as absent, never as another
//   key's data; put() refuses (throws) rather than replace a different key that collides, so a
//   collision can fail a write but never lose one; remove() leaves a colliding key alone.
// - Byte order survives: the cut keeps the prefix, so LMDB's order is the full keys' order
//   except among keys longer than KEPT_PREFIX_BYTES that share their first KEPT_PREFIX_BYTES.
//   Those are contiguous in LMDB; scan() gathers each such run and sorts it by full key.
// - CUT_KEY_BYTES is a constant rather than mdb_env_get_maxkeysize(), so the on-disk form does
//   not depend on how the library was built; opening checks that the library takes such keys.

#include <kj/debug.h>
#include <kj/exception.h>
#include <lmdb.h>

#include "engine.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace dynkv::storaged {
namespace {

constexpr size_t CUT_KEY_BYTES = 511;  // LMDB's default MDB_MAXKEYSIZE, Debian's build
constexpr size_t HASH_BYTES = 8;
constexpr size_t KEPT_PREFIX_BYTES = CUT_KEY_BYTES - HASH_BYTES;
constexpr size_t LENGTH_BYTES = 4;

constexpr size_t TABLE_COUNT = 4;
constexpr const char* TABLE_NAMES[TABLE_COUNT] = {"objects", "hints", "meta", "digests"};

MDB_val toVal(Bytes bytes) {
  return MDB_val{bytes.size(), const_cast<kj::byte*>(bytes.begin())};
}

Bytes fromVal(const MDB_val& val) {
  return Bytes(reinterpret_cast<const kj::byte*>(val.mv_data), val.mv_size);
}

Bytes asBytes(const std::string& s) {
  return Bytes(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

void assign(std::string& out, Bytes bytes) {
  out.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

int compareBytes(Bytes a, Bytes b) {
  size_t common = std::min(a.size(), b.size());
  int c = common == 0 ? 0 : memcmp(a.begin(), b.begin(), common);
  if (c != 0) return c;
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

[[noreturn]] void throwFailure(kj::String description) {
  kj::throwFatalException(
      kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::mv(description)));
}

class StoredKey {
  // The LMDB key under which a key is stored: the key itself, or its cut form.
 public:
  explicit StoredKey(Bytes key) {
    if (key.size() < CUT_KEY_BYTES) {
      lmdbKey = key;
      return;
    }
    memcpy(cut, key.begin(), KEPT_PREFIX_BYTES);
    uint64_t hash = XXH3_64bits(key.begin(), key.size());
    for (size_t i = 0; i < HASH_BYTES; ++i) {
      cut[KEPT_PREFIX_BYTES + i] = kj::byte(hash >> (56 - 8 * i));
    }
    lmdbKey = Bytes(cut, CUT_KEY_BYTES);
  }
  KJ_DISALLOW_COPY(StoredKey);

  bool isCut() const { return lmdbKey.size() == CUT_KEY_BYTES; }
  MDB_val val() const { return toVal(lmdbKey); }

 private:
  Bytes lmdbKey;
  kj::byte cut[CUT_KEY_BYTES];
};

struct Entry {
  Bytes key;  // the full key
  Bytes value;
};

class LmdbEngine;

class Txn {
  // Owns an MDB_txn: aborted on destruction unless committed.
 public:
  Txn(const LmdbEngine& engine, unsigned flags);
  ~Txn() {
    if (txn != nullptr) mdb_txn_abort(txn);
  }
  KJ_DISALLOW_COPY(Txn);

  MDB_txn* get() const { return txn; }
  void commit();

 private:
  const LmdbEngine& engine;
  MDB_txn* txn = nullptr;
};

class Cursor {
 public:
  Cursor(const LmdbEngine& engine, MDB_txn* txn, MDB_dbi dbi);
  ~Cursor() { mdb_cursor_close(cursor); }
  KJ_DISALLOW_COPY(Cursor);

  MDB_cursor* get() const { return cursor; }

 private:
  MDB_cursor* cursor = nullptr;
};

class LmdbEngine final : public StorageEngine {
 public:
  explicit LmdbEngine(const LmdbOptions& options);

  void read(kj::FunctionParam<void(ReadTransaction&)> body) override;
  void write(kj::FunctionParam<void(WriteTransaction&)> body) override;
  void flush() override;
  Durability durability() const override { return mode; }

  uint64_t bytesUsed() override {
    MDB_envinfo info;
    MDB_stat stat;
    if (mdb_env_info(handle.env, &info) != 0 || mdb_env_stat(handle.env, &stat) != 0) return 0;
    return (uint64_t(info.me_last_pgno) + 1) * stat.ms_psize;
  }
  SnapshotInfo snapshot(kj::StringPtr directory) override;

  MDB_env* env() const { return handle.env; }
  MDB_dbi dbi(Table table) const {
    size_t i = static_cast<size_t>(table);
    KJ_REQUIRE(i < TABLE_COUNT, "unknown storage table", i);
    return dbis[i];
  }

  void check(int rc, kj::StringPtr operation) const {
    if (rc != MDB_SUCCESS) fail(rc, operation, false);
  }
  void checkWrite(int rc, kj::StringPtr operation) const {
    // For calls whose failure aborts the write transaction they belong to.
    if (rc != MDB_SUCCESS) fail(rc, operation, true);
  }
  [[noreturn]] void fail(int rc, kj::StringPtr operation, bool writeLost) const;

  Entry decode(const MDB_val& key, const MDB_val& value) const;

 private:
  struct EnvHandle {
    // First member, so a constructor that throws halfway still closes the environment.
    MDB_env* env = nullptr;
    ~EnvHandle() {
      if (env != nullptr) mdb_env_close(env);
    }
  };

  EnvHandle handle;
  kj::String path;
  Durability mode;
  MDB_dbi dbis[TABLE_COUNT] = {};
  bool writing = false;
};

Txn::Txn(const LmdbEngine& engine, unsigned flags) : engine(engine) {
  engine.check(mdb_txn_begin(engine.env(), nullptr, flags, &txn), "mdb_txn_begin");
}

void Txn::commit() {
  // mdb_txn_commit() frees the transaction whether or not it succeeds.
  MDB_txn* committing = txn;
  txn = nullptr;
  engine.checkWrite(mdb_txn_commit(committing), "mdb_txn_commit");
}

Cursor::Cursor(const LmdbEngine& engine, MDB_txn* txn, MDB_dbi dbi) {
  engine.check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open");
}

class LmdbTransaction final : public WriteTransaction {
  // Both kinds of transaction; read() hands it out as a ReadTransaction only.
 public:
  LmdbTransaction(const LmdbEngine& engine, MDB_txn* txn) : engine(engine), txn(txn) {}

  kj::Maybe<Bytes> get(Table table, Bytes key) override {
    if (key.size() == 0) return nullptr;
    StoredKey stored(key);
    MDB_val k = stored.val(), v;
    int rc = mdb_get(txn, engine.dbi(table), &k, &v);
    if (rc == MDB_NOTFOUND) return nullptr;
    engine.check(rc, "mdb_get");
    Entry entry = engine.decode(k, v);
    if (compareBytes(entry.key, key) != 0) return nullptr;  // a colliding long key
    lend(entry.value);
    return entry.value;
  }

  void scan(Table table, Bytes begin, Bytes end,
            kj::FunctionParam<bool(Bytes key, Bytes value)> visit) override {
    // A visit that puts or removes leaves the cursor and the entries gathered from the pages
    // stale, so the scan restarts in a fresh pass just after the last key visited.
    std::string from, last;
    assign(from, begin);
    bool exclusive = false;
    while (scanPass(table, asBytes(from), exclusive, end, visit, last)) {
      from.swap(last);
      exclusive = true;
    }
  }

  void put(Table table, Bytes key, Bytes value) override {
    KJ_REQUIRE(key.size() > 0, "storage keys must not be empty");
    KJ_REQUIRE(key.size() <= UINT32_MAX, "storage key too long", key.size());
    detach(key, value);
    MDB_dbi dbi = engine.dbi(table);
    StoredKey stored(key);
    MDB_val k = stored.val();
    if (!stored.isCut()) {
      MDB_val v = toVal(value);
      engine.checkWrite(mdb_put(txn, dbi, &k, &v, 0), "mdb_put");
    } else {
      KJ_IF_MAYBE (other, storedFullKey(dbi, stored)) {
        if (compareBytes(*other, key) != 0) {
          throwFailure(kj::str("cannot store a ", key.size(), "-byte key: its cut form (",
                               KEPT_PREFIX_BYTES,
                               "-byte prefix and 64-bit hash) collides with another "
                               "stored key's; nothing from this write was stored"));
        }
      }
      // MDB_RESERVE lets us write the length, key and value straight into the page.
      MDB_val v{LENGTH_BYTES + key.size() + value.size(), nullptr};
      engine.checkWrite(mdb_put(txn, dbi, &k, &v, MDB_RESERVE), "mdb_put");
      kj::byte* out = static_cast<kj::byte*>(v.mv_data);
      uint32_t length = key.size();
      for (size_t i = 0; i < LENGTH_BYTES; ++i) out[i] = kj::byte(length >> (8 * i));
      memcpy(out + LENGTH_BYTES, key.begin(), key.size());
      if (value.size() > 0) memcpy(out + LENGTH_BYTES + key.size(), value.begin(), value.size());
    }
    updated();
  }

  void remove(Table table, Bytes key) override {
    if (key.size() == 0) return;
    Bytes unused;
    detach(key, unused);
    MDB_dbi dbi = engine.dbi(table);
    StoredKey stored(key);
    if (stored.isCut()) {
      KJ_IF_MAYBE (other, storedFullKey(dbi, stored)) {
        if (compareBytes(*other, key) != 0) return;  // a colliding long key, not this one
      } else {
        return;
      }
    }
    MDB_val k = stored.val();
    int rc = mdb_del(txn, dbi, &k, nullptr);
    if (rc != MDB_NOTFOUND) engine.checkWrite(rc, "mdb_del");
    updated();
  }

 private:
  const LmdbEngine& engine;
  MDB_txn* txn;

  uint64_t updates = 0;
  // Counts put() and remove() calls, so scan() notices a visit that changed the tree.

  const kj::byte* lentBegin = nullptr;
  const kj::byte* lentEnd = nullptr;
  kj::Array<kj::byte> scratch;
  // Bounds of everything handed out since the last update. LMDB copies a put's key and value
  // into a page it may be rearranging (a split), so a put of bytes read from this
  // transaction's own dirty pages could read them half-overwritten; such arguments are copied
  // to `scratch` first. Out-of-date bounds only cost a needless copy.

  void lend(Bytes bytes) {
    if (bytes.size() == 0) return;
    if (lentBegin == nullptr || bytes.begin() < lentBegin) lentBegin = bytes.begin();
    if (lentEnd == nullptr || bytes.end() > lentEnd) lentEnd = bytes.end();
  }

  bool isLent(Bytes bytes) const {
    return bytes.size() > 0 && lentBegin != nullptr && bytes.begin() < lentEnd &&
           bytes.end() > lentBegin;
  }

  void detach(Bytes& key, Bytes& value) {
    if (!isLent(key) && !isLent(value)) return;
    scratch = kj::heapArray<kj::byte>(key.size() + value.size());
    if (key.size() > 0) memcpy(scratch.begin(), key.begin(), key.size());
    if (value.size() > 0) memcpy(scratch.begin() + key.size(), value.begin(), value.size());
    key = scratch.slice(0, key.size());
    value = scratch.slice(key.size(), scratch.size());
  }

  void updated() {
    ++updates;
    // Whatever was handed out may now be invalid (engine.h), so it no longer needs guarding.
    lentBegin = lentEnd = nullptr;
  }

  kj::Maybe<Bytes> storedFullKey(MDB_dbi dbi, const StoredKey& stored) {
    // The full key of the entry stored under `stored`, if any.
    MDB_val k = stored.val(), v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return nullptr;
    engine.check(rc, "mdb_get");
    return engine.decode(k, v).key;
  }

  bool scanPass(Table table, Bytes from, bool exclusive, Bytes end,
                kj::FunctionParam<bool(Bytes key, Bytes value)>& visit, std::string& last) {
    // Visits the keys in [from, end) (or (from, end) when `exclusive`), copying each into
    // `last` before its visit. Returns true when a visit changed the tree and the scan must
    // go on in a new pass after `last`; false when it is finished.
    //
    // LMDB bounds: a bound longer than KEPT_PREFIX_BYTES is widened to its kept prefix (for
    // `end`: to the least string above every string with that prefix), because cut forms of
    // keys past the bound may sort before it; the full keys are then filtered exactly.
    Bytes lower = from.size() > KEPT_PREFIX_BYTES ? from.slice(0, KEPT_PREFIX_BYTES) : from;
    std::string upperStorage;
    bool bounded = end.size() > 0;
    if (end.size() > KEPT_PREFIX_BYTES) {
      assign(upperStorage, end.slice(0, KEPT_PREFIX_BYTES));
      while (!upperStorage.empty() && kj::byte(upperStorage.back()) == 0xff) {
        upperStorage.pop_back();
      }
      if (upperStorage.empty()) {
        bounded = false;  // no string is above every string with an all-0xff prefix
      } else {
        upperStorage.back() = char(kj::byte(upperStorage.back()) + 1);
      }
    }
    Bytes upper = end.size() > KEPT_PREFIX_BYTES ? asBytes(upperStorage) : end;

    Cursor cursor(engine, txn, engine.dbi(table));
    MDB_val k = toVal(lower), v;
    int rc = mdb_cursor_get(cursor.get(), &k, &v, lower.size() == 0 ? MDB_FIRST : MDB_SET_RANGE);
    std::vector<Entry> run;
    while (rc == MDB_SUCCESS) {
      // A run (see the top of the file) lies wholly below or wholly above `upper`, which is
      // no longer than the kept prefix, so checking its first key is enough.
      if (bounded && compareBytes(fromVal(k), upper) >= 0) break;
      run.clear();
      if (k.mv_size <= KEPT_PREFIX_BYTES) {
        run.push_back(engine.decode(k, v));
        rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
      } else {
        const void* prefix = k.mv_data;
        do {
          run.push_back(engine.decode(k, v));
          rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
        } while (rc == MDB_SUCCESS && k.mv_size > KEPT_PREFIX_BYTES &&
                 memcmp(k.mv_data, prefix, KEPT_PREFIX_BYTES) == 0);
        std::sort(run.begin(), run.end(),
                  [](const Entry& a, const Entry& b) { return compareBytes(a.key, b.key) < 0; });
      }
      for (const Entry& entry : run) {
        int c = compareBytes(entry.key, from);
        if (c < 0 || (c == 0 && exclusive)) continue;
        if (end.size() > 0 && compareBytes(entry.key, end) >= 0) return false;
        assign(last, entry.key);
        uint64_t before = updates;
        lend(entry.key);
        lend(entry.value);
        if (!visit(entry.key, entry.value)) return false;
        if (updates != before) return true;
      }
    }
    if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS) engine.check(rc, "mdb_cursor_get");
    return false;
  }
};

LmdbEngine::LmdbEngine(const LmdbOptions& options)
    : path(kj::heapString(options.path)), mode(options.durability) {
  std::error_code error;
  std::filesystem::create_directories(path.cStr(), error);
  if (error) {
    throwFailure(
        kj::str("cannot create the storage directory ", path, ": ", error.message().c_str()));
  }

  check(mdb_env_create(&handle.env), "mdb_env_create");
  int maxKey = mdb_env_get_maxkeysize(handle.env);
  if (maxKey < int(CUT_KEY_BYTES)) {
    throwFailure(kj::str("this LMDB library takes keys of at most ", maxKey,
                         " bytes; dynkv's storage format needs ", CUT_KEY_BYTES));
  }
  check(mdb_env_set_maxdbs(handle.env, TABLE_COUNT), "mdb_env_set_maxdbs");
  check(mdb_env_set_mapsize(handle.env, options.mapSizeBytes), "mdb_env_set_mapsize");

  // MDB_NOTLS: transactions are not bound to the thread that began them (a read may be open
  // while a write runs on the same thread). BUFFERED skips the fsyncs at commit; LMDB stays
  // consistent after a crash, losing only the transactions since the last flush(). No
  // MDB_WRITEMAP: a full disk then shows up as an error from commit, not as SIGBUS.
  unsigned flags = MDB_NOTLS;
  if (mode == Durability::BUFFERED) flags |= MDB_NOSYNC | MDB_NOMETASYNC;
  check(mdb_env_open(handle.env, path.cStr(), flags, 0600), "mdb_env_open");

  // Frees reader slots left behind by a process that died mid-read.
  int staleReaders = 0;
  check(mdb_reader_check(handle.env, &staleReaders), "mdb_reader_check");

  Txn txn(*this, 0);
  for (size_t i = 0; i < TABLE_COUNT; ++i) {
    checkWrite(mdb_dbi_open(txn.get(), TABLE_NAMES[i], MDB_CREATE, &dbis[i]), "mdb_dbi_open");
  }
  txn.commit();
}

void LmdbEngine::read(kj::FunctionParam<void(ReadTransaction&)> body) {
  Txn txn(*this, MDB_RDONLY);
  LmdbTransaction transaction(*this, txn.get());
  body(transaction);
  // Txn's destructor aborts, which for a read only releases the snapshot.
}

void LmdbEngine::write(kj::FunctionParam<void(WriteTransaction&)> body) {
  // LMDB's writer lock is not recursive: a nested write would deadlock, so refuse it.
  KJ_REQUIRE(!writing, "a write transaction is already open on this storage engine");
  writing = true;
  KJ_DEFER(writing = false);
  Txn txn(*this, 0);
  LmdbTransaction transaction(*this, txn.get());
  body(transaction);
  txn.commit();
}

void LmdbEngine::flush() {
  if (mode == Durability::BUFFERED) check(mdb_env_sync(handle.env, 1), "mdb_env_sync");
}

StorageEngine::SnapshotInfo LmdbEngine::snapshot(kj::StringPtr directory) {
  // Called off the event loop thread: MDB_NOTLS lets this thread's read transactions (the
  // count's, and the one mdb_env_copy2 opens) run beside the loop's writes. The copy's own
  // read transaction pins the pages it copies, so the node keeps writing meanwhile; the key
  // count is taken just before, so it may differ from the copy by the writes in between.
  SnapshotInfo info;
  {
    Txn txn(*this, MDB_RDONLY);
    MDB_stat stat;
    check(mdb_stat(txn.get(), dbi(Table::OBJECTS), &stat), "mdb_stat");
    info.keys = stat.ms_entries;
  }
  int rc = mdb_env_copy2(handle.env, directory.cStr(), MDB_CP_COMPACT);
  if (rc == ENOSPC) {
    throwFailure(kj::str("disk full: no space left on the device holding ", directory,
                         " for the snapshot of ", path));
  }
  if (rc != MDB_SUCCESS) {
    throwFailure(kj::str("cannot snapshot ", path, " into ", directory, ": ", mdb_strerror(rc)));
  }
  std::error_code error;
  auto bytes = std::filesystem::file_size(std::string(directory.cStr()) + "/data.mdb", error);
  if (!error) info.bytes = uint64_t(bytes);
  return info;
}

Entry LmdbEngine::decode(const MDB_val& key, const MDB_val& value) const {
  Bytes data = fromVal(value);
  if (key.mv_size != CUT_KEY_BYTES) return Entry{fromVal(key), data};
  KJ_ASSERT(data.size() >= LENGTH_BYTES, "corrupt long-key entry: value too short", path);
  uint32_t length = 0;
  for (size_t i = 0; i < LENGTH_BYTES; ++i) length |= uint32_t(data[i]) << (8 * i);
  KJ_ASSERT(data.size() - LENGTH_BYTES >= length, "corrupt long-key entry: key overruns value",
            path);
  return Entry{data.slice(LENGTH_BYTES, LENGTH_BYTES + length),
               data.slice(LENGTH_BYTES + length, data.size())};
}

void LmdbEngine::fail(int rc, kj::StringPtr operation, bool writeLost) const {
  // The one place LMDB's return codes become exceptions.
  kj::StringPtr lost = writeLost ? "; nothing from this write was stored"_kj : ""_kj;
  if (rc == MDB_MAP_FULL) {
    MDB_envinfo info;
    mdb_env_info(handle.env, &info);
    throwFailure(kj::str("storage full: the LMDB map of ", uint64_t(info.me_mapsize), " bytes in ",
                         path, " is full", lost, " (raise the map size)"));
  }
  if (rc == ENOSPC) {
    throwFailure(kj::str("disk full: no space left on the device holding ", path, " (", operation,
                         ")", lost));
  }
  throwFailure(kj::str("LMDB ", operation, " failed in ", path, ": ", mdb_strerror(rc), lost));
}

}  // namespace

kj::Own<StorageEngine> openLmdbEngine(const LmdbOptions& options) {
  return kj::heap<LmdbEngine>(options);
}

}  // namespace dynkv::storaged
