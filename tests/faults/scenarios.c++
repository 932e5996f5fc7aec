// The fault scenarios. Each is a script over the workload's timeline (Run::at takes the
// fraction of the workload's duration); a "-tail" twin keeps the same faults in force until
// the writes stop, so that only the system's own repair (hinted handoff, anti-entropy) can make
// the replicas converge. Every scenario must pass: no expected failures.
#include <signal.h>

#include "runner.h"

namespace dynkv::faults {

namespace {

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void killOne(Run& run) {
  run.at(0.25);
  auto f = run.begin("kill -9 n2", [&]() { run.kill("n2"); });
  run.at(0.6);
  run.end(f, [&]() { run.restart("n2"); });
}

void pauseOne(Run& run) {
  run.at(0.25);
  auto f = run.begin("SIGSTOP n3", [&]() { run.pause("n3"); });
  run.at(0.6);
  run.end(f, [&]() { run.resume("n3"); });
}

void majorityPartition(Run& run) {
  // Clients on both sides, as application servers in two data centres would be.
  std::vector<std::string> majority = {"n1", "n2", "n3", "c1", "c2"};
  std::vector<std::string> minority = {"n4", "n5", "c3"};
  run.at(0.25);
  auto f = run.begin("partition n1 n2 n3 c1 c2 | n4 n5 c3",
                     [&]() { run.lab().partition(majority, minority); });
  run.at(0.7);
  run.end(f, [&]() { run.lab().heal(); });
}

void oneWayPartition(Run& run) {
  std::vector<std::string> deaf = {"n4", "n5", "c3"};
  std::vector<std::string> loud = {"n1", "n2", "n3", "c1", "c2"};
  run.at(0.25);
  auto f =
      run.begin("n4 n5 c3 cannot hear n1 n2 n3 c1 c2", [&]() { run.lab().deafen(deaf, loud); });
  run.at(0.7);
  run.end(f, [&]() { run.lab().heal(); });
}

void isolatedNode(Run& run) {
  auto others = concat({"n1", "n2", "n4", "n5"}, run.clientHosts());
  run.at(0.25);
  auto f = run.begin("n3 isolated", [&]() { run.lab().partition({"n3"}, others); });
  run.at(0.7);
  run.end(f, [&]() { run.lab().heal(); });
}

void amnesia(Run& run) {
  run.at(0.3);
  auto f = run.begin("n2 killed and its data directory wiped", [&]() {
    run.kill("n2");
    run.wipe("n2");
  });
  run.at(0.45);
  run.end(f, [&]() { run.restart("n2"); });
}

Scenario scenario(std::string name, std::string description, bool tail = false) {
  Scenario s;
  s.name = std::move(name);
  s.description = std::move(description);
  s.tail = tail;
  return s;
}

void addWithTail(std::vector<Scenario>& all, Scenario s) {
  // The scenario, and its twin that heals only after the writes stop.
  all.push_back(s);
  s.name += "-tail";
  s.description += "; healed only after the writes stop";
  s.tail = true;
  all.push_back(s);
}

std::vector<Scenario> build() {
  std::vector<Scenario> all;
  all.push_back(scenario("none", "no fault"));

  // A node killed outright refuses connections at once, so the writes it misses while down go
  // to fallbacks as hints, which reach it when it is back; the writes in flight to it at the
  // moment it dies (acknowledged by W others) reach it only through anti-entropy.
  auto kill = scenario("kill-one", "kill -9 one node, restart it with its data");
  kill.script = killOne;
  addWithTail(all, kill);

  auto killTwo = scenario("kill-two", "kill -9 two nodes at once, restart both");
  killTwo.script = [](Run& run) {
    run.at(0.25);
    auto f = run.begin("kill -9 n2 n4", [&]() {
      run.kill("n2");
      run.kill("n4");
    });
    run.at(0.6);
    run.end(f, [&]() {
      run.restart("n2");
      run.restart("n4");
    });
  };
  all.push_back(killTwo);

  auto rolling = scenario("rolling-kills", "kill -9 and restart every node in turn");
  rolling.script = [](Run& run) {
    double t = 0.1;
    for (auto& node : run.nodes()) {
      run.at(t);
      auto f = run.begin("kill -9 " + node, [&]() { run.kill(node); });
      run.at(t + 0.08);
      run.endNow(f, [&]() { run.restart(node); });
      t += 0.16;
    }
  };
  all.push_back(rolling);

  // A paused, cut off or lossy node does not refuse: calls to it time out once W others
  // have acknowledged, no fallback is asked, and only anti-entropy hands it what it missed.
  auto pause = scenario("pause", "SIGSTOP one node, SIGCONT it later");
  pause.script = pauseOne;
  addWithTail(all, pause);

  auto majority = scenario("partition-majority", "a 3|2 partition, clients on both sides");
  majority.script = majorityPartition;
  addWithTail(all, majority);

  auto oneWay =
      scenario("partition-one-way", "n4, n5 and c3 stop hearing the rest; they still send");
  oneWay.script = oneWayPartition;
  addWithTail(all, oneWay);

  auto isolated = scenario("isolated-node", "one node cut off from every node and client");
  isolated.script = isolatedNode;
  addWithTail(all, isolated);

  auto loss = scenario("packet-loss", "every node and client drops 20% of what it receives");
  loss.script = [](Run& run) {
    auto everyone = concat(run.nodes(), run.clientHosts());
    run.at(0.2);
    auto f = run.begin("20% packet loss everywhere", [&]() { run.lab().loss(everyone, 20); });
    run.at(0.8);
    run.end(f, [&]() { run.lab().heal(); });
  };
  all.push_back(loss);

  auto wiped = scenario("amnesia", "a node restarts with an empty data directory");
  wiped.script = amnesia;
  addWithTail(all, wiped);

  auto deletes = scenario("deletes-replica-down",
                          "deletes while one replica is cut off, back after the writes stop", true);
  // Cut off rather than killed: a killed node's deletes reach it as hints (kill-one-tail shows
  // that path converging); a replica that is merely unreachable gets them from anti-entropy
  // only, and its old values must not come back when the tombstones are collected.
  deletes.deleteWeight = 60;
  deletes.script = [](Run& run) {
    auto others = concat({"n1", "n2", "n4", "n5"}, run.clientHosts());
    run.at(0.1);
    auto f = run.begin("n3 cut off", [&]() { run.lab().partition({"n3"}, others); });
    run.end(f, [&]() { run.lab().heal(); });
  };
  all.push_back(deletes);

  auto joinLeave = scenario("join-leave-kills", "n5 joins and n1 leaves while nodes are killed");
  joinLeave.ringAtStart = {"n1", "n2", "n3", "n4"};
  joinLeave.script = [](Run& run) {
    run.at(0.15);
    auto j = run.begin("admin join n5", [&]() { run.join("n5"); });
    run.endNow(j, []() {});
    run.at(0.3);
    auto k = run.begin("kill -9 n2", [&]() { run.kill("n2"); });
    run.at(0.45);
    run.endNow(k, [&]() { run.restart("n2"); });
    run.at(0.55);
    auto l = run.begin("admin leave n1", [&]() { run.leave("n1"); });
    run.endNow(l, []() {});
    run.at(0.65);
    auto k2 = run.begin("kill -9 n4", [&]() { run.kill("n4"); });
    run.at(0.8);
    run.endNow(k2, [&]() { run.restart("n4"); });
  };
  all.push_back(joinLeave);

  auto disk = scenario("full-disk", "one node's disk fills up, then frees");
  disk.prepare = [](Run& run) { run.useSmallDisk("n3", uint64_t(64) << 20); };
  disk.script = [](Run& run) {
    run.at(0.25);
    auto f = run.begin("n3's disk full", [&]() { run.fillDisk("n3"); });
    run.at(0.6);
    run.end(f, [&]() { run.freeDisk("n3"); });
  };
  all.push_back(disk);

  auto clock = scenario("clock-offset", "one node's wall clock jumps 10 minutes ahead, then back");
  clock.prepare = [](Run& run) { run.useFakeClock("n2"); };
  clock.script = [](Run& run) {
    run.at(0.2);
    auto f = run.begin("n2's clock +600 s", [&]() { run.setClockOffset("n2", 600); });
    run.at(0.7);
    run.end(f, [&]() { run.setClockOffset("n2", 0); });
  };
  all.push_back(clock);
  return all;
}

}  // namespace

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> all = build();
  return all;
}

}  // namespace dynkv::faults
