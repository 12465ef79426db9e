// The checks every backend runs on an Append (and on stream ids of reads) on the caller's thread,
// before anything is queued: one definition, so that the embedded store and PostgreSQL reject the
// same requests with the same InvalidArgument messages. Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "store/event_backend.h"

namespace metrics::store::internal {

struct AppendLimits {
  size_t max_stream_bytes = 256;
  size_t max_type_bytes = 128;
  size_t max_payload_bytes = size_t{1} << 20;
};

// s as a C-escaped, double-quoted string, for error messages.
std::string Quote(std::string_view s);

// 1..max_stream_bytes bytes of [A-Za-z0-9._:-].
absl::Status ValidateStreamId(std::string_view stream, size_t max_stream_bytes);

// The stream id, then every event: a type of 1..max bytes of UTF-8 without control characters, a
// payload within the limit, ids of 16 bytes on every event or none, no id twice. On success
// *payload_bytes (if not null) is the sum of the payload sizes.
absl::Status ValidateAppend(std::string_view stream, const std::vector<NewEvent>& events,
                            const AppendLimits& limits, uint64_t* payload_bytes);

}  // namespace metrics::store::internal
