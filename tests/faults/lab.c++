#include "lab.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace dynkv::faults {

std::atomic<bool> interrupted{false};

namespace {

// Readable once a termination signal has arrived: waits poll it beside what they wait for, so
// an interrupted wait returns at once instead of at its next wake-up.
const int interruptFd = eventfd(0, EFD_CLOEXEC);

bool waitReadable(int fd, std::chrono::steady_clock::time_point deadline, bool interruptible) {
  // Until fd (-1: none) is readable (true) or the deadline passes (false). An interruptible
  // wait throws Interrupted as soon as a termination signal arrives; cleanup's waits are not.
  for (;;) {
    if (interruptible && interrupted) throw Interrupted();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd fds[2] = {{fd, POLLIN, 0}, {interruptible ? interruptFd : -1, POLLIN, 0}};
    int n = poll(fds, 2, int(std::max<int64_t>(left.count(), 0)));
    if (n < 0 && errno == EINTR) continue;
    if (interruptible && interrupted) throw Interrupted();
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

std::chrono::steady_clock::time_point after(double seconds) {
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             std::chrono::duration<double>(seconds));
}

}  // namespace

namespace {

constexpr const char* TABLE = "dynkv_faults";

sigset_t terminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

struct Command {
  // argv and environment prepared before fork(): the child of a threaded process may only
  // make async-signal-safe calls, so it allocates nothing.
  std::vector<std::string> strings;
  std::vector<char*> argv;
  std::vector<char*> envp;

  Command(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    std::vector<std::string> environment;
    for (char** e = environ; *e != nullptr; e++) {
      std::string entry = *e;
      if (env.count(entry.substr(0, entry.find('='))) == 0) environment.push_back(entry);
    }
    for (auto& [name, value] : env) environment.push_back(name + "=" + value);
    strings = args;
    strings.insert(strings.end(), environment.begin(), environment.end());
    for (size_t i = 0; i < strings.size(); i++) {
      (i < args.size() ? argv : envp).push_back(strings[i].data());
    }
    argv.push_back(nullptr);
    envp.push_back(nullptr);
  }
};

[[noreturn]] void execInChild(Command& command, int outFd) {
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int devNull = open("/dev/null", O_RDONLY);
  if (devNull >= 0) dup2(devNull, 0);
  dup2(outFd, 1);
  dup2(outFd, 2);
  execvpe(command.argv[0], command.argv.data(), command.envp.data());
  const char* message = "cannot run the command\n";
  (void)!write(2, message, strlen(message));
  _exit(127);
}

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

int statusOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::vector<std::string> namespacesWithPrefix(const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
    auto name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  return out;
}

std::vector<std::string> mountsWithSource(const std::string& prefix) {
  // Mount points whose source field starts with prefix (our tmpfs disks are named so).
  std::vector<std::string> out;
  std::ifstream mounts("/proc/mounts");
  std::string source, target, rest;
  while (mounts >> source >> target && std::getline(mounts, rest)) {
    if (source.rfind(prefix, 0) == 0) out.push_back(target);
  }
  return out;
}

void killNamespaceProcesses(const std::string& ns) {
  std::string pids;
  if (run({"ip", "netns", "pids", ns}, &pids) != 0) return;
  std::istringstream in(pids);
  pid_t pid;
  while (in >> pid) ::kill(pid, SIGKILL);
}

}  // namespace

void blockTerminationSignals() {
  auto set = terminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set]() {
    int sig = 0;
    while (sigwait(&set, &sig) == 0) {
      interrupted = true;
      uint64_t one = 1;
      (void)!write(interruptFd, &one, sizeof(one));
    }
  }).detach();
}

void pauseFor(double seconds) {
  waitReadable(-1, after(seconds), true);
}

int run(const std::vector<std::string>& argv, std::string* output) {
  Command command(argv, {});
  int pipeFds[2];
  if (pipe2(pipeFds, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(pipeFds[0]);
    close(pipeFds[1]);
    return -1;
  }
  if (pid == 0) execInChild(command, pipeFds[1]);
  close(pipeFds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipeFds[0], buffer, sizeof(buffer))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) text.append(buffer, size_t(n));
  }
  close(pipeFds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (output != nullptr) {
    *output = text;
  } else if (!text.empty()) {
    fputs(text.c_str(), stderr);
  }
  return statusOf(status);
}

void runOrThrow(const std::vector<std::string>& argv) {
  std::string output;
  int status = run(argv, &output);
  if (status != 0) {
    throw std::runtime_error("`" + joined(argv) + "` exited " + std::to_string(status) + ": " +
                             output);
  }
}

std::optional<std::string> labUnavailable() {
  if (geteuid() != 0) return "the fault suite needs root (network namespaces, nftables, mounts)";
  std::string out;
  if (run({"ip", "-V"}, &out) != 0) return "no `ip` command (Debian package iproute2)";
  if (run({"nft", "--version"}, &out) != 0) return "no `nft` command (Debian package nftables)";
  std::string probe = "dkf" + std::to_string(getpid()) + "-probe";
  if (run({"ip", "netns", "add", probe}, &out) != 0) {
    return "network namespaces cannot be created here: " + out;
  }
  std::string why;
  if (run({"ip", "netns", "exec", probe, "nft", "add", "table", "inet", TABLE}, &out) != 0) {
    why = "nftables does not work inside a network namespace here: " + out;
  }
  run({"ip", "netns", "del", probe}, &out);
  if (!why.empty()) return why;
  return std::nullopt;
}

Lab::Lab(std::vector<std::string> hostNames)
    : prefix_("dkf" + std::to_string(getpid()) + "-"), hubNs_(prefix_ + "hub") {
  try {
    runOrThrow({"ip", "netns", "add", hubNs_});
    namespaces_.push_back(hubNs_);
    runOrThrow({"ip", "netns", "exec", hubNs_, "ip", "link", "add", "br0", "type", "bridge"});
    runOrThrow({"ip", "netns", "exec", hubNs_, "ip", "link", "set", "br0", "up"});
    for (size_t i = 0; i < hostNames.size(); i++) {
      Host host{hostNames[i], prefix_ + hostNames[i], "10.77.0." + std::to_string(11 + i)};
      runOrThrow({"ip", "netns", "add", host.ns});
      namespaces_.push_back(host.ns);
      std::string port = "p-" + host.name;
      runOrThrow({"ip", "link", "add", "eth0", "netns", host.ns, "type", "veth", "peer", "name",
                  port, "netns", hubNs_});
      runOrThrow({"ip", "netns", "exec", hubNs_, "ip", "link", "set", port, "master", "br0"});
      runOrThrow({"ip", "netns", "exec", hubNs_, "ip", "link", "set", port, "up"});
      runOrThrow(
          {"ip", "netns", "exec", host.ns, "ip", "addr", "add", host.ip + "/24", "dev", "eth0"});
      runOrThrow({"ip", "netns", "exec", host.ns, "ip", "link", "set", "eth0", "up"});
      runOrThrow({"ip", "netns", "exec", host.ns, "ip", "link", "set", "lo", "up"});
      // The table every fault of this host goes into; heal() flushes it.
      runOrThrow({"ip", "netns", "exec", host.ns, "nft", "add", "table", "inet", TABLE});
      runOrThrow({"ip", "netns", "exec", host.ns, "nft", "add", "chain", "inet", TABLE, "input",
                  "{ type filter hook input priority 0; policy accept; }"});
      hosts_.push_back(host);
    }
  } catch (...) {
    cleanup();
    throw;
  }
}

Lab::~Lab() {
  cleanup();
}

const Host& Lab::host(const std::string& name) const {
  for (auto& h : hosts_) {
    if (h.name == name) return h;
  }
  throw std::invalid_argument("no host '" + name + "' in the lab");
}

std::vector<std::string> Lab::ipsOf(const std::vector<std::string>& names) const {
  std::vector<std::string> ips;
  for (auto& n : names) ips.push_back(host(n).ip);
  return ips;
}

pid_t Lab::spawn(const std::string& hostName, const std::vector<std::string>& argv,
                 const std::string& logFile, const std::map<std::string, std::string>& env) {
  auto& h = host(hostName);
  int fd = open(logFile.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + logFile + ": " + strerror(errno));
  std::vector<std::string> full = {"ip", "netns", "exec", h.ns};
  full.insert(full.end(), argv.begin(), argv.end());
  Command command(full, env);
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    throw std::runtime_error(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) execInChild(command, fd);
  close(fd);
  setpgid(pid, pid);  // also here, so a signal sent right after spawn finds the group
  children_.push_back(pid);
  return pid;
}

void Lab::signal(pid_t pid, int sig) {
  ::kill(pid, sig);
  if (sig == SIGKILL) reap(pid, 30, false);
}

std::optional<int> Lab::reap(pid_t pid, double timeoutSeconds, bool interruptible) {
  // A pidfd becomes readable when the process exits: the wait is an event, not a poll loop.
  auto deadline = after(timeoutSeconds);
  // The raw system call: glibc 2.36 declares pidfd_open without C linkage for C++.
  int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
  std::optional<int> result;
  try {
    for (;;) {
      int status = 0;
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        children_.erase(std::remove(children_.begin(), children_.end(), pid), children_.end());
        result = statusOf(status);
        break;
      }
      if (r < 0 && errno == ECHILD) {
        result = -1;
        break;
      }
      if (!waitReadable(pidfd, deadline, interruptible)) break;
    }
  } catch (...) {
    if (pidfd >= 0) close(pidfd);
    throw;
  }
  if (pidfd >= 0) close(pidfd);
  return result;
}

bool Lab::alive(pid_t pid) {
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == pid) {
    children_.erase(std::remove(children_.begin(), children_.end(), pid), children_.end());
    return false;
  }
  return r == 0;
}

int Lab::exec(const std::string& hostName, const std::vector<std::string>& argv,
              std::string* output) {
  std::vector<std::string> full = {"ip", "netns", "exec", host(hostName).ns};
  full.insert(full.end(), argv.begin(), argv.end());
  return run(full, output);
}

void Lab::addRule(const std::string& hostName, const std::string& chain, const std::string& rule) {
  std::vector<std::string> argv = {"ip",   "netns", "exec", host(hostName).ns, "nft", "add", "rule",
                                   "inet", TABLE,   chain};
  std::istringstream words(rule);
  for (std::string w; words >> w;) argv.push_back(w);
  runOrThrow(argv);
}

void Lab::deafen(const std::vector<std::string>& listeners, const std::vector<std::string>& from) {
  // Dropping on input only: the sender's packets leave and are lost on the way, as on a real
  // network, rather than failing at once with EPERM as an output rule would make them.
  std::string set;
  for (auto& ip : ipsOf(from)) set += (set.empty() ? "" : ", ") + ip;
  for (auto& l : listeners) addRule(l, "input", "ip saddr { " + set + " } drop");
}

void Lab::partition(const std::vector<std::string>& sideA, const std::vector<std::string>& sideB) {
  deafen(sideA, sideB);
  deafen(sideB, sideA);
}

void Lab::loss(const std::vector<std::string>& hosts, uint32_t percent) {
  for (auto& h : hosts) {
    addRule(h, "input", "numgen random mod 100 < " + std::to_string(percent) + " drop");
  }
}

void Lab::heal() {
  for (auto& h : hosts_) {
    runOrThrow({"ip", "netns", "exec", h.ns, "nft", "flush", "chain", "inet", TABLE, "input"});
  }
}

void Lab::mountTmpfs(const std::string& dir, uint64_t bytes) {
  std::filesystem::create_directories(dir);
  auto source = prefix_ + "disk";
  auto options = "size=" + std::to_string(bytes) + ",mode=0755";
  if (mount(source.c_str(), dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
    throw std::runtime_error("mount tmpfs at " + dir + ": " + strerror(errno));
  }
  mounts_.push_back(dir);
}

void Lab::fillDisk(const std::string& dir) {
  struct statvfs fs;
  if (statvfs(dir.c_str(), &fs) != 0) {
    throw std::runtime_error("statvfs " + dir + ": " + strerror(errno));
  }
  auto path = dir + "/filler";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + strerror(errno));
  // Write rather than fallocate, and until ENOSPC: tmpfs reserves nothing for either.
  std::vector<char> block(1 << 20, 'x');
  while (write(fd, block.data(), block.size()) > 0) {
  }
  for (size_t size = 4096; size >= 1; size /= 2) {
    while (write(fd, block.data(), size) > 0) {
    }
  }
  close(fd);
}

void Lab::freeDisk(const std::string& dir) {
  std::error_code ignored;
  std::filesystem::remove(dir + "/filler", ignored);
}

void Lab::cleanup() {
  if (cleaned_) return;
  cleaned_ = true;
  for (pid_t pid : std::vector<pid_t>(children_)) {
    ::kill(-pid, SIGCONT);  // a paused process must run to die of SIGKILL's reaping
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    reap(pid, 10, false);
  }
  for (auto& ns : namespaces_) killNamespaceProcesses(ns);
  for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
  mounts_.clear();
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
    std::string out;
    run({"ip", "netns", "del", *it}, &out);
  }
  namespaces_.clear();
}

bool Lab::leftovers(std::string* what) {
  std::string found;
  for (auto& ns : namespacesWithPrefix(prefix_)) found += "namespace " + ns + "; ";
  for (auto& m : mountsWithSource(prefix_)) found += "mount " + m + "; ";
  for (pid_t pid : children_) {
    if (::kill(pid, 0) == 0) found += "process " + std::to_string(pid) + "; ";
  }
  if (what != nullptr) *what = found;
  return !found.empty();
}

void Lab::sweepStale() {
  std::map<pid_t, std::string> stale;  // owner pid -> its prefix
  auto consider = [&](const std::string& name) {
    if (name.rfind("dkf", 0) != 0) return;
    auto dash = name.find('-');
    if (dash == std::string::npos) return;
    pid_t owner = pid_t(std::atol(name.substr(3, dash - 3).c_str()));
    if (owner <= 0 || owner == getpid()) return;
    if (::kill(owner, 0) == 0 || errno != ESRCH) return;  // still running
    stale[owner] = name.substr(0, dash + 1);
  };
  for (auto& ns : namespacesWithPrefix("dkf")) consider(ns);
  std::ifstream mounts("/proc/mounts");
  std::string source, target, rest;
  while (mounts >> source >> target && std::getline(mounts, rest)) consider(source);
  for (auto& [owner, prefix] : stale) {
    fprintf(stderr, "dynkv-faults: removing what run %d left behind\n", int(owner));
    for (auto& ns : namespacesWithPrefix(prefix)) killNamespaceProcesses(ns);
    for (auto& m : mountsWithSource(prefix)) umount2(m.c_str(), MNT_DETACH);
    std::string out;
    for (auto& ns : namespacesWithPrefix(prefix)) run({"ip", "netns", "del", ns}, &out);
  }
}

}  // namespace dynkv::faults
