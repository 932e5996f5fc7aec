// storaged's settings, from the command line and an optional config file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "admission-controller.h"
#include "engine.h"
#include "limits.h"

namespace dynkv::storaged {

struct Config {
  std::string dataDir;               // required unless engine == "memory"
  std::string listen = "127.0.0.1:7400";
  std::string advertise;             // the address peers and clients use; default `listen`
  std::vector<std::string> seeds;    // HOST:PORT of other nodes
  std::string cluster = "dynkv";
  std::string secret;
  std::string engine = "lmdb";       // lmdb | memory
  Durability durability = Durability::SYNC;
  uint64_t mapSizeBytes = uint64_t(16) << 30;
  uint32_t partitionBits = 10;        // Q = 2^bits, fixed when the cluster is created
  std::string zone;                   // rack or data centre, for replica placement
  uint32_t weight = 1;                // relative capacity: share of partitions
  uint32_t replicas = 3;              // the cluster's default N: what a node holds copies of
  uint64_t transferBytesPerSecond = 32 << 20;  // partition streaming rate limit
  uint32_t gossipIntervalMillis = 1000;
  uint32_t antiEntropyIntervalMillis = 10000;  // between two rounds of exchanges
  AdmissionOptions admission;         // background work's slots (storaged/admission.h)
  Limits limits;
};

Config parseConfig(int argc, char** argv);
// Reads `--config FILE` first (lines `name = value`, `#` comments, names as the long flags
// without dashes), then the flags, which win. Throws std::invalid_argument with a message
// naming the bad setting; `--help` throws std::invalid_argument with the usage text.

std::string usage();

}  // namespace dynkv::storaged
