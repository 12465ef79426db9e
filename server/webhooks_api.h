// The webhook subscriptions' HTTP API (server/webhooks.h), mounted by MountApi when a
// WebhookService is given:
//
//   POST   /subscriptions                  {"name", "url", "event_types": [...] | "stream_prefix",
//                                           "secret"}  201; 400 naming the problem; 409; 429 at the
//                                           cap
//   GET    /subscriptions                  200 {"subscriptions": [{"name", "url", "event_types",
//                                           "stream_prefix", "paused", "position"}]} (no secrets)
//   DELETE /subscriptions/{name}           204; 404
//   POST   /subscriptions/{name}/pause     200; 404     (and /resume)
//
// Thread contract: as the API's (handlers run concurrently; the service is thread-safe).
#pragma once

#include <httplib.h>

#include "server/webhooks.h"

namespace eventstore {

inline constexpr char kSubscriptionsRoute[] = "/subscriptions";
inline constexpr char kSubscriptionRoute[] = "/subscriptions/{name}";
inline constexpr char kSubscriptionPauseRoute[] = "/subscriptions/{name}/pause";
inline constexpr char kSubscriptionResumeRoute[] = "/subscriptions/{name}/resume";

void MountWebhooks(httplib::Server& server, WebhookService* webhooks);

}  // namespace eventstore
