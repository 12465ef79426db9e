// eventstore-server as clients meet it, over HTTP against the real process: paged reads, the
// form-body trap, compressed bodies, hostile input of every kind, drip-feeding clients while
// Prometheus-style scrapes go on, bearer tokens and their reload, /healthz after a failed fsync
// (an LD_PRELOAD fault library), TLS. Each hostile request must get a 4xx (or, for a body over
// the limit, a closed connection); the process must stay up, its memory bounded, its scrape
// valid.
#include <gtest/gtest.h>
#include <signal.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/peers.h"

namespace {

using metrics::test_support::EventStoreServer;
using metrics::test_support::RawConnection;
using metrics::test_support::TempDir;
using nlohmann::json;

constexpr const char* kServer = EVENTSTORE_SERVER;

std::string Gzip(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// The status code of a raw HTTP exchange, 0 if the server closed without answering.
int StatusOf(const std::string& answer) {
  int code = 0;
  if (answer.rfind("HTTP/1.1 ", 0) == 0) code = std::atoi(answer.c_str() + 9);
  return code;
}

int Post(httplib::Client& c, const std::string& path, const std::string& body,
         const std::string& type = "application/json") {
  auto r = c.Post(path, body, type);
  return r ? r->status : 0;
}

// Lints a scrape with promtool, the way tools/promlint-check.sh does.
void ExpectScrapeParses(int port) {
  std::string out;
  const int rc = metrics::test_support::RunShell(
      std::string(METRICS_SOURCE_DIR) +
          "/tools/promlint-check.sh http://127.0.0.1:" + std::to_string(port) + "/metrics",
      &out);
  if (rc == 127) GTEST_SKIP() << "promtool missing: " << out;
  EXPECT_EQ(rc, 0) << out;
}

TEST(ServerApiTest, ReadsArePagedWithAPointerToTheNextPage) {
  EventStoreServer s(kServer, TempDir("api-pages"));
  ASSERT_GT(s.port(), 0);
  httplib::Client c = s.Client();
  for (int batch = 0; batch < 5; ++batch) {
    json events = json::array();
    for (int i = 0; i < 50; ++i) events.push_back({{"type", "n"}, {"data", batch * 50 + i}});
    ASSERT_EQ(Post(c, "/streams/paged/events", events.dump()), 201);
  }
  ASSERT_EQ(Post(c, "/streams/other/events", R"({"type":"x"})"), 201);

  // Walk the stream page by page.
  std::vector<int> seen;
  std::string next = "/streams/paged";
  while (!next.empty()) {
    auto r = c.Get(next);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    json page = json::parse(r->body);
    EXPECT_EQ(page["version"], 250);
    EXPECT_LE(page["events"].size(), 100u);
    for (const auto& e : page["events"]) seen.push_back(e["data"].get<int>());
    next =
        page["next_from_version"].is_null()
            ? ""
            : "/streams/paged?from_version=" + std::to_string(page["next_from_version"].get<int>());
  }
  ASSERT_EQ(seen.size(), 250u);
  for (int i = 0; i < 250; ++i) EXPECT_EQ(seen[i], i);

  auto small = c.Get("/streams/paged?from_version=249&limit=5");
  ASSERT_TRUE(small);
  json p = json::parse(small->body);
  EXPECT_EQ(p["events"].size(), 2u);
  EXPECT_TRUE(p["next_from_version"].is_null());
  auto big = c.Get("/streams/paged?limit=100000");  // clamped to the maximum page
  ASSERT_TRUE(big);
  EXPECT_EQ(json::parse(big->body)["events"].size(), 250u);
  auto past = c.Get("/streams/paged?from_version=1000");
  ASSERT_TRUE(past);
  EXPECT_EQ(json::parse(past->body)["events"].size(), 0u);

  // The global log, with streams.
  auto all = c.Get("/all?from_position=250&limit=10");
  ASSERT_TRUE(all);
  json a = json::parse(all->body);
  ASSERT_EQ(a["events"].size(), 2u);
  EXPECT_EQ(a["events"][1]["stream"], "other");
  EXPECT_EQ(a["last_position"], 251);
  EXPECT_TRUE(a["next_from_position"].is_null());
  auto first = c.Get("/all?limit=3");
  ASSERT_TRUE(first);
  EXPECT_EQ(json::parse(first->body)["next_from_position"], 4);

  for (const char* bad :
       {"/streams/paged?limit=0", "/streams/paged?limit=-1", "/streams/paged?from_version=x",
        "/all?from_position=1e3", "/all?limit=99999999999999999999999"}) {
    auto r = c.Get(bad);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_NO_THROW(json::parse(r->body)["error"].get<std::string>()) << bad;
  }
  auto missing = c.Get("/streams/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST(ServerApiTest, JsonIsAcceptedWhateverTheContentTypeAndBodyIsNeverAQueryString) {
  EventStoreServer s(kServer, TempDir("api-form"));
  httplib::Client c = s.Client();
  // curl -d sends application/x-www-form-urlencoded; cpp-httplib refuses such bodies over 8 KiB
  // and parses them as query parameters. 100 KB of JSON, with a query-like string inside.
  const std::string data(100000, 'a');
  const std::string body =
      json{{"type", "big"}, {"data", {{"s", data}, {"q", "&expected_version=99"}}}}.dump();
  ASSERT_EQ(Post(c, "/streams/form/events", body, "application/x-www-form-urlencoded"), 201);
  ASSERT_EQ(
      Post(c, "/streams/form/events?expected_version=1", R"({"type":"second"})", "text/plain"),
      201);
  auto r = c.Get("/streams/form");
  ASSERT_TRUE(r);
  json page = json::parse(r->body);
  EXPECT_EQ(page["events"][0]["data"]["s"], data);
  EXPECT_EQ(page["events"][0]["data"]["q"], "&expected_version=99");
}

TEST(ServerApiTest, CompressedBodiesAreInflatedUnderTheBodyCap) {
  EventStoreServer s(kServer, TempDir("api-gzip"), {"--max-body-bytes", "1048576"});
  httplib::Client c = s.Client();
  httplib::Headers gz = {{"Content-Encoding", "gzip"}};
  auto ok = c.Post("/streams/gz/events", gz, Gzip(R"({"type":"zipped","data":{"a":1}})"),
                   "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 201) << ok->body;
  // A bomb: ~100 KB that inflates to 256 MB.
  const std::string bomb = Gzip(std::string(256 << 20, ' '));
  ASSERT_LT(bomb.size(), 1u << 20);
  const long rss_before = s.RssKib();
  auto r = c.Post("/streams/gz/events", gz, bomb, "application/json");
  EXPECT_TRUE(!r || r->status == 413) << (r ? r->body : "");
  EXPECT_LT(s.RssKib() - rss_before, 64 * 1024) << "inflating the bomb took memory";
  httplib::Headers odd = {{"Content-Encoding", "zstd"}};
  auto unknown = c.Post("/streams/gz/events", odd, "xx", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 415);
  EXPECT_TRUE(s.Alive());
}

TEST(ServerApiTest, HostileInputGets4xxAndTheServerStaysUpAndSmall) {
  EventStoreServer s(kServer, TempDir("api-hostile"),
                     {"--http-threads", "4", "--max-connections", "64", "--request-timeout-ms",
                      "2000", "--metrics-listen", "127.0.0.1:0"});
  ASSERT_GT(s.port(), 0);
  ASSERT_GT(s.metrics_port(), 0);
  ASSERT_NE(s.metrics_port(), s.port());
  httplib::Client c = s.Client();
  auto expect_4xx = [&](const std::string& what, int got) {
    EXPECT_GE(got, 400) << what;
    EXPECT_LT(got, 500) << what;
  };

  // 200 KB of nesting: a recursive parser or serializer dies here.
  const std::string deep =
      R"({"type":"deep","data":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(Post(c, "/streams/h/events", deep), 400);
  // The same depth stored through... nothing: reading back must not recurse either.
  EXPECT_EQ(Post(c, "/streams/h/events", R"({"type":"ok","data":[[[1]]]})"), 201);

  // 10 MB with a Content-Length: refused before the body is read.
  {
    RawConnection raw(s.port());
    const auto start = std::chrono::steady_clock::now();
    raw.Send("POST /streams/h/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n");
    const std::string answer = raw.ReadAll();
    EXPECT_EQ(StatusOf(answer), 413) << answer;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  }
  // 10 MB sent for real (the client may see the connection close before it finishes sending).
  {
    auto r = c.Post("/streams/h/events", std::string(10 << 20, 'x'), "application/json");
    EXPECT_TRUE(!r || r->status == 413);
  }
  // Chunked, over the limit.
  {
    RawConnection raw(s.port());
    raw.Send("POST /streams/h/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = std::string("100000\r\n") + std::string(0x100000, ' ') + "\r\n";
    for (int i = 0; i < 8 && raw.Send(chunk); ++i) {
    }
    raw.Send("0\r\n\r\n");
    const std::string answer = raw.ReadAll();
    const int code = StatusOf(answer);
    EXPECT_TRUE(code == 0 || code == 413) << answer.substr(0, 200);
  }
  // Thousands of headers.
  {
    RawConnection raw(s.port());
    std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 5000; ++i) req += "X-Header-" + std::to_string(i) + ": value\r\n";
    raw.Send(req + "\r\n");
    const int code = StatusOf(raw.ReadAll());
    EXPECT_TRUE(code == 0 || (code >= 400 && code < 500)) << code;
  }
  // Paths: invalid UTF-8, dot segments, encoded slashes, bad stream names.
  for (const char* path :
       {"/streams/%FF%FE/events", "/streams/../events", "/streams/%2e%2e/events",
        "/streams/a%2Fb/events", "/streams/a%20b/events", "/streams/%00/events"}) {
    expect_4xx(path, Post(c, path, R"({"type":"x"})"));
  }
  expect_4xx("long stream",
             Post(c, "/streams/" + std::string(300, 's') + "/events", R"({"type":"x"})"));
  // expected_version of every absurd kind.
  for (const char* v : {"99999999999999999999999", "-1", "1e5", "%201", "", "0x10", "anyx"}) {
    EXPECT_EQ(Post(c, std::string("/streams/h/events?expected_version=") + v, R"({"type":"x"})"),
              400)
        << v;
  }
  // Bodies: empty, not JSON, wrong shapes, invalid UTF-8, an unknown field.
  for (const std::string& body :
       {std::string(), std::string("null"), std::string("[]"), std::string("{\"type\":5}"),
        std::string("{\"type\":\"\xff\"}"), std::string("{\"type\":\"a\",\"id\":\"x\"}"),
        std::string(R"({"type":""})"), std::string(R"({"type":"a\u0000b"})")}) {
    EXPECT_EQ(Post(c, "/streams/h/events", body), 400) << body;
  }
  // Wrong methods on known routes: 405 with Allow; unknown routes: 404.
  {
    auto r = c.Get("/streams/h/events");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_EQ(r->get_header_value("Allow"), "POST");
    auto d = c.Delete("/all");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->status, 405);
    auto n = c.Get("/nothing/here");
    ASSERT_TRUE(n);
    EXPECT_EQ(n->status, 404);
    EXPECT_NO_THROW(json::parse(n->body));
  }
  // A request line that is not HTTP.
  {
    RawConnection raw(s.port());
    raw.Send("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n");
    const int code = StatusOf(raw.ReadAll());
    EXPECT_TRUE(code == 0 || code == 400) << code;
  }

  EXPECT_TRUE(s.Alive());
  EXPECT_LT(s.RssKib(), 256 * 1024) << "resident memory after the hostile requests";
  // The store took only the one valid event.
  auto h = c.Get("/streams/h");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["version"], 1);
  ExpectScrapeParses(s.metrics_port());
}

TEST(ServerApiTest, DripFeedingClientsCannotSilenceScrapesOrHoldThreadsPastTheDeadline) {
  EventStoreServer s(kServer, TempDir("api-drip"),
                     {"--http-threads", "4", "--max-connections", "64", "--request-timeout-ms",
                      "1500", "--metrics-listen", "127.0.0.1:0"});
  ASSERT_GT(s.metrics_port(), 0);
  // 16 connections that send a header byte every 300 ms: the API's 4 threads are all taken.
  std::vector<std::unique_ptr<RawConnection>> drips;
  for (int i = 0; i < 16; ++i) {
    drips.push_back(std::make_unique<RawConnection>(s.port()));
    drips.back()->Send("POST /streams/d/events HTTP/1.1\r\nHost: x\r\n");
  }
  std::atomic<bool> stop{false};
  std::thread dripper([&] {
    while (!stop) {
      for (auto& d : drips) d->Send("X");
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  // Scrapes on the metrics listener answer throughout.
  httplib::Client scrape("127.0.0.1", s.metrics_port());
  scrape.set_read_timeout(2);
  for (int i = 0; i < 10; ++i) {
    auto r = scrape.Get("/metrics");
    ASSERT_TRUE(r) << "scrape " << i << " got no answer while the API was drip-fed";
    EXPECT_EQ(r->status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // The drip-fed requests are cut off at their deadline and the API answers again, while the
  // drippers still drip.
  httplib::Client api = s.Client();
  api.set_read_timeout(8);
  auto r = api.Post("/streams/d/events", R"({"type":"after"})", "application/json");
  stop = true;
  dripper.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201);
  auto m = scrape.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("http_request_timeouts_total"), std::string::npos);
  EXPECT_EQ(m->body.find("http_request_timeouts_total 0\n"), std::string::npos)
      << "no request was counted as timed out";
  // /metrics is not on the API listener when it has its own; /healthz is on both.
  auto none = api.Get("/metrics");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  auto health = api.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST(ServerApiTest, ConnectionsOverTheCapGet503) {
  EventStoreServer s(kServer, TempDir("api-cap"),
                     {"--http-threads", "2", "--max-connections", "2"});
  RawConnection a(s.port()), b(s.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  RawConnection c(s.port());
  c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusOf(c.ReadAll()), 503);
}

TEST(ServerApiTest, BearerTokensGuardTheApiAndMetricsAndReloadOnSighup) {
  const std::string dir = TempDir("api-auth");
  metrics::test_support::WriteFile(dir + "/api", "first-token\n");
  metrics::test_support::WriteFile(dir + "/metrics", "scraper\n");
  EventStoreServer s(
      kServer, dir + "/data",
      {"--auth-token-file", dir + "/api", "--metrics-auth-token-file", dir + "/metrics"});
  ASSERT_GT(s.port(), 0);
  httplib::Client c = s.Client();
  auto post = [&](const std::string& token) {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    auto r = c.Post("/streams/a/events", h, R"({"type":"x"})", "application/json");
    return r ? r->status : 0;
  };
  auto missing = c.Post("/streams/a/events", R"({"type":"x"})", "application/json");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_NE(missing->get_header_value("WWW-Authenticate").find("Bearer"), std::string::npos);
  EXPECT_NO_THROW(json::parse(missing->body)["error"].get<std::string>());
  EXPECT_EQ(post("wrong"), 401);
  EXPECT_EQ(post("scraper"), 401);  // the metrics token is not an API token
  EXPECT_EQ(post("first-token"), 201);
  {
    httplib::Headers h = {{"Authorization", "Bearer first-token"}};
    auto r = c.Get("/streams/a", h);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(c.Get("/streams/a")->status, 401);
  }
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 401);
  auto scraped = c.Get("/metrics", {{"Authorization", "Bearer scraper"}});
  ASSERT_TRUE(scraped);
  EXPECT_EQ(scraped->status, 200);
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  // An unauthenticated 10 MB upload is refused before its body is read.
  {
    RawConnection raw(s.port());
    raw.Send("POST /streams/a/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
    EXPECT_EQ(StatusOf(raw.ReadAll()), 401);
  }
  // Rotate: the new token works after SIGHUP, the old one no longer does.
  metrics::test_support::WriteFile(dir + "/api", "second-token\n");
  ASSERT_EQ(kill(s.pid(), SIGHUP), 0);
  EXPECT_TRUE(metrics::test_support::Eventually([&] { return post("second-token") == 201; }, 5));
  EXPECT_EQ(post("first-token"), 401);
  // A broken file on reload keeps the tokens in force.
  metrics::test_support::WriteFile(dir + "/api", "\n");
  ASSERT_EQ(kill(s.pid(), SIGHUP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(post("second-token"), 201);
  EXPECT_TRUE(s.Alive());
}

TEST(ServerApiTest, HealthzSays503WithTheReasonOnceAnFsyncHasFailed) {
  const std::string dir = TempDir("api-health");
  // The first fdatasync (the first append's) succeeds, every later one fails with EIO.
  EventStoreServer s(kServer, dir, {},
                     {std::string("LD_PRELOAD=") + FAULT_INJECT_LIB, "FAULT_CALLS=fdatasync",
                      "FAULT_AFTER=1", "FAULT_ERRNO=EIO"});
  ASSERT_GT(s.port(), 0);
  httplib::Client c = s.Client();
  auto ok = c.Get("/healthz");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(Post(c, "/streams/a/events", R"({"type":"one"})"), 201);
  // The undo's own fdatasync fails too: the outcome is unknown, and the store turns read-only.
  auto failed = c.Post("/streams/a/events", R"({"type":"two"})", "application/json");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, 500) << failed->body;
  EXPECT_NE(failed->body.find("outcome unknown"), std::string::npos) << failed->body;
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_NE(health->body.find("fdatasync"), std::string::npos) << health->body;
  EXPECT_EQ(Post(c, "/streams/a/events", R"({"type":"three"})"), 503);
  // Reads go on.
  auto r = c.Get("/streams/a");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// Fault -> what the caller is told -> what a restart shows.
struct FaultCase {
  const char* name;
  std::vector<std::string> env;
};

TEST(ServerApiTest, AFailedWriteOrFsyncThatIsUndoneIsNotWrittenAndTheStoreGoesOn) {
  const std::vector<FaultCase> cases = {
      {"fdatasync EIO once", {"FAULT_CALLS=fdatasync", "FAULT_AFTER=1", "FAULT_COUNT=1"}},
      {"pwrite ENOSPC once",
       {"FAULT_CALLS=pwrite", "FAULT_AFTER=1", "FAULT_COUNT=1", "FAULT_ERRNO=ENOSPC"}},
      {"short pwrite, then EIO",
       {"FAULT_CALLS=pwrite", "FAULT_AFTER=1", "FAULT_COUNT=2", "FAULT_SHORT=1"}},
  };
  for (const FaultCase& fc : cases) {
    SCOPED_TRACE(fc.name);
    const std::string dir = TempDir("api-undo");
    std::vector<std::string> env = {std::string("LD_PRELOAD=") + FAULT_INJECT_LIB,
                                    "FAULT_PATH=segment-"};
    env.insert(env.end(), fc.env.begin(), fc.env.end());
    {
      EventStoreServer s(kServer, dir, {}, env);
      ASSERT_GT(s.port(), 0);
      httplib::Client c = s.Client();
      EXPECT_EQ(Post(c, "/streams/a/events", R"({"type":"one"})"), 201);
      auto failed =
          c.Post("/streams/a/events", R"([{"type":"two"},{"type":"three"}])", "application/json");
      ASSERT_TRUE(failed);
      EXPECT_EQ(failed->status, 503) << failed->body;
      EXPECT_NE(failed->body.find("not written"), std::string::npos) << failed->body;
      auto health = c.Get("/healthz");
      ASSERT_TRUE(health);
      EXPECT_EQ(health->status, 200) << health->body;
      EXPECT_EQ(Post(c, "/streams/a/events?expected_version=1", R"({"type":"four"})"), 201);
      EXPECT_EQ(s.Stop(SIGKILL), -SIGKILL);
    }
    // After a crash, exactly what was acknowledged.
    EventStoreServer again(kServer, dir);
    httplib::Client c = again.Client();
    auto r = c.Get("/streams/a");
    ASSERT_TRUE(r);
    json page = json::parse(r->body);
    ASSERT_EQ(page["events"].size(), 2u) << r->body;
    EXPECT_EQ(page["events"][0]["type"], "one");
    EXPECT_EQ(page["events"][1]["type"], "four");
    EXPECT_EQ(page["events"][1]["version"], 2);
  }
}

TEST(ServerApiTest, RetriesWithEventIdsAreIdempotentAcrossRestarts) {
  const std::string dir = TempDir("api-ids");
  const std::string body = R"([{"type":"debited","id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427"},)"
                           R"({"type":"credited","id":"6fa459ea-ee8a-3ca4-894e-db77e160355e"}])";
  {
    EventStoreServer s(kServer, dir);
    httplib::Client c = s.Client();
    auto first = c.Post("/streams/t/events?expected_version=no_stream", body, "application/json");
    ASSERT_TRUE(first);
    EXPECT_EQ(first->status, 201) << first->body;
    auto retry = c.Post("/streams/t/events?expected_version=no_stream", body, "application/json");
    ASSERT_TRUE(retry);
    EXPECT_EQ(retry->status, 200) << retry->body;
    EXPECT_EQ(json::parse(retry->body)["first_position"], 1);
    EXPECT_EQ(json::parse(retry->body)["duplicate"], true);
    auto read = c.Get("/streams/t");
    ASSERT_TRUE(read);
    json page = json::parse(read->body);
    ASSERT_EQ(page["events"].size(), 2u);
    EXPECT_EQ(page["events"][1]["id"], "6fa459ea-ee8a-3ca4-894e-db77e160355e");
    EXPECT_EQ(s.Stop(SIGKILL), -SIGKILL);
  }
  EventStoreServer s(kServer, dir);
  httplib::Client c = s.Client();
  auto retry = c.Post("/streams/t/events", body, "application/json");
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->status, 200) << retry->body;
  auto clash =
      c.Post("/streams/t/events", R"({"type":"x","id":"6fa459ea-ee8a-3ca4-894e-db77e160355e"})",
             "application/json");
  ASSERT_TRUE(clash);
  EXPECT_EQ(clash->status, 200);  // the second event alone is a run the stream holds
  auto mixed = c.Post("/streams/t/events",
                      R"([{"type":"x","id":"6fa459ea-ee8a-3ca4-894e-db77e160355e"},{"type":"y"}])",
                      "application/json");
  ASSERT_TRUE(mixed);
  EXPECT_EQ(mixed->status, 400) << mixed->body;
  EXPECT_EQ(json::parse(c.Get("/streams/t")->body)["version"], 2);
}

// A new data directory is fsynced into its parent (and a new parent into its own): the directory
// fsync is observable by making it fail.
TEST(ServerApiTest, ANewDataDirectoryIsSyncedIntoItsParent) {
  const std::string parent = TempDir("api-dirsync");
  std::string out;
  const std::string cmd = std::string("LD_PRELOAD=") + FAULT_INJECT_LIB +
                          " FAULT_CALLS=fsync FAULT_PATH=" + parent + " " + kServer +
                          " --data-dir " + parent + "/new/data --listen 127.0.0.1:0";
  EXPECT_EQ(metrics::test_support::RunShell(cmd, &out), 1) << out;
  // The first fsync is of the new directory's parent, not of the data directory itself.
  EXPECT_NE(out.find("fsync directory " + parent + "/new: "), std::string::npos) << out;
}

// What readers see, per fsync policy. Under every-batch an event becomes visible (reads, /all,
// projections) only once its fsync returned; under interval and never, once written (when its
// caller is acknowledged). A slow disk (fdatasync sleeping 1.5 s) makes the difference visible.
TEST(ServerApiTest, UnderEveryBatchReadersSeeOnlyDurableEvents) {
  for (const std::string policy : {"every-batch", "never"}) {
    SCOPED_TRACE(policy);
    EventStoreServer s(kServer, TempDir("api-visible"), {"--fsync", policy},
                       {std::string("LD_PRELOAD=") + FAULT_INJECT_LIB, "FAULT_CALLS=fdatasync",
                        "FAULT_PATH=segment-", "FAULT_DELAY_MS=1500"});
    ASSERT_GT(s.port(), 0);
    std::atomic<int> status{0};
    std::thread writer([&] {
      httplib::Client c = s.Client();
      status = Post(c, "/streams/v/events", R"({"type":"slow"})");
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // written, fsync under way
    httplib::Client reader = s.Client();
    auto during = reader.Get("/streams/v");
    auto all = reader.Get("/all");
    ASSERT_TRUE(during && all);
    if (policy == "every-batch") {
      EXPECT_EQ(status.load(), 0) << "acknowledged before its fsync returned";
      EXPECT_EQ(during->status, 404) << "a reader saw an event before it was durable";
      EXPECT_EQ(json::parse(all->body)["events"].size(), 0u);
    } else {
      // never: written is acknowledged, and visible; the fsync at close is the only one.
      EXPECT_EQ(status.load(), 201);
      EXPECT_EQ(during->status, 200);
    }
    writer.join();
    EXPECT_EQ(status.load(), 201);
    auto after = reader.Get("/streams/v");
    ASSERT_TRUE(after);
    EXPECT_EQ(after->status, 200);
  }
}

// A full segment is synced before the next one starts, under every policy (also `never`), and a
// roll that fails undoes nothing that was acknowledged and leaves no stray segment behind.
TEST(ServerApiTest, RollingASegmentSyncsItUnderEveryPolicyAndAFailedRollLosesNothing) {
  const std::string dir = TempDir("api-roll");
  {
    EventStoreServer s(kServer, dir, {"--fsync", "never", "--segment-bytes", "4096"},
                       {std::string("LD_PRELOAD=") + FAULT_INJECT_LIB, "FAULT_CALLS=fdatasync",
                        "FAULT_PATH=segment-", "FAULT_COUNT=1"});
    ASSERT_GT(s.port(), 0);
    httplib::Client c = s.Client();
    const std::string body = json{{"type", "fill"}, {"data", std::string(1000, 'x')}}.dump();
    int created = 0, refused = 0;
    for (int i = 0; i < 8; ++i) {
      const int status = Post(c, "/streams/r/events", body);
      if (status == 201) ++created;
      if (status == 503) ++refused;
    }
    // The roll's fdatasync (the only one under `never`) failed once: that append was refused,
    // the others went through (the next roll synced).
    EXPECT_EQ(refused, 1);
    EXPECT_EQ(created, 7);
    EXPECT_EQ(s.Stop(SIGKILL), -SIGKILL);
  }
  EventStoreServer again(kServer, dir);
  ASSERT_GT(again.port(), 0) << "the log did not reopen after the failed roll";
  httplib::Client c = again.Client();
  auto r = c.Get("/streams/r");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["version"], 7) << r->body;
}

TEST(ServerApiTest, ServesTheApiOverTls) {
  const std::string dir = TempDir("api-tls");
  std::string out;
  ASSERT_EQ(metrics::test_support::RunShell(
                "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " +
                    dir + "/key.pem -out " + dir + "/cert.pem",
                &out),
            0)
      << out;
  EventStoreServer s(kServer, dir + "/data",
                     {"--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem"});
  ASSERT_GT(s.port(), 0);
  httplib::SSLClient c("127.0.0.1", s.port());
  c.enable_server_certificate_verification(false);
  auto r = c.Post("/streams/tls/events", R"({"type":"secure"})", "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 201);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("http_requests_total{handler=\"/streams/{stream}/events\""),
            std::string::npos);
}

TEST(ServerApiTest, BadFlagsNameTheFlag) {
  std::string out;
  const int rc =
      metrics::test_support::RunShell(std::string(kServer) + " --http-threads=many", &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("http_threads"), std::string::npos) << out;
  ASSERT_EQ(metrics::test_support::RunShell(std::string(kServer) + " --help", &out), 1) << out;
  for (const char* flag : {"--data_dir", "--metrics_listen", "--auth_token_file", "--http_threads",
                           "--max_connections", "--request_timeout_ms", "--no_metrics"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
