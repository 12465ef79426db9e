// The event-store server's HTTP API on a GuardedServer: appends, paged reads of a stream and of
// the global log, the projections, and (when no separate metrics listener is used) /metrics and
// /healthz; bearer-token checks before any body is read; every error a JSON {"error": ...}.
//
//   POST /streams/{stream}/events[?expected_version=N|any|no_stream]
//        body: one {"type", "data"} object or a non-empty array of them (server/event_body.h)
//        201 {"first_position", "last_position", "stream_version"}
//   GET  /streams/{stream}[?from_version=N&limit=M]   200 {"stream", "version", "from_version",
//        "events": [...], "next_from_version": N|null}; 404 if the stream does not exist
//   GET  /all[?from_position=N&limit=M]               200 {"from_position", "last_position",
//        "events": [...], "next_from_position": N|null}
//   GET  /projections/teams, /projections/team_status
//   POST/GET /schedules, DELETE /schedules/{id}: scheduled events (server/schedules_api.h)
//   /subscriptions...: webhook subscriptions (server/webhooks_api.h)
//   GET  /stats  200 JSON figures for humans and scripts (server/stats.h); API token as the API
//   GET  /       the status page (server/status_page.h), open: static, it asks for a token itself
//   GET  /healthz (always), /metrics (unless it has a listener of its own)
//
// Thread contract: Mount() once before the server listens; handlers then run on the server's
// worker threads concurrently (the store and the projections are thread-safe).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "exposition/guarded_server.h"
#include "exposition/http_exporter.h"
#include "instrument/http_metrics.h"
#include "instrument/route_table.h"
#include "server/auth.h"
#include "server/event_body.h"
#include "server/scheduler.h"
#include "server/stats.h"
#include "server/webhooks.h"
#include "store/event_backend.h"
#include "store/projections.h"

namespace eventstore {

struct ApiOptions {
  size_t max_body_bytes = 4 << 20;  // after any Content-Encoding is undone
  BodyLimits body;
  size_t default_page = 100;        // events per read page
  size_t max_page = 1000;           // a larger limit is clamped
  size_t max_page_bytes = 4 << 20;  // a page stops early once its payloads reach this
};

// The routes of the API listener (and, with mount_metrics, /metrics and /healthz), for the
// handler label of the request metrics.
metrics::instrument::RouteTable ApiRoutes(bool with_metrics_routes);
metrics::instrument::RouteTable MetricsRoutes();

struct ApiDeps {
  metrics::store::EventBackend* store = nullptr;  // embedded or PostgreSQL
  std::shared_ptr<metrics::store::TeamsProjection> teams;
  std::shared_ptr<metrics::store::TeamStatusProjection> team_status;
  const TokenAuth* api_auth = nullptr;                       // null: no token needed
  const TokenAuth* metrics_auth = nullptr;                   // null: /metrics open
  metrics::instrument::HttpMetrics* http_metrics = nullptr;  // null: not instrumented
  StatsService* stats = nullptr;                             // null: /stats answers 503
  Scheduler* scheduler = nullptr;                            // null: no /schedules routes
  WebhookService* webhooks = nullptr;                        // null: no /subscriptions routes
  // The demo load's webhook receiver: POST /demo/webhook-sink answers 204 (no token needed: it
  // reads nothing and writes nothing). Off unless the server runs a demo load.
  bool demo_sink = false;
};

// Mounts the API on `server`; with `metrics`, also /metrics and /healthz.
void MountApi(metrics::exposition::GuardedServer& server, const ApiDeps& deps,
              const ApiOptions& options,
              std::shared_ptr<metrics::exposition::MetricsHandler> metrics);

// Mounts only /metrics and /healthz (the --metrics-listen listener).
void MountMetricsOnly(metrics::exposition::GuardedServer& server, const ApiDeps& deps,
                      std::shared_ptr<metrics::exposition::MetricsHandler> metrics);

}  // namespace eventstore
