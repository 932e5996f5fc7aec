// Runs a libFuzzer target without libFuzzer: how the targets are built with any compiler
// (DYNKV_FUZZ off), so that they keep compiling, a crash a fuzzer found replays anywhere, and
// the test suite runs each target over its seed corpus (tests/fuzz/CMakeLists.txt).
//
//   TARGET [--mutations N] PATH...
// runs the target once on each file named, and on each regular file of each directory named;
// with --mutations, also on N mutants of each (bytes flipped, overwritten, cut, inserted or
// repeated), from a fixed seed, so a run is the same every time: a cheap stand-in for the
// fuzzer that still walks the decoders' error paths a little past the seeds. An input that
// crashes the target is written to ./crash-standalone (replay it: TARGET crash-standalone).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

const std::string* current = nullptr;  // the input being run, for the crash handler

void saveCrash(int signal) {
  // Async-signal-safe: open, write and close only, then the default action.
  if (current != nullptr) {
    int fd = open("crash-standalone", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      if (write(fd, current->data(), current->size()) < 0) {
      }
      close(fd);
    }
    const char message[] = "standalone: the input that crashed is in ./crash-standalone\n";
    if (write(2, message, sizeof(message) - 1) < 0) {
    }
  }
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

void run(const std::string& bytes) {
  // A copy of its own, so that a read past the end is past an allocation (ASan sees it).
  current = &bytes;
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(copy.data(), copy.size());
  current = nullptr;
}

std::string mutate(std::string bytes, std::mt19937_64& random) {
  auto below = [&](size_t n) { return n == 0 ? 0 : size_t(random() % n); };
  int edits = 1 + int(random() % 4);
  for (int e = 0; e < edits; e++) {
    size_t at = below(bytes.size());
    switch (random() % 6) {
      case 0:  // flip a bit
        if (!bytes.empty()) bytes[at] = char(bytes[at] ^ (1 << (random() % 8)));
        break;
      case 1: {  // an interesting byte
        static const uint8_t INTERESTING[] = {0, 1, 0x7f, 0x80, 0xfe, 0xff};
        if (!bytes.empty()) bytes[at] = char(INTERESTING[random() % sizeof(INTERESTING)]);
        break;
      }
      case 2:  // cut the tail
        bytes.resize(at);
        break;
      case 3:  // insert a random byte
        bytes.insert(bytes.begin() + ptrdiff_t(at), char(random()));
        break;
      case 4: {  // repeat a slice
        size_t len = std::min<size_t>(below(bytes.size() - at) + 1, bytes.size() - at);
        bytes.insert(at, bytes.substr(at, len));
        break;
      }
      case 5:  // erase a slice
        bytes.erase(at, below(bytes.size() - at) + 1);
        break;
    }
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mutations = 0;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = size_t(std::strtoull(argv[++i], nullptr, 10));
    } else if (std::filesystem::is_directory(arg)) {
      std::vector<std::filesystem::path> inDir;
      for (auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file()) inDir.push_back(entry.path());
      }
      std::sort(inDir.begin(), inDir.end());  // the same order, so the same mutants, each run
      files.insert(files.end(), inDir.begin(), inDir.end());
    } else {
      files.emplace_back(arg);
    }
  }
  for (int signal : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(signal, saveCrash);
  std::mt19937_64 random(0x64796e6b76);
  for (auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      fprintf(stderr, "cannot read %s\n", path.c_str());
      return 1;
    }
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    run(bytes);
    for (size_t m = 0; m < mutations; m++) run(mutate(bytes, random));
  }
  printf("ran %zu inputs and %zu mutants of each\n", files.size(), mutations);
  return 0;
}
