// Negotiation, gzip, the HTTP endpoint, process metrics and the text-file writer.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/registry.h"
#include "exposition/http_exporter.h"
#include "exposition/negotiation.h"
#include "exposition/process_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace metrics::exposition {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Gunzip(std::string_view in) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  std::string out(1 << 20, '\0');
  std::string result;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    result.append(out.data(), out.size() - zs.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&zs);
  return result;
}

// Sends `request` as is and returns what the server answers before closing (at most 64 KiB).
std::string RawRequest(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  timeval tv{1, 0};  // the server may keep the connection open after answering
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  (void)!write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while (out.size() < 65536 && (n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

TEST(NegotiationTest, WhatPrometheusSends) {
  // Prometheus 2.42's scrape Accept header, and the one it sends with OpenMetrics disabled.
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text;version=1.0.0,application/"
                            "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"
                            "*/*;q=0.1"),
            Format::kOpenMetrics);
  EXPECT_EQ(NegotiateFormat("text/plain;version=0.0.4;q=1,*/*;q=0.1"), Format::kText);
  // Protobuf first: served (exposition/protobuf_format.h); protobuf_format_test has the rest.
  EXPECT_EQ(NegotiateFormat("application/vnd.google.protobuf;proto=io.prometheus.client."
                            "MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,"
                            "*/*;q=0.2"),
            Format::kProtobuf);
}

TEST(NegotiationTest, EdgeCases) {
  EXPECT_EQ(NegotiateFormat(""), Format::kText);
  EXPECT_EQ(NegotiateFormat("*/*"), Format::kText);
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text"), Format::kOpenMetrics);
  EXPECT_EQ(NegotiateFormat("Application/OpenMetrics-Text; Version=1.0.0"), Format::kOpenMetrics);
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text;version=2.0.0"), Format::kText);
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text;q=0"), Format::kText);
  EXPECT_EQ(NegotiateFormat("text/plain;q=0.9,application/openmetrics-text;q=0.8"), Format::kText);
  EXPECT_EQ(NegotiateFormat("text/plain;q=0.5,application/openmetrics-text;q=0.8"),
            Format::kOpenMetrics);
  EXPECT_EQ(NegotiateFormat(";;;,,,=,q=,application/openmetrics-text;q=bogus"), Format::kText);
  EXPECT_EQ(NegotiateFormat("text/html"), Format::kText);
}

TEST(NegotiationTest, Gzip) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, gzip;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("identity"));
  std::string text(100000, 'x');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = char('a' + i % 26);
  std::string gz;
  ASSERT_TRUE(Gzip(text, &gz).ok());
  EXPECT_LT(gz.size(), text.size());
  EXPECT_EQ(Gunzip(gz), text);
  ASSERT_TRUE(Gzip("", &gz).ok());
  EXPECT_EQ(Gunzip(gz), "");
}

TEST(ProcessMetricsTest, PresentAndSane) {
  Snapshot s;
  AppendProcessMetrics(&s);
  auto value = [&](std::string_view name) {
    for (const auto& f : s.families) {
      if (f.desc->name == name) return f.samples.at(0).Total();
    }
    ADD_FAILURE() << name << " missing";
    return -1.0;
  };
  EXPECT_GE(value("process_cpu_seconds_total"), 0);
  EXPECT_GT(value("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(value("process_virtual_memory_bytes"), value("process_resident_memory_bytes"));
  EXPECT_GE(value("process_open_fds"), 3);
  EXPECT_GE(value("process_max_fds"), value("process_open_fds"));
  double start = value("process_start_time_seconds");
  EXPECT_GT(start, 1.6e9);
  EXPECT_LE(start, static_cast<double>(time(nullptr)) + 1);
  for (size_t i = 1; i < s.families.size(); ++i) {
    EXPECT_LT(s.families[i - 1].desc->name, s.families[i].desc->name);
  }
}

std::vector<std::string> ProcessNames(const Snapshot& s) {
  std::vector<std::string> out;
  for (const auto& f : s.families) {
    if (f.desc->name.rfind("process_", 0) == 0) out.push_back(f.desc->name);
  }
  return out;
}

TEST(ProcessMetricsTest, IsACollectorWithTheSameNames) {
  Registry r;
  ASSERT_TRUE(r.AddCollector(std::make_shared<ProcessCollector>()).ok());
  const std::vector<std::string> want = {
      "process_cpu_seconds_total",  "process_max_fds",
      "process_open_fds",           "process_resident_memory_bytes",
      "process_start_time_seconds", "process_virtual_memory_bytes"};
  Snapshot s = r.Collect();
  EXPECT_EQ(ProcessNames(s), want);
  for (const auto& f : s.families) {
    EXPECT_EQ(f.desc->type, f.desc->name == "process_cpu_seconds_total" ? MetricType::kCounter
                                                                        : MetricType::kGauge)
        << f.desc->name;
  }
  // Its names are claimed like any registration's.
  EXPECT_EQ(r.AddGauge({.name = "process_open_fds", .help = "h"}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.AddGauge({.name = "process_cpu_seconds", .help = "h"}).status().code(),
            absl::StatusCode::kAlreadyExists);

  // The handler's option still switches them on (the default) and off.
  Registry empty;
  EXPECT_EQ(ProcessNames(MetricsHandler({&empty}).Collect()), want);
  EXPECT_TRUE(ProcessNames(MetricsHandler({&empty}, {.process_metrics = false}).Collect()).empty());
  // A registry that has them already: one copy, no drop reported for it.
  EXPECT_EQ(ProcessNames(MetricsHandler({&r}).Collect()), want);
}

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = registry_.AddCounter({.name = "requests_total", .help = "Requests."});
    c->WithLabelValues().Inc(7);
    handler_ = std::make_shared<MetricsHandler>(std::vector<const Registry*>{&registry_});
    auto e = HttpExporter::Start({.host = "127.0.0.1", .port = 0}, handler_);
    ASSERT_TRUE(e.ok()) << e.status();
    exporter_ = *std::move(e);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", exporter_->port());
    client_->set_decompress(false);
  }

  Registry registry_;
  std::shared_ptr<MetricsHandler> handler_;
  std::unique_ptr<HttpExporter> exporter_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpTest, TextByDefault) {
  auto res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), kTextContentType);
  EXPECT_THAT(res->body, HasSubstr("\nrequests_total 7\n"));
  EXPECT_THAT(res->body, HasSubstr("\nprocess_open_fds "));
  EXPECT_THAT(res->body, HasSubstr("metrics_scrapes_total{format=\"text\"} 1\n"));
  EXPECT_EQ(res->get_header_value("Content-Encoding"), "");
}

TEST_F(HttpTest, OpenMetricsWhenAskedAndGzipDecodesToTheSameText) {
  httplib::Headers om = {{"Accept",
                          "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;"
                          "q=0.5,*/*;q=0.1"}};
  auto plain = client_->Get("/metrics", om);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->get_header_value("Content-Type"), kOpenMetricsContentType);
  EXPECT_THAT(plain->body, HasSubstr("\nrequests_total 7\n"));
  EXPECT_THAT(plain->body, HasSubstr("# TYPE requests counter\n"));
  EXPECT_THAT(plain->body, ::testing::EndsWith("# EOF\n"));
  om.emplace("Accept-Encoding", "gzip");
  auto gz = client_->Get("/metrics", om);
  ASSERT_TRUE(gz);
  EXPECT_EQ(gz->get_header_value("Content-Encoding"), "gzip");
  std::string text = Gunzip(gz->body);
  // The bodies differ only in the scrape counters and process values that moved between scrapes.
  EXPECT_THAT(text, HasSubstr("\nrequests_total 7\n"));
  EXPECT_THAT(text, HasSubstr("metrics_scrapes_total{format=\"openmetrics\"} 2\n"));
  EXPECT_THAT(text, ::testing::EndsWith("# EOF\n"));
}

TEST_F(HttpTest, TextGzipIsCompressedExactlyOnce) {
  auto res = client_->Get("/metrics", {{"Accept-Encoding", "gzip, deflate"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value_count("Content-Encoding"), 1u);
  EXPECT_EQ(res->get_header_value("Content-Type"), kTextContentType);
  EXPECT_THAT(Gunzip(res->body), HasSubstr("\nrequests_total 7\n"));
}

TEST_F(HttpTest, BadRequestsGet4xx) {
  EXPECT_EQ(client_->Get("/nope")->status, 404);
  auto post = client_->Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET");
  EXPECT_EQ(client_->Delete("/healthz")->status, 405);
  auto health = client_->Get("/healthz");
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");
  // Malformed requests on a raw socket: 400, and the server keeps serving.
  EXPECT_THAT(RawRequest(exporter_->port(), "GARBAGE\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(
      RawRequest(exporter_->port(), "GET /" + std::string(10000, 'a') + " HTTP/1.1\r\n\r\n"),
      StartsWith("HTTP/1.1 4"));
  EXPECT_EQ(client_->Get("/metrics")->status, 200);
}

TEST(HttpExporterTest, BindFailureIsAnError) {
  Registry r;
  auto h = std::make_shared<MetricsHandler>(std::vector<const Registry*>{&r});
  auto first = HttpExporter::Start({.host = "127.0.0.1", .port = 0}, h);
  ASSERT_TRUE(first.ok());
  auto second = HttpExporter::Start({.host = "127.0.0.1", .port = (*first)->port()}, h);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(HttpExporter::Start({.host = "not a host", .port = 0}, h).ok());
}

TEST(TextFileTest, WritesAtomically) {
  Registry r;
  r.AddGauge({.name = "g", .help = "h"})->WithLabelValues().Set(2);
  char dir[] = "/tmp/textfile-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/metrics.prom";
  ASSERT_TRUE(WriteTextFile(r.Collect(), path).ok());
  ASSERT_TRUE(WriteTextFile(r.Collect(), path).ok());  // replaces
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "# HELP g h\n# TYPE g gauge\ng 2\n");
  // Nothing but the target is left in the directory.
  EXPECT_EQ(std::system((std::string("test $(ls ") + dir + " | wc -l) -eq 1").c_str()), 0);
  EXPECT_FALSE(WriteTextFile(r.Collect(), "/nonexistent-dir/x.prom").ok());
  std::remove(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace metrics::exposition
