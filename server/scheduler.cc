#include "server/scheduler.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/event_body.h"
#include "server/reply.h"
#include "server/system_streams.h"

namespace eventstore {

using metrics::store::EventBackend;
using metrics::store::ExpectedVersion;
using metrics::store::NewEvent;

struct Scheduler::Metrics {
  metrics::CounterFamily deliveries;
  metrics::Histogram lateness;
  metrics::Gauge pending;
  metrics::Gauge last_tick;
};

namespace {

absl::StatusOr<std::unique_ptr<Scheduler::Metrics>> MakeMetrics(metrics::Registry& r) {
  auto deliveries = r.AddCounter(
      {.name = "scheduler_deliveries_total",
       .help = "Scheduled events handled when due, by outcome: delivered, duplicate (already "
               "stored by an earlier attempt), failed (retried), rejected (dropped).",
       .label_names = {"outcome"}});
  if (!deliveries.ok()) return deliveries.status();
  auto lateness =
      r.AddHistogram({.name = "scheduler_delivery_lateness_seconds",
                      .help = "Time from a schedule's due time to its event being stored."},
                     {.buckets = {.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
                      .schema = 0,
                      .min_exponent = -20,
                      .max_exponent = 14});
  if (!lateness.ok()) return lateness.status();
  auto pending = r.AddGauge({.name = "scheduler_pending", .help = "Schedules not yet delivered."});
  if (!pending.ok()) return pending.status();
  auto tick = r.AddGauge({.name = "scheduler_last_tick_timestamp_seconds",
                          .help = "Unix time of the scheduler's last tick (its heartbeat)."});
  if (!tick.ok()) return tick.status();
  return std::unique_ptr<Scheduler::Metrics>(new Scheduler::Metrics{
      *std::move(deliveries), *lateness->Bind({}), *pending->Bind({}), *tick->Bind({})});
}

}  // namespace

Scheduler::Scheduler(EventBackend* store, Options options)
    : store_(store), options_(std::move(options)) {
  if (!options_.now) options_.now = WallSeconds;
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Start(EventBackend* store,
                                                            metrics::Registry* registry,
                                                            Options options) {
  std::unique_ptr<Scheduler> s(new Scheduler(store, std::move(options)));
  if (registry != nullptr) {
    auto m = MakeMetrics(*registry);
    if (!m.ok()) return m.status();
    s->metrics_ = *std::move(m);
  }
  // Rebuild: every scheduler:schedules event, in order.
  for (uint64_t from = 1;;) {
    auto page = store->ReadStream(kStream, from, 1000);
    if (!page.ok()) {
      if (absl::IsNotFound(page.status())) break;
      return page.status();
    }
    if (page->empty()) break;
    for (const metrics::store::Event& e : *page) {
      // Only the scheduler writes this stream (the API refuses it), but an embedding program or an
      // imported store may hold anything: a record that is not a schedule is skipped, said on
      // stderr, and must not keep the server from starting.
      const auto j = nlohmann::json::parse(e.payload, nullptr, false);
      std::string id;
      if (!j.is_object() || !j.contains("id") || !j["id"].is_string() ||
          !ParseUuid(j["id"].get<std::string>(), &id)) {
        ReportForeignRecord("scheduler", e);
        continue;
      }
      if (e.type == "schedule.created") {
        const auto text = [&](const char* k) {
          return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
        };
        const bool timed = j.contains("due_at") && j["due_at"].is_number();
        Schedule sc{.id = id,
                    .due_at = timed ? j["due_at"].get<double>() : 0.0,
                    .stream = text("stream"),
                    .type = text("type"),
                    .data = j.contains("data") ? j["data"].dump() : "null"};
        if (!timed || sc.stream.empty() || sc.type.empty() || IsSystemStream(sc.stream)) {
          ReportForeignRecord("scheduler", e);
          continue;
        }
        if (!s->done_.count(id)) s->pending_[id] = std::move(sc);
      } else {  // schedule.delivered, schedule.cancelled, schedule.rejected
        s->pending_.erase(id);
        s->done_[id] = true;
      }
    }
    from = page->back().stream_version + 1;
  }
  if (s->metrics_) s->metrics_->pending.Set(static_cast<double>(s->pending_.size()));
  Scheduler* raw = s.get();
  s->thread_ = std::thread([raw] {
    std::unique_lock<std::mutex> lock(raw->mu_);
    while (!raw->stop_cv_.wait_for(lock, raw->options_.tick, [raw] { return raw->stop_; })) {
      lock.unlock();
      raw->Tick();
      lock.lock();
    }
  });
  return s;
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::Status Scheduler::Mark(const char* type, const std::string& json) {
  auto r = store_->Append(kStream, ExpectedVersion::kAny, {NewEvent{type, json, ""}});
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status Scheduler::Add(const Schedule& s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_.count(s.id) || done_.count(s.id)) {
    return absl::AlreadyExistsError(absl::StrCat("schedule ", FormatUuid(s.id), " exists"));
  }
  if (pending_.size() >= options_.max_pending) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many pending schedules (", options_.max_pending, ")"));
  }
  nlohmann::json j = {{"id", FormatUuid(s.id)},
                      {"due_at", s.due_at},
                      {"stream", s.stream},
                      {"type", s.type},
                      {"data", nlohmann::json::parse(s.data, nullptr, false)}};
  if (j["data"].is_discarded()) return absl::InvalidArgumentError("schedule data is not JSON");
  if (absl::Status st = Mark("schedule.created", j.dump()); !st.ok()) return st;
  pending_[s.id] = s;
  if (metrics_) metrics_->pending.Set(static_cast<double>(pending_.size()));
  return absl::OkStatus();
}

absl::Status Scheduler::Cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!pending_.count(id)) {
    return absl::NotFoundError(absl::StrCat("no pending schedule ", FormatUuid(id)));
  }
  nlohmann::json j = {{"id", FormatUuid(id)}};
  if (absl::Status st = Mark("schedule.cancelled", j.dump()); !st.ok()) return st;
  pending_.erase(id);
  done_[id] = true;
  if (metrics_) metrics_->pending.Set(static_cast<double>(pending_.size()));
  return absl::OkStatus();
}

std::vector<Schedule> Scheduler::Pending() const {
  std::vector<Schedule> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, s] : pending_) out.push_back(s);
  }
  std::sort(out.begin(), out.end(),
            [](const Schedule& a, const Schedule& b) { return a.due_at < b.due_at; });
  return out;
}

void Scheduler::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  const double now = options_.now();
  if (metrics_) metrics_->last_tick.Set(now);
  std::vector<const Schedule*> due;
  for (const auto& [id, s] : pending_) {
    if (s.due_at <= now) due.push_back(&s);
  }
  std::sort(due.begin(), due.end(),
            [](const Schedule* a, const Schedule* b) { return a->due_at < b->due_at; });
  std::vector<std::string> finished;
  for (const Schedule* s : due) {
    auto r = store_->Append(s->stream, ExpectedVersion::kAny, {NewEvent{s->type, s->data, s->id}});
    const char* outcome = "delivered";
    std::string marker = "schedule.delivered";
    nlohmann::json j = {{"id", FormatUuid(s->id)}};
    if (r.ok()) {
      if (r->duplicate) outcome = "duplicate";
      j["position"] = r->first_position;
      if (metrics_ && !r->duplicate) {
        metrics_->lateness.Observe(std::max(0.0, options_.now() - s->due_at));
      }
    } else if (absl::IsInvalidArgument(r.status())) {
      // The event can never be stored (a stream or type the store refuses): drop it, say so.
      outcome = "rejected";
      marker = "schedule.rejected";
      j["error"] = std::string(r.status().message());
    } else {
      if (metrics_) metrics_->deliveries.WithLabelValues("failed").Inc();
      continue;  // the store is unwell: try again next tick
    }
    if (metrics_) metrics_->deliveries.WithLabelValues(outcome).Inc();
    // If this marker is lost (a crash now), the restart delivers again: a duplicate, not a
    // second event.
    (void)Mark(marker.c_str(), j.dump());
    finished.push_back(s->id);
  }
  for (const std::string& id : finished) {
    pending_.erase(id);
    done_[id] = true;
  }
  if (metrics_) metrics_->pending.Set(static_cast<double>(pending_.size()));
}

}  // namespace eventstore
