#include "exposition/http_exporter.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace metrics::exposition {

void UseExclusivePort(httplib::Server& server) {
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second process bind the same port
  // and silently take half the scrapes; keep SO_REUSEADDR (fast restarts) only.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

void MountHealth(httplib::Server& server, HealthFn health) {
  server.Get("/healthz",
             [health = std::move(health)](const httplib::Request&, httplib::Response& res) {
               absl::Status s = health ? health() : absl::OkStatus();
               if (s.ok()) {
                 res.set_content("ok\n", "text/plain; charset=utf-8");
               } else {
                 res.status = 503;
                 res.set_content(absl::StrCat("unavailable: ", s.message(), "\n"),
                                 "text/plain; charset=utf-8");
               }
             });
}

void MountMetrics(httplib::Server& server, std::shared_ptr<MetricsHandler> handler,
                  HealthFn health) {
  server.Get("/metrics", [handler](const httplib::Request& req, httplib::Response& res) {
    const std::string accept_encoding = req.get_header_value("Accept-Encoding");
    // Debian's cpp-httplib is built with zlib and gzips text/* responses by itself after the
    // handler when the request accepts gzip, which would compress our gzip a second time. We
    // compress here (fast level, reused buffers, OpenMetrics too), so hide the header from it. The
    // Request is a non-const object inside cpp-httplib, handed to handlers as const.
    const_cast<httplib::Request&>(req).headers.erase("Accept-Encoding");
    handler->Scrape(req.get_header_value("Accept"), accept_encoding, [&](const ScrapeResult& r) {
      res.set_content(r.body.data(), r.body.size(), std::string(r.content_type).c_str());
      if (r.gzipped) res.set_header("Content-Encoding", "gzip");
    });
  });
  MountHealth(server, std::move(health));
  auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET");
    res.set_content("method not allowed\n", "text/plain; charset=utf-8");
  };
  for (const char* path : {"/metrics", "/healthz"}) {
    server.Post(path, not_allowed);
    server.Put(path, not_allowed);
    server.Delete(path, not_allowed);
    server.Patch(path, not_allowed);
  }
}

absl::StatusOr<std::unique_ptr<HttpExporter>> HttpExporter::Start(
    const ExporterOptions& options, std::shared_ptr<MetricsHandler> handler) {
  std::unique_ptr<HttpExporter> e(new HttpExporter());
  e->server_ = std::make_unique<GuardedServer>(options.guard);
  if (!e->server_->status().ok()) return e->server_->status();
  MountMetrics(*e->server_, std::move(handler), options.health);
  e->port_ = e->server_->Bind(options.host, options.port);
  if (e->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot bind ", options.host, ":", options.port));
  }
  GuardedServer* raw = e->server_.get();
  e->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  // stop() before the listen loop has started would be lost and Stop() would then wait forever:
  // return only once the server runs.
  for (int i = 0; i < 5000 && !raw->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!raw->is_running()) return absl::InternalError("HTTP server thread did not start");
  return e;
}

void HttpExporter::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpExporter::~HttpExporter() { Stop(); }

}  // namespace metrics::exposition
