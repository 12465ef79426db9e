// Scheduled deliveries — the ADR's scheduler ("reminder deliveries, scheduling health"). A
// schedule is an event of the store's "scheduler:schedules" stream; when it is due, the scheduler
// appends the scheduled event to its target stream with the schedule's id as the event's id. A
// delivery repeated after a crash (appended, then killed before the "delivered" marker was stored)
// is therefore recognised by the store as a duplicate and written once: exactly once across
// restarts, without a lock or a second store.
//
//   scheduler:schedules events: schedule.created {id, due_at, stream, type, data}
//                      schedule.cancelled {id}      schedule.delivered {id, position}
//   pending = created - cancelled - delivered, rebuilt from the stream at start.
//
// Metrics (with a registry): scheduler_deliveries_total{outcome} (delivered | duplicate | failed
// | rejected), scheduler_delivery_lateness_seconds (histogram: appended - due),
// scheduler_pending, scheduler_last_tick_timestamp_seconds (the tick thread's heartbeat).
//
// Thread contract: Add/Cancel/Pending from any thread; one tick thread of its own. A mutex
// serialises them (a delivery holds it for its append: schedules are few next to events).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/registry.h"
#include "store/event_backend.h"

namespace eventstore {

struct Schedule {
  std::string id;     // 16 bytes (a UUID): the delivered event's id
  double due_at = 0;  // Unix seconds
  std::string stream, type;
  std::string data;  // JSON text: the delivered event's payload
};

class Scheduler {
 public:
  static constexpr char kStream[] = "scheduler:schedules";

  struct Options {
    std::chrono::milliseconds tick{100};
    // Clock in Unix seconds (tests inject their own).
    std::function<double()> now;
    // Add() refuses more (ResourceExhausted): pending schedules live in memory.
    size_t max_pending = 100000;
  };

  // Rebuilds the pending schedules from kStream, registers the metrics (registry may be null)
  // and starts the tick thread.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Start(metrics::store::EventBackend* store,
                                                          metrics::Registry* registry,
                                                          Options options);
  ~Scheduler();  // stops the tick thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Stores the schedule. AlreadyExists when its id is pending or was delivered or cancelled;
  // ResourceExhausted at max_pending; the store's error when the append fails.
  absl::Status Add(const Schedule& s);
  // NotFound when no schedule with this id is pending (unknown, delivered or cancelled).
  absl::Status Cancel(const std::string& id);
  // Pending schedules, soonest first.
  std::vector<Schedule> Pending() const;
  // Delivers what is due now (the tick thread calls it; tests may too).
  void Tick();

  struct Metrics;  // the scheduler_* handles (scheduler.cc)

 private:
  Scheduler(metrics::store::EventBackend* store, Options options);
  absl::Status Mark(const char* type, const std::string& json);  // appends to kStream

  metrics::store::EventBackend* store_;
  Options options_;
  std::unique_ptr<Metrics> metrics_;
  mutable std::mutex mu_;
  std::map<std::string, Schedule> pending_;  // by id; guarded by mu_
  std::map<std::string, bool> done_;         // ids delivered or cancelled; guarded by mu_
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace eventstore
