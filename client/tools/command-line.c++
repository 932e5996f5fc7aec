#include "command-line.h"

#include <CLI/CLI.hpp>
#include <cstdint>
#include <regex>
#include <sstream>

#include "command-line-parse.h"
#include "dynkv-version.h"
#include "protocol-version.h"
#include "exit-codes.h"

namespace dynkv::cli {

namespace {

std::string versionText() {
  return std::string("dynkv ") + DYNKV_VERSION + " (git " + DYNKV_GIT_REVISION + ", " +
         protocolText() + ")";
}

std::vector<std::string> splitCommas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    out.push_back(item.substr(b, item.find_last_not_of(" \t") - b + 1));
  }
  return out;
}

struct CommandLine {
  CLI::App app{"dynkv: read, write and administer a dynkv cluster; run one on this machine",
               "dynkv"};
  Invocation invocation;
  std::string seeds;
  bool seedsGiven = false;
  bool secretGiven = false;

  // A whole-number flag, refused (never wrapped) outside [min, max]; `set` runs when given.
  template <typename Set>
  void number(CLI::App* to, const std::string& flag, const std::string& valueName,
              const std::string& meaning, int64_t min, int64_t max, Set set) {
    // CLI11 shows the range after the value's name: "--r R:INT in [1 - 64]".
    to->add_option_function<int64_t>("--" + flag, set, meaning)
        ->type_name(valueName)
        ->check(CLI::Range(min, max));
  }

  // How to reach the cluster: every command that talks to one takes these. `timeoutMeaning`:
  // what --timeout bounds for this command.
  void connection(CLI::App* to,
                  const std::string& timeoutMeaning =
                      "deadline of each call in milliseconds (default 2000)") {
    auto& i = invocation;
    to->add_option_function<std::string>(
          "--seeds",
          [this](const std::string& v) {
            seeds = v;
            seedsGiven = true;
          },
          "nodes to contact (default $DYNKV_SEEDS, else 127.0.0.1:7400)")
        ->type_name("HOST:PORT,...");
    to->add_option("--cluster", i.cluster, "the cluster's name (default dynkv)")
        ->type_name("NAME");
    to->add_option_function<std::string>(
          "--secret",
          [this](const std::string& v) {
            invocation.secret = v;
            secretGiven = true;
          },
          "the cluster's shared secret (default $DYNKV_SECRET, else none); never printed")
        ->type_name("SECRET");
    to->add_option("--tls-ca", i.tlsCa, "the cluster CA's certificate: with --tls-cert and "
                   "--tls-key, connect over mutual TLS (default $DYNKV_TLS_CA, else none: "
                   "plain TCP)")
        ->type_name("FILE");
    to->add_option("--tls-cert", i.tlsCert, "this caller's certificate (client:NAME, or "
                   "admin:NAME for admin commands; default $DYNKV_TLS_CERT)")
        ->type_name("FILE");
    to->add_option("--tls-key", i.tlsKey, "its private key (default $DYNKV_TLS_KEY)")
        ->type_name("FILE");
    number(to, "timeout", "MS", timeoutMeaning, 1, 3600000, [this](int64_t v) {
             invocation.timeoutMillis = uint32_t(v);
             invocation.timeoutGiven = true;
           });
    to->add_flag("--json", i.json, "machine-readable output: one JSON document");
  }

  void keySpace(CLI::App* to) {
    to->add_option("--ns,--namespace", invocation.ns,
                   "namespace of KEY (default: the default namespace)")
        ->type_name("NAMESPACE");
  }

  // Per-call quorum and the namespace's kind: the data commands take these.
  void quorum(CLI::App* to) {
    keySpace(to);
    to->add_flag("--lww", invocation.lww, "the namespace is last-write-wins");
    auto& i = invocation;
    number(to, "n", "N", "replicas of the key for this call (default 3)", 1, 64,
           [&i](int64_t v) { i.n = uint32_t(v); });
    number(to, "r", "R", "replies a read waits for (default 2)", 1, 64,
           [&i](int64_t v) { i.r = uint32_t(v); });
    number(to, "w", "W", "acknowledgements a write waits for (default 2)", 1, 64,
           [&i](int64_t v) { i.w = uint32_t(v); });
  }

  CLI::App* command(CLI::App* parent, const std::string& name, const std::string& meaning) {
    auto* sub = parent->add_subcommand(name, meaning);
    sub->footer("Exit codes and every command: dynkv --help");
    return sub;
  }

  CommandLine() {
    auto& i = invocation;
    // Given twice, the last one counts.
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.set_version_flag("--version", versionText(), "print the version and git revision");
    app.require_subcommand(1);
    // Flags before the command, as in `dynkv --seeds H:P get KEY`, apply to it too.
    connection(&app);
    quorum(&app);
    app.footer(std::string(EXIT_CODE_TABLE) +
               "\nenvironment:\n"
               "  DYNKV_SEEDS   nodes to contact when --seeds is not given\n"
               "  DYNKV_SECRET  the cluster secret when --secret is not given\n"
               "  DYNKV_TLS_CA, DYNKV_TLS_CERT, DYNKV_TLS_KEY\n"
               "                the TLS files when --tls-ca, --tls-cert, --tls-key are not\n"
               "                given (`dynkv local up --tls` prints them)\n"
               "\n`dynkv COMMAND --help` shows each command's arguments and flags.");

    auto* get = command(&app, "get", "print each sibling on a line, then the context");
    get->add_option("KEY", i.key, "the key")->required();
    connection(get);
    quorum(get);

    auto* put = command(&app, "put", "write VALUE; it supersedes what --context saw");
    put->add_option("KEY", i.key, "the key")->required();
    put->add_option("VALUE", i.value, "the value; - reads standard input")->required();
    put->add_option("--context", i.context, "the context of the read this write supersedes "
                    "(default none: a blind write, kept beside concurrent versions)")
        ->type_name("TOKEN");
    connection(put);
    quorum(put);

    auto* del = command(&app, "del", "write a deletion (also: delete)");
    del->alias("delete");
    del->add_option("KEY", i.key, "the key")->required();
    del->add_option("--context", i.context, "the context of the read this deletion "
                    "supersedes (default none)")
        ->type_name("TOKEN");
    connection(del);
    quorum(del);

    auto* where = command(&app, "where",
                          "KEY's partition, its preference list and fallbacks, and what each of "
                          "those nodes holds for it (no quorum, no read repair)");
    where->add_option("KEY", i.key, "the key")->required();
    keySpace(where);
    number(where, "n", "N", "replicas of the key (default 3)", 1, 64,
           [&i](int64_t v) { i.n = uint32_t(v); });
    connection(where);

    auto* ring = command(&app, "ring", "print the partition map: nodes and their shares");
    connection(ring);

    auto* status = command(&app, "status",
                           "members, their state, shares, pending transfers and the failure "
                           "detector's phi; then each member's own report (anti-entropy, "
                           "tombstones, tree memory, rebuilding, hints held)");
    status->add_option("--node", i.node, "ask this node (default: the first seed that answers)")
        ->type_name("HOST:PORT");
    status->add_flag("--all", i.all, "list removed members too (hidden by default)");
    connection(status);

    auto* admin = command(&app, "admin",
                          "join, leave, remove, inspect, repair or snapshot nodes");
    admin->require_subcommand(1);
    auto* join = command(admin, "join",
                         "add a running node to the ring; waits until the cluster knows it");
    join->add_option("HOST:PORT", i.address, "the node's address")->required();
    connection(join, "how long to wait for the node to be known to the cluster and joined, "
                     "in milliseconds (default 30000)");
    auto* leave = command(admin, "leave", "hand a node's partitions off and remove it");
    leave->add_option("HOST:PORT", i.address, "the node's address")->required();
    connection(leave);
    auto* remove = command(admin, "remove",
                           "take a node that is dead for good out of the ring at once, "
                           "without a hand-off (needs --force; a live node should leave)");
    remove->add_option("HOST:PORT", i.address, "the node's address")->required();
    remove->add_flag("--force", i.force,
                     "required: the node's partitions go to others without a hand-off from "
                     "it; the other replicas and anti-entropy refill them");
    remove->add_flag("--even-if-alive", i.evenIfAlive,
                     "remove it even though the node asked does not suspect it is down");
    connection(remove);
    auto* inspect = command(admin, "inspect",
                            "what that one node holds for KEY (no quorum): each copy, as a "
                            "replica or as a stand-in (a hint for another node)");
    inspect->add_option("HOST:PORT", i.address, "the node's address")->required();
    inspect->add_option("KEY", i.key, "the key")->required();
    keySpace(inspect);
    number(inspect, "n", "N", "replicas of the key: the preference list's length (default 3)",
           1, 64, [&i](int64_t v) { i.n = uint32_t(v); });
    connection(inspect);
    auto* repair = command(admin, "repair",
                           "run anti-entropy now, with progress every 0.5 s and a report");
    number(repair, "partition", "P", "repair this partition only (default: all)", 0, INT32_MAX,
           [&i](int64_t v) { i.partition = uint32_t(v); });
    repair->add_option("--node", i.node, "on this node only (default: every member in turn)")
        ->type_name("HOST:PORT");
    connection(repair);

    auto* snapshot = command(admin, "snapshot",
                             "copy a node's whole store, consistent and compacted, into DIR on "
                             "that node's host while it keeps serving (restore: README.md)");
    snapshot->add_option("DIR", i.snapshotDir,
                         "an absolute path on the node's host that does not exist or is empty")
        ->required();
    snapshot->add_option("--node", i.node, "the node to snapshot")
        ->type_name("HOST:PORT")
        ->required();
    connection(snapshot, "how long to wait for the copy, in milliseconds (default 600000)");

    auto* certs = command(admin, "certs",
                          "write a new cluster CA and certificates issued by it into DIR: "
                          "for each node, a client and an admin (an existing CA is kept)");
    certs->add_option("DIR", i.certsDir, "the directory to write them into")->required();
    certs->add_option("--nodes", i.certNodes, "a certificate for each node named (node:NAME)")
        ->type_name("NAME,...")
        ->delimiter(',');
    certs->add_option("--client", i.certClient, "the client certificate's name (client:NAME; "
                      "default app; empty: none)")
        ->type_name("NAME");
    certs->add_option("--admin", i.certAdmin, "the admin certificate's name (admin:NAME; "
                      "default admin; empty: none)")
        ->type_name("NAME");
    number(certs, "days", "DAYS", "how long they are valid (default 825)", 1, 36500,
           [&i](int64_t v) { i.certDays = uint32_t(v); });

    auto* local = command(&app, "local", "run a cluster of storaged processes on loopback");
    local->require_subcommand(1);
    auto* up = command(local, "up", "start (or restart) the cluster; print its seeds");
    up->add_option("--dir", i.dir, "the cluster's directory")->type_name("DIR")->required();
    number(up, "nodes", "N", "how many nodes (default 3; a restart keeps the cluster's)", 1,
           64, [&i](int64_t v) { i.nodes = uint32_t(v); });
    up->add_option("--listen", i.host, "the address every node binds and is reached on "
                   "(default 127.0.0.1; a restart keeps the cluster's)")
        ->type_name("ADDR");
    number(up, "base-port", "PORT", "node K listens on PORT+K-1 (default 7400)", 1, 65535,
           [&i](int64_t v) { i.basePort = uint16_t(v); });
    number(up, "http-port", "PORT", "node K serves /metrics and its status page over HTTP on "
           "PORT+K-1 (default base port + 80; 0: none)", 0, 65535,
           [&i](int64_t v) { i.httpBasePort = uint16_t(v); });
    up->add_option("--durability", i.durability,
                   "sync: fsync before each ack; buffered: ack from memory (default sync)")
        ->type_name("sync|buffered")
        ->check(CLI::IsMember({"sync", "buffered"}));
    up->add_flag("--tls", i.tls, "mutual TLS: write a CA and certificates into DIR/certs "
                 "(dynkv admin certs) and start the nodes with them; prints the client's "
                 "settings");
    auto* down = command(local, "down", "stop the cluster");
    down->add_option("--dir", i.dir, "the cluster's directory")->type_name("DIR")->required();
  }

  std::string commandName() const {
    std::string name;
    for (const CLI::App* at = &app; !at->get_subcommands().empty();) {
      at = at->get_subcommands().front();
      name += (name.empty() ? "" : " ") + at->get_name();
    }
    return name;
  }
};

Exit usageError(const std::string& message, const std::string& command) {
  return {int(ExitCode::USAGE), "dynkv: " + message + "\nRun `dynkv " +
                                    (command.empty() ? "" : command + " ") +
                                    "--help` for its arguments and flags.\n"};
}

}  // namespace

std::variant<Invocation, Exit> parseCommandLine(int argc, const char* const* argv,
                                                const Environment& environment) {
  CommandLine commandLine;
  auto& app = commandLine.app;
  auto parsed = parseArguments(app, argc, argv, versionText());
  if (parsed.done()) return Exit{0, parsed.text};
  if (parsed.outcome == ParsedArguments::Outcome::USAGE) {
    return usageError(parsed.text, commandLine.commandName());
  }
  auto invocation = commandLine.invocation;
  invocation.command = commandLine.commandName();
  auto fromEnvironment = [&](const char* name) {
    return environment ? environment(name) : std::nullopt;
  };
  if (!commandLine.seedsGiven) {
    commandLine.seeds = fromEnvironment("DYNKV_SEEDS").value_or("127.0.0.1:7400");
  }
  invocation.seeds = splitCommas(commandLine.seeds);
  if (invocation.seeds.empty()) {
    return usageError("--seeds (or $DYNKV_SEEDS) names no node", invocation.command);
  }
  if (!commandLine.secretGiven) invocation.secret = fromEnvironment("DYNKV_SECRET").value_or("");
  if (invocation.tlsCa.empty()) invocation.tlsCa = fromEnvironment("DYNKV_TLS_CA").value_or("");
  if (invocation.tlsCert.empty()) {
    invocation.tlsCert = fromEnvironment("DYNKV_TLS_CERT").value_or("");
  }
  if (invocation.tlsKey.empty()) invocation.tlsKey = fromEnvironment("DYNKV_TLS_KEY").value_or("");
  auto& command = invocation.command;
  if (command == "admin remove" && !invocation.force) {
    return usageError("admin remove takes a node out without a hand-off and needs --force "
                      "(for a node that is dead for good); to take a live node out with a "
                      "hand-off, use `dynkv admin leave " + invocation.address + "`",
                      command);
  }
  if (command == "admin join" && !invocation.timeoutGiven) invocation.timeoutMillis = 30000;
  if (command == "admin snapshot") {
    if (!invocation.timeoutGiven) invocation.timeoutMillis = 600000;
    if (auto problem = addressProblem(invocation.node)) return usageError(*problem, command);
    if (invocation.snapshotDir.empty() || invocation.snapshotDir[0] != '/') {
      return usageError("the snapshot directory must be an absolute path on the node's host, "
                        "not '" + invocation.snapshotDir + "'",
                        command);
    }
  }
  if (command == "admin join" || command == "admin leave" || command == "admin remove" ||
      command == "admin inspect") {
    if (auto problem = addressProblem(invocation.address)) {
      return usageError(*problem, command);
    }
  }
  return invocation;
}

std::optional<std::string> addressProblem(const std::string& address) {
  auto colon = address.rfind(':');
  std::string shown = address.size() > 64 ? address.substr(0, 64) + "..." : address;
  auto problem = "bad node address '" + shown + "': expected HOST:PORT, ";
  if (colon == std::string::npos) return problem + "and it has no :PORT";
  auto host = address.substr(0, colon), port = address.substr(colon + 1);
  if (host.empty()) return problem + "and it has no HOST";
  if (host.find_first_of(" \t/") != std::string::npos) return problem + "and HOST is not one";
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) == 0 ||
      std::stoul(port) > 65535) {
    return problem + "with PORT a number from 1 to 65535";
  }
  return std::nullopt;
}

std::string userMessage(std::string message) {
  // Rewrites, in order: kj's source locations ("kj/async-io-unix.c++:123: failed: "), stack
  // traces, "remote exception: ", kj's "errors = " list, the condition a KJ_REQUIRE names
  // ("expected a == b [1 == 2]; ") and the parameters it appends ("; params.host = h"), and
  // the system calls named ("connect(): ").
  static const std::vector<std::pair<std::regex, std::string>> REWRITES = {
      {std::regex(R"([A-Za-z0-9_./+-]+\.(c\+\+|h|cc|cpp):[0-9]+: )"
                  R"(((failed|disconnected|overloaded|unimplemented): )?)"),
       ""},
      {std::regex(R"(;?\s*stack: [0-9a-f ]*)"), ""},
      {std::regex(R"(remote exception: )"), ""},
      {std::regex(R"(DNS lookup failed\.?((; params\.\w+ = [^;]*)*); gai_strerror\(status\) = )"),
       "DNS lookup failed: "},
      {std::regex(R"(wrong cluster: this node belongs to another cluster; )"
                  R"(options\.cluster\.c_str\(\) = ([^;]*); params\.getCluster\(\) = ([^;]*))"),
       "wrong cluster: this node belongs to cluster '$1', not '$2'"},
      // A node that refuses our certificate says so in a TLS alert, which OpenSSL reports on
      // the next read: "OpenSSL error; message = error:0A000418:SSL routines::tlsv1 alert
      // unknown ca".
      {std::regex(R"(OpenSSL error; message = (error:[0-9A-Fa-f]+:[^:;]*::)?([^;]*))"),
       "TLS failed: $2"},
      {std::regex(R"(; errors = )"), ": "},
      {std::regex(R"(expected [^;]*; )"), ""},
      {std::regex(R"(; [A-Za-z_][A-Za-z0-9_.()>-]* = [^;]*)"), ""},
      {std::regex(R"(([A-Za-z0-9_.\[\]:-]+:[0-9]+): (connect\(\): |DNS lookup failed))"),
       "cannot reach $1: $2"},
      {std::regex(R"(connect\(\): )"), ""},
      {std::regex(R"([; ]+$)"), ""},
  };
  auto newline = message.find('\n');
  if (newline != std::string::npos) message.resize(newline);
  for (auto& [pattern, replacement] : REWRITES) {
    message = std::regex_replace(message, pattern, replacement);
  }
  return message;
}

}  // namespace dynkv::cli
