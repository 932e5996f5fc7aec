// The kj-promise AsyncClient on an application's own kj event loop: a batch of keys written,
// then read-modified-written, with every call of a step in flight at once. Nothing blocks but
// the one wait() per step at the top of main(); each key's read-modify-write is a chain of
// one .then() per step, and a failed call comes back as a value (dynkv::Result), never as an
// exception.
//
//   async-batch --seeds 127.0.0.1:7400,127.0.0.1:7401,127.0.0.1:7402
#include <cstdlib>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <kj/array.h>
#include <kj/async-io.h>

#include <dynkv/async-client.h>

namespace {

constexpr size_t KEYS = 10;

// A key's read-modify-write: read it, then write the value with "+" appended, with the read's
// context so that the write supersedes what was read instead of becoming a sibling.
kj::Promise<dynkv::Result<dynkv::Context>> appendPlus(dynkv::AsyncClient& client,
                                                      std::string key) {
  return client.get(key).then(
      [&client, key](dynkv::Result<dynkv::GetResult> read)
          -> kj::Promise<dynkv::Result<dynkv::Context>> {
        if (!read.ok()) return dynkv::Result<dynkv::Context>(read.error());
        auto values = read.value().values();
        std::string value = values.empty() ? "" : values[0];
        return client.put(key, value + "+", read.value().context);
      });
}

// How many of `results` failed, each failure printed with its key.
template <typename T>
size_t countFailures(const char* step, const std::vector<std::string>& keys,
                     const kj::Array<dynkv::Result<T>>& results) {
  size_t failed = 0;
  for (size_t i = 0; i < results.size(); i++) {
    if (results[i].ok()) continue;
    failed++;
    std::cerr << step << " " << keys[i] << ": " << dynkv::toString(results[i].error().kind())
              << ": " << results[i].error().what() << "\n";
  }
  return failed;
}

}  // namespace

int main(int argc, char** argv) {
  std::string seeds = getenv("DYNKV_SEEDS") ? getenv("DYNKV_SEEDS") : "127.0.0.1:7400";
  for (int i = 1; i + 1 < argc; i++) {
    if (std::string(argv[i]) == "--seeds") seeds = argv[++i];
  }
  dynkv::ClientOptions options;
  std::stringstream list(seeds);
  for (std::string s; std::getline(list, s, ',');) options.seeds.push_back(s);

  // The application's event loop; the client runs its calls on it.
  auto io = kj::setupAsyncIo();
  auto client = dynkv::AsyncClient::create(io.provider->getNetwork(), io.provider->getTimer(),
                                           options);

  std::string prefix = "batch:" + std::to_string(std::random_device{}()) + ":";
  std::vector<std::string> keys;
  for (size_t i = 0; i < KEYS; i++) keys.push_back(prefix + std::to_string(i));

  // 1. Every put started before any is awaited: the batch takes about one round trip.
  auto puts = kj::heapArrayBuilder<kj::Promise<dynkv::Result<dynkv::Context>>>(KEYS);
  for (size_t i = 0; i < KEYS; i++) puts.add(client->put(keys[i], "v" + std::to_string(i)));
  auto written = kj::joinPromises(puts.finish()).wait(io.waitScope);
  size_t failed = countFailures("put", keys, written);
  std::cout << "wrote " << KEYS - failed << " of " << KEYS << " keys concurrently\n";

  // 2. Every key's read-modify-write in flight at once.
  auto updates = kj::heapArrayBuilder<kj::Promise<dynkv::Result<dynkv::Context>>>(KEYS);
  for (auto& key : keys) updates.add(appendPlus(*client, key));
  auto updated = kj::joinPromises(updates.finish()).wait(io.waitScope);
  failed += countFailures("update", keys, updated);
  std::cout << "read-modify-wrote every key with its read's context\n";

  // 3. Read the batch back: each key holds one version, the updated one.
  auto gets = kj::heapArrayBuilder<kj::Promise<dynkv::Result<dynkv::GetResult>>>(KEYS);
  for (auto& key : keys) gets.add(client->get(key));
  auto read = kj::joinPromises(gets.finish()).wait(io.waitScope);
  failed += countFailures("get", keys, read);
  size_t right = 0;
  for (size_t i = 0; i < KEYS; i++) {
    if (!read[i].ok()) continue;
    auto values = read[i].value().values();
    bool ok = read[i].value().siblings.size() == 1 && values.size() == 1 &&
              values[0] == "v" + std::to_string(i) + "+";
    if (ok) {
      right++;
    } else {
      std::cerr << keys[i] << ": " << read[i].value().siblings.size() << " versions, first '"
                << (values.empty() ? "" : values[0]) << "'\n";
    }
  }
  std::cout << "read back " << right << " of " << KEYS << " keys with exactly their update\n";

  bool ok = failed == 0 && right == KEYS;
  std::cout << (ok ? "async batch OK" : "async batch FAILED") << std::endl;
  return ok ? 0 : 1;
}
