#include "logging.h"

#include <kj/debug.h>
#include <kj/time.h>
#include <unistd.h>

#include <cctype>
#include <ctime>
#include <vector>

namespace dynkv::storaged {
namespace {

const char* levelName(kj::LogSeverity severity) {
  switch (severity) {
    case kj::LogSeverity::INFO:
      return "INFO ";
    case kj::LogSeverity::WARNING:
      return "WARN ";
    case kj::LogSeverity::ERROR:
      return "ERROR";
    case kj::LogSeverity::FATAL:
      return "FATAL";
    case kj::LogSeverity::DBG:
      return "DEBUG";
  }
  return "?    ";
}

bool isWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool isExpressionChar(char c) {
  return isWordChar(c) || c == '.' || c == '-' || c == '>' || c == '(' || c == ')' ||
         c == ':' || c == '[' || c == ']';
}

std::string keyOf(std::string_view expression) {
  // `pending_.size()` → pending_size, `now->version()` → now_version, `address.c_str()` →
  // address: a word a log search can name.
  std::string e(expression);
  for (const char* noise : {".c_str()", ".cStr()", "->get()"}) {
    for (auto at = e.find(noise); at != std::string::npos; at = e.find(noise)) {
      e.erase(at, std::string_view(noise).size());
    }
  }
  std::string key;
  for (char c : e) {
    if (isWordChar(c)) {
      key += c;
    } else if (!key.empty() && key.back() != '_') {
      key += '_';
    }
  }
  while (!key.empty() && key.back() == '_') key.pop_back();
  // A member's trailing underscore before a separator (pending_.size → pending__size): one.
  for (auto at = key.find("__"); at != std::string::npos; at = key.find("__")) key.erase(at, 1);
  return key.empty() ? "value" : key;
}

std::string escaped(std::string_view text, bool quote) {
  std::string out;
  if (quote) out += '"';
  for (char c : text) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        break;
      case '\t':
        out += ' ';
        break;
      case '"':
        out += quote ? "\\\"" : "\"";
        break;
      case '\\':
        out += quote ? "\\\\" : "\\";
        break;
      default:
        out += c;
    }
  }
  if (quote) out += '"';
  return out;
}

std::string valueText(std::string_view value) {
  bool quote = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t') quote = true;
  }
  return escaped(value, quote);
}

struct Field {
  size_t at;          // where "; name = " starts in the text
  size_t valueStart;  // just after it
  std::string key;
};

std::vector<Field> fieldsOf(std::string_view text) {
  // kj joins a log's arguments with "; ", each non-literal one as "expression = value".
  std::vector<Field> fields;
  for (size_t at = text.find("; "); at != std::string_view::npos; at = text.find("; ", at + 1)) {
    size_t nameStart = at + 2, nameEnd = nameStart;
    while (nameEnd < text.size() && isExpressionChar(text[nameEnd])) nameEnd++;
    if (nameEnd == nameStart || text.substr(nameEnd, 3) != " = ") continue;
    fields.push_back({at, nameEnd + 3, keyOf(text.substr(nameStart, nameEnd - nameStart))});
  }
  return fields;
}

}  // namespace

std::optional<kj::LogSeverity> parseLogLevel(std::string_view name) {
  if (name == "info") return kj::LogSeverity::INFO;
  if (name == "warning") return kj::LogSeverity::WARNING;
  if (name == "error") return kj::LogSeverity::ERROR;
  return std::nullopt;
}

std::string formatLogLine(int64_t unixMicros, kj::LogSeverity severity, std::string_view file,
                          int line, std::string_view text) {
  time_t seconds = time_t(unixMicros / 1'000'000);
  struct tm utc;
  gmtime_r(&seconds, &utc);
  char stamp[40];
  size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ", int(unixMicros / 1000 % 1000));

  auto fields = fieldsOf(text);
  std::string_view message = text.substr(0, fields.empty() ? text.size() : fields[0].at);
  std::string out = std::string(stamp) + " " + levelName(severity) + " " + escaped(message, false);
  for (size_t i = 0; i < fields.size(); i++) {
    size_t end = i + 1 < fields.size() ? fields[i + 1].at : text.size();
    auto value = text.substr(fields[i].valueStart, end - fields[i].valueStart);
    out += " " + fields[i].key + "=" + valueText(value);
  }
  auto slash = file.rfind('/');
  out += " src=" + std::string(slash == std::string_view::npos ? file : file.substr(slash + 1)) +
         ":" + std::to_string(line) + "\n";
  return out;
}

LogSink::LogSink(kj::LogSeverity least) { kj::_::Debug::setLogLevel(least); }

void LogSink::logMessage(kj::LogSeverity severity, const char* file, int line, int contextDepth,
                         kj::String&& text) {
  int64_t now = (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
  auto formatted = formatLogLine(now, severity, file, line, std::string_view(text.cStr()));
  // One write per line: lines of two threads never interleave.
  for (size_t done = 0; done < formatted.size();) {
    ssize_t n = ::write(STDERR_FILENO, formatted.data() + done, formatted.size() - done);
    if (n <= 0) break;
    done += size_t(n);
  }
}

}  // namespace dynkv::storaged
