// The run directory's records as JSON (nlohmann-json). Field names are the members' names in
// snake_case, enums are written as their toString() names, and times are integer
// microseconds, so other tools (jq, Python) can read a run without this code.

#include "history.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dynkv::faults {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Error messages may carry bytes from anywhere (an exception's text); invalid UTF-8 is
// replaced rather than allowed to make the writer throw mid-run.
std::string dumpLine(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

OpKind opKindFrom(const std::string& name) {
  for (OpKind kind : {OpKind::ADD, OpKind::BLIND, OpKind::PUT, OpKind::DELETE, OpKind::LWW}) {
    if (toString(kind) == name) return kind;
  }
  throw std::runtime_error("unknown operation kind \"" + name + "\"");
}

Outcome outcomeFrom(const std::string& name) {
  for (Outcome outcome : {Outcome::OK, Outcome::FAIL, Outcome::UNKNOWN}) {
    if (toString(outcome) == name) return outcome;
  }
  throw std::runtime_error("unknown outcome \"" + name + "\"");
}

// The from-JSON conversions require every field the writers write: a record missing one was
// not written by this code and is reported rather than guessed at.
Operation operationFrom(const json& j) {
  Operation op;
  op.client = j.at("client").get<uint32_t>();
  op.thread = j.at("thread").get<uint32_t>();
  op.kind = opKindFrom(j.at("kind").get<std::string>());
  op.key = j.at("key").get<std::string>();
  op.value = j.at("value").get<std::string>();
  op.observed = j.at("observed").get<std::vector<std::string>>();
  op.invokeMicros = j.at("invoke_us").get<int64_t>();
  op.completeMicros = j.at("complete_us").get<int64_t>();
  op.outcome = outcomeFrom(j.at("outcome").get<std::string>());
  op.error = j.at("error").get<std::string>();
  return op;
}

FaultWindow faultWindowFrom(const json& j) {
  FaultWindow window;
  window.name = j.at("name").get<std::string>();
  window.startMicros = j.at("start_us").get<int64_t>();
  window.endMicros = j.at("end_us").get<int64_t>();
  return window;
}

json toJsonValue(const ReplicaCopy& copy) {
  return json{{"node", copy.node},     {"reachable", copy.reachable},   {"found", copy.found},
              {"values", copy.values}, {"tombstones", copy.tombstones}, {"digest", copy.digest}};
}

ReplicaCopy replicaCopyFrom(const json& j) {
  ReplicaCopy copy;
  copy.node = j.at("node").get<std::string>();
  copy.reachable = j.at("reachable").get<bool>();
  copy.found = j.at("found").get<bool>();
  copy.values = j.at("values").get<std::vector<std::string>>();
  copy.tombstones = j.at("tombstones").get<uint32_t>();
  copy.digest = j.at("digest").get<std::string>();
  return copy;
}

json toJsonValue(const KeyState& state) {
  json replicas = json::array();
  for (const ReplicaCopy& copy : state.replicas) replicas.push_back(toJsonValue(copy));
  return json{{"ns", state.ns},
              {"key", state.key},
              {"read_ok", state.readOk},
              {"read_error", state.readError},
              {"values", state.values},
              {"siblings", state.siblings},
              {"replicas", std::move(replicas)}};
}

KeyState keyStateFrom(const json& j) {
  KeyState state;
  state.ns = j.at("ns").get<std::string>();
  state.key = j.at("key").get<std::string>();
  state.readOk = j.at("read_ok").get<bool>();
  state.readError = j.at("read_error").get<std::string>();
  state.values = j.at("values").get<std::vector<std::string>>();
  state.siblings = j.at("siblings").get<uint32_t>();
  for (const json& copy : j.at("replicas")) state.replicas.push_back(replicaCopyFrom(copy));
  return state;
}

// A duration that may never have been reached: a number, or null.
json toJsonValue(const std::optional<double>& seconds) {
  return seconds ? json(*seconds) : json(nullptr);
}

std::optional<double> secondsFrom(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<double>();
}

json toJsonValue(const Convergence& convergence) {
  return json{{"converged", convergence.converged},
              {"seconds", toJsonValue(convergence.seconds)},
              {"divergent_keys", convergence.divergentKeys}};
}

Convergence convergenceFrom(const json& j) {
  Convergence convergence;
  convergence.converged = j.at("converged").get<bool>();
  convergence.seconds = secondsFrom(j.at("seconds"));
  convergence.divergentKeys = j.at("divergent_keys").get<uint32_t>();
  return convergence;
}

json toJsonValue(const TombstoneCollection& tombstones) {
  return json{{"collected", tombstones.collected},
              {"seconds", toJsonValue(tombstones.seconds)},
              {"copies_left", tombstones.copiesLeft}};
}

TombstoneCollection tombstoneCollectionFrom(const json& j) {
  TombstoneCollection tombstones;
  tombstones.collected = j.at("collected").get<bool>();
  tombstones.seconds = secondsFrom(j.at("seconds"));
  tombstones.copiesLeft = j.at("copies_left").get<uint32_t>();
  return tombstones;
}

// Reads a JSON-lines file, converting each line with `from`. Only the file's last line may be
// malformed (its writer was killed mid-line; the line is dropped); anywhere else a malformed
// line means the file is damaged, and the error names the file and line.
template <typename T, typename From>
std::vector<T> readJsonLines(const fs::path& path, From from) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  if (in.bad()) throw std::runtime_error("error reading " + path.string());

  std::vector<T> records;
  for (size_t i = 0; i < lines.size(); ++i) {
    try {
      records.push_back(from(json::parse(lines[i])));
    } catch (const std::exception& e) {
      if (i + 1 == lines.size()) break;
      throw std::runtime_error(path.string() + ":" + std::to_string(i + 1) +
                               ": malformed line: " + e.what());
    }
  }
  return records;
}

}  // namespace

std::string toString(OpKind kind) {
  switch (kind) {
    case OpKind::ADD:
      return "add";
    case OpKind::BLIND:
      return "blind";
    case OpKind::PUT:
      return "put";
    case OpKind::DELETE:
      return "delete";
    case OpKind::LWW:
      return "lww";
  }
  throw std::logic_error("unknown OpKind " + std::to_string(int(kind)));
}

std::string toString(Outcome outcome) {
  switch (outcome) {
    case Outcome::OK:
      return "ok";
    case Outcome::FAIL:
      return "fail";
    case Outcome::UNKNOWN:
      return "unknown";
  }
  throw std::logic_error("unknown Outcome " + std::to_string(int(outcome)));
}

std::string toJsonLine(const Operation& op) {
  return dumpLine(json{{"client", op.client},
                       {"thread", op.thread},
                       {"kind", toString(op.kind)},
                       {"key", op.key},
                       {"value", op.value},
                       {"observed", op.observed},
                       {"invoke_us", op.invokeMicros},
                       {"complete_us", op.completeMicros},
                       {"outcome", toString(op.outcome)},
                       {"error", op.error}});
}

std::string toJsonLine(const FaultWindow& window) {
  return dumpLine(
      json{{"name", window.name}, {"start_us", window.startMicros}, {"end_us", window.endMicros}});
}

std::string toJson(const FinalState& state) {
  json keys = json::array();
  for (const KeyState& key : state.keys) keys.push_back(toJsonValue(key));
  json document{{"keys", std::move(keys)},
                {"without_reads", toJsonValue(state.withoutReads)},
                {"tombstones", toJsonValue(state.tombstones)},
                {"after_reads", toJsonValue(state.afterReads)}};
  return document.dump(2, ' ', false, json::error_handler_t::replace);
}

std::vector<Operation> readHistory(const std::string& runDir) {
  fs::path dir = fs::path(runDir) / "history";
  if (!fs::is_directory(dir)) throw std::runtime_error("no history directory " + dir.string());
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    bool matches = name.size() > 13 && name.compare(0, 7, "client-") == 0 &&
                   name.compare(name.size() - 6, 6, ".jsonl") == 0;
    if (matches && entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());

  std::vector<Operation> history;
  for (const fs::path& file : files) {
    std::vector<Operation> ops = readJsonLines<Operation>(file, operationFrom);
    history.insert(history.end(), std::make_move_iterator(ops.begin()),
                   std::make_move_iterator(ops.end()));
  }
  return history;
}

std::vector<FaultWindow> readFaults(const std::string& runDir) {
  fs::path path = fs::path(runDir) / "faults.jsonl";
  if (!fs::exists(path)) return {};
  return readJsonLines<FaultWindow>(path, faultWindowFrom);
}

FinalState readFinalState(const std::string& runDir) {
  fs::path path = fs::path(runDir) / "final.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  try {
    json document = json::parse(in);
    FinalState state;
    for (const json& key : document.at("keys")) state.keys.push_back(keyStateFrom(key));
    state.withoutReads = convergenceFrom(document.at("without_reads"));
    state.tombstones = tombstoneCollectionFrom(document.at("tombstones"));
    state.afterReads = convergenceFrom(document.at("after_reads"));
    return state;
  } catch (const json::exception& e) {
    throw std::runtime_error(path.string() + ": malformed: " + e.what());
  }
}

}  // namespace dynkv::faults
