// /metrics over HTTP on cpp-httplib: a standalone exporter thread, or routes mounted on a server
// the application already runs (the event-store server mounts them beside its API).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include <httplib.h>

#include "absl/status/statusor.h"
#include "exposition/metrics_handler.h"

namespace metrics::exposition {

// GET /metrics (negotiated format, gzip when accepted) and GET /healthz ("ok"); other methods on
// them get 405 with "Allow: GET". Unknown paths get 404, malformed requests 400 (cpp-httplib).
void MountMetrics(httplib::Server& server, std::shared_ptr<MetricsHandler> handler);

// Binds without SO_REUSEPORT, so that a port already in use is an error rather than shared.
void UseExclusivePort(httplib::Server& server);

struct ExporterOptions {
  std::string host = "127.0.0.1";
  int port = 9464;  // 0: any free port (see HttpExporter::port())
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
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace metrics::exposition
