#include "local-cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "admin.h"

namespace dynkv {

namespace {

void makeDirs(const std::string& path) {
  std::string partial;
  std::stringstream in(path);
  std::string part;
  if (!path.empty() && path[0] == '/') partial = "/";
  while (std::getline(in, part, '/')) {
    if (part.empty()) continue;
    partial += part + "/";
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      throw std::runtime_error("cannot create " + partial + ": " + strerror(errno));
    }
  }
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A TCP socket for host:port (a numeric address or a name), or -1 with `error` set.
int socketFor(const std::string& host, uint16_t port, sockaddr_storage& addr, socklen_t& length,
              std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int status = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (status != 0 || found == nullptr) {
    error = "cannot resolve '" + host + "': " + gai_strerror(status);
    return -1;
  }
  memcpy(&addr, found->ai_addr, found->ai_addrlen);
  length = found->ai_addrlen;
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) error = strerror(errno);
  freeaddrinfo(found);
  return fd;
}

bool canConnect(const std::string& host, uint16_t port) {
  sockaddr_storage addr;
  socklen_t length;
  std::string error;
  int fd = socketFor(host, port, addr, length, error);
  if (fd < 0) return false;
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), length) == 0;
  close(fd);
  return ok;
}

// Why host:port cannot be bound (as storaged binds it: SO_REUSEADDR, so a port in TIME_WAIT
// after an earlier run is free), or "" if it can.
std::string bindProblem(const std::string& host, uint16_t port) {
  sockaddr_storage addr;
  socklen_t length;
  std::string error;
  int fd = socketFor(host, port, addr, length, error);
  if (fd < 0) return error;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), length) != 0) error = strerror(errno);
  close(fd);
  return error;
}

bool alive(pid_t pid) {
  if (pid <= 0) return false;
  int status;
  pid_t reaped = waitpid(pid, &status, WNOHANG);
  if (reaped == pid) return false;  // our child, and it has exited
  if (reaped == 0) return true;     // our child, still running (perhaps not yet exec'd)
  if (::kill(pid, 0) != 0) return false;
  // A recycled pid belongs to some other program: check that it is a storaged.
  auto cmdline = readFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (cmdline.find("storaged") == std::string::npos) return false;
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || stat.size() < close + 3 || stat[close + 2] != 'Z';
}

}  // namespace

LocalCluster::LocalCluster(LocalClusterOptions options) : options_(std::move(options)) {
  if (options_.dir.empty()) throw std::runtime_error("a local cluster needs a directory (--dir)");
  if (options_.storaged.empty()) options_.storaged = findStoraged();
  auto conf = options_.dir + "/cluster.conf";
  std::ifstream in(conf);
  if (in) {
    std::string line;
    std::vector<std::string> extra;
    while (std::getline(in, line)) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      auto name = line.substr(0, eq), value = line.substr(eq + 1);
      if (name == "nodes") options_.nodes = uint32_t(std::stoul(value));
      if (name == "host") options_.host = value;
      if (name == "base-port") options_.basePort = uint16_t(std::stoul(value));
      if (name == "http-base-port") options_.httpBasePort = uint16_t(std::stoul(value));
      if (name == "arg") extra.push_back(value);
      if (name == "cluster") options_.cluster = value;
      if (name == "tls") options_.tls = value == "1";
    }
    options_.extraArgs = extra;
  } else {
    if (options_.nodes < 1 || options_.nodes > 64) {
      throw std::runtime_error("a local cluster has 1 to 64 nodes");
    }
    makeDirs(options_.dir);
    std::ofstream out(conf);
    out << "nodes=" << options_.nodes << "\nhost=" << options_.host
        << "\nbase-port=" << options_.basePort
        << "\nhttp-base-port=" << options_.httpBasePort
        << "\ncluster=" << options_.cluster << "\ntls=" << (options_.tls ? 1 : 0) << "\n";
    for (auto& a : options_.extraArgs) out << "arg=" << a << "\n";
    if (!out) throw std::runtime_error("cannot write " + conf);
  }
  if (options_.tls) {
    // Every start: certificates of nodes added since are issued by the CA already there.
    std::vector<std::string> names;
    for (uint32_t i = 0; i < options_.nodes; i++) names.push_back("n" + std::to_string(i + 1));
    writeCertificates(options_.dir + "/certs", names, "app", "admin", 825);
  }
}

TlsFiles LocalCluster::tlsFiles(const std::string& who) const {
  if (!options_.tls) return {};
  auto certs = options_.dir + "/certs/";
  return {certs + "ca.pem", certs + who + ".pem", certs + who + ".key"};
}

std::string LocalCluster::findStoraged() {
  if (const char* env = getenv("DYNKV_STORAGED")) return env;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/'));
    // Installed: beside this program. In a build tree: build/storaged/storaged, seen from
    // build/client/tools/ (the dynkv tool) or from build/<folder>/ (the benchmark).
    for (auto candidate :
         {dir + "/storaged", dir + "/../../storaged/storaged", dir + "/../storaged/storaged"}) {
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return "storaged";
}

std::string LocalCluster::hostPort(uint32_t port) const {
  bool v6 = options_.host.find(':') != std::string::npos;
  return (v6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(port);
}

std::vector<std::string> LocalCluster::seeds() const {
  std::vector<std::string> out;
  for (uint32_t i = 0; i < options_.nodes; i++) {
    out.push_back(hostPort(options_.basePort + i));
  }
  return out;
}

std::vector<std::string> LocalCluster::httpAddresses() const {
  std::vector<std::string> out;
  if (options_.httpBasePort == 0) return out;
  for (uint32_t i = 0; i < options_.nodes; i++) {
    out.push_back(hostPort(options_.httpBasePort + i));
  }
  return out;
}

std::string LocalCluster::seedList() const {
  std::string out;
  for (auto& s : seeds()) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::string LocalCluster::nodeDir(size_t node) const {
  return options_.dir + "/node" + std::to_string(node + 1);
}

pid_t LocalCluster::pid(size_t node) const {
  auto text = readFile(nodeDir(node) + "/pid");
  if (text.empty()) return 0;
  pid_t pid = pid_t(std::stol(text));
  return alive(pid) ? pid : 0;
}

bool LocalCluster::running(size_t node) const {
  return pid(node) != 0;
}

void LocalCluster::start(size_t node, const std::vector<std::string>& moreArgs) {
  auto dir = nodeDir(node);
  makeDirs(dir + "/data");
  std::vector<std::string> args = {options_.storaged, "--data-dir", dir + "/data",
                                   "--listen", seeds()[node], "--seeds", seedList(),
                                   "--cluster", options_.cluster};
  if (options_.httpBasePort != 0) {
    args.insert(args.end(), {"--http", httpAddresses()[node]});
  }
  if (options_.tls) {
    auto files = tlsFiles("node-n" + std::to_string(node + 1));
    args.insert(args.end(), {"--tls-ca", files.ca, "--tls-cert", files.certificate,
                             "--tls-key", files.key});
  }
  args.insert(args.end(), options_.extraArgs.begin(), options_.extraArgs.end());
  args.insert(args.end(), moreArgs.begin(), moreArgs.end());
  auto log = dir + "/storaged.log";

  pid_t child = fork();
  if (child < 0) throw std::runtime_error(std::string("fork failed: ") + strerror(errno));
  if (child == 0) {
    // In the child: its own session so it outlives the terminal that ran `dynkv local up`, and
    // no signal blocked, whatever the parent blocks (a benchmark waits for ^C on a thread).
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int devnull = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (devnull >= 0) dup2(devnull, 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  std::ofstream(dir + "/pid") << child << "\n";
}

void LocalCluster::waitListening(size_t node, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint16_t port = uint16_t(options_.basePort + node);
  while (!canConnect(options_.host, port)) {
    if (!running(node)) {
      throw std::runtime_error("node " + std::to_string(node + 1) + " (" + seeds()[node] +
                               ") exited; its log ends:\n" + logTail(node));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("node " + std::to_string(node + 1) + " (" + seeds()[node] +
                               ") is not listening after " + std::to_string(timeout.count()) +
                               " ms; its log ends:\n" + logTail(node));
    }
    // Polling a port has no event to wait on; 20 ms keeps start-up snappy and cheap.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void LocalCluster::checkPorts() const {
  // Before starting anything: a node that cannot bind its port exits, and one whose port
  // another cluster holds would have us wait for, and join, that cluster's node instead.
  for (size_t i = 0; i < options_.nodes; i++) {
    if (running(i)) continue;
    std::vector<std::pair<uint32_t, std::string>> ports = {
        {uint32_t(options_.basePort + i), "RPC"}};
    if (options_.httpBasePort != 0) {
      ports.push_back({uint32_t(options_.httpBasePort + i), "HTTP"});
    }
    for (auto& [port, what] : ports) {
      auto problem =
          port > 65535 ? std::string("beyond 65535") : bindProblem(options_.host, uint16_t(port));
      if (problem.empty()) continue;
      throw PortInUse("node " + std::to_string(i + 1) + " cannot use port " +
                      std::to_string(port) + " (its " + what + " port) on " + options_.host +
                      ": " + problem + "; another program or cluster holds it. Pick other " +
                      "ports with --base-port (RPC: PORT+K-1) and --http-port (HTTP: " +
                      "default base port + 80), or stop what holds it.");
    }
  }
}

size_t LocalCluster::up(std::chrono::milliseconds timeout) {
  checkPorts();
  size_t started = 0;
  for (size_t i = 0; i < options_.nodes; i++) {
    if (running(i)) continue;
    start(i);
    started++;
  }
  for (size_t i = 0; i < options_.nodes; i++) waitListening(i, timeout);

  auto deadline = std::chrono::steady_clock::now() + timeout;
  joinToRing(seeds(), options_.cluster, seeds(), deadline, tlsFiles("admin"));
  waitSettled(std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now()));
  return started;
}

void LocalCluster::waitSettled(std::chrono::milliseconds timeout, std::vector<size_t> nodes) {
  if (nodes.empty()) {
    for (size_t i = 0; i < options_.nodes; i++) nodes.push_back(i);
  }
  std::vector<std::string> addresses;
  for (size_t i : nodes) addresses.push_back(seeds().at(i));
  dynkv::waitSettled(addresses, options_.cluster, timeout, tlsFiles("admin"));
}

void LocalCluster::kill(size_t node, int signal) {
  pid_t p = pid(node);
  if (p == 0) return;
  ::kill(p, signal);
  if (signal == SIGKILL || signal == SIGTERM) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (alive(p) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

void LocalCluster::down(std::chrono::milliseconds timeout) {
  std::vector<pid_t> pids;
  for (size_t i = 0; i < options_.nodes; i++) {
    pid_t p = pid(i);
    if (p != 0) {
      ::kill(p, SIGTERM);
      pids.push_back(p);
    }
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (pid_t p : pids) {
    while (alive(p) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (alive(p)) ::kill(p, SIGKILL);
  }
}

std::string LocalCluster::logTail(size_t node) const {
  auto text = readFile(nodeDir(node) + "/storaged.log");
  if (text.size() > 2000) text = "..." + text.substr(text.size() - 2000);
  return text;
}

}  // namespace dynkv
