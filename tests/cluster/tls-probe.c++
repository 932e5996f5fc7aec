// A caller holding a certificate of its choosing (or none) that makes one call of one role's
// capability, through the NodePool every client and node uses, and reports the outcome as the
// dynkv tool would: "ok" and exit 0, or the message and exit 4 (refused: permission denied) or
// 3 (anything else: the connection or handshake failed). Lets tls-test.sh see which calls a
// real storaged lets each certificate reach.
//
//   tls-probe HOST:PORT CA CERT KEY ping|gossip|status   (CA "-": plain TCP)
#include <kj/async-io.h>
#include <kj/debug.h>

#include <iostream>
#include <string>

#include "command-line.h"
#include "exit-codes.h"
#include "failure-detector.h"
#include "limits.h"
#include "node-pool.h"
#include "tls.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: tls-probe HOST:PORT CA CERT KEY ping|gossip|status" << std::endl;
    return int(dynkv::cli::ExitCode::USAGE);
  }
  std::string address = argv[1], call = argv[5];
  auto io = kj::setupAsyncIo();
  dynkv::FailureDetector detector;
  kj::Own<dynkv::Tls> tls;
  dynkv::NodePool pool(io.provider->getNetwork(), io.provider->getTimer(), detector, "dynkv", "",
                       dynkv::Limits().maxValueBytes);
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
                if (std::string(argv[2]) != "-") {
                  tls = kj::heap<dynkv::Tls>(dynkv::TlsFiles{argv[2], argv[3], argv[4]});
                  pool.useTls(tls->context());
                }
                auto& timer = io.provider->getTimer();
                auto within = [&](auto promise) {
                  return timer.timeoutAfter(5 * kj::SECONDS, kj::mv(promise)).wait(io.waitScope);
                };
                if (call == "ping") {
                  auto node = within(pool.node(address));
                  within(node.pingRequest().send().ignoreResult());
                } else if (call == "gossip") {
                  auto peer = within(pool.peer(address));
                  within(peer.gossipRequest().send().ignoreResult());
                } else if (call == "status") {
                  auto admin = within(pool.admin(address));
                  within(admin.statusRequest().send().ignoreResult());
                } else {
                  KJ_FAIL_REQUIRE("unknown call", call.c_str());
                }
              })) {
    auto message = dynkv::cli::userMessage(address + ": " + e->getDescription().cStr());
    std::cout << message << std::endl;
    return int(dynkv::cli::saysRefused(message) ? dynkv::cli::ExitCode::REFUSED
                                                : dynkv::cli::ExitCode::UNAVAILABLE);
  }
  std::cout << "ok" << std::endl;
  return 0;
}
