// One storaged per data directory. LMDB's own lock file lets several processes share an
// environment, and two storaged on one directory would both mint dots as the same actor and
// write the same hint and tree tables: so storaged takes this lock before it reads or writes
// anything there, and holds it for as long as it runs.
#pragma once

#include <kj/common.h>
#include <string>

namespace dynkv::storaged {

class DataDirLock {
 public:
  static constexpr const char* FILE_NAME = "storaged.lock";

  explicit DataDirLock(const std::string& dataDir);
  // Creates `dataDir` if need be, and takes an exclusive flock(2) on dataDir/storaged.lock,
  // writing this process's pid into it. Throws a kj::Exception (FAILED) whose description is
  // "data directory DIR is in use by another storaged (pid N)" when another process holds it
  // (the pid as that holder wrote it; "pid unknown" if it has not yet), or says what failed
  // when the directory or the file cannot be created.
  ~DataDirLock();
  // Releases the lock. The file stays: removing it could let a third process lock a new file
  // while a second still waits on the old one. The kernel releases the lock of a process that
  // dies, however it dies, so a kill -9 never leaves the directory locked.
  KJ_DISALLOW_COPY(DataDirLock);

 private:
  int fd_;
};

}  // namespace dynkv::storaged
