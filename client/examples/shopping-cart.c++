// The paper's shopping cart (§4.4): two application servers add items to the same cart at
// the same time. Neither write is lost: the next read returns both versions as siblings,
// the application merges them by union (semantic reconciliation), and writing the merged
// cart with the read's context collapses the siblings into one version.
//
//   shopping-cart --seeds 127.0.0.1:7400,127.0.0.1:7401,127.0.0.1:7402
#include <cstdlib>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <dynkv/client.h>

namespace {

using Cart = std::set<std::string>;

Cart decode(const std::string& value) {
  Cart cart;
  std::stringstream in(value);
  std::string item;
  while (std::getline(in, item)) {
    if (!item.empty()) cart.insert(item);
  }
  return cart;
}

std::string encode(const Cart& cart) {
  std::string out;
  for (auto& item : cart) out += item + "\n";
  return out;
}

std::string show(const Cart& cart) {
  std::string out = "{";
  for (auto& item : cart) out += (out.size() > 1 ? ", " : "") + item;
  return out + "}";
}

// The cart's resolver: the union of every concurrent version. (Deleted versions add
// nothing, which is why, as the paper notes, a deleted item can resurface.)
std::string unionOfCarts(const std::vector<dynkv::Version>& siblings) {
  Cart merged;
  for (auto& v : siblings) {
    if (v.deleted) continue;
    for (auto& item : decode(v.value)) merged.insert(item);
  }
  return encode(merged);
}

void addToCart(dynkv::Client& client, const std::string& key, const std::string& item,
               const dynkv::Context& context, Cart cart) {
  cart.insert(item);
  client.put(key, encode(cart), context);
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

  try {
    // Two application servers, each with its own client.
    dynkv::Client alice(options), bob(options);
    std::string key = "cart:" + std::to_string(std::random_device{}());

    alice.put(key, encode({"milk"}));
    std::cout << "cart " << key << " starts as {milk}\n";

    // Both servers read the cart, then each adds an item at the same time.
    auto readA = alice.get(key);
    auto readB = bob.get(key);
    std::thread a([&]() { addToCart(alice, key, "book", readA.context, decode(readA.values()[0])); });
    std::thread b([&]() { addToCart(bob, key, "pen", readB.context, decode(readB.values()[0])); });
    a.join();
    b.join();

    auto conflicted = alice.get(key);
    std::cout << "after concurrent adds, the read returns " << conflicted.siblings.size()
              << " siblings:\n";
    for (auto& v : conflicted.values()) std::cout << "  " << show(decode(v)) << "\n";

    auto merged = dynkv::resolve(conflicted, unionOfCarts);
    alice.put(key, *merged, conflicted.context);
    std::cout << "resolved by union and written back with the read's context\n";

    auto final = bob.get(key);
    std::cout << "now the read returns " << final.siblings.size() << " version: "
              << show(decode(final.values().at(0))) << "\n";

    bool ok = conflicted.siblings.size() == 2 && final.siblings.size() == 1 &&
              decode(final.values()[0]) == Cart{"milk", "book", "pen"};
    std::cout << (ok ? "shopping cart OK" : "shopping cart FAILED") << std::endl;
    return ok ? 0 : 1;
  } catch (const dynkv::Error& e) {
    std::cerr << "shopping-cart: " << e.what() << std::endl;
    return 1;
  }
}
