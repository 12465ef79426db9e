#include "instrument/http_metrics.h"

#include <array>
#include <chrono>
#include <cstdlib>
#include <string>

namespace metrics::instrument {
namespace {

constexpr std::string_view kOther = "other";

struct RequestState {
  bool active = false;
  std::string_view handler = kOther;
  std::chrono::steady_clock::time_point start;
};
thread_local RequestState current;

std::string_view MethodLabel(std::string_view m) {
  static constexpr std::array<std::string_view, 9> kKnown = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};
  for (std::string_view k : kKnown) {
    if (m == k) return k;
  }
  return kOther;
}

// "100".."599" without formatting on every request; anything else is "other".
std::string_view CodeLabel(int code) {
  static const std::array<std::string, 500> kCodes = [] {
    std::array<std::string, 500> a;
    for (int i = 0; i < 500; ++i) a[i] = std::to_string(100 + i);
    return a;
  }();
  return code >= 100 && code < 600 ? std::string_view(kCodes[code - 100]) : kOther;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpMetrics>> HttpMetrics::Create(Registry& registry,
                                                                 RouteTable routes,
                                                                 const HttpMetricsOptions& o) {
  auto requests = registry.AddCounter(
      {.name = "http_requests_total",
       .help = "HTTP requests answered, by route template, method and status code.",
       .label_names = {"handler", "method", "code"}});
  if (!requests.ok()) return requests.status();
  // Native buckets at schema 0 over the range that occurs: fewer cells per series than the default.
  auto duration = registry.AddHistogram(
      {.name = "http_request_duration_seconds",
       .help = "Time from a request's headers being read to its response being written.",
       .label_names = {"handler", "method"}},
      {.buckets = o.duration_buckets, .schema = 0, .min_exponent = -20, .max_exponent = 12});
  if (!duration.ok()) return duration.status();
  auto in_flight = registry.AddGauge(
      {.name = "http_requests_in_flight", .help = "HTTP requests being served now."});
  if (!in_flight.ok()) return in_flight.status();
  auto gauge = in_flight->Bind({});
  if (!gauge.ok()) return gauge.status();
  const HistogramConfig size_config = {
      .buckets = o.size_buckets, .schema = 0, .min_exponent = 0, .max_exponent = 36};
  auto request_size = registry.AddHistogram(
      {.name = "http_request_size_bytes",
       .help = "HTTP request body sizes (Content-Length, else the bytes read).",
       .label_names = {"handler"}},
      size_config);
  if (!request_size.ok()) return request_size.status();
  auto response_size = registry.AddHistogram({.name = "http_response_size_bytes",
                                              .help = "HTTP response body sizes.",
                                              .label_names = {"handler"}},
                                             size_config);
  if (!response_size.ok()) return response_size.status();
  return std::unique_ptr<HttpMetrics>(
      new HttpMetrics(std::move(routes), *std::move(requests), *std::move(duration),
                      *std::move(gauge), *std::move(request_size), *std::move(response_size)));
}

HttpMetrics::HttpMetrics(RouteTable routes, CounterFamily requests, HistogramFamily duration,
                         Gauge in_flight, HistogramFamily request_size,
                         HistogramFamily response_size)
    : routes_(std::move(routes)),
      requests_(std::move(requests)),
      duration_(std::move(duration)),
      in_flight_(std::move(in_flight)),
      request_size_(std::move(request_size)),
      response_size_(std::move(response_size)) {}

std::string_view HttpMetrics::CurrentHandler() { return current.active ? current.handler : kOther; }

void HttpMetrics::Begin(const httplib::Request& req) {
  if (current.active) in_flight_.Dec();  // the previous request on this thread never ended
  const std::string* route = routes_.Match(req.path);
  current.active = true;
  current.handler = route != nullptr ? std::string_view(*route) : kOther;
  current.start = std::chrono::steady_clock::now();
  in_flight_.Inc();
}

void HttpMetrics::End(const httplib::Request& req, const httplib::Response& res) {
  const std::string_view method = MethodLabel(req.method);
  std::string_view handler = kOther;
  if (current.active) {
    handler = current.handler;
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - current.start;
    duration_.WithLabelValues(handler, method).Observe(took.count());
    in_flight_.Dec();
    current.active = false;
  }
  requests_.WithLabelValues(handler, method, CodeLabel(res.status)).Inc();
  double request_bytes = static_cast<double>(req.body.size());
  if (auto it = req.headers.find("Content-Length"); it != req.headers.end()) {
    request_bytes = std::strtod(it->second.c_str(), nullptr);
  }
  request_size_.WithLabelValues(handler).Observe(request_bytes);
  response_size_.WithLabelValues(handler).Observe(static_cast<double>(res.body.size()));
}

}  // namespace metrics::instrument
