// The body of POST /streams/{stream}/events: one event object or a non-empty array of them,
//   {"type": "team.registered", "data": <any JSON>, "id": "<UUID>"}   ("id" optional)
// validated by nlohmann's SAX parser (iterative: no recursion, however deep the input) under a
// nesting limit, and each event's `data` kept as the exact bytes the client sent — never parsed
// into a tree and re-serialized, so neither the write path nor the read path recurses on it.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace eventstore {

struct BodyLimits {
  // Nesting depth of the whole document (the array of events is level 1, an event object level 2,
  // so `data` may nest max_depth - 2 further levels).
  size_t max_depth = 64;
  size_t max_events = 10000;
};

struct ParsedEvent {
  std::string type;
  std::string data;  // the raw JSON text of "data"; "null" when absent
  std::string id;    // the 16 bytes of "id" (a UUID), empty when absent
};

// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (hex, either case) -> 16 bytes; false if not that form.
bool ParseUuid(std::string_view text, std::string* bytes);
// 16 bytes -> the lowercase canonical text form.
std::string FormatUuid(std::string_view bytes);

// InvalidArgument naming the problem: not JSON (with the parser's position), nesting too deep, not
// an event object or a non-empty array of them, a missing or non-string "type", an "id" that is
// not a UUID string, a field other than "type", "data" and "id", a field given twice, too many
// events.
absl::StatusOr<std::vector<ParsedEvent>> ParseEventsBody(std::string_view body,
                                                         const BodyLimits& limits = {});

}  // namespace eventstore
