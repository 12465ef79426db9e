#include "store/internal/append_validation.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/strings.h"
#include "engine/validate.h"
#include "store/internal/record.h"

namespace metrics::store::internal {
namespace {

using ::metrics::internal::AV;

bool IsStreamChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

}  // namespace

std::string Quote(std::string_view s) { return absl::StrCat("\"", absl::CHexEscape(AV(s)), "\""); }

absl::Status ValidateStreamId(std::string_view stream, size_t max_stream_bytes) {
  if (stream.empty()) return absl::InvalidArgumentError("stream id is empty");
  if (stream.size() > max_stream_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("stream id is ", stream.size(),
                                                   " bytes long, the limit is ", max_stream_bytes));
  }
  for (size_t i = 0; i < stream.size(); ++i) {
    if (!IsStreamChar(stream[i])) {
      return absl::InvalidArgumentError(absl::StrCat("stream id ", Quote(stream),
                                                     " has a character outside [A-Za-z0-9._:-] at "
                                                     "offset ",
                                                     i));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAppend(std::string_view stream, const std::vector<NewEvent>& events,
                            const AppendLimits& limits, uint64_t* payload_bytes) {
  if (absl::Status s = ValidateStreamId(stream, limits.max_stream_bytes); !s.ok()) return s;
  if (events.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no events to append to stream ", Quote(stream)));
  }
  uint64_t total = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const NewEvent& e = events[i];
    if (e.type.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " has an empty type"));
    }
    if (e.type.size() > limits.max_type_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " type is ", e.type.size(),
                                                     " bytes long, the limit is ",
                                                     limits.max_type_bytes));
    }
    for (unsigned char c : e.type) {
      if (c < 0x20 || c == 0x7F) {
        return absl::InvalidArgumentError(
            absl::StrCat("event #", i, " type ", Quote(e.type), " has a control character"));
      }
    }
    if (!IsValidUtf8(e.type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("event #", i, " type ", Quote(e.type), " is not valid UTF-8"));
    }
    if (e.payload.size() > limits.max_payload_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " payload is ", e.payload.size(),
                                                     " bytes, the limit is ",
                                                     limits.max_payload_bytes));
    }
    if (!e.id.empty() && e.id.size() != kIdBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("event #", i, " id is ", e.id.size(), " bytes, an id is 16 (a UUID)"));
    }
    if (e.id.empty() != events[0].id.empty()) {
      return absl::InvalidArgumentError("either every event of an append has an id, or none");
    }
    for (size_t k = 0; k < i && !e.id.empty(); ++k) {
      if (events[k].id == e.id) {
        return absl::InvalidArgumentError(
            absl::StrCat("events #", k, " and #", i, " have the same id"));
      }
    }
    total += e.payload.size();
  }
  if (payload_bytes != nullptr) *payload_bytes = total;
  return absl::OkStatus();
}

}  // namespace metrics::store::internal
