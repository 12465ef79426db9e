// Serves the same 10,000 counter series + 100 histograms over HTTP twice: from our exporter and
// from prometheus-cpp's Exposer, so tools/http-scrape-bench.sh can time scrapes of both with curl.
// Prints "ours=PORT promcpp=PORT" and serves until its standard input closes.
#include <cstdio>
#include <iostream>
#include <string>

#include "engine/registry.h"
#include "exposition/http_exporter.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

int main(int argc, char** argv) {
  const int series = argc > 1 ? std::atoi(argv[1]) : 10000;
  const char* types[] = {"team.registered", "status.updated", "member.joined", "member.left"};
  char tenant[32];

  metrics::Registry ours;
  auto ours_h = *ours.AddHistogram({.name = "store_request_duration_seconds",
                                    .help = "Request latency.",
                                    .label_names = {"tenant"}});
  auto prom = std::make_shared<prometheus::Registry>();
  auto& prom_h = prometheus::BuildHistogram()
                     .Name("store_request_duration_seconds")
                     .Help("Request latency.")
                     .Register(*prom);
  for (int f = 0; f < 10; ++f) {
    std::string name = "store_events_" + std::to_string(f) + "_total";
    auto fam = *ours.AddCounter({.name = name,
                                 .help = "Events stored by tenant and type.",
                                 .label_names = {"tenant", "event_type"},
                                 .max_series = 100000});
    auto& pfam = prometheus::BuildCounter()
                     .Name(name)
                     .Help("Events stored by tenant and type.")
                     .Register(*prom);
    for (int i = 0; i < series / 10; ++i) {
      std::snprintf(tenant, sizeof(tenant), "tenant-%06d", i);
      fam.WithLabelValues(tenant, types[i % 4]).Inc(i + 1);
      pfam.Add({{"tenant", tenant}, {"event_type", types[i % 4]}}).Increment(i + 1);
    }
  }
  for (int i = 0; i < 100; ++i) {
    std::snprintf(tenant, sizeof(tenant), "tenant-%06d", i);
    auto& one = prom_h.Add(
        {{"tenant", tenant}},
        prometheus::Histogram::BucketBoundaries{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10});
    for (int k = 0; k < 50; ++k) {
      ours_h.WithLabelValues(tenant).Observe(0.0001 * (k + 1) * (i + 1));
      one.Observe(0.0001 * (k + 1) * (i + 1));
    }
  }

  auto handler = std::make_shared<metrics::exposition::MetricsHandler>(
      std::vector<const metrics::Registry*>{&ours},
      metrics::exposition::MetricsHandler::Options{.process_metrics = false});
  auto exporter =
      metrics::exposition::HttpExporter::Start({.host = "127.0.0.1", .port = 0}, handler);
  if (!exporter.ok()) {
    std::cerr << exporter.status() << "\n";
    return 1;
  }
  prometheus::Exposer exposer("127.0.0.1:0");
  exposer.RegisterCollectable(prom);
  std::cout << "ours=" << (*exporter)->port() << " promcpp=" << exposer.GetListeningPorts().at(0)
            << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}
