// A whole scrape in process: Collect + render as text 0.0.4 or protobuf, for N counter series (10
// families with two labels of realistic length) plus 100 histogram series (with native buckets),
// ours vs prometheus-cpp on the same shape; and, for protobuf, our wire encoder vs libprotobuf's
// generated classes (built from the same snapshot, then serialized) to justify writing our own.
#include <cstdio>
#include <string>

#include "benchmark/benchmark.h"
#include "engine/registry.h"
#include "exposition/negotiation.h"
#include "exposition/protobuf_format.h"
#include "exposition/text_format.h"
#ifdef METRICS_HAVE_PROM_PROTO
#include "proto_oracle.h"
#endif

#ifdef METRICS_HAVE_PROMETHEUS_CPP
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#endif

namespace {

constexpr int kFamilies = 10;
constexpr int kHistograms = 100;

std::string Tenant(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "tenant-%06d", i);
  return buf;
}
const char* kTypes[] = {"team.registered", "status.updated", "member.joined", "member.left"};

metrics::Registry* OurRegistry(int series) {
  auto* r = new metrics::Registry();
  for (int f = 0; f < kFamilies; ++f) {
    auto fam = *r->AddCounter({.name = "store_events_" + std::to_string(f) + "_total",
                               .help = "Events stored by tenant and type.",
                               .label_names = {"tenant", "event_type"},
                               .max_series = 100000});
    for (int i = 0; i < series / kFamilies; ++i) {
      fam.WithLabelValues(Tenant(i), kTypes[i % 4]).Inc(i + 1);
    }
  }
  auto h = *r->AddHistogram({.name = "store_request_duration_seconds",
                             .help = "Request latency.",
                             .label_names = {"tenant"}});
  for (int i = 0; i < kHistograms; ++i) {
    for (int k = 0; k < 50; ++k) h.WithLabelValues(Tenant(i)).Observe(0.0001 * (k + 1) * (i + 1));
  }
  return r;
}

void BM_Scrape_Text(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  metrics::Registry* r = OurRegistry(series);
  std::string out;
  for (auto _ : state) {
    out.clear();
    metrics::exposition::WriteText(r->Collect(), &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
  delete r;
}
BENCHMARK(BM_Scrape_Text)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_Scrape_Text_Gzip(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  metrics::Registry* r = OurRegistry(series);
  std::string out, gz;
  for (auto _ : state) {
    out.clear();
    metrics::exposition::WriteText(r->Collect(), &out);
    (void)metrics::exposition::Gzip(out, &gz);
    benchmark::DoNotOptimize(gz.data());
  }
  state.counters["gzip_bytes"] = static_cast<double>(gz.size());
  delete r;
}
BENCHMARK(BM_Scrape_Text_Gzip)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_Scrape_Protobuf(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  metrics::Registry* r = OurRegistry(series);
  std::string out;
  for (auto _ : state) {
    out.clear();
    metrics::exposition::WriteProtobuf(r->Collect(), &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
  delete r;
}
BENCHMARK(BM_Scrape_Protobuf)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_Scrape_Protobuf_Gzip(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  metrics::Registry* r = OurRegistry(series);
  std::string out, gz;
  for (auto _ : state) {
    out.clear();
    metrics::exposition::WriteProtobuf(r->Collect(), &out);
    (void)metrics::exposition::Gzip(out, &gz);
    benchmark::DoNotOptimize(gz.data());
  }
  state.counters["gzip_bytes"] = static_cast<double>(gz.size());
  delete r;
}
BENCHMARK(BM_Scrape_Protobuf_Gzip)->Arg(10000)->Unit(benchmark::kMicrosecond);

#ifdef METRICS_HAVE_PROM_PROTO
// The alternative we did not take: libprotobuf's generated messages filled from the snapshot, then
// serialized (tests/proto/proto_oracle.cc), same output modulo packed deltas.
void BM_Scrape_Protobuf_Libprotobuf(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  metrics::Registry* r = OurRegistry(series);
  std::string out;
  for (auto _ : state) {
    out.clear();
    metrics::testing::SerializeDelimited(r->Collect(), &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
  delete r;
}
BENCHMARK(BM_Scrape_Protobuf_Libprotobuf)->Arg(10000)->Unit(benchmark::kMicrosecond);
#endif

#ifdef METRICS_HAVE_PROMETHEUS_CPP
void BM_PromCpp_Collect_Serialize(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  prometheus::Registry r;
  for (int f = 0; f < kFamilies; ++f) {
    auto& fam = prometheus::BuildCounter()
                    .Name("store_events_" + std::to_string(f) + "_total")
                    .Help("Events stored by tenant and type.")
                    .Register(r);
    for (int i = 0; i < series / kFamilies; ++i) {
      fam.Add({{"tenant", Tenant(i)}, {"event_type", kTypes[i % 4]}}).Increment(i + 1);
    }
  }
  auto& h = prometheus::BuildHistogram()
                .Name("store_request_duration_seconds")
                .Help("Request latency.")
                .Register(r);
  for (int i = 0; i < kHistograms; ++i) {
    auto& one = h.Add(
        {{"tenant", Tenant(i)}},
        prometheus::Histogram::BucketBoundaries{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10});
    for (int k = 0; k < 50; ++k) one.Observe(0.0001 * (k + 1) * (i + 1));
  }
  prometheus::TextSerializer serializer;
  std::string out;
  for (auto _ : state) {
    out = serializer.Serialize(r.Collect());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_PromCpp_Collect_Serialize)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);
#endif

}  // namespace

namespace {
void BM_Scrape_CollectOnly(benchmark::State& state) {
  metrics::Registry* r = OurRegistry(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(r->Collect());
  state.counters["shards"] = metrics::internal::ShardCount();
  delete r;
}
BENCHMARK(BM_Scrape_CollectOnly)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);
}  // namespace
