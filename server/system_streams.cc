#include "server/system_streams.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "server/webhooks.h"

namespace eventstore {

bool IsSystemStream(std::string_view stream) {
  return stream.starts_with("webhooks:") || stream.starts_with("scheduler:");
}

std::string_view ReadablePayload(const metrics::store::Event& e, std::string* scratch) {
  if (e.stream != WebhookService::kSubscriptions ||
      e.payload.find("secret") == std::string_view::npos) {
    return e.payload;
  }
  nlohmann::json j = nlohmann::json::parse(e.payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return e.payload;
  j["secret"] = "(redacted)";
  *scratch = j.dump();
  return *scratch;
}

void ReportForeignRecord(const char* service, const metrics::store::Event& e) {
  std::fprintf(stderr, "%s: skipped %s event %llu (position %llu): not a record of ours\n", service,
               e.stream.c_str(), static_cast<unsigned long long>(e.stream_version),
               static_cast<unsigned long long>(e.position));
}

}  // namespace eventstore
