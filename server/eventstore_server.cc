// The main job: the event-store server. An embedded durable store (store/), the domain's
// projections, a JSON HTTP API (server/api.h) on a hardened cpp-httplib server
// (exposition/guarded_server.h), /metrics and /healthz on the API's listener or their own
// (--metrics-listen), and an optional synthetic producer so a new user sees live metrics at once.
//
// Flags: `eventstore-server --help` lists them all with their defaults. Dashes and underscores in
// flag names are interchangeable (--data-dir = --data_dir).
//
// Signals: SIGINT/SIGTERM stop accepting connections, finish the requests in progress, drain the
// store, fsync and exit 0. SIGHUP re-reads the token files (a bad file keeps the tokens in force).
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/registry.h"
#include "exposition/guarded_server.h"
#include "exposition/http_exporter.h"
#include "instrument/http_metrics.h"
#include "instrument/job.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/projection_poller.h"
#include "server/reply.h"
#include "store/event_store.h"
#ifdef EVENTSTORE_WITH_POSTGRES
#include "store/postgres_store.h"
#endif
#include "store/projections.h"

namespace {

using metrics::store::EventBackend;
using metrics::store::EventStore;
using metrics::store::ExpectedVersion;
using metrics::store::FsyncPolicy;
using nlohmann::json;

}  // namespace

namespace metrics::store {
bool AbslParseFlag(absl::string_view text, FsyncPolicy* p, std::string* error) {
  if (text == "every-batch") {
    *p = FsyncPolicy::kEveryBatch;
  } else if (text == "interval") {
    *p = FsyncPolicy::kInterval;
  } else if (text == "never") {
    *p = FsyncPolicy::kNever;
  } else {
    *error = "expected every-batch, interval or never";
    return false;
  }
  return true;
}
std::string AbslUnparseFlag(FsyncPolicy p) {
  return p == FsyncPolicy::kEveryBatch ? "every-batch"
         : p == FsyncPolicy::kInterval ? "interval"
                                       : "never";
}
}  // namespace metrics::store

namespace eventstore {
// HOST:PORT, with IPv6 hosts bare or in brackets ("::", "[::1]:8080", ":::8080").
struct ListenAddress {
  std::string host;
  int port = 0;
};

bool AbslParseFlag(absl::string_view text, ListenAddress* a, std::string* error) {
  if (text.empty()) {  // "": not set (--metrics-listen's default)
    *a = {};
    return true;
  }
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) {
    *error = "expected HOST:PORT";
    return false;
  }
  std::string host(text.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 0 || port > 65535) {
    *error = "expected a port from 0 to 65535 after the last ':'";
    return false;
  }
  *a = {host.empty() ? "0.0.0.0" : host, port};
  return true;
}
std::string AbslUnparseFlag(const ListenAddress& a) {
  return a.host.empty() ? "" : absl::StrCat(a.host, ":", a.port);
}
}  // namespace eventstore

using eventstore::ListenAddress;

ABSL_FLAG(std::string, data_dir, "./data", "Directory of the store's segment files (created).");
ABSL_FLAG(std::string, pg_url, "",
          "Keep the events in PostgreSQL instead of --data-dir: a libpq connection URL "
          "(postgresql://user@host:5432/db) or key=value string. The schema is created or "
          "migrated at start. Projections follow the table, woken by LISTEN/NOTIFY when any "
          "process commits; --fsync and --segment-bytes do not apply.");
ABSL_FLAG(std::string, import_from, "",
          "With --pg-url: copy the embedded store in this data directory into the database (the "
          "events as they are: positions, versions, ids, timestamps), then exit. Resumes an "
          "import that stopped. Stop the server using that directory first.");
ABSL_FLAG(ListenAddress, listen, (ListenAddress{"127.0.0.1", 8080}),
          "HOST:PORT of the API (port 0: any free port, printed as 'listening PORT').");
ABSL_FLAG(ListenAddress, metrics_listen, ListenAddress{},
          "HOST:PORT serving only /metrics and /healthz, on threads of their own, so scrapes "
          "answer while the API is saturated. Empty: both on the API's listener.");
ABSL_FLAG(FsyncPolicy, fsync, FsyncPolicy::kEveryBatch,
          "every-batch (an acknowledged event survives power loss), interval or never.");
ABSL_FLAG(uint32_t, fsync_interval_ms, 100,
          "With --fsync interval: the longest gap between fsyncs.");
ABSL_FLAG(double, demo_rate, 0,
          "Synthetic events per second appended by the server itself (0: none).");
ABSL_FLAG(uint64_t, max_body_bytes, 4 << 20,
          "Largest request body, after any Content-Encoding is undone; larger: 413.");
ABSL_FLAG(uint64_t, segment_bytes, uint64_t{64} << 20,
          "A new segment file is started when the current one would grow past this.");
ABSL_FLAG(uint32_t, max_json_depth, 64,
          "Deepest JSON nesting of a request body (the event array and object count as 2).");
ABSL_FLAG(uint32_t, http_threads, 64,
          "API worker threads: requests served at once. Concurrent appenders share one fsync, so "
          "more threads fill group-commit batches.");
ABSL_FLAG(uint32_t, max_connections, 512,
          "Open API connections (served or waiting for a thread); beyond it new ones get 503.");
ABSL_FLAG(uint32_t, request_timeout_ms, 10000,
          "Deadline of a request from its first byte to the end of its body (and again for its "
          "response); a slower client is disconnected.");
ABSL_FLAG(uint32_t, keep_alive_timeout_ms, 5000, "How long an idle keep-alive connection is kept.");
ABSL_FLAG(uint32_t, keep_alive_max_requests, 100000, "Requests served on one connection.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File of bearer tokens (one a line): when set, every API request needs "
          "'Authorization: Bearer <token>'. Re-read on SIGHUP.");
ABSL_FLAG(std::string, metrics_auth_token_file, "", "The same for /metrics (/healthz stays open).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve the API over TLS (with --tls-key).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert.");
ABSL_FLAG(bool, no_metrics, false,
          "Switch off the store's and the HTTP API's metrics (for measuring their cost); "
          "/metrics then has the process metrics only.");
ABSL_FLAG(uint32_t, test_slow_projection_ms, 0,
          "Test only: the teams projection sleeps this long per event (lag alert tests).");
ABSL_FLAG(uint32_t, test_slow_projection_for_s, 0,
          "Test only: ... for this many seconds after start (0: for ever).");

namespace {

// The demo load: teams registering and changing status at `rate` events/s and, with a
// scheduler, a reminder scheduled every two seconds (due one to three seconds later), so that the
// scheduler's panels move too.
void DemoLoad(EventBackend& store, eventstore::Scheduler* scheduler, double rate,
              const std::atomic<bool>& stop) {
  std::mt19937 rng(42);
  std::mt19937_64 ids(std::random_device{}());
  auto next_reminder = std::chrono::steady_clock::now();
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
    if (scheduler != nullptr && std::chrono::steady_clock::now() >= next_reminder) {
      next_reminder += std::chrono::seconds(2);
      std::string id(16, '\0');
      for (int k = 0; k < 2; ++k) {
        const uint64_t v = ids();
        std::memcpy(id.data() + 8 * k, &v, 8);
      }
      (void)scheduler->Add(
          {.id = id,
           .due_at = eventstore::WallSeconds() + 1 + static_cast<double>(rng() % 2000) / 1000,
           .stream = "reminders",
           .type = "reminder.due",
           .data = json{{"team", team}}.dump()});
    }
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
    std::this_thread::sleep_until(next);
  }
}

// Dashes in flag names become underscores, so that --data-dir and --data_dir both work.
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  for (size_t i = 1; i < storage.size(); ++i) {
    std::string& a = storage[i];
    if (a == "--") break;
    if (a.size() < 3 || a[0] != '-' || a[1] != '-') continue;
    const size_t end = std::min(a.find('='), a.size());
    for (size_t k = 2; k < end; ++k) {
      if (a[k] == '-') a[k] = '_';
    }
  }
  std::vector<char*> out;
  for (std::string& a : storage) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "eventstore-server: %s\n", message.c_str());
  std::exit(2);
}

std::unique_ptr<eventstore::TokenAuth> LoadTokens(const std::string& path, const char* flag) {
  if (path.empty()) return nullptr;
  auto auth = eventstore::TokenAuth::FromFile(path);
  if (!auth.ok()) Die(absl::StrCat("--", flag, ": ", auth.status().message()));
  return *std::move(auth);
}

// A listener and its thread.
struct Listener {
  std::unique_ptr<metrics::exposition::GuardedServer> server;
  std::thread thread;
  int port = 0;
};

void Start(Listener& l, const ListenAddress& at, const char* what) {
  l.port = l.server->Bind(at.host, at.port);
  if (l.port <= 0) Die(absl::StrCat("cannot listen on ", at.host, ":", at.port, " (", what, ")"));
  auto* s = l.server.get();
  l.thread = std::thread([s] { s->listen_after_bind(); });
  while (!s->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace

#ifdef EVENTSTORE_WITH_POSTGRES
// --import-from: the embedded store in `data_dir` copied into `pg`; the process's exit code.
int ImportInto(metrics::store::PostgresEventStore& pg, const std::string& data_dir) {
  if (!std::filesystem::is_directory(data_dir)) {
    std::fprintf(stderr, "eventstore-server: --import-from %s: no such directory\n",
                 data_dir.c_str());
    return 1;
  }
  auto source = EventStore::Open({.data_dir = data_dir, .fsync = FsyncPolicy::kNever});
  if (!source.ok()) {
    std::fprintf(stderr, "eventstore-server: cannot open %s: %s\n", data_dir.c_str(),
                 std::string(source.status().message()).c_str());
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  uint64_t reported = 0;
  auto copied = pg.ImportFrom(**source, [&](uint64_t through, uint64_t total) {
    if (through - reported >= 100000 || through == total) {
      std::fprintf(stderr, "eventstore-server: imported through position %llu of %llu\n",
                   static_cast<unsigned long long>(through),
                   static_cast<unsigned long long>(total));
      reported = through;
    }
  });
  if (!copied.ok()) {
    std::fprintf(stderr, "eventstore-server: import failed: %s\n",
                 std::string(copied.status().message()).c_str());
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("imported %llu events from %s in %.1f s; the database now ends at position %llu\n",
              static_cast<unsigned long long>(*copied), data_dir.c_str(), seconds,
              static_cast<unsigned long long>(pg.LastPosition()));
  return 0;
}
#endif

int main(int argc, char** argv) {
  // --help lists this file's flags (absl matches files to the program name, which has a dash).
  auto ours = [](absl::string_view file) { return absl::StrContains(file, "eventstore_server"); };
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = ours;
  usage.contains_helpshort_flags = ours;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "an embedded event store with a JSON HTTP API and Prometheus metrics.\n"
      "  eventstore-server --data-dir ./data --listen 127.0.0.1:8080 [--demo-rate 200]");
  std::vector<std::string> arg_storage;
  std::vector<char*> args = NormalizeFlagNames(argc, argv, arg_storage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, args.data());
  if (rest.size() > 1) Die(absl::StrCat("unexpected argument '", rest[1], "' (see --help)"));

  const ListenAddress listen = absl::GetFlag(FLAGS_listen);
  const ListenAddress metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  const bool separate_metrics = !metrics_listen.host.empty();
  const bool with_metrics = !absl::GetFlag(FLAGS_no_metrics);
  if (absl::GetFlag(FLAGS_fsync_interval_ms) < 1) Die("--fsync-interval-ms must be at least 1");
  if (absl::GetFlag(FLAGS_demo_rate) < 0 || absl::GetFlag(FLAGS_demo_rate) > 1e6) {
    Die("--demo-rate must be from 0 to 1000000");
  }
  if (absl::GetFlag(FLAGS_max_body_bytes) < 1 || absl::GetFlag(FLAGS_max_body_bytes) > (64 << 20)) {
    Die("--max-body-bytes must be from 1 to 67108864");
  }
  if (absl::GetFlag(FLAGS_max_json_depth) < 2 || absl::GetFlag(FLAGS_max_json_depth) > 1000) {
    Die("--max-json-depth must be from 2 to 1000");
  }
  if (absl::GetFlag(FLAGS_http_threads) < 1 || absl::GetFlag(FLAGS_http_threads) > 4096) {
    Die("--http-threads must be from 1 to 4096");
  }
  if (absl::GetFlag(FLAGS_max_connections) < absl::GetFlag(FLAGS_http_threads)) {
    Die("--max-connections must be at least --http-threads");
  }
  if (absl::GetFlag(FLAGS_request_timeout_ms) < 1 ||
      absl::GetFlag(FLAGS_keep_alive_timeout_ms) < 1 ||
      absl::GetFlag(FLAGS_keep_alive_max_requests) < 1) {
    Die("--request-timeout-ms, --keep-alive-timeout-ms and --keep-alive-max-requests must be >= 1");
  }
  std::unique_ptr<eventstore::TokenAuth> api_auth =
      LoadTokens(absl::GetFlag(FLAGS_auth_token_file), "auth-token-file");
  std::unique_ptr<eventstore::TokenAuth> metrics_auth =
      LoadTokens(absl::GetFlag(FLAGS_metrics_auth_token_file), "metrics-auth-token-file");

  // Every connection is a descriptor: allow as many as the hard limit.
  if (rlimit r; getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }

  // Block the stop and reload signals in every thread; main waits for them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  metrics::Registry registry;
  if (!registry
           .AddInfo({.name = "eventstore_build",
                     .help = "The server's version and the revision it was built from.",
                     .const_labels = {{"version", EVENTSTORE_VERSION},
                                      {"revision", EVENTSTORE_REVISION}}})
           .ok()) {
    Die("cannot register eventstore_build_info");
  }
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const std::string pg_url = absl::GetFlag(FLAGS_pg_url);
  std::unique_ptr<EventBackend> store;
  EventStore* embedded = nullptr;  // the embedded store's own API (projections, recovery)
  if (!absl::GetFlag(FLAGS_import_from).empty() && pg_url.empty()) {
    Die("--import-from copies into the database of --pg-url: give both");
  }
  if (!pg_url.empty()) {
#ifdef EVENTSTORE_WITH_POSTGRES
    auto opened = metrics::store::PostgresEventStore::Open(
        {.conninfo = pg_url, .registry = with_metrics ? &registry : nullptr});
    if (!opened.ok()) {
      // The URL may hold a password: name the error only.
      std::fprintf(stderr, "eventstore-server: cannot open the --pg-url store: %s\n",
                   std::string(opened.status().message()).c_str());
      return 1;
    }
    const std::string import_from = absl::GetFlag(FLAGS_import_from);
    if (!import_from.empty()) return ImportInto(**opened, import_from);
    store = *std::move(opened);
    std::fprintf(stderr, "eventstore-server: opened PostgreSQL store at position %llu\n",
                 static_cast<unsigned long long>(store->LastPosition()));
#else
    Die("--pg-url: this build has no PostgreSQL backend (libpq was not found at configure time)");
#endif
  } else {
    auto opened = EventStore::Open({.data_dir = data_dir,
                                    .fsync = absl::GetFlag(FLAGS_fsync),
                                    .interval_ms = absl::GetFlag(FLAGS_fsync_interval_ms),
                                    .registry = with_metrics ? &registry : nullptr,
                                    .segment_bytes = absl::GetFlag(FLAGS_segment_bytes)});
    if (!opened.ok()) {
      std::fprintf(stderr, "eventstore-server: cannot open %s: %s\n", data_dir.c_str(),
                   std::string(opened.status().message()).c_str());
      return 1;
    }
    embedded = opened->get();
    store = *std::move(opened);
    const auto& rec = embedded->recovery();
    std::fprintf(
        stderr,
        "eventstore-server: opened %s: %zu segments, %llu events, %llu torn bytes truncated\n",
        data_dir.c_str(), rec.segments, static_cast<unsigned long long>(rec.events),
        static_cast<unsigned long long>(rec.truncated_bytes));
  }

  auto teams = std::make_shared<metrics::store::TeamsProjection>();
  auto status = std::make_shared<metrics::store::TeamStatusProjection>();
  const int slow_ms = static_cast<int>(absl::GetFlag(FLAGS_test_slow_projection_ms));
  const int slow_for_s = static_cast<int>(absl::GetFlag(FLAGS_test_slow_projection_for_s));
  const auto slow_until = slow_for_s > 0
                              ? std::chrono::steady_clock::now() + std::chrono::seconds(slow_for_s)
                              : std::chrono::steady_clock::time_point::max();
  metrics::store::ProjectionFn teams_fn = [teams, slow_ms,
                                           slow_until](const metrics::store::Event& e) {
    // Test-only: slows the projection on purpose (lag alert tests).
    if (slow_ms > 0 && std::chrono::steady_clock::now() < slow_until)
      std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms));
    return teams->Apply(e);
  };
  std::vector<eventstore::ProjectionPoller::Projection> projections = {
      {std::string(metrics::store::TeamsProjection::kName), teams_fn},
      {std::string(metrics::store::TeamStatusProjection::kName),
       metrics::store::AsProjection(status)}};
  std::unique_ptr<eventstore::ProjectionPoller> poller;
  if (embedded != nullptr) {
    for (auto& [name, fn] : projections) {
      if (absl::Status s = embedded->AddProjection(name, fn); !s.ok()) {
        std::fprintf(stderr, "eventstore-server: %s\n", std::string(s.message()).c_str());
        return 1;
      }
    }
  } else {
    poller = std::make_unique<eventstore::ProjectionPoller>(*store, std::move(projections),
                                                            with_metrics ? &registry : nullptr);
#ifdef EVENTSTORE_WITH_POSTGRES
    // Woken by LISTEN/NOTIFY when any process commits, instead of every 100 ms.
    if (auto* pg = dynamic_cast<metrics::store::PostgresEventStore*>(store.get())) {
      poller->SetWait([pg](uint64_t after, std::chrono::milliseconds timeout) {
        return pg->WaitForEvents(after, timeout);
      });
    }
#endif
    poller->Start();
  }

  // HTTP request metrics: one family set, a route table per listener.
  std::unique_ptr<metrics::instrument::HttpMetrics> api_http, metrics_http;
  if (with_metrics) {
    auto a = metrics::instrument::HttpMetrics::Create(registry,
                                                      eventstore::ApiRoutes(!separate_metrics));
    if (!a.ok()) Die(std::string(a.status().message()));
    api_http = *std::move(a);
    if (separate_metrics) {
      auto m = metrics::instrument::HttpMetrics::Create(registry, eventstore::MetricsRoutes());
      if (!m.ok()) Die(std::string(m.status().message()));
      metrics_http = *std::move(m);
    }
  }
  auto handler = std::make_shared<metrics::exposition::MetricsHandler>(
      std::vector<const metrics::Registry*>{&registry});
  // GET /stats and the status page read the snapshot /metrics renders; the store's event count
  // joins the registry for them (and for dashboards: positions are dense, so it is the count).
  std::unique_ptr<metrics::instrument::JobMetrics> jobs;  // the server's periodic work
  std::unique_ptr<eventstore::StatsService> stats;
  if (with_metrics) {
    EventBackend* s = store.get();
    if (!registry
             .AddGaugeFunc({.name = "event_store_events",
                            .help = "Events in the store (its last global position)."},
                           [s] { return static_cast<double>(s->LastPosition()); })
             .ok()) {
      Die("cannot register event_store_events");
    }
    auto j = metrics::instrument::JobMetrics::Create(registry);
    if (!j.ok()) Die(std::string(j.status().message()));
    jobs = *std::move(j);
    stats = std::make_unique<eventstore::StatsService>([handler] { return handler->Collect(); });
    stats->StartSampler(std::chrono::seconds(10), jobs.get());
  }

  // Scheduled deliveries: pending schedules rebuilt from the store, a tick thread of their own.
  auto scheduler = eventstore::Scheduler::Start(store.get(), with_metrics ? &registry : nullptr,
                                                {.tick = std::chrono::milliseconds(100)});
  if (!scheduler.ok()) Die(absl::StrCat("scheduler: ", scheduler.status().message()));

  // Webhook subscriptions: rebuilt from the store, a dispatcher thread per subscription.
  auto webhooks =
      eventstore::WebhookService::Start(store.get(), with_metrics ? &registry : nullptr, {});
  if (!webhooks.ok()) Die(absl::StrCat("webhooks: ", webhooks.status().message()));

  eventstore::ApiDeps deps{.store = store.get(),
                           .teams = teams,
                           .team_status = status,
                           .api_auth = api_auth.get(),
                           .metrics_auth = metrics_auth.get(),
                           .http_metrics = api_http.get(),
                           .stats = stats.get(),
                           .scheduler = scheduler->get(),
                           .webhooks = webhooks->get(),
                           .demo_sink = absl::GetFlag(FLAGS_demo_rate) > 0};
  const eventstore::ApiOptions api_options{
      .max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes),
      .body = {.max_depth = absl::GetFlag(FLAGS_max_json_depth)}};

  Listener api;
  api.server =
      std::make_unique<metrics::exposition::GuardedServer>(metrics::exposition::GuardOptions{
          .threads = absl::GetFlag(FLAGS_http_threads),
          .max_connections = absl::GetFlag(FLAGS_max_connections),
          .max_requests_per_connection = absl::GetFlag(FLAGS_keep_alive_max_requests),
          .idle_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_keep_alive_timeout_ms)),
          .request_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_request_timeout_ms)),
          .tls_cert_file = absl::GetFlag(FLAGS_tls_cert),
          .tls_key_file = absl::GetFlag(FLAGS_tls_key)});
  if (!api.server->status().ok()) Die(std::string(api.server->status().message()));
  eventstore::MountApi(*api.server, deps, api_options, separate_metrics ? nullptr : handler);

  Listener scrape;
  if (separate_metrics) {
    scrape.server =
        std::make_unique<metrics::exposition::GuardedServer>(metrics::exposition::GuardOptions{
            .threads = 4,
            .max_connections = 64,
            .idle_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_keep_alive_timeout_ms)),
            .request_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_request_timeout_ms))});
    eventstore::ApiDeps scrape_deps = deps;
    scrape_deps.http_metrics = metrics_http.get();
    eventstore::MountMetricsOnly(*scrape.server, scrape_deps, handler);
  }

  // The listeners' own counters (plain atomics of theirs), read at scrape time.
  std::vector<metrics::exposition::GuardedServer*> guarded = {api.server.get()};
  if (scrape.server) guarded.push_back(scrape.server.get());
  if (with_metrics) {
    auto sum = [guarded](uint64_t metrics::exposition::GuardStats::*field) {
      return [guarded, field] {
        uint64_t n = 0;
        for (auto* g : guarded) n += g->stats().*field;
        return static_cast<double>(n);
      };
    };
    auto r =
        registry.AddCounterFunc({.name = "http_connections_rejected_total",
                                 .help = "Connections refused with 503 at the connection cap."},
                                sum(&metrics::exposition::GuardStats::rejected));
    auto t = registry.AddCounterFunc(
        {.name = "http_request_timeouts_total",
         .help = "Requests cut off by their deadline (slow or stalled clients)."},
        sum(&metrics::exposition::GuardStats::timed_out));
    if (!r.ok() || !t.ok()) Die("cannot register the listener metrics");
  }

  Start(api, listen, "API");
  if (separate_metrics) Start(scrape, metrics_listen, "metrics");
  std::fprintf(
      stderr, "eventstore-server: listening on %s://%s:%d%s\n",
      absl::GetFlag(FLAGS_tls_cert).empty() ? "http" : "https", listen.host.c_str(), api.port,
      separate_metrics ? " (status page at /)" : " (status page at /, metrics at /metrics)");
  if (separate_metrics) {
    std::fprintf(stderr, "eventstore-server: metrics on http://%s:%d/metrics\n",
                 metrics_listen.host.c_str(), scrape.port);
  }
  std::fprintf(stdout, "listening %d\n", api.port);
  if (separate_metrics) std::fprintf(stdout, "metrics %d\n", scrape.port);
  std::fflush(stdout);

  std::atomic<bool> stop_demo{false};
  std::thread demo;
  const double demo_rate = absl::GetFlag(FLAGS_demo_rate);
  if (demo_rate > 0) {
    std::fprintf(stderr, "eventstore-server: demo load at %.0f events/s\n", demo_rate);
    // A webhook subscription to the server's own sink, so the webhook panels move too (plain
    // HTTP only: a TLS listener's certificate is not one the dispatcher would trust).
    if (absl::GetFlag(FLAGS_tls_cert).empty()) {
      const bool any = listen.host.empty() || listen.host == "0.0.0.0" || listen.host == "::";
      std::string host = any ? "127.0.0.1" : listen.host;
      if (host.find(':') != std::string::npos) host = "[" + host + "]";
      absl::Status st = (*webhooks)->Add(
          {.name = "demo",
           .url = absl::StrCat("http://", host, ":", api.port, "/demo/webhook-sink"),
           .event_types = {"team.registered", "reminder.due"},
           .secret = "demo-secret"});
      if (!st.ok() && !absl::IsAlreadyExists(st)) {
        std::fprintf(stderr, "demo: webhook subscription: %s\n", std::string(st.message()).c_str());
      }
    }
    demo = std::thread([&] { DemoLoad(*store, scheduler->get(), demo_rate, stop_demo); });
  }

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    for (eventstore::TokenAuth* a : {api_auth.get(), metrics_auth.get()}) {
      if (a == nullptr) continue;
      absl::Status s = a->Reload();
      std::fprintf(stderr, "eventstore-server: SIGHUP: %s %s\n", a->path().c_str(),
                   s.ok() ? absl::StrCat("reloaded, ", a->size(), " tokens").c_str()
                          : absl::StrCat("kept the tokens in force: ", s.message()).c_str());
    }
  }
  std::fprintf(stderr, "eventstore-server: %s, shutting down\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  stop_demo.store(true);
  if (demo.joinable()) demo.join();
  api.server->stop();
  if (scrape.server) scrape.server->stop();
  api.thread.join();
  if (scrape.thread.joinable()) scrape.thread.join();
  // Before the store closes: the dispatchers' last checkpoints, the scheduler's last tick.
  webhooks->reset();
  scheduler->reset();
  absl::Status closed = store->Close();  // drains, fsyncs
  if (poller) poller->Stop();
  if (!closed.ok()) {
    std::fprintf(stderr, "eventstore-server: close: %s\n", std::string(closed.message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "eventstore-server: stopped cleanly at position %llu\n",
               static_cast<unsigned long long>(store->LastPosition()));
  return 0;
}
