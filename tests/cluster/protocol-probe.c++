// A client that claims a protocol version of its choosing: connects to a node through the
// same NodePool every client and node uses (NodePool::claimProtocol), authenticates, and
// reports the outcome as the dynkv tool would (its message and exit code). Lets
// protocol-test.sh see a real storaged refuse a version it does not speak.
//
//   protocol-probe HOST:PORT PROTOCOL
#include <kj/async-io.h>
#include <kj/debug.h>

#include <iostream>
#include <string>

#include "command-line.h"
#include "exit-codes.h"
#include "failure-detector.h"
#include "limits.h"
#include "node-pool.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: protocol-probe HOST:PORT PROTOCOL" << std::endl;
    return int(dynkv::cli::ExitCode::USAGE);
  }
  std::string address = argv[1];
  auto io = kj::setupAsyncIo();
  dynkv::FailureDetector detector;
  dynkv::NodePool pool(io.provider->getNetwork(), io.provider->getTimer(), detector, "dynkv", "",
                       dynkv::Limits().maxValueBytes);
  pool.claimProtocol(uint32_t(std::stoul(argv[2])));
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
                // The node capability comes once Gateway.authenticate has been answered.
                pool.node(address).wait(io.waitScope);
              })) {
    auto message = dynkv::cli::userMessage(address + ": " + e->getDescription().cStr());
    std::cerr << "dynkv: " << message << std::endl;
    return int(dynkv::cli::saysRefused(message) ? dynkv::cli::ExitCode::REFUSED
                                                : dynkv::cli::ExitCode::UNAVAILABLE);
  }
  std::cout << "ok" << std::endl;
  return 0;
}
