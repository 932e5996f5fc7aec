// The fault suite's laboratory: a private network of Linux network namespaces, the processes
// started in it, and the faults injected into both. Everything is wrapped around dynkv from
// outside (namespaces, nftables rules, signals, mounts, LD_PRELOAD'ed clocks): the code under
// test has no fault hooks.
//
// Shape: one namespace per host (node, client, observer), each with one veth interface whose
// other end sits on a bridge inside a hub namespace of its own. No namespace has a route out,
// and the host's own namespace is not touched, so nothing a run sends leaves the machine.
// Addresses are 10.77.0.X/24, private to this run's namespaces (two runs never share one).
//
// Every namespace is named "dkf<PID>-<host>" after the process that owns the lab, so a lab
// left behind by a process that died (kill -9) is found and removed by the next run
// (sweepStale). The destructor removes everything this lab made: processes, mounts,
// namespaces (and with them every rule and interface).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dynkv::faults {

extern std::atomic<bool> interrupted;
// Set when SIGINT, SIGTERM or SIGHUP arrives (see blockTerminationSignals). Long waits check
// it and throw Interrupted, so the destructors that clean up run.

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

void blockTerminationSignals();
// Blocks SIGINT, SIGTERM and SIGHUP in this thread (call before starting any thread) and
// starts a thread that waits for them and sets `interrupted`.

void pauseFor(double seconds);
// Waits that long, or throws Interrupted as soon as a termination signal arrives.

std::optional<std::string> labUnavailable();
// Why this machine cannot host a lab (not root, no `ip` or `nft`, namespaces refused), or
// nullopt when it can. Tries a namespace for real, and removes it.

int run(const std::vector<std::string>& argv, std::string* output = nullptr);
// Runs a command to completion; returns its exit status (-1 if it could not run). Its
// stdout (and stderr) go to `output` when given, else to this process's stderr.

void runOrThrow(const std::vector<std::string>& argv);
// run(); throws std::runtime_error with the command and its output unless it exits 0.

struct Host {
  std::string name;  // "n1", "c2", "obs"
  std::string ns;    // "dkf<PID>-n1"
  std::string ip;    // "10.77.0.11"
};

class Lab {
 public:
  Lab(std::vector<std::string> hostNames);
  // Builds the network: hub and bridge, a namespace per host with loopback and its veth up.
  // Throws std::runtime_error (after removing what it built) if any step fails.
  ~Lab();

  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  const Host& host(const std::string& name) const;
  std::vector<std::string> ipsOf(const std::vector<std::string>& names) const;

  // ---- Processes ----

  pid_t spawn(const std::string& host, const std::vector<std::string>& argv,
              const std::string& logFile, const std::map<std::string, std::string>& env = {});
  // Starts argv inside the host's namespace (`ip netns exec`, which execs, so the pid is the
  // program's own), stdout and stderr appended to logFile, in a process group of its own so a
  // terminal's ^C reaches only the lab. The lab kills it at the end if it still runs.
  void signal(pid_t pid, int sig);
  // kill(2); for SIGKILL also reaps it and returns once it is gone.
  std::optional<int> reap(pid_t pid, double timeoutSeconds, bool interruptible = true);
  // Waits for the process to exit (exit status, or 128+signal), nullopt on timeout. An
  // interruptible wait throws Interrupted when a termination signal arrives.
  bool alive(pid_t pid);
  int exec(const std::string& host, const std::vector<std::string>& argv,
           std::string* output = nullptr);
  // Runs argv in the host's namespace to completion (run()).

  // ---- Network faults (nftables, in the namespaces of the hosts concerned) ----

  void partition(const std::vector<std::string>& sideA, const std::vector<std::string>& sideB);
  // Neither side hears the other: every host of A drops packets from and to B, and B from A.
  void deafen(const std::vector<std::string>& listeners, const std::vector<std::string>& from);
  // One-way: `listeners` drop every packet that comes from `from`; they can still send.
  void loss(const std::vector<std::string>& hosts, uint32_t percent);
  // Each host drops that share of the packets it receives, at random (nft numgen).
  void heal();
  // Removes every network fault rule from every host.

  // ---- Disk faults ----

  void mountTmpfs(const std::string& dir, uint64_t bytes);
  // A tmpfs of that size at dir (created if needed): a small disk to fill. Unmounted by the
  // destructor.
  void fillDisk(const std::string& dir);
  // Takes every free byte of the file system holding dir (a file named "filler" in dir).
  void freeDisk(const std::string& dir);

  bool leftovers(std::string* what);
  // After cleanup(): true and a description if any namespace, mount or process of this lab
  // remains. The fault suite asserts there is none.
  void cleanup();
  // What the destructor does; safe to call twice.

  static void sweepStale();
  // Removes the labs (namespaces, their processes, mounts) of dynkv-faults processes that
  // no longer run.

 private:
  std::string prefix_;  // "dkf<PID>-"
  std::string hubNs_;
  std::vector<Host> hosts_;
  std::vector<pid_t> children_;
  std::vector<std::string> mounts_;
  std::vector<std::string> namespaces_;  // made so far, for cleanup
  bool cleaned_ = false;

  void addRule(const std::string& host, const std::string& chain, const std::string& rule);
};

}  // namespace dynkv::faults
