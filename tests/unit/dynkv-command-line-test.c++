// The dynkv tool's command line and JSON output, without a cluster: what each command line
// runs with, and what is refused, with which exit code and message.
#include <catch2/catch.hpp>

#include <limits>
#include <map>

#include "command-line.h"
#include "exit-codes.h"
#include "json-output.h"
#include "protocol-version.h"

using namespace dynkv::cli;

namespace {

std::map<std::string, std::string> noEnvironment;

std::variant<Invocation, Exit> parse(std::vector<const char*> args,
                                     const std::map<std::string, std::string>& environment =
                                         noEnvironment) {
  args.insert(args.begin(), "dynkv");
  return parseCommandLine(int(args.size()), args.data(),
                          [&](const std::string& name) -> std::optional<std::string> {
                            auto it = environment.find(name);
                            if (it == environment.end()) return std::nullopt;
                            return it->second;
                          });
}

Invocation invocation(std::vector<const char*> args,
                      const std::map<std::string, std::string>& environment = noEnvironment) {
  auto parsed = parse(args, environment);
  if (auto exit = std::get_if<Exit>(&parsed)) FAIL("exit " << exit->code << ": " << exit->text);
  return std::get<Invocation>(parsed);
}

Exit exitOf(std::vector<const char*> args) {
  auto parsed = parse(args);
  REQUIRE(std::holds_alternative<Exit>(parsed));
  return std::get<Exit>(parsed);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("dynkv: a get with flags before and after the command") {
  auto i = invocation({"--seeds", "10.0.0.1:7400,10.0.0.2:7400", "get", "cart", "--r", "3",
                       "--timeout", "500", "--json"});
  CHECK(i.command == "get");
  CHECK(i.key == "cart");
  CHECK(i.seeds == std::vector<std::string>{"10.0.0.1:7400", "10.0.0.2:7400"});
  CHECK(i.r == 3u);
  CHECK(!i.n);
  CHECK(i.timeoutMillis == 500);
  CHECK(i.timeoutGiven);
  CHECK(i.json);
}

TEST_CASE("dynkv: commands, their arguments and defaults") {
  auto put = invocation({"put", "k", "-", "--context", "TOKEN"});
  CHECK(put.command == "put");
  CHECK(put.value == "-");
  CHECK(put.context == "TOKEN");
  CHECK(put.seeds == std::vector<std::string>{"127.0.0.1:7400"});
  CHECK(put.cluster == "dynkv");
  CHECK(!put.timeoutGiven);
  CHECK(invocation({"delete", "k"}).command == "del");
  auto inspect = invocation({"admin", "inspect", "127.0.0.1:7401", "k", "--json"});
  CHECK(inspect.command == "admin inspect");
  CHECK(inspect.address == "127.0.0.1:7401");
  CHECK(inspect.key == "k");
  auto repair = invocation({"admin", "repair", "--partition", "0", "--node", "h:1"});
  CHECK(repair.partition == 0u);
  CHECK(repair.node == "h:1");
  auto up = invocation({"local", "up", "--nodes", "5", "--dir", "/tmp/c", "--base-port",
                        "20000", "--durability", "buffered"});
  CHECK(up.command == "local up");
  CHECK(up.nodes == 5);
  CHECK(up.basePort == 20000);
  CHECK(up.durability == "buffered");
  CHECK_FALSE(up.httpBasePort);  // the default follows the base port (dynkv.c++)
  CHECK(up.host == "127.0.0.1");
  CHECK(invocation({"local", "up", "--dir", "d", "--listen", "10.1.2.3"}).host == "10.1.2.3");
  CHECK(invocation({"local", "up", "--dir", "d", "--http-port", "9000"}).httpBasePort == 9000);
  CHECK(invocation({"local", "up", "--dir", "d", "--http-port", "0"}).httpBasePort == 0);
}

TEST_CASE("dynkv: admin remove needs --force; --even-if-alive insists") {
  auto remove = invocation({"admin", "remove", "--force", "10.0.0.4:7400"});
  CHECK(remove.command == "admin remove");
  CHECK(remove.address == "10.0.0.4:7400");
  CHECK(remove.force);
  CHECK_FALSE(remove.evenIfAlive);
  auto insist = invocation({"admin", "remove", "h:1", "--force", "--even-if-alive", "--json"});
  CHECK(insist.evenIfAlive);
  CHECK(insist.json);

  for (auto args : {std::vector<const char*>{"admin", "remove", "h:1"},
                    std::vector<const char*>{"admin", "remove", "h:1", "--even-if-alive"}}) {
    auto refused = exitOf(args);
    CHECK(refused.code == int(ExitCode::USAGE));
    CHECK(contains(refused.text, "--force"));
    CHECK(contains(refused.text, "dynkv admin leave h:1"));
  }
  CHECK(exitOf({"admin", "remove", "--force"}).code == 2);  // no node
  auto help = exitOf({"admin", "remove", "--help"});
  CHECK(help.code == 0);
  CHECK(contains(help.text, "--even-if-alive"));
  CHECK(contains(exitOf({"--help"}).text, "admin remove --force"));  // in the exit codes
}

TEST_CASE("dynkv: status hides removed members unless --all") {
  CHECK_FALSE(invocation({"status"}).all);
  CHECK(invocation({"status", "--all", "--json"}).all);
}

TEST_CASE("dynkv: admin join waits 30 s for the node by default; --timeout says how long") {
  auto join = invocation({"admin", "join", "127.0.0.1:7403"});
  CHECK(join.timeoutMillis == 30000);
  CHECK(invocation({"admin", "join", "127.0.0.1:7403", "--timeout", "5000"}).timeoutMillis ==
        5000);
  CHECK(invocation({"--timeout", "700", "admin", "join", "h:1"}).timeoutMillis == 700);
  CHECK(invocation({"admin", "leave", "h:1"}).timeoutMillis == 2000);  // a call's deadline
  CHECK(contains(exitOf({"admin", "join", "--help"}).text, "default 30000"));
}

TEST_CASE("dynkv: admin snapshot takes --node and an absolute DIR; waits 10 min by default") {
  auto snapshot = invocation({"admin", "snapshot", "--node", "127.0.0.1:7401", "/srv/snap"});
  CHECK(snapshot.command == "admin snapshot");
  CHECK(snapshot.node == "127.0.0.1:7401");
  CHECK(snapshot.snapshotDir == "/srv/snap");
  CHECK(snapshot.timeoutMillis == 600000);
  CHECK(invocation({"admin", "snapshot", "--node", "h:1", "/s", "--timeout", "900"})
            .timeoutMillis == 900);

  auto relative = exitOf({"admin", "snapshot", "--node", "h:1", "snap"});
  CHECK(relative.code == 2);
  CHECK(contains(relative.text, "absolute path"));
  CHECK(contains(relative.text, "'snap'"));
  CHECK(exitOf({"admin", "snapshot", "/srv/snap"}).code == 2);  // --node is required
  auto badNode = exitOf({"admin", "snapshot", "--node", "h", "/srv/snap"});
  CHECK(badNode.code == 2);
  CHECK(contains(badNode.text, "bad node address 'h'"));
  CHECK(exitOf({"admin", "snapshot", "--node", "h:1"}).code == 2);  // DIR is required
}

TEST_CASE("dynkv: where takes KEY, --namespace (or --ns) and --n") {
  auto where = invocation({"where", "cart:alice", "--namespace", "carts", "--n", "5", "--json"});
  CHECK(where.command == "where");
  CHECK(where.key == "cart:alice");
  CHECK(where.ns == "carts");
  CHECK(where.n == 5u);
  CHECK(where.json);
  CHECK(invocation({"where", "k", "--ns", "x"}).ns == "x");
  CHECK_FALSE(invocation({"where", "k"}).n.has_value());
  CHECK(exitOf({"where"}).code == 2);
}

TEST_CASE("dynkv: a node address that is not HOST:PORT is a usage error naming it") {
  for (auto bad : {"localhost", "h:", ":7400", "h:0", "h:65536", "h:74x", "h:123456",
                   "a b:1"}) {
    INFO(bad);
    for (auto verb : {"join", "leave", "remove"}) {
      std::vector<const char*> args{"admin", verb, bad};
      if (std::string(verb) == "remove") args.push_back("--force");
      auto e = exitOf(args);
      CHECK(e.code == int(ExitCode::USAGE));
      CHECK(contains(e.text, std::string("bad node address '") + bad + "'"));
      CHECK(contains(e.text, "HOST:PORT"));
    }
  }
  std::string huge(5000, 'x');
  auto e = exitOf({"admin", "join", huge.c_str()});
  CHECK(e.code == 2);
  CHECK(e.text.size() < 400);
  for (auto good : {"h:1", "node-3.example.com:65535", "[::1]:7400", "10.0.0.1:7400"}) {
    CHECK(invocation({"admin", "join", good}).address == good);
  }
}

TEST_CASE("dynkv: seeds and secret fall back to the environment") {
  std::map<std::string, std::string> environment = {{"DYNKV_SEEDS", "a:1,b:2"},
                                                    {"DYNKV_SECRET", "s3cret"}};
  auto i = invocation({"status"}, environment);
  CHECK(i.seeds == std::vector<std::string>{"a:1", "b:2"});
  CHECK(i.secret == "s3cret");
  auto flags = invocation({"status", "--seeds", "c:3", "--secret", "other"}, environment);
  CHECK(flags.seeds == std::vector<std::string>{"c:3"});
  CHECK(flags.secret == "other");
}

TEST_CASE("dynkv: --help and --version answer on stdout with exit 0") {
  auto help = exitOf({"--help"});
  CHECK(help.code == 0);
  for (auto part : {"get", "put", "admin", "local", "--seeds", "--timeout", "--secret",
                    "DYNKV_SEEDS", "exit codes", "3  unavailable", "default 2000"}) {
    CHECK(contains(help.text, part));
  }
  auto getHelp = exitOf({"get", "-h"});
  CHECK(getHelp.code == 0);
  CHECK(contains(getHelp.text, "KEY"));
  CHECK(contains(getHelp.text, "--r"));
  auto repairHelp = exitOf({"admin", "repair", "--help"});
  CHECK(repairHelp.code == 0);
  CHECK(contains(repairHelp.text, "--partition"));
  auto version = exitOf({"--version"});
  CHECK(version.code == 0);
  CHECK(contains(version.text, "dynkv "));
  CHECK(contains(version.text, "git "));
  CHECK(contains(version.text, "protocol " + std::to_string(dynkv::PROTOCOL_VERSION)));
}

TEST_CASE("dynkv: usage errors name the flag and exit 2") {
  auto typo = exitOf({"get", "k", "--tiemout", "500"});
  CHECK(typo.code == int(ExitCode::USAGE));
  CHECK(contains(typo.text, "--tiemout"));
  auto json = exitOf({"get", "--jsn", "k"});
  CHECK(json.code == 2);
  CHECK(contains(json.text, "--jsn"));
  auto negative = exitOf({"get", "k", "--r", "-1"});
  CHECK(negative.code == 2);
  CHECK(contains(negative.text, "--r"));
  CHECK(contains(negative.text, "-1"));
  CHECK(exitOf({"get", "k", "--r", "4294967297"}).code == 2);
  CHECK(exitOf({"get", "k", "--n", "x"}).code == 2);
  CHECK(exitOf({"admin", "repair", "--partition", "-3"}).code == 2);
  CHECK(exitOf({"local", "up", "--dir", "d", "--base-port", "70000"}).code == 2);
  CHECK(exitOf({"local", "up", "--dir", "d", "--durability", "fast"}).code == 2);
  CHECK(exitOf({}).code == 2);
  CHECK(exitOf({"frobnicate"}).code == 2);
  CHECK(exitOf({"get"}).code == 2);
  CHECK(exitOf({"get", "a", "b"}).code == 2);
  CHECK(exitOf({"admin"}).code == 2);
  CHECK(exitOf({"status", "--seeds", ","}).code == 2);
}

TEST_CASE("dynkv: a mistyped --secret never echoes the secret") {
  auto typo = exitOf({"status", "--secrt", "hunter2"});
  CHECK(typo.code == 2);
  CHECK(contains(typo.text, "--secrt"));
  CHECK(!contains(typo.text, "hunter2"));
}

TEST_CASE("dynkv json: values that are not UTF-8 go out in base64, flagged") {
  CHECK(isUtf8("plain"));
  CHECK(isUtf8("caf\xc3\xa9"));
  CHECK(!isUtf8("\xff\xfe"));
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foo") == "Zm9v");
  CHECK(base64(std::string("\xff\xfe\x00", 3)) == "//4A");
  nlohmann::ordered_json text, binary;
  putValues(text, "siblings", {"a", "b"});
  CHECK(text.dump() == R"({"siblings":["a","b"]})");
  putValues(binary, "siblings", {"a", std::string("\xff\x00", 2)});
  CHECK(binary.dump() == R"({"siblings":["YQ==","/wA="],"siblings_base64":true})");
}

TEST_CASE("dynkv json: spaced output, infinity as null") {
  nlohmann::ordered_json j = {{"siblings", {"x", "y"}},
                              {"phi", std::numeric_limits<double>::infinity()},
                              {"nested", {{"a", 1}}}};
  CHECK(spacedDump(j) == R"({"siblings": ["x", "y"], "phi": null, "nested": {"a": 1}})");
  CHECK(nlohmann::json::parse(spacedDump(j))["phi"].is_null());
}

TEST_CASE("dynkv: errors in the user's terms, without kj internals") {
  CHECK(userMessage("unavailable: cannot fetch the cluster view: no node answered; errors = "
                    "no-such-host.invalid:7400: DNS lookup failed.; params.host = "
                    "no-such-host.invalid; params.service = ; gai_strerror(status) = Name or "
                    "service not known; ") ==
        "unavailable: cannot fetch the cluster view: no node answered: cannot reach "
        "no-such-host.invalid:7400: DNS lookup failed: Name or service not known");
  CHECK(userMessage("no seed answered: 127.0.0.1:1: connect(): Connection refused; ") ==
        "no seed answered: cannot reach 127.0.0.1:1: Connection refused");
  CHECK(userMessage("h:1: kj/async-io-unix.c++:1234: failed: remote exception: "
                    "authentication failed: wrong cluster secret\nstack: 1234 5678") ==
        "h:1: authentication failed: wrong cluster secret");
}

TEST_CASE("dynkv: a node that refuses our certificate, in the user's terms") {
  CHECK(userMessage("no node answered: 127.0.0.1:7400: kj/compat/tls.c++:80: failed: OpenSSL "
                    "error; message = error:0A000418:SSL routines::tlsv1 alert unknown ca; ") ==
        "no node answered: 127.0.0.1:7400: TLS failed: tlsv1 alert unknown ca");
  CHECK(dynkv::cli::saysRefused("h:1: permission denied: admin commands need a certificate with "
                                "role admin; this caller's role is client"));
}

TEST_CASE("dynkv: a node of another cluster, in the user's terms") {
  CHECK(userMessage("127.0.0.1:28711: expected params.getCluster() == "
                    "kj::StringPtr(options.cluster.c_str()) [wrong == dynkv]; wrong cluster: this "
                    "node belongs to another cluster; options.cluster.c_str() = dynkv; "
                    "params.getCluster() = wrong") ==
        "127.0.0.1:28711: wrong cluster: this node belongs to cluster 'dynkv', not 'wrong'");
}

TEST_CASE("dynkv: a node that speaks another protocol is a refusal, in the user's terms") {
  auto refusal = *dynkv::protocolMismatch(2, "this node", "the client", {1, 1});
  auto said = userMessage("127.0.0.1:7400: storaged/service.c++:601: failed: remote exception: " +
                          refusal + "\nstack: 1234");
  CHECK(said == "127.0.0.1:7400: " + refusal);
  CHECK(dynkv::cli::saysRefused(said));
}
