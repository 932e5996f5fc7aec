// Uses only the installed public headers and library: a client whose one seed is a closed
// port must fail its first call with UNAVAILABLE.
#include <dynkv/async-client.h>
#include <dynkv/client.h>

#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: app HOST:PORT (a closed port)" << std::endl;
    return 2;
  }
  dynkv::ClientOptions options;
  options.seeds = {argv[1]};
  options.timeout = std::chrono::milliseconds(2000);
  dynkv::Client client(options);
  try {
    client.get("k");
    std::cerr << "install-app: get succeeded against a closed port" << std::endl;
    return 1;
  } catch (const dynkv::Error& e) {
    if (e.kind() != dynkv::ErrorKind::UNAVAILABLE) {
      std::cerr << "install-app: expected UNAVAILABLE, got " << dynkv::toString(e.kind()) << ": "
                << e.what() << std::endl;
      return 1;
    }
  }
  std::cout << "install-app OK" << std::endl;
  return 0;
}
