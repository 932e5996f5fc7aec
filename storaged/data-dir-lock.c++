#include "data-dir-lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include <kj/debug.h>

namespace dynkv::storaged {

namespace {

[[noreturn]] void fail(std::string message) {
  // A plain description, not KJ_FAIL_REQUIRE's "name = value" rendering: main prints it as
  // storaged's one-line reason for not starting.
  kj::throwFatalException(
      kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(message.c_str())));
}

std::string holderOf(int fd) {
  // The pid the holder wrote; it may not have written it yet (it writes just after locking).
  char buffer[32] = {};
  ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string text = n > 0 ? std::string(buffer, size_t(n)) : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  return digits ? "pid " + text : "pid unknown";
}

}  // namespace

DataDirLock::DataDirLock(const std::string& dataDir) {
  std::error_code error;
  std::filesystem::create_directories(dataDir, error);
  if (error) fail("cannot create data directory " + dataDir + ": " + error.message());
  auto path = dataDir + "/" + FILE_NAME;
  // Not O_TRUNC: that would wipe the holder's pid before we know we are not the holder.
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open " + path + ": " + strerror(errno));
  // flock, not fcntl locks: an fcntl lock belongs to the process and is dropped when any of
  // its descriptors for the file closes; a flock lock belongs to this descriptor alone.
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int lockError = errno;
    std::string holder = lockError == EWOULDBLOCK ? holderOf(fd_) : "";
    close(fd_);
    if (lockError == EWOULDBLOCK) {
      fail("data directory " + dataDir + " is in use by another storaged (" + holder + ")");
    }
    fail("cannot lock " + path + ": " + strerror(lockError));
  }
  auto pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    // The lock is held all the same; only the refusal message of a second storaged suffers.
    KJ_LOG(WARNING, "cannot write this process's pid into the data directory's lock file",
           path, strerror(errno));
  }
}

DataDirLock::~DataDirLock() { close(fd_); }

}  // namespace dynkv::storaged
