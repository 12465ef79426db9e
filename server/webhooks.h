// Webhook subscriptions — the ADR's chat bot ("message processing, outbound API calls"), as a
// Slack incoming-webhook integration would consume them: each subscription gets the store's
// matching events as JSON POSTs, in global order, at least once.
//
// Subscriptions are events of the "webhooks:subscriptions" stream (subscription.created,
// .deleted, .paused, .resumed), so they survive restarts; each subscription's position (the last
// global position it has delivered or skipped) is checkpointed as webhook.checkpoint events of
// "webhooks:checkpoints" at most once a second and at shutdown. A dispatcher thread per
// subscription reads ReadAll from its position, skips what does not match (and the server's own
// "webhooks:" and "scheduler:" streams), and POSTs the rest one at a time (one request in flight
// per subscription, so order holds), retrying with exponential backoff (and Retry-After) until the
// receiver answers 2xx — an event is never skipped, only delivered late. After a crash, delivery
// resumes from the last checkpoint: events after it may arrive twice, with the same
// X-Eventstore-Event-Id, which is what receivers de-duplicate on.
//
// Each POST: body = the event as GET /all shows it; headers X-Eventstore-Subscription,
// X-Eventstore-Position, X-Eventstore-Event-Id (the event's UUID, else "position-<n>"),
// X-Eventstore-Signature: sha256=<hex HMAC-SHA256 of the body with the subscription's secret>.
//
// Metrics: webhook_deliveries_total{subscription,outcome} (delivered | failed: one per attempt),
// webhook_lag_seconds{subscription} (event stored -> its delivery acknowledged, for the last
// delivered event), webhook_position{subscription}, and the outbound_* metrics of
// instrument/outbound.h with target "webhook.<name>".
//
// Thread contract: every public method from any thread; a mutex guards the subscription table
// (never held across a delivery); each dispatcher owns its subscription's delivery state.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/registry.h"
#include "instrument/outbound.h"
#include "store/event_backend.h"

namespace eventstore {

struct Subscription {
  std::string name;                      // [A-Za-z0-9_.-]{1,56}
  std::string url;                       // http(s)://host[:port][/path]
  std::vector<std::string> event_types;  // deliver these types, or
  std::string stream_prefix;             // streams starting with this ("" with no types: all)
  std::string secret;                    // HMAC key, non-empty
  bool paused = false;
};

struct SubscriptionStatus {
  Subscription subscription;
  uint64_t position = 0;
};

// Lowercase hex of HMAC-SHA256(key, data) (OpenSSL's libcrypto).
std::string HmacSha256Hex(std::string_view key, std::string_view data);

class WebhookService {
 public:
  static constexpr char kSubscriptions[] = "webhooks:subscriptions";
  static constexpr char kCheckpoints[] = "webhooks:checkpoints";
  static constexpr size_t kMaxSubscriptions = 64;

  struct Options {
    std::chrono::milliseconds poll{50};  // how often an idle dispatcher looks for new events
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{10000};
    std::chrono::milliseconds timeout{5000};  // per request
  };

  // Rebuilds the subscriptions and their positions from the store and starts their dispatchers.
  // `registry` may be null (no metrics).
  static absl::StatusOr<std::unique_ptr<WebhookService>> Start(metrics::store::EventBackend* store,
                                                               metrics::Registry* registry,
                                                               Options options);
  ~WebhookService();  // stops the dispatchers, checkpoints their positions

  // InvalidArgument naming the problem, AlreadyExists, ResourceExhausted at kMaxSubscriptions.
  // A new subscription starts after the store's last event: it receives what comes next.
  absl::Status Add(const Subscription& s);
  absl::Status Remove(const std::string& name);                  // NotFound
  absl::Status SetPaused(const std::string& name, bool paused);  // NotFound
  std::vector<SubscriptionStatus> List() const;

 private:
  struct Dispatcher;
  struct Metrics;
  WebhookService(metrics::store::EventBackend* store, Options options);
  absl::Status Record(const char* stream, const char* type, const std::string& json);
  void StartDispatcher(const Subscription& s, uint64_t position);
  void Run(Dispatcher* d, Subscription sub);  // the dispatcher thread
  void Checkpoint(Dispatcher* d, const std::string& name);

  metrics::store::EventBackend* store_;
  Options options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<metrics::instrument::OutboundMetrics> outbound_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Dispatcher>> dispatchers_;  // guarded by mu_
};

}  // namespace eventstore
