// GuardedServer as clients meet it: keep-alive that really keeps the connection, no Nagle stalls,
// 503 at the connection cap, a deadline per request that drip-feeding cannot stretch, a header
// byte cap, fair sharing of threads, pipelining, prompt stop, TLS.
#include "exposition/guarded_server.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "tests/support/peers.h"

namespace metrics::exposition {
namespace {

using std::chrono::milliseconds;
using test_support::RawConnection;

// A server on a free loopback port with GET /hello and POST /echo, serving on its own thread.
class Running {
 public:
  explicit Running(GuardOptions o) : server_(std::make_unique<GuardedServer>(std::move(o))) {
    server_->Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("hello", "text/plain");
    });
    server_->Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(milliseconds(300));
      res.set_content("slow", "text/plain");
    });
    server_->Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "text/plain");
    });
    port_ = server_->Bind("127.0.0.1", 0);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(milliseconds(1));
  }
  ~Running() { Stop(); }
  void Stop() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  GuardedServer& server() { return *server_; }

 private:
  std::unique_ptr<GuardedServer> server_;
  std::thread thread_;
  int port_ = 0;
};

TEST(GuardedServerTest, InvalidOptionsAreReported) {
  EXPECT_FALSE(GuardedServer({.threads = 0}).status().ok());
  EXPECT_FALSE(GuardedServer({.threads = 8, .max_connections = 4}).status().ok());
  EXPECT_FALSE(GuardedServer({.tls_cert_file = "x.pem"}).status().ok());
  GuardedServer bad_tls({.tls_cert_file = "/nonexistent.pem", .tls_key_file = "/nonexistent.key"});
  EXPECT_FALSE(bad_tls.status().ok());
  EXPECT_EQ(bad_tls.Bind("127.0.0.1", 0), -1);
}

TEST(GuardedServerTest, KeepAliveServesManyRequestsOnOneConnectionWithoutNagleStalls) {
  Running s({.threads = 2, .max_connections = 4});
  httplib::Client c("127.0.0.1", s.port());
  c.set_keep_alive(true);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) {
    auto r = c.Get("/hello");
    ASSERT_TRUE(r) << "request " << i;
    ASSERT_EQ(r->status, 200);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  // cpp-httplib's own loop closes a connection after 5 requests: one connection means ours kept it.
  EXPECT_EQ(s.server().stats().accepted, 1u);
  // Nagle's algorithm meeting delayed ACKs costs ~40 ms a request (8 s for 200); without it,
  // 200 requests take milliseconds. 4 s is a margin for a loaded machine, not a benchmark.
  EXPECT_LT(took, std::chrono::seconds(4));
}

TEST(GuardedServerTest, ConnectionsOverTheCapGet503) {
  Running s({.threads = 2, .max_connections = 2});
  RawConnection a(s.port()), b(s.port());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(test_support::Eventually([&] { return s.server().stats().live == 2; }, 5));
  RawConnection c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string answer = c.ReadAll();
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After"), std::string::npos);
  EXPECT_EQ(s.server().stats().rejected, 1u);
  // The first two are still served.
  a.Send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(a.ReadAll().find("hello"), std::string::npos);
}

TEST(GuardedServerTest, DripFedRequestIsCutOffAtItsDeadline) {
  Running s({.threads = 2, .max_connections = 4, .request_timeout = milliseconds(400)});
  RawConnection drip(s.port());
  ASSERT_TRUE(drip.ok());
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  // One byte every 100 ms: each read is quick, the request as a whole is not.
  const std::string request =
      "GET /hello HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  for (char ch : request) {
    if (!drip.Send(std::string(1, ch))) {
      closed = true;
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
    pollfd p{.fd = drip.fd(), .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 0) > 0) {
      char buf[64];
      if (recv(drip.fd(), buf, sizeof(buf), MSG_DONTWAIT) <= 0) {
        closed = true;
        break;
      }
    }
  }
  EXPECT_TRUE(closed) << "the server kept a drip-fed request open past its deadline";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_GE(s.server().stats().timed_out, 1u);
  // Meanwhile and afterwards, others are served.
  httplib::Client c("127.0.0.1", s.port());
  auto r = c.Get("/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(GuardedServerTest, HeadersOverTheByteCapCloseTheConnection) {
  Running s({.threads = 1, .max_connections = 2, .max_header_bytes = 2048});
  RawConnection c(s.port());
  ASSERT_TRUE(c.ok());
  std::string req = "GET /hello HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 1000; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
  c.Send(req + "\r\n");
  const std::string answer = c.ReadAll();
  EXPECT_EQ(answer.find("hello"), std::string::npos) << answer;
  EXPECT_EQ(s.server().stats().header_too_large, 1u);
  httplib::Client ok("127.0.0.1", s.port());
  auto r = ok.Get("/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(GuardedServerTest, AnIdleKeepAliveConnectionGivesItsThreadToAWaitingOne) {
  // One thread and a 30 s keep-alive: without reclaiming, the second client would wait 30 s.
  Running s({.threads = 1, .max_connections = 4, .idle_timeout = milliseconds(30000)});
  httplib::Client first("127.0.0.1", s.port());
  first.set_keep_alive(true);
  ASSERT_TRUE(first.Get("/hello"));
  const auto start = std::chrono::steady_clock::now();
  httplib::Client second("127.0.0.1", s.port());
  second.set_read_timeout(10);
  auto r = second.Get("/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // The first client reconnects transparently.
  auto again = first.Get("/hello");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST(GuardedServerTest, BusyKeepAliveConnectionsTakeTurns) {
  // Two clients hammering one thread: both make progress (the served one goes to the back).
  Running s({.threads = 1, .max_connections = 4});
  std::atomic<int> done[2] = {0, 0};
  std::atomic<bool> stop{false};
  std::thread clients[2];
  for (int k = 0; k < 2; ++k) {
    clients[k] = std::thread([&, k] {
      httplib::Client c("127.0.0.1", s.port());
      c.set_keep_alive(true);
      c.set_read_timeout(10);
      while (!stop.load()) {
        if (auto r = c.Get("/hello"); r && r->status == 200) ++done[k];
      }
    });
  }
  EXPECT_TRUE(test_support::Eventually([&] { return done[0] >= 50 && done[1] >= 50; }, 20));
  stop = true;
  for (auto& t : clients) t.join();
}

TEST(GuardedServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Running s({.threads = 1, .max_connections = 2});
  RawConnection c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecond");
  const std::string answer = c.ReadAll();
  const size_t a = answer.find("first"), b = answer.find("second");
  ASSERT_NE(a, std::string::npos) << answer;
  ASSERT_NE(b, std::string::npos) << answer;
  EXPECT_LT(a, b);
}

TEST(GuardedServerTest, ExpectContinueBodiesAreRead) {
  Running s({.threads = 1, .max_connections = 2});
  RawConnection c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
      "Connection: close\r\n\r\n");
  EXPECT_NE(c.ReadUntil("100 Continue").find("100 Continue"), std::string::npos);
  c.Send("body");
  EXPECT_NE(c.ReadAll().find("body"), std::string::npos);
}

TEST(GuardedServerTest, StopReturnsPromptlyWithClientsMidRequest) {
  auto s = std::make_unique<Running>(GuardOptions{.threads = 2, .max_connections = 8});
  RawConnection stuck(s->port()), idle(s->port());
  ASSERT_TRUE(stuck.ok() && idle.ok());
  stuck.Send("GET /hello HTTP/1.1\r\nHost: x\r\n");  // headers never finish
  std::this_thread::sleep_for(milliseconds(100));
  const auto start = std::chrono::steady_clock::now();
  s->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(s->server().stats().live, 0u);
}

TEST(GuardedServerTest, ResponsesInProgressFinishWhenStopping) {
  Running s({.threads = 2, .max_connections = 8});
  httplib::Client c("127.0.0.1", s.port());
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(100));
    s.Stop();
  });
  auto r = c.Get("/slow");
  stopper.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slow");
}

TEST(GuardedServerTest, ServesTlsWithACertificateAndKey) {
  const std::string dir = test_support::TempDir("guarded-tls");
  std::string out;
  ASSERT_EQ(test_support::RunShell("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
                                   "/CN=localhost -keyout " +
                                       dir + "/key.pem -out " + dir + "/cert.pem",
                                   &out),
            0)
      << out;
  Running s({.threads = 2,
             .max_connections = 4,
             .request_timeout = milliseconds(500),
             .tls_cert_file = dir + "/cert.pem",
             .tls_key_file = dir + "/key.pem"});
  ASSERT_TRUE(s.server().status().ok()) << s.server().status();
  httplib::SSLClient c("127.0.0.1", s.port());
  c.enable_server_certificate_verification(false);
  c.set_keep_alive(true);
  for (int i = 0; i < 3; ++i) {
    auto r = c.Get("/hello");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->body, "hello");
  }
  EXPECT_EQ(s.server().stats().accepted, 1u);
  // A client that connects and never says hello is dropped at the deadline.
  RawConnection silent(s.port());
  ASSERT_TRUE(silent.ok());
  EXPECT_EQ(silent.ReadAll(), "");
  EXPECT_TRUE(test_support::Eventually([&] { return s.server().stats().tls_failed >= 1; }, 5));
  // Plain HTTP to the TLS port fails the handshake, and the server goes on.
  httplib::Client plain("127.0.0.1", s.port());
  auto r = plain.Get("/hello");
  EXPECT_FALSE(r && r->status == 200);
  // A new client: `c`'s idle keep-alive connection may have given its thread to the ones above
  // (and been closed), which cpp-httplib's TLS client does not retry.
  httplib::SSLClient fresh("127.0.0.1", s.port());
  fresh.enable_server_certificate_verification(false);
  auto again = fresh.Get("/hello");
  ASSERT_TRUE(again) << httplib::to_string(again.error());
  EXPECT_EQ(again->status, 200);
}

}  // namespace
}  // namespace metrics::exposition
