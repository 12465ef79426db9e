// Counter::AddWithExemplar and Histogram::ObserveWithExemplar: validation, and the lazily made
// per-series slots (engine/internal/exemplar_slots.h).
#include <chrono>

#include "absl/strings/str_cat.h"
#include "engine/histogram.h"
#include "engine/internal/exemplar_slots.h"
#include "engine/metric.h"
#include "engine/validate.h"

namespace metrics {
namespace internal {

namespace {

constexpr size_t kMaxExemplarRunes = 128;  // OpenMetrics: names and values together

size_t Runes(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // not a continuation
  return n;
}

absl::Status Validate(ExemplarLabels labels) {
  size_t runes = 0;
  for (const auto& [name, value] : labels) {
    if (absl::Status s = ValidateLabelName(name); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("exemplar: ", s.message()));
    }
    if (!IsValidUtf8(value)) {
      return absl::InvalidArgumentError(absl::StrCat("exemplar: label \"", std::string(name),
                                                     "\" has a value that is not valid UTF-8"));
    }
    runes += Runes(name) + Runes(value);
  }
  if (runes > kMaxExemplarRunes) {
    return absl::InvalidArgumentError(absl::StrCat("exemplar: labels are ", runes,
                                                   " runes long, more than the ", kMaxExemplarRunes,
                                                   " OpenMetrics allows"));
  }
  return absl::OkStatus();
}

std::shared_ptr<const Exemplar> Make(ExemplarLabels labels, double value) {
  auto x = std::make_shared<Exemplar>();
  x->labels.reserve(labels.size());
  for (const auto& [n, v] : labels) x->labels.emplace_back(n, v);
  x->value = value;
  x->timestamp =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return x;
}

// The series' slots, made by the first exemplar. Concurrent first exemplars race to install one;
// the losers free theirs.
ExemplarSlots& SlotsOf(SeriesCore& series, uint32_t n) {
  // Acquire: pairs with the release CAS below (the slots are constructed before they are seen).
  ExemplarSlots* slots = series.exemplars.load(std::memory_order_acquire);
  if (slots != nullptr) return *slots;
  auto made = std::make_unique<ExemplarSlots>(n);
  // Release on success: publishes the constructed slots to Collect and other writers. Acquire on
  // failure: the winner's slots, constructed, are what `slots` then points to.
  if (series.exemplars.compare_exchange_strong(slots, made.get(), std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
    return *made.release();
  }
  return *slots;
}

}  // namespace

struct ExemplarAccess {
  static absl::Status Record(SeriesCore* series, uint32_t slots, uint32_t slot,
                             ExemplarLabels labels, double value) {
    if (absl::Status s = Validate(labels); !s.ok()) return s;
    if (series == nullptr) return absl::OkStatus();  // a default or moved-from handle: the sink
    SlotsOf(*series, slots).Record(slot, Make(labels, value));
    return absl::OkStatus();
  }
};

}  // namespace internal

absl::Status Counter::IncWithExemplar(ExemplarLabels labels) {
  Inc();
  return internal::ExemplarAccess::Record(series_.get(), 1, 0, labels, 1);
}

absl::Status Counter::AddWithExemplar(double v, ExemplarLabels labels) {
  if (!(v >= 0)) {
    return absl::InvalidArgumentError("Counter::AddWithExemplar: a negative or NaN increment");
  }
  Add(v);
  return internal::ExemplarAccess::Record(series_.get(), 1, 0, labels, v);
}

absl::Status Histogram::ObserveWithExemplar(double v, ExemplarLabels labels) {
  Observe(v);
  const uint32_t bucket = layout_->slots()[layout_->Slot(v)].classic;
  return internal::ExemplarAccess::Record(
      series_.get(), static_cast<uint32_t>(layout_->boundaries().size() + 1), bucket, labels, v);
}

}  // namespace metrics
