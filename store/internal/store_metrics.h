// The event store's instrumentation: its metric families, the handles bound once, and the calls
// the writer and projector threads make. Internal (not installed); bench/store_bench.cc calls the
// same entry points to time them in isolation.
//
// Per stored event the writer calls CountEvent(type); per batch BatchStored(); per request,
// after one clock read per batch, Released(). What each metric measures is documented in
// store/README.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/optimization.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/histogram.h"
#include "engine/metric.h"
#include "engine/registry.h"

namespace metrics::store::internal {

class StoreMetrics {
 public:
  // Registers (or finds, when identical) the store's families in `registry`.
  static absl::StatusOr<std::unique_ptr<StoreMetrics>> Create(Registry& registry,
                                                              size_t max_event_types);

  // The clock of event timestamps and of event_processing_duration_seconds: ns since the epoch.
  static int64_t Now();

  // Writer thread only. events_stored_total{event_type=type} += 1.
  void CountEvent(std::string_view type) { TypeCounter(type).Inc(); }
  // Writer thread only, once per durable batch.
  void BatchStored(uint64_t payload_bytes, uint64_t size_bytes) {
    stored_bytes_.Inc(payload_bytes);
    size_bytes_.Set(static_cast<double>(size_bytes));
  }
  // Writer thread only, per request of the batch, with one Now() read per batch. Some
  // observations carry an exemplar {position="<the request's first global position>"}, which
  // leads from a latency spike on the dashboard to the events (GET /all?from_position=<position>):
  // one per kExemplarEveryNs whatever its latency (a scrape sees only the latest per bucket, and
  // scrapes are seconds apart), and any request slower than kSlowNs, at most one per kSlowEveryNs
  // (all of a batch share end_ns: one per batch). Bounded so because an exemplar costs ~1,250
  // instructions (an allocation, a clock read, a lock; bench/callgrind_budgets.txt).
  void Released(int64_t end_ns, int64_t accept_ns, uint64_t first_position) {
    const int64_t d = end_ns - accept_ns;
    const double seconds = static_cast<double>(d > 0 ? d : 0) * 1e-9;
    const int64_t since = end_ns - last_exemplar_ns_;
    if (ABSL_PREDICT_FALSE(since >= kExemplarEveryNs || (d >= kSlowNs && since >= kSlowEveryNs))) {
      return ObserveWithExemplar(seconds, end_ns, first_position);
    }
    duration_.Observe(seconds);
  }
  static constexpr int64_t kExemplarEveryNs = 1'000'000'000;  // 1 s
  static constexpr int64_t kSlowNs = 50'000'000;              // 50 ms
  static constexpr int64_t kSlowEveryNs = 10'000'000;         // 10 ms

  void SetSize(uint64_t size_bytes) { size_bytes_.Set(static_cast<double>(size_bytes)); }
  void RecoveryTruncated(uint64_t bytes) { truncated_bytes_.Inc(bytes); }

  // Handles of one projection's series (bound on the calling thread, kept by the projection).
  struct ProjectionHandles {
    Counter updates;
    Counter errors;
    Gauge lag;
  };
  ProjectionHandles BindProjection(std::string_view name);

  // The events_stored_total counter of `type`. Bound handles are kept for up to max_event_types
  // types (the family's cap) and found through a small direct-mapped cache keyed by the type's
  // length and its first and last 8 bytes, which for types of up to 16 bytes is the whole string:
  // no string compare at all (a fraction of a hash map probe when types alternate; see
  // bench/RESULTS.md).
  // Types past the cap go through WithLabelValues each time (diverted to __overflow__ and counted
  // by the engine), so invented types grow neither the family nor these caches.
  Counter& TypeCounter(std::string_view type) {
    const Key k = MakeKey(type);
    CacheEntry& e = cache_[k.Slot()];
    // An empty entry's size is ~0, which no key has: no separate "is it filled" test.
    if (ABSL_PREDICT_TRUE(k.Matches(e.key)) &&
        (ABSL_PREDICT_TRUE(type.size() <= 16) || e.type == type)) {
      return *e.counter;
    }
    return TypeCounterSlow(type, e);
  }

 private:
  // Every handle is bound before construction: a default-constructed Histogram would touch the
  // engine's process-wide default layout, which LeakSanitizer reports.
  StoreMetrics(CounterFamily stored, CounterFamily updates, CounterFamily errors, GaugeFamily lag,
               Counter stored_bytes, Gauge size_bytes, Histogram duration, Counter truncated_bytes,
               size_t max_types)
      : stored_(std::move(stored)),
        updates_(std::move(updates)),
        errors_(std::move(errors)),
        lag_(std::move(lag)),
        stored_bytes_(std::move(stored_bytes)),
        size_bytes_(std::move(size_bytes)),
        duration_(std::move(duration)),
        truncated_bytes_(std::move(truncated_bytes)),
        max_types_(max_types) {}
  // The length and up to 16 bytes that, with the length, determine a string of up to 16 bytes:
  // its first and last 8 (overlapping when shorter than 16); for 4-7 bytes its first and last 4;
  // for 1-3 bytes its first, middle and last. Fixed-size loads only: no memcpy call, no loop.
  struct Key {
    uint64_t head = 0;
    uint64_t tail = 0;
    uint64_t size = ~uint64_t{0};
    bool Matches(const Key& o) const {
      return ((head ^ o.head) | (tail ^ o.tail) | (size ^ o.size)) == 0;
    }
    size_t Slot() const {
      const uint64_t h = (head ^ (tail * 0x9E3779B97F4A7C15u) ^ size) * 0xBF58476D1CE4E5B9u;
      return static_cast<size_t>(h >> (64 - kCacheBits));
    }
  };
  static Key MakeKey(std::string_view s) {
    Key k;
    const char* p = s.data();
    const size_t n = s.size();
    k.size = n;
    if (ABSL_PREDICT_TRUE(n >= 8)) {
      std::memcpy(&k.head, p, 8);
      std::memcpy(&k.tail, p + n - 8, 8);
    } else if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      k.head = a | (uint64_t{b} << 32);
    } else if (n > 0) {
      k.head = uint64_t{static_cast<unsigned char>(p[0])} |
               uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 |
               uint64_t{static_cast<unsigned char>(p[n - 1])} << 16;
    }
    return k;
  }
  struct CacheEntry {
    Key key;
    std::string type;            // compared only for types longer than 16 bytes
    Counter* counter = nullptr;  // into types_ (node-based: stable)
  };
  static constexpr int kCacheBits = 6;

  Counter& TypeCounterSlow(std::string_view type, CacheEntry& entry);
  // Out of line: keeps Released's common path free of the exemplar's registers and call.
  ABSL_ATTRIBUTE_NOINLINE void ObserveWithExemplar(double seconds, int64_t end_ns,
                                                   uint64_t first_position);

  CounterFamily stored_;
  CounterFamily updates_;
  CounterFamily errors_;
  GaugeFamily lag_;
  Counter stored_bytes_;
  Gauge size_bytes_;
  Histogram duration_;
  int64_t last_exemplar_ns_ = 0;  // writer thread only
  Counter truncated_bytes_;
  const size_t max_types_;
  absl::node_hash_map<std::string, Counter> types_;  // at most max_types_ entries
  std::array<CacheEntry, size_t{1} << kCacheBits> cache_;
};

}  // namespace metrics::store::internal
