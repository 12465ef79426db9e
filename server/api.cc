#include "server/api.h"

#include <algorithm>
#include <map>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/json_out.h"
#include "server/reply.h"
#include "server/schedules_api.h"
#include "server/stats.h"
#include "server/status_page.h"
#include "server/system_streams.h"
#include "server/webhooks_api.h"

namespace eventstore {
namespace {

using httplib::Request;
using httplib::Response;
using metrics::exposition::GuardedServer;
using metrics::instrument::RouteTable;
using metrics::store::EventBackend;
using metrics::store::ExpectedVersion;
using HandlerResponse = httplib::Server::HandlerResponse;

constexpr std::string_view kAppend = "/streams/{stream}/events";
constexpr std::string_view kStream = "/streams/{stream}";
constexpr std::string_view kAll = "/all";
constexpr std::string_view kTeams = "/projections/teams";
constexpr std::string_view kTeamStatus = "/projections/team_status";
constexpr std::string_view kMetrics = "/metrics";
constexpr std::string_view kHealth = "/healthz";
constexpr std::string_view kStatusPage = "/";
constexpr std::string_view kStats = "/stats";
constexpr std::string_view kDemoSink = "/demo/webhook-sink";

void Error(Response& res, int status, std::string_view message) {
  ReplyError(res, status, message);
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

int StatusFor(const absl::Status& s, const EventBackend& store) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      // A version conflict, unless the store is closing (also FailedPrecondition).
      return store.Health().ok() ? 409 : 503;
    case absl::StatusCode::kUnknown:
      return 500;  // a write failed and could not be undone: the outcome is unknown
    default:
      return 503;  // not written (a failed write, undone), or the store cannot take writes
  }
}

// "." and ".." are valid stream ids for the store, but clients normalize them out of URLs.
bool UsableInUrl(const std::string& stream, Response& res) {
  if (stream != "." && stream != "..") return true;
  Error(res, 400, "stream ids \".\" and \"..\" cannot be used in a URL");
  return false;
}

bool HasBody(const Request& req) {
  const std::string& length = req.get_header_value("Content-Length");
  return (!length.empty() && length != "0") || req.has_header("Transfer-Encoding");
}

// A non-negative decimal that fits in 63 bits, digits only (no sign, space or exponent).
bool ParseCount(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = n;
  return true;
}

// Reads query parameter `name` (default `dflt`) into *out; false after answering 400.
bool QueryCount(const Request& req, Response& res, const char* name, uint64_t dflt, uint64_t min,
                uint64_t* out) {
  *out = dflt;
  if (!req.has_param(name)) return true;
  if (!ParseCount(req.get_param_value(name), out) || *out < min) {
    Error(res, 400,
          absl::StrCat(name, " must be a whole number from ", min, " to 999999999999999999"));
    return false;
  }
  return true;
}

std::string_view ReadError(int status) {
  switch (status) {
    case 413:
      return "request body too large";
    case 415:
      return "unsupported Content-Encoding (gzip, deflate and br are accepted)";
    default:
      return "could not read the request body";
  }
}

void HandleAppend(const ApiDeps& deps, const ApiOptions& o, const Request& req, Response& res,
                  const httplib::ContentReader& reader) {
  ExpectedVersion expected = ExpectedVersion::kAny;
  if (req.has_param("expected_version")) {
    const std::string v = req.get_param_value("expected_version");
    uint64_t n = 0;
    if (v == "any") {
      expected = ExpectedVersion::kAny;
    } else if (v == "no_stream") {
      expected = ExpectedVersion::kNoStream;
    } else if (ParseCount(v, &n)) {
      expected = ExpectedVersion::Exact(n);
    } else {
      GuardedServer::CloseAfterResponse(res);  // the body stays unread
      return Error(res, 400,
                   "expected_version must be 'any', 'no_stream' or a whole number up to 18 digits");
    }
  }
  // The reader undoes any Content-Encoding chunk by chunk; the cap is on what it yields, so a
  // small compressed body cannot inflate past max_body_bytes.
  std::string body;
  bool too_large = false;
  const bool read = reader([&](const char* data, size_t n) {
    if (body.size() + n > o.max_body_bytes) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_large || !read) {
    GuardedServer::CloseAfterResponse(res);
    const int status = too_large ? 413 : (res.status >= 400 ? res.status : 400);
    return Error(res, status,
                 too_large ? absl::StrCat("request body over ", o.max_body_bytes, " bytes")
                           : std::string(ReadError(status)));
  }
  if (body.empty()) return Error(res, 400, "empty body: send an event object or an array of them");
  auto parsed = ParseEventsBody(body, o.body);
  if (!parsed.ok()) return Error(res, 400, Message(parsed.status()));
  std::vector<metrics::store::NewEvent> events;
  events.reserve(parsed->size());
  for (ParsedEvent& e : *parsed) {
    events.push_back({std::move(e.type), std::move(e.data), std::move(e.id)});
  }
  const std::string& stream = req.matches[1];
  if (!UsableInUrl(stream, res)) return;
  if (IsSystemStream(stream)) {
    return Error(
        res, 403,
        absl::StrCat("stream ", stream, " is the server's own: use /subscriptions and /schedules"));
  }
  auto r = deps.store->Append(stream, expected, std::move(events));
  if (!r.ok()) return Error(res, StatusFor(r.status(), *deps.store), Message(r.status()));
  // A retry whose events (by id) are already stored: 200 with the original positions.
  res.status = r->duplicate ? 200 : 201;
  res.set_content(absl::StrCat("{\"first_position\":", r->first_position, ",\"last_position\":",
                               r->last_position, ",\"stream_version\":", r->last_stream_version,
                               r->duplicate ? ",\"duplicate\":true" : "", "}\n"),
                  "application/json");
}

// Reads up to `limit` events in chunks through `read`, stopping early at the page's byte budget;
// the store's lock is held per chunk, never for the whole page.
template <typename ReadFn>
std::pair<std::string, uint64_t> Page(const ApiOptions& o, uint64_t from, uint64_t limit,
                                      bool with_stream, ReadFn read) {
  std::string events = "[";
  uint64_t got = 0;
  size_t bytes = 0;
  while (got < limit && bytes < o.max_page_bytes) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(limit - got, 64));
    std::vector<metrics::store::Event> chunk = read(from + got, want);
    for (const auto& e : chunk) {
      if (got > 0) events += ',';
      AppendEvent(&events, e, with_stream);
      bytes += e.payload.size();
      ++got;
    }
    if (chunk.size() < want) break;
  }
  events += ']';
  return {std::move(events), got};
}

void HandleReadStream(const ApiDeps& deps, const ApiOptions& o, const Request& req, Response& res) {
  const std::string& stream = req.matches[1];
  if (!UsableInUrl(stream, res)) return;
  uint64_t from = 1, limit = 0;
  if (!QueryCount(req, res, "from_version", 1, 1, &from) ||
      !QueryCount(req, res, "limit", o.default_page, 1, &limit)) {
    return;
  }
  limit = std::min<uint64_t>(limit, o.max_page);
  auto version = deps.store->StreamVersion(stream);
  if (!version.ok())
    return Error(res, StatusFor(version.status(), *deps.store), Message(version.status()));
  if (*version == 0) return Error(res, 404, absl::StrCat("no stream named ", stream));
  bool failed = false;
  auto [events, got] = Page(o, from, limit, false, [&](uint64_t at, size_t n) {
    auto r = deps.store->ReadStream(stream, at, n);
    if (!r.ok()) failed = true;
    return r.ok() ? *std::move(r) : std::vector<metrics::store::Event>();
  });
  if (failed) return Error(res, 503, "read failed");
  const uint64_t now = deps.store->StreamVersion(stream).value_or(*version);
  std::string out = "{\"stream\":";
  AppendJsonString(&out, stream);
  absl::StrAppend(&out, ",\"version\":", now, ",\"from_version\":", from, ",\"events\":", events,
                  ",\"next_from_version\":",
                  from + got <= now ? absl::StrCat(from + got) : std::string("null"), "}\n");
  res.set_content(out, "application/json");
}

void HandleReadAll(const ApiDeps& deps, const ApiOptions& o, const Request& req, Response& res) {
  uint64_t from = 1, limit = 0;
  if (!QueryCount(req, res, "from_position", 1, 1, &from) ||
      !QueryCount(req, res, "limit", o.default_page, 1, &limit)) {
    return;
  }
  limit = std::min<uint64_t>(limit, o.max_page);
  bool failed = false;
  auto [events, got] = Page(o, from, limit, true, [&](uint64_t at, size_t n) {
    auto r = deps.store->ReadAll(at, n);
    if (!r.ok()) failed = true;
    return r.ok() ? *std::move(r) : std::vector<metrics::store::Event>();
  });
  if (failed) return Error(res, 503, "read failed");
  const uint64_t last = deps.store->LastPosition();
  res.set_content(
      absl::StrCat("{\"from_position\":", from, ",\"last_position\":", last, ",\"events\":", events,
                   ",\"next_from_position\":",
                   from + got <= last ? absl::StrCat(from + got) : std::string("null"), "}\n"),
      "application/json");
}

// Pre-routing, on both listeners: tokens and the declared body size, before any body is read.
HandlerResponse Admit(const ApiDeps& deps, size_t max_body_bytes, const Request& req,
                      Response& res) {
  if (req.path == kHealth) return HandlerResponse::Unhandled;
  // The status page is static and holds no data (it asks for a token itself); /stats is the API's.
  const TokenAuth* auth = req.path == kMetrics                               ? deps.metrics_auth
                          : req.path == kStatusPage || req.path == kDemoSink ? nullptr
                                                                             : deps.api_auth;
  if (auth != nullptr && !auth->Check(req.get_header_value("Authorization"))) {
    if (HasBody(req)) GuardedServer::CloseAfterResponse(res);
    res.set_header("WWW-Authenticate", "Bearer realm=\"eventstore\"");
    Error(res, 401,
          req.has_header("Authorization") ? "invalid token"
                                          : "missing Authorization: Bearer <token> header");
    return HandlerResponse::Handled;
  }
  if (const std::string& coding = req.get_header_value("Content-Encoding");
      !coding.empty() && coding != "gzip" && coding != "deflate" && coding != "br" &&
      coding != "identity") {
    if (HasBody(req)) GuardedServer::CloseAfterResponse(res);
    Error(res, 415, "unsupported Content-Encoding (send gzip, deflate, br or none)");
    return HandlerResponse::Handled;
  }
  if (const std::string& length = req.get_header_value("Content-Length"); !length.empty()) {
    uint64_t n = 0;
    if (!ParseCount(length, &n) || n > max_body_bytes) {
      GuardedServer::CloseAfterResponse(res);
      Error(res, 413, absl::StrCat("request body over ", max_body_bytes, " bytes"));
      return HandlerResponse::Handled;
    }
  }
  return HandlerResponse::Unhandled;
}

// Methods each route answers, for 405 + Allow on the others.
using AllowMap = std::map<std::string, std::set<std::string>, std::less<>>;

void InstallHooks(GuardedServer& server, const ApiDeps& deps, size_t max_body_bytes,
                  std::shared_ptr<const RouteTable> routes, std::shared_ptr<const AllowMap> allow) {
  httplib::Server::HandlerWithResponse admit = [deps, max_body_bytes](const Request& req,
                                                                      Response& res) {
    return Admit(deps, max_body_bytes, req, res);
  };
  if (deps.http_metrics != nullptr) {
    deps.http_metrics->Install(server, admit);
  } else {
    server.set_pre_routing_handler(admit);
  }
  server.set_error_handler([routes, allow](const Request& req, Response& res) {
    if (res.status == 404) {
      if (const std::string* route = routes->Match(req.path); route != nullptr) {
        auto it = allow->find(*route);
        if (it != allow->end() && !it->second.contains(req.method)) {
          res.status = 405;
          res.set_header("Allow", absl::StrJoin(it->second, ", "));
        }
      }
    }
    if (res.status >= 400 && res.body.empty()) {
      Error(res, res.status,
            res.status == 404   ? "no such resource"
            : res.status == 405 ? "method not allowed"
            : res.status == 413 ? "request body too large"
            : res.status == 415 ? "unsupported Content-Encoding"
                                : "bad request");
    }
    if (res.status == 400 || res.status == 413) GuardedServer::CloseAfterResponse(res);
  });
}

void MountHealthAndMetrics(GuardedServer& server, const ApiDeps& deps,
                           std::shared_ptr<metrics::exposition::MetricsHandler> metrics) {
  EventBackend* store = deps.store;
  metrics::exposition::MountMetrics(server, std::move(metrics),
                                    [store] { return store->Health(); });
}

}  // namespace

RouteTable MetricsRoutes() {
  RouteTable t;
  (void)t.Add(kMetrics);
  (void)t.Add(kHealth);
  return t;
}

RouteTable ApiRoutes(bool with_metrics_routes) {
  RouteTable t;
  for (std::string_view r :
       {kAppend, kStream, kAll, kTeams, kTeamStatus, kHealth, kStatusPage, kStats,
        std::string_view(kSchedulesRoute), std::string_view(kScheduleRoute),
        std::string_view(kSubscriptionsRoute), std::string_view(kSubscriptionRoute),
        std::string_view(kSubscriptionPauseRoute), std::string_view(kSubscriptionResumeRoute),
        kDemoSink}) {
    (void)t.Add(r);
  }
  if (with_metrics_routes) (void)t.Add(kMetrics);
  return t;
}

void MountApi(GuardedServer& server, const ApiDeps& deps, const ApiOptions& o,
              std::shared_ptr<metrics::exposition::MetricsHandler> metrics) {
  const bool with_metrics = metrics != nullptr;
  auto routes = std::make_shared<const RouteTable>(ApiRoutes(with_metrics));
  auto allow = std::make_shared<AllowMap>();
  (*allow)[std::string(kAppend)] = {"POST"};
  for (std::string_view r : {kStream, kAll, kTeams, kTeamStatus, kStats, kStatusPage})
    (*allow)[std::string(r)] = {"GET"};
  (*allow)[kSchedulesRoute] = {"GET", "POST"};
  (*allow)[kScheduleRoute] = {"DELETE"};
  (*allow)[std::string(kDemoSink)] = {"POST"};
  (*allow)[kSubscriptionsRoute] = {"GET", "POST"};
  (*allow)[kSubscriptionRoute] = {"DELETE"};
  (*allow)[kSubscriptionPauseRoute] = {"POST"};
  (*allow)[kSubscriptionResumeRoute] = {"POST"};
  InstallHooks(server, deps, o.max_body_bytes, routes, allow);
  server.set_payload_max_length(o.max_body_bytes);

  server.Post(RouteTable::ToRegex(kAppend),
              [deps, o](const Request& req, Response& res, const httplib::ContentReader& reader) {
                HandleAppend(deps, o, req, res, reader);
              });
  server.Get(RouteTable::ToRegex(kStream),
             [deps, o](const Request& req, Response& res) { HandleReadStream(deps, o, req, res); });
  server.Get(std::string(kAll),
             [deps, o](const Request& req, Response& res) { HandleReadAll(deps, o, req, res); });
  server.Get(std::string(kTeams), [deps](const Request&, Response& res) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& t : deps.teams->Teams()) {
      list.push_back({{"id", t.id}, {"name", t.name}, {"position", t.position}});
    }
    res.set_content(list.dump(), "application/json");
  });
  server.Get(std::string(kTeamStatus), [deps](const Request&, Response& res) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& t : deps.team_status->All()) {
      list.push_back({{"team", t.team},
                      {"status", t.status},
                      {"updates", t.updates},
                      {"position", t.position}});
    }
    res.set_content(list.dump(), "application/json");
  });
  server.Get(std::string(kStatusPage), [](const Request&, Response& res) {
    res.set_header("Cache-Control", "no-cache");
    // Holds the page to its promise of fetching nothing from elsewhere: the browser refuses it.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; "
                   "style-src 'unsafe-inline'; img-src 'self'; form-action 'none'; "
                   "base-uri 'none'");
    const std::string_view page = StatusPageHtml();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  });
  server.Get(std::string(kStats), [deps](const Request&, Response& res) {
    if (deps.stats == nullptr) {
      return Error(res, 503, "no stats: the server runs with --no-metrics");
    }
    res.set_header("Cache-Control", "no-store");
    res.set_content(deps.stats->Json(), "application/json");
  });
  if (deps.scheduler != nullptr) MountSchedules(server, deps.scheduler);
  if (deps.webhooks != nullptr) MountWebhooks(server, deps.webhooks);
  if (deps.demo_sink) {
    server.Post(std::string(kDemoSink), [](const Request&, Response& res) { res.status = 204; });
  }
  if (with_metrics) {
    MountHealthAndMetrics(server, deps, std::move(metrics));
  } else {
    // /healthz stays on the API's port too: load balancers check the port they send traffic to.
    EventBackend* store = deps.store;
    metrics::exposition::MountHealth(server, [store] { return store->Health(); });
  }
}

void MountMetricsOnly(GuardedServer& server, const ApiDeps& deps,
                      std::shared_ptr<metrics::exposition::MetricsHandler> metrics) {
  auto routes = std::make_shared<const RouteTable>(MetricsRoutes());
  InstallHooks(server, deps, 0, routes, std::make_shared<AllowMap>());
  MountHealthAndMetrics(server, deps, std::move(metrics));
}

}  // namespace eventstore
