// storaged's log: every KJ_LOG of the process (storaged's own, and common/'s connection and
// request code) as one line per event, with a UTC timestamp, a level and key=value fields:
//
//   2026-12-02T08:10:49.123Z INFO  partition transfer complete partition=17 pending=3
//       src=transfer.c++:150
//
// (one line; wrapped here). kj's "message; name = value; ..." becomes the message followed by
// name=value pairs, a name being the logged expression made a word (`pending_.size()` →
// `pending_size`), a value quoted when it holds a space, a quote or an equals sign, and a
// newline (an exception's stack) escaped, so that a line is always one event.
//
// LogSink is the process's kj::ExceptionCallback for as long as it lives (on the stack of
// main's thread, as kj requires); --log-level sets the least severe level written.
#pragma once

#include <kj/exception.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dynkv::storaged {

std::optional<kj::LogSeverity> parseLogLevel(std::string_view name);
// info, warning or error; nullopt for anything else.

std::string formatLogLine(int64_t unixMicros, kj::LogSeverity severity, std::string_view file,
                          int line, std::string_view text);
// One event's line, ending in '\n'. `text` is kj's description ("message; a = 1; b = x y").

class LogSink final : public kj::ExceptionCallback {
 public:
  explicit LogSink(kj::LogSeverity least);
  // Writes to stderr each message at `least` or above (setting kj's own filter, so that what
  // is not written is not formatted either).

  void logMessage(kj::LogSeverity severity, const char* file, int line, int contextDepth,
                  kj::String&& text) override;
};

}  // namespace dynkv::storaged
