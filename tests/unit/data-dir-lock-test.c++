// The data-directory lock (data-dir-lock.h) within one process: flock(2) locks belong to an
// open file, so a second DataDirLock on the same directory conflicts with the first here just
// as a second storaged's does (tests/cluster/cluster-test.c++ runs the real processes).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <kj/exception.h>

#include "data-dir-lock.h"
#include "temp-dir.h"

namespace dynkv::storaged {
namespace {

TEST_CASE("data-dir lock: a second holder is refused, naming the directory and the holder") {
  TempDir dir("dynkv-lock-test");
  auto data = dir.path + "/data";  // created by the lock, as on a node's first start
  DataDirLock first(data);

  std::ifstream file(data + "/" + DataDirLock::FILE_NAME);
  std::stringstream contents;
  contents << file.rdbuf();
  CHECK(contents.str() == std::to_string(getpid()) + "\n");

  try {
    DataDirLock second(data);
    FAIL("a second lock on the same data directory was granted");
  } catch (const kj::Exception& e) {
    CHECK(std::string(e.getDescription().cStr()) ==
          "data directory " + data + " is in use by another storaged (pid " +
              std::to_string(getpid()) + ")");
  }
}

TEST_CASE("data-dir lock: released when its holder goes, the directory can be locked again") {
  TempDir dir("dynkv-lock-test");
  { DataDirLock first(dir.path); }
  CHECK_NOTHROW(DataDirLock(dir.path));
}

}  // namespace
}  // namespace dynkv::storaged
