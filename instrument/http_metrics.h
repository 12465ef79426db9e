// Request metrics for any cpp-httplib server — the ADR's "Backend: API requests":
//
//   http_requests_total{handler,method,code}         counter
//   http_request_duration_seconds{handler,method}    histogram (headers read -> response written)
//   http_requests_in_flight                          gauge
//   http_request_size_bytes{handler}                 histogram (Content-Length, else body bytes)
//   http_response_size_bytes{handler}                histogram (body bytes)
//
// `handler` is the route template the path matched (instrument/route_table.h), "other" for a path
// no route matches or a request cut off before its headers were read; `method` is one of the HTTP
// methods cpp-httplib parses, else "other". So every label is bounded whatever clients send.
//
//   auto routes = ...;  // RouteTable with "/streams/{stream}/events", ...
//   auto m = *HttpMetrics::Create(registry, routes);
//   m->Install(server);             // pre-routing: Begin(); logger: End()
//   server.Post(RouteTable::ToRegex("/streams/{stream}/events"), handler);
//
// Thread contract: Begin() and End() run on the thread serving the request, one request per thread
// at a time (as cpp-httplib and exposition/guarded_server.h serve them); the state between them is
// thread-local. Any number of servers and threads may share one HttpMetrics.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include <httplib.h>

#include "absl/status/statusor.h"
#include "engine/registry.h"
#include "instrument/route_table.h"

namespace metrics::instrument {

struct HttpMetricsOptions {
  std::vector<double> duration_buckets = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
  std::vector<double> size_buckets = {64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20};
};

class HttpMetrics {
 public:
  // The registry's error when a name is taken by a different definition.
  static absl::StatusOr<std::unique_ptr<HttpMetrics>> Create(
      Registry& registry, RouteTable routes, const HttpMetricsOptions& options = {});

  // Headers read: resolves the handler label, counts the request in flight, starts its clock.
  void Begin(const httplib::Request& req);
  // Response written (cpp-httplib's logger): counts, times and sizes it. A request without a
  // Begin() (malformed request line or headers) is counted with handler="other".
  void End(const httplib::Request& req, const httplib::Response& res);

  // The route template of the request this thread is serving, "other" if none.
  static std::string_view CurrentHandler();

  // Sets `server`'s pre-routing handler to Begin() then `next`, and its logger to End() then
  // `next_logger`. A template so that a server type's own set_pre_routing_handler (GuardedServer
  // hides cpp-httplib's) is the one called.
  template <typename Server>
  void Install(Server& server, httplib::Server::HandlerWithResponse next = nullptr,
               httplib::Logger next_logger = nullptr) {
    server.set_pre_routing_handler(
        [this, next](const httplib::Request& req, httplib::Response& res) {
          Begin(req);
          return next ? next(req, res) : httplib::Server::HandlerResponse::Unhandled;
        });
    server.set_logger(
        [this, next_logger](const httplib::Request& req, const httplib::Response& res) {
          End(req, res);
          if (next_logger) next_logger(req, res);
        });
  }

  const RouteTable& routes() const { return routes_; }

 private:
  HttpMetrics(RouteTable routes, CounterFamily requests, HistogramFamily duration, Gauge in_flight,
              HistogramFamily request_size, HistogramFamily response_size);

  RouteTable routes_;
  CounterFamily requests_;
  HistogramFamily duration_;
  Gauge in_flight_;
  HistogramFamily request_size_;
  HistogramFamily response_size_;
};

}  // namespace metrics::instrument
