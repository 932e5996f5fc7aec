// How `dynkv`, `storaged` and `dynkv-bench` run CLI11 over their arguments: one place decides
// what --help, --version, an unknown flag and a bad value become, so the three tools answer
// alike (each then words a usage error its own way, naming itself and its help). Header-only:
// CLI11 is, and only the tools include it.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace dynkv {

struct ParsedArguments {
  enum class Outcome {
    PARSED,   // go on: the app's options are set
    HELP,     // print `text` (the help of the command asked about) and exit 0
    VERSION,  // print `text` (the version) and exit 0
    USAGE,    // print `text`, what the user did wrong, and exit with the usage code
  };
  bool done() const { return outcome == Outcome::HELP || outcome == Outcome::VERSION; }
  // Nothing went wrong, and there is nothing left to do but print `text`.
  Outcome outcome = Outcome::PARSED;
  std::string text;
  std::vector<std::string> unknownFlags;  // USAGE from flags CLI11 does not know (suggestions)
};

inline ParsedArguments parseArguments(CLI::App& app, int argc, const char* const* argv,
                                      const std::string& version) {
  // `version` is what --version prints (a line of its own).
  ParsedArguments out;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out.outcome = ParsedArguments::Outcome::HELP;
    out.text = app.help();
  } catch (const CLI::CallForVersion&) {
    out.outcome = ParsedArguments::Outcome::VERSION;
    out.text = version + "\n";
  } catch (const CLI::ExtrasError&) {
    // Names the unknown flags but not what follows them: a mistyped --secret's value is the
    // secret. Stray arguments are named only when no flag is among them.
    std::string flags, strays;
    for (auto& arg : app.remaining(true)) {
      bool flag = arg.size() > 1 && arg[0] == '-';
      if (flag) out.unknownFlags.push_back(arg.substr(0, arg.find('=')));
      auto& list = flag ? flags : strays;
      list += (list.empty() ? "" : " ") + arg.substr(0, flag ? arg.find('=') : arg.size());
    }
    out.outcome = ParsedArguments::Outcome::USAGE;
    out.text = flags.empty() ? "unexpected argument: " + strays : "unknown flag: " + flags;
  } catch (const CLI::ParseError& e) {
    out.outcome = ParsedArguments::Outcome::USAGE;
    out.text = e.what();
  }
  return out;
}

}  // namespace dynkv
