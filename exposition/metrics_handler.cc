#include "exposition/metrics_handler.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "exposition/negotiation.h"
#include "exposition/process_metrics.h"

namespace metrics::exposition {
namespace {

HistogramConfig ScrapeBuckets() {
  HistogramConfig c;
  c.buckets = {.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1};
  return c;
}

}  // namespace

MetricsHandler::MetricsHandler(std::vector<const Registry*> registries)
    : MetricsHandler(std::move(registries), Options()) {}

MetricsHandler::MetricsHandler(std::vector<const Registry*> registries, Options options)
    : registries_(std::move(registries)),
      options_(options),
      scrapes_(*self_.AddCounter({.name = "metrics_scrapes_total",
                                  .help = "Scrapes of this /metrics endpoint, by format served.",
                                  .label_names = {"format"}})),
      duration_(*self_
                     .AddHistogram({.name = "metrics_scrape_duration_seconds",
                                    .help = "Time to collect, render and compress one scrape."},
                                   ScrapeBuckets())
                     ->Bind({})) {
  if (options_.process_metrics) {
    absl::Status s = process_.AddCollector(std::make_shared<ProcessCollector>());
    if (!s.ok()) {  // cannot happen: a fresh registry, fixed valid names
      std::fprintf(stderr, "metrics: process metrics: %s\n", std::string(s.message()).c_str());
    }
  }
}

Snapshot MetricsHandler::Collect() const {
  Snapshot snap = self_.Collect();
  for (const Registry* r : registries_) {
    Snapshot s = r->Collect();
    // Process-wide, the same in every registry: added once below, not reported as a clash.
    std::erase_if(s.families, [](const FamilySnapshot& f) {
      return f.desc->name == kShardAllocationFailuresFamily;
    });
    size_t dropped = MergeSnapshot(std::move(s), &snap);
    if (dropped > 0) {
      std::fprintf(stderr, "metrics: %zu metric families registered in two registries dropped\n",
                   dropped);
    }
  }
  // Last, and quietly, as before they were a collector: a registry's own process_* family wins.
  if (options_.process_metrics) MergeSnapshot(process_.Collect(), &snap);
  // Always, 0 included, so that an alert on its increase has a series from the first scrape.
  AppendShardAllocationFailures(&snap);
  return snap;
}

ScrapeResult MetricsHandler::ScrapeLocked(std::string_view accept,
                                          std::string_view accept_encoding) {
  const auto start = std::chrono::steady_clock::now();
  const Format format = NegotiateFormat(accept);
  scrapes_
      .WithLabelValues(format == Format::kOpenMetrics ? "openmetrics"
                       : format == Format::kProtobuf  ? "protobuf"
                                                      : "text")
      .Inc();
  text_.clear();
  Write(format, Collect(), &text_);
  ScrapeResult r{text_, ContentType(format), false};
  if (AcceptsGzip(accept_encoding) && Gzip(text_, &gzipped_).ok()) {
    r.body = gzipped_;
    r.gzipped = true;
  }
  duration_.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return r;
}

absl::Status WriteTextFile(const Snapshot& snapshot, const std::string& path) {
  std::string text;
  WriteText(snapshot, &text);
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("open ", tmp, ": ", std::strerror(errno)));
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::UnavailableError(absl::StrCat("write ", tmp, ": ", std::strerror(err)));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("fsync/close ", tmp, ": ", std::strerror(errno)));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("rename to ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace metrics::exposition
