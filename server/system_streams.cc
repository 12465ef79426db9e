#include "server/system_streams.h"

#include <nlohmann/json.hpp>

#include "server/webhooks.h"

namespace eventstore {

static_assert(std::string_view(WebhookService::kSubscriptions) == kWebhookSubscriptionsStream);

bool IsSystemStream(std::string_view stream) {
  return stream.starts_with("webhooks:") || stream.starts_with("scheduler:");
}

std::string_view ReadablePayload(const metrics::store::Event& e, std::string* scratch) {
  if (e.stream != kWebhookSubscriptionsStream ||
      e.payload.find("secret") == std::string_view::npos) {
    return e.payload;
  }
  nlohmann::json j = nlohmann::json::parse(e.payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return e.payload;
  j["secret"] = "(redacted)";
  *scratch = j.dump();
  return *scratch;
}

}  // namespace eventstore
