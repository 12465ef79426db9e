#include "server/json_out.h"

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/event_body.h"
#include "server/system_streams.h"

namespace eventstore {

void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

void AppendEvent(std::string* out, const metrics::store::Event& e, bool with_stream) {
  absl::StrAppend(out, "{\"position\":", e.position);
  if (with_stream) {
    out->append(",\"stream\":");
    AppendJsonString(out, e.stream);
  }
  absl::StrAppend(out, ",\"version\":", e.stream_version, ",\"type\":");
  AppendJsonString(out, e.type);
  if (e.id.size() == 16) absl::StrAppend(out, ",\"id\":\"", FormatUuid(e.id), "\"");
  std::string scratch;
  const std::string_view payload = ReadablePayload(e, &scratch);
  // accept() runs nlohmann's SAX acceptor: iterative, no tree.
  if (!payload.empty() && nlohmann::json::accept(payload)) {
    out->append(",\"data\":");
    out->append(payload);
  } else {
    absl::StrAppend(out, ",\"data\":null,\"data_base64\":\"",
                    absl::Base64Escape(std::string(payload)), "\"");
  }
  absl::StrAppend(out, ",\"timestamp_ns\":", e.timestamp_ns, "}");
}

}  // namespace eventstore
