// /metrics over HTTP on cpp-httplib: a standalone exporter thread, or routes mounted on a server
// the application already runs (the event-store server mounts them beside its API).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <httplib.h>

#include "absl/status/statusor.h"
#include "exposition/guarded_server.h"
#include "exposition/metrics_handler.h"

namespace metrics::exposition {

// Whether the process can do its job: OK, or the reason it cannot (GET /healthz then answers 503
// with it). Called on a server thread for every health check.
using HealthFn = std::function<absl::Status()>;

// GET /healthz alone: "ok", or 503 and the reason `health` gives (always ok without one).
void MountHealth(httplib::Server& server, HealthFn health);

// GET /metrics (negotiated format, gzip when accepted) and GET /healthz ("ok", or 503 and the
// reason `health` gives); other methods on them get 405 with "Allow: GET". Unknown paths get 404,
// malformed requests 400 (cpp-httplib).
void MountMetrics(httplib::Server& server, std::shared_ptr<MetricsHandler> handler,
                  HealthFn health = nullptr);

// Binds without SO_REUSEPORT, so that a port already in use is an error rather than shared.
void UseExclusivePort(httplib::Server& server);

struct ExporterOptions {
  std::string host = "127.0.0.1";
  int port = 9464;  // 0: any free port (see HttpExporter::port())
  // Scrapes are serialized by the handler anyway; two workers keep one busy scraper from blocking
  // a health check, and few threads mean few shards and warm allocator arenas.
  GuardOptions guard = {.threads = 2, .max_connections = 64};
  HealthFn health;
};

class HttpExporter {
 public:
  // Binds, then serves on a thread of its own. Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpExporter>> Start(
      const ExporterOptions& options, std::shared_ptr<MetricsHandler> handler);
  ~HttpExporter();  // stops and joins

  int port() const { return port_; }
  void Stop();

 private:
  HttpExporter() = default;
  std::unique_ptr<GuardedServer> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace metrics::exposition
