#include "server/stats.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "server/reply.h"

namespace eventstore {
namespace {

using metrics::FamilySnapshot;
using metrics::HistogramSample;
using metrics::Snapshot;

// Handlers whose requests are not the API's: scrapes, probes, and the status page itself.
bool ApiHandler(const std::string& handler) {
  return handler != "/metrics" && handler != "/healthz" && handler != "/stats" && handler != "/";
}

// The label value of `name` in series k of f, or "".
const std::string& Label(const FamilySnapshot& f, size_t k, const std::string& name) {
  static const std::string kEmpty;
  const auto& names = f.desc->label_names;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return (*f.samples[k].label_values)[i];
  }
  return kEmpty;
}

void AddCumulative(const HistogramSample& h, std::vector<double>* into) {
  if (into->size() != h.cumulative.size()) into->assign(h.cumulative.size(), 0);
  for (size_t i = 0; i < h.cumulative.size(); ++i)
    (*into)[i] += static_cast<double>(h.cumulative[i]);
}

// Counts as JSON integers (604, not 604.0) while they are exact in a double.
nlohmann::json Count(double v) {
  if (v >= 0 && v < 9007199254740992.0 && v == std::floor(v)) {
    return nlohmann::json(static_cast<uint64_t>(v));
  }
  return nlohmann::json(v);
}

void AddNative(const HistogramSample& h, NativeDist* into) {
  if (!h.native) return;
  into->present = true;
  into->schema = h.schema;
  into->zero += static_cast<double>(h.zero_count);
  int32_t index = 0;
  size_t c = 0;
  for (size_t s = 0; s < h.positive.spans.size(); ++s) {
    index += h.positive.spans[s].offset;  // the first span's offset is its first index
    for (uint32_t k = 0; k < h.positive.spans[s].length; ++k, ++index) {
      into->positive[index] += static_cast<double>(h.positive.counts[c++]);
    }
  }
}

// now - then, bucket by bucket (then may be absent: everything since start).
NativeDist Minus(const NativeDist& now, const NativeDist* then) {
  NativeDist d = now;
  if (then == nullptr || !then->present || then->schema != now.schema) return d;
  d.zero -= then->zero;
  for (const auto& [i, n] : then->positive) d.positive[i] -= n;
  return d;
}

nlohmann::json OrNull(std::optional<double> v) {
  return v.has_value() && std::isfinite(*v) ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

StatsFigures ExtractFigures(const Snapshot& snapshot) {
  StatsFigures f;
  for (const FamilySnapshot& fam : snapshot.families) {
    const std::string& name = fam.desc->name;
    if (name == "event_store_events" && !fam.samples.empty()) {
      f.store_events = fam.samples[0].value;
    } else if (name == "events_stored_total") {
      for (size_t k = 0; k < fam.samples.size(); ++k) {
        const double v = fam.samples[k].Total();
        f.stored_since_start += v;
        f.by_type[Label(fam, k, "event_type")] += v;
      }
    } else if (name == "projection_lag_seconds") {
      for (size_t k = 0; k < fam.samples.size(); ++k) {
        f.projection_lag_seconds[Label(fam, k, "projection")] = fam.samples[k].value;
      }
    } else if (name == "event_store_size_bytes" && !fam.samples.empty()) {
      f.store_size_bytes = fam.samples[0].value;
    } else if (name == "process_start_time_seconds" && !fam.samples.empty()) {
      f.start_time_seconds = fam.samples[0].value;
    } else if (name == "event_processing_duration_seconds" && !fam.histograms.empty()) {
      f.append_bounds = fam.desc->histogram->boundaries();
      for (const HistogramSample& h : fam.histograms) {
        AddCumulative(h, &f.append_cumulative);
        AddNative(h, &f.append_native);
      }
    } else if (name == "webhook_position" || name == "webhook_lag_seconds") {
      for (size_t k = 0; k < fam.samples.size(); ++k) {
        auto& w = f.webhooks[Label(fam, k, "subscription")];
        (name == "webhook_position" ? w.position : w.lag_seconds) = fam.samples[k].value;
      }
    } else if (name == "webhook_deliveries_total") {
      for (size_t k = 0; k < fam.samples.size(); ++k) {
        auto& w = f.webhooks[Label(fam, k, "subscription")];
        (Label(fam, k, "outcome") == "delivered" ? w.delivered : w.failed) +=
            fam.samples[k].Total();
      }
    } else if (name == "scheduler_pending" && !fam.samples.empty()) {
      f.has_scheduler = true;
      f.scheduler_pending = fam.samples[0].value;
    } else if (name == "scheduler_last_tick_timestamp_seconds" && !fam.samples.empty()) {
      f.scheduler_last_tick = fam.samples[0].value;
    } else if (name == "scheduler_deliveries_total") {
      for (size_t k = 0; k < fam.samples.size(); ++k) {
        f.scheduler_outcomes[Label(fam, k, "outcome")] += fam.samples[k].Total();
      }
    } else if (name == "http_request_duration_seconds") {
      f.api_bounds = fam.desc->histogram->boundaries();
      for (size_t k = 0; k < fam.histograms.size(); ++k) {
        if (!ApiHandler(Label(fam, k, "handler"))) continue;
        AddCumulative(fam.histograms[k], &f.api_cumulative);
        AddNative(fam.histograms[k], &f.api_native);
      }
      if (f.api_cumulative.empty()) f.api_cumulative.assign(f.api_bounds.size() + 1, 0);
    }
  }
  return f;
}

std::optional<double> NativeQuantile(const NativeDist& d, double q) {
  double total = d.zero;
  for (const auto& [i, n] : d.positive) total += n;
  if (!(total > 0)) return std::nullopt;
  const double rank = q * total;
  if (rank <= d.zero) return 0.0;
  double below = d.zero;
  const double per_binade = std::ldexp(1.0, d.schema);  // buckets per power of two
  for (const auto& [i, n] : d.positive) {
    if (n <= 0) continue;
    if (below + n >= rank) {
      const double lo = std::exp2((i - 1) / per_binade), hi = std::exp2(i / per_binade);
      return lo + (hi - lo) * (rank - below) / n;
    }
    below += n;
  }
  return d.positive.empty()
             ? std::nullopt
             : std::optional<double>(std::exp2(d.positive.rbegin()->first / per_binade));
}

std::optional<double> ClassicQuantile(const std::vector<double>& bounds,
                                      const std::vector<double>& cumulative, double q) {
  if (cumulative.size() != bounds.size() + 1 || cumulative.back() <= 0) return std::nullopt;
  const double rank = q * cumulative.back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (cumulative[i] >= rank) {
      const double lo = i == 0 ? 0 : bounds[i - 1];
      const double below = i == 0 ? 0 : cumulative[i - 1];
      const double in = cumulative[i] - below;
      return in > 0 ? lo + (bounds[i] - lo) * (rank - below) / in : bounds[i];
    }
  }
  return bounds.empty() ? std::nullopt : std::optional<double>(bounds.back());
}

StatsService::StatsService(std::function<Snapshot()> collect, std::function<double()> now)
    : collect_(std::move(collect)), now_(now ? std::move(now) : WallSeconds) {}

StatsService::~StatsService() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (sampler_.joinable()) sampler_.join();
}

void StatsService::StartSampler(std::chrono::milliseconds every,
                                metrics::instrument::JobMetrics* jobs) {
  auto sample = [this, jobs] {
    if (jobs == nullptr) return Sample();
    (void)jobs->Run("stats_sample", [this] {
      Sample();
      return absl::OkStatus();
    });
  };
  sample();
  sampler_ = std::thread([this, every, sample] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_cv_.wait_for(lock, every, [this] { return stop_; })) {
      lock.unlock();
      sample();
      lock.lock();
    }
  });
}

StatsService::Point StatsService::MakePoint(const StatsFigures& f, double t) const {
  return {.t = t,
          .store_events = f.store_events,
          .store_size_bytes = f.store_size_bytes,
          .append_cumulative = f.append_cumulative,
          .api_cumulative = f.api_cumulative,
          .append_native = f.append_native,
          .api_native = f.api_native};
}

void StatsService::Sample() {
  const StatsFigures f = ExtractFigures(collect_());
  Point p = MakePoint(f, now_());
  std::lock_guard<std::mutex> lock(mu_);
  history_.push_back(std::move(p));
  while (history_.size() > kMaxPoints) history_.pop_front();
}

std::string StatsService::Json() {
  const StatsFigures f = ExtractFigures(collect_());
  const double now = now_();
  std::deque<Point> history;
  {
    std::lock_guard<std::mutex> lock(mu_);
    history = history_;
  }
  // The window for rates and quantiles: from the newest point at least a minute old, else from
  // the oldest point there is (a younger server reports a shorter window, and says so).
  const Point* then = nullptr;
  for (const Point& p : history) {
    if (p.t <= now - 60) then = &p;
  }
  if (then == nullptr && !history.empty() && history.front().t < now) then = &history.front();
  // The last hour: from the oldest point within it (an hour ago, or the server's first sample).
  const Point* hour = nullptr;
  for (const Point& p : history) {
    if (p.t >= now - 3600) {
      hour = &p;
      break;
    }
  }

  nlohmann::json j;
  j["generated_at"] = now;
  j["uptime_seconds"] =
      f.start_time_seconds > 0 ? nlohmann::json(now - f.start_time_seconds) : nullptr;
  j["events_count_total"] = Count(f.store_events);
  j["events_stored_since_start"] = Count(f.stored_since_start);
  j["events_last_hour"] = hour ? Count(f.store_events - hour->store_events) : nullptr;
  j["events_last_hour_window_seconds"] = hour ? now - hour->t : 0.0;
  nlohmann::json by_type = nlohmann::json::object();
  for (const auto& [type, n] : f.by_type) by_type[type] = Count(n);
  j["events_by_type"] = std::move(by_type);
  nlohmann::json lag = nlohmann::json::object();
  for (const auto& [p, seconds] : f.projection_lag_seconds) lag[p] = seconds * 1000;
  j["projection_lag_ms"] = lag;
  j["projection_lag_alert_ms"] = 1000;  // rules/: EventStoreProjectionLagging fires above 1 s
  j["store_size_bytes"] = Count(f.store_size_bytes);

  const double window = then ? now - then->t : 0;
  j["window_seconds"] = window;
  j["ingest_events_per_second"] =
      window > 0 ? nlohmann::json((f.store_events - then->store_events) / window) : nullptr;
  // Native buckets when the histogram has them (schema 3: ~9% wide, where the classic ones can
  // be a decade), else Prometheus' classic interpolation.
  auto quantiles = [&](const std::vector<double>& bounds, const std::vector<double>& now_cum,
                       const std::vector<double>* then_cum, const NativeDist& now_native,
                       const NativeDist* then_native, std::initializer_list<double> qs) {
    std::vector<double> d = now_cum;
    if (then_cum != nullptr && then_cum->size() == d.size()) {
      for (size_t i = 0; i < d.size(); ++i) d[i] -= (*then_cum)[i];
    }
    const NativeDist nd = Minus(now_native, then_native);
    nlohmann::json out;
    out["count"] = Count(d.empty() ? 0.0 : d.back());
    out["from"] = now_native.present ? "native buckets" : "classic buckets";
    for (double q : qs) {
      out["p" + std::to_string(static_cast<int>(std::lround(q * 100)))] =
          OrNull(now_native.present ? NativeQuantile(nd, q) : ClassicQuantile(bounds, d, q));
    }
    return out;
  };
  j["append_latency_seconds"] =
      quantiles(f.append_bounds, f.append_cumulative, then ? &then->append_cumulative : nullptr,
                f.append_native, then ? &then->append_native : nullptr, {0.5, 0.9, 0.99});
  j["api_latency_seconds"] =
      quantiles(f.api_bounds, f.api_cumulative, then ? &then->api_cumulative : nullptr,
                f.api_native, then ? &then->api_native : nullptr, {0.5, 0.99});
  nlohmann::json webhooks = nlohmann::json::object();
  for (const auto& [name, w] : f.webhooks) {
    webhooks[name] = {{"position", Count(w.position)},
                      {"behind", Count(std::max(0.0, f.store_events - w.position))},
                      {"lag_seconds", w.lag_seconds},
                      {"delivered", Count(w.delivered)},
                      {"failed_attempts", Count(w.failed)}};
  }
  j["webhooks"] = std::move(webhooks);
  if (f.has_scheduler) {
    nlohmann::json outcomes = nlohmann::json::object();
    for (const auto& [o, n] : f.scheduler_outcomes) outcomes[o] = Count(n);
    j["scheduler"] = {{"pending", Count(f.scheduler_pending)},
                      {"deliveries", std::move(outcomes)},
                      {"last_tick_age_seconds", f.scheduler_last_tick > 0
                                                    ? nlohmann::json(now - f.scheduler_last_tick)
                                                    : nlohmann::json(nullptr)}};
  } else {
    j["scheduler"] = nullptr;
  }
  // The last ten minutes of points, for the page's charts from its first second.
  nlohmann::json points = nlohmann::json::array();
  for (const Point& p : history) {
    if (p.t < now - 600) continue;
    points.push_back({{"t", p.t},
                      {"events", Count(p.store_events)},
                      {"store_size_bytes", Count(p.store_size_bytes)}});
  }
  j["history"] = std::move(points);
  return j.dump();
}

}  // namespace eventstore
