// The main job: the event-store server. An embedded durable store (store/), the domain's
// projections, a JSON HTTP API, /metrics and /healthz on one listener, and an optional synthetic
// producer so a new user sees live metrics at once.
//
//   eventstore-server [--data-dir DIR] [--listen HOST:PORT] [--fsync every-batch|interval|never]
//                     [--fsync-interval-ms N] [--demo-rate N] [--max-body-bytes N]
//                     [--test-slow-projection-ms N [--test-slow-projection-for-s S]]
//
// --test-slow-projection-ms is for tests of the lag alert: the "teams" projection sleeps N ms per
// event, for the first S seconds after start when --test-slow-projection-for-s is given (then it
// catches up, so the alert resolves), else for as long as the server runs.
//
// API (JSON; errors are {"error": "..."} with a 4xx status):
//   POST /streams/{stream}/events[?expected_version=N|any|no_stream]
//        body {"type": "...", "data": <any JSON>} or an array of them  -> 201 {"first_position",
//        "last_position", "stream_version"}; 400 bad JSON/type/stream, 409 version conflict,
//        413 body too large
//   GET  /streams/{stream}            -> 200 {"stream", "version", "events": [...]}; 404 if none
//   GET  /projections/teams           -> 200 [{"id", "name", "position"}...]
//   GET  /projections/team_status     -> 200 [{"team", "status", "updates", "position"}...]
//   GET  /metrics, GET /healthz
//
// SIGINT/SIGTERM: stop accepting requests, drain, fsync, exit 0.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "engine/registry.h"
#include "exposition/http_exporter.h"
#include "store/event_store.h"
#include "store/projections.h"

namespace {

using metrics::store::EventStore;
using metrics::store::ExpectedVersion;
using nlohmann::json;

struct Flags {
  std::string data_dir = "./data";
  std::string host = "127.0.0.1";
  int port = 8080;
  metrics::store::FsyncPolicy fsync = metrics::store::FsyncPolicy::kEveryBatch;
  uint32_t fsync_interval_ms = 100;
  double demo_rate = 0;
  size_t max_body_bytes = 4 << 20;
  int slow_projection_ms = 0;
  int slow_projection_for_s = 0;  // 0: for ever
};

[[noreturn]] void Usage(const char* argv0, const std::string& problem) {
  std::fprintf(
      stderr,
      "%s\nusage: %s [--data-dir DIR] [--listen HOST:PORT] "
      "[--fsync every-batch|interval|never] [--fsync-interval-ms N] [--demo-rate N] "
      "[--max-body-bytes N] [--test-slow-projection-ms N [--test-slow-projection-for-s S]]\n",
      problem.c_str(), argv0);
  std::exit(2);
}

long ParseNumber(const char* argv0, const std::string& flag, const std::string& v, long lo,
                 long hi) {
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < lo || n > hi) {
    Usage(argv0, flag + ": expected an integer in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "], got '" + v + "'");
  }
  return n;
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    if (size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (flag == "--help" || flag == "-h") {
      Usage(argv[0], "eventstore-server: an embedded event store with Prometheus metrics");
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      Usage(argv[0], flag + ": missing value");
    }
    if (flag == "--data-dir") {
      f.data_dir = value;
    } else if (flag == "--listen") {
      size_t colon = value.rfind(':');
      if (colon == std::string::npos) Usage(argv[0], "--listen: expected HOST:PORT");
      f.host = value.substr(0, colon);
      f.port = static_cast<int>(ParseNumber(argv[0], flag, value.substr(colon + 1), 0, 65535));
    } else if (flag == "--fsync") {
      if (value == "every-batch") {
        f.fsync = metrics::store::FsyncPolicy::kEveryBatch;
      } else if (value == "interval") {
        f.fsync = metrics::store::FsyncPolicy::kInterval;
      } else if (value == "never") {
        f.fsync = metrics::store::FsyncPolicy::kNever;
      } else {
        Usage(argv[0], "--fsync: expected every-batch, interval or never");
      }
    } else if (flag == "--fsync-interval-ms") {
      f.fsync_interval_ms = static_cast<uint32_t>(ParseNumber(argv[0], flag, value, 1, 3600000));
    } else if (flag == "--demo-rate") {
      f.demo_rate = static_cast<double>(ParseNumber(argv[0], flag, value, 0, 1000000));
    } else if (flag == "--max-body-bytes") {
      f.max_body_bytes = static_cast<size_t>(ParseNumber(argv[0], flag, value, 1, 64 << 20));
    } else if (flag == "--test-slow-projection-ms") {
      f.slow_projection_ms = static_cast<int>(ParseNumber(argv[0], flag, value, 0, 60000));
    } else if (flag == "--test-slow-projection-for-s") {
      f.slow_projection_for_s = static_cast<int>(ParseNumber(argv[0], flag, value, 1, 86400));
    } else {
      Usage(argv[0], "unknown flag " + flag);
    }
  }
  return f;
}

void Error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", message}}.dump(), "application/json");
}

int StatusFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kNotFound:
      return 404;
    default:
      return 503;
  }
}

// A payload is stored as the JSON text of "data"; read back as JSON when it parses.
json PayloadJson(const std::string& payload) {
  json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json(payload) : j;
}

void HandleAppend(EventStore& store, const httplib::Request& req, httplib::Response& res) {
  const std::string stream = req.matches[1];
  ExpectedVersion expected = ExpectedVersion::kAny;
  if (req.has_param("expected_version")) {
    std::string v = req.get_param_value("expected_version");
    if (v == "any") {
      expected = ExpectedVersion::kAny;
    } else if (v == "no_stream") {
      expected = ExpectedVersion::kNoStream;
    } else {
      char* end = nullptr;
      unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || v[0] == '-') {
        return Error(res, 400, "expected_version must be a number, 'any' or 'no_stream'");
      }
      expected = ExpectedVersion::Exact(n);
    }
  }
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return Error(res, 400, "request body is not valid JSON");
  if (body.is_object()) body = json::array({body});
  if (!body.is_array() || body.empty()) {
    return Error(res, 400, "expected an event object or a non-empty array of them");
  }
  std::vector<metrics::store::NewEvent> events;
  events.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    const json& e = body[i];
    if (!e.is_object()) return Error(res, 400, "event " + std::to_string(i) + " is not an object");
    auto type = e.find("type");
    if (type == e.end() || !type->is_string()) {
      return Error(res, 400, "event " + std::to_string(i) + ": missing string \"type\"");
    }
    auto data = e.find("data");
    events.push_back({type->get<std::string>(), data == e.end() ? "null" : data->dump()});
  }
  auto r = store.Append(stream, expected, std::move(events));
  if (!r.ok()) return Error(res, StatusFor(r.status()), std::string(r.status().message()));
  res.status = 201;
  res.set_content(json{{"first_position", r->first_position},
                       {"last_position", r->last_position},
                       {"stream_version", r->last_stream_version}}
                      .dump(),
                  "application/json");
}

void HandleReadStream(EventStore& store, const std::string& stream, httplib::Response& res) {
  auto events = store.ReadStream(stream);
  if (!events.ok())
    return Error(res, StatusFor(events.status()), std::string(events.status().message()));
  if (events->empty()) return Error(res, 404, "no stream named " + stream);
  json list = json::array();
  for (const auto& e : *events) {
    list.push_back({{"position", e.position},
                    {"version", e.stream_version},
                    {"type", e.type},
                    {"data", PayloadJson(e.payload)},
                    {"timestamp_ns", e.timestamp_ns}});
  }
  res.set_content(
      json{{"stream", stream}, {"version", events->back().stream_version}, {"events", list}}.dump(),
      "application/json");
}

// A synthetic producer: registers teams and then mostly updates their status, at `rate` events/s.
void DemoLoad(EventStore& store, double rate, const std::atomic<bool>& stop) {
  std::mt19937 rng(42);
  const char* statuses[] = {"idle", "training", "playing", "resting", "travelling"};
  const char* other_types[] = {"member.joined", "member.left", "score.posted"};
  uint64_t teams = 0;  // after a restart the first ten are registered again: last one wins
  auto next = std::chrono::steady_clock::now();
  const auto period = std::chrono::duration<double>(1.0 / rate);
  for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
    std::string team;
    metrics::store::NewEvent e;
    if (teams < 10 || rng() % 20 == 0) {
      ++teams;
      team = "demo-" + std::to_string(teams);
      e = {"team.registered",
           json{{"team", team}, {"name", "Demo team " + std::to_string(teams)}}.dump()};
    } else if (rng() % 5 != 0) {
      team = "demo-" + std::to_string(1 + rng() % teams);
      e = {"status.updated", json{{"team", team}, {"status", statuses[rng() % 5]}}.dump()};
    } else {
      team = "demo-" + std::to_string(1 + rng() % teams);
      e = {other_types[rng() % 3], json{{"team", team}, {"n", i}}.dump()};
    }
    auto r = store.Append("team-" + team, ExpectedVersion::kAny, {std::move(e)});
    if (!r.ok())
      std::fprintf(stderr, "demo: append failed: %s\n", std::string(r.status().message()).c_str());
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
    std::this_thread::sleep_until(next);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);

  // Block the stop signals in every thread; main waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  metrics::Registry registry;
  auto opened = EventStore::Open({.data_dir = flags.data_dir,
                                  .fsync = flags.fsync,
                                  .interval_ms = flags.fsync_interval_ms,
                                  .registry = &registry});
  if (!opened.ok()) {
    std::fprintf(stderr, "eventstore-server: cannot open %s: %s\n", flags.data_dir.c_str(),
                 std::string(opened.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<EventStore> store = *std::move(opened);
  const auto& rec = store->recovery();
  std::fprintf(
      stderr,
      "eventstore-server: opened %s: %zu segments, %llu events, %llu torn bytes truncated\n",
      flags.data_dir.c_str(), rec.segments, static_cast<unsigned long long>(rec.events),
      static_cast<unsigned long long>(rec.truncated_bytes));

  auto teams = std::make_shared<metrics::store::TeamsProjection>();
  auto status = std::make_shared<metrics::store::TeamStatusProjection>();
  const int slow_ms = flags.slow_projection_ms;
  const auto slow_until =
      flags.slow_projection_for_s > 0
          ? std::chrono::steady_clock::now() + std::chrono::seconds(flags.slow_projection_for_s)
          : std::chrono::steady_clock::time_point::max();
  metrics::store::ProjectionFn teams_fn = [teams, slow_ms,
                                           slow_until](const metrics::store::Event& e) {
    // Test-only: slows the projection on purpose (lag alert tests).
    if (slow_ms > 0 && std::chrono::steady_clock::now() < slow_until)
      std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms));
    return teams->Apply(e);
  };
  if (absl::Status s =
          store->AddProjection(std::string(metrics::store::TeamsProjection::kName), teams_fn);
      !s.ok() ||
      !(s = store->AddProjection(std::string(metrics::store::TeamStatusProjection::kName),
                                 metrics::store::AsProjection(status)))
           .ok()) {
    std::fprintf(stderr, "eventstore-server: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  httplib::Server http;
  metrics::exposition::UseExclusivePort(http);
  http.set_payload_max_length(flags.max_body_bytes);  // larger bodies: 413
  auto handler = std::make_shared<metrics::exposition::MetricsHandler>(
      std::vector<const metrics::Registry*>{&registry});
  metrics::exposition::MountMetrics(http, handler);
  EventStore* s = store.get();
  const std::string stream_re = R"(/streams/([A-Za-z0-9._:\-]+))";
  http.Post(stream_re + "/events", [s](const httplib::Request& req, httplib::Response& res) {
    HandleAppend(*s, req, res);
  });
  http.Get(stream_re, [s](const httplib::Request& req, httplib::Response& res) {
    HandleReadStream(*s, req.matches[1], res);
  });
  http.Post(R"(/streams/([^/]*)/events)", [](const httplib::Request&, httplib::Response& res) {
    Error(res, 400, "invalid stream name: 1-256 bytes of [A-Za-z0-9._:-]");
  });
  http.Get("/projections/teams", [teams](const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const auto& t : teams->Teams())
      list.push_back({{"id", t.id}, {"name", t.name}, {"position", t.position}});
    res.set_content(list.dump(), "application/json");
  });
  http.Get("/projections/team_status", [status](const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const auto& t : status->All()) {
      list.push_back({{"team", t.team},
                      {"status", t.status},
                      {"updates", t.updates},
                      {"position", t.position}});
    }
    res.set_content(list.dump(), "application/json");
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      std::string what = res.status == 404   ? "no such resource"
                         : res.status == 413 ? "request body too large"
                         : res.status == 405 ? "method not allowed"
                                             : "bad request";
      res.set_content(json{{"error", what}}.dump(), "application/json");
    }
  });

  int port = flags.port;
  if (port == 0) {
    port = http.bind_to_any_port(flags.host);
  } else if (!http.bind_to_port(flags.host, port)) {
    port = -1;
  }
  if (port <= 0) {
    std::fprintf(stderr, "eventstore-server: cannot listen on %s:%d\n", flags.host.c_str(),
                 flags.port);
    return 1;
  }
  std::thread server_thread([&] { http.listen_after_bind(); });
  std::fprintf(stderr, "eventstore-server: listening on http://%s:%d (metrics at /metrics)\n",
               flags.host.c_str(), port);
  std::fprintf(stdout, "listening %d\n", port);
  std::fflush(stdout);

  std::atomic<bool> stop_demo{false};
  std::thread demo;
  if (flags.demo_rate > 0) {
    std::fprintf(stderr, "eventstore-server: demo load at %.0f events/s\n", flags.demo_rate);
    demo = std::thread([&] { DemoLoad(*s, flags.demo_rate, stop_demo); });
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "eventstore-server: %s, shutting down\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  stop_demo.store(true);
  if (demo.joinable()) demo.join();
  http.stop();
  server_thread.join();
  absl::Status closed = store->Close();  // drains, fsyncs
  if (!closed.ok()) {
    std::fprintf(stderr, "eventstore-server: close: %s\n", std::string(closed.message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "eventstore-server: stopped cleanly at position %llu\n",
               static_cast<unsigned long long>(store->LastPosition()));
  return 0;
}
