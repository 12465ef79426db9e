#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/internal/histogram_layout.h"

namespace metrics {

std::vector<double> DefaultBuckets() { return {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}; }

absl::StatusOr<std::vector<double>> LinearBuckets(double start, double width, int count) {
  if (count < 1)
    return absl::InvalidArgumentError(absl::StrCat("LinearBuckets: count ", count, " < 1"));
  if (!(width > 0) || !std::isfinite(width) || !std::isfinite(start)) {
    return absl::InvalidArgumentError(
        absl::StrCat("LinearBuckets: need finite start and width > 0, got ", start, ", ", width));
  }
  std::vector<double> b(count);
  for (int i = 0; i < count; ++i) b[i] = start + i * width;
  return b;
}

absl::StatusOr<std::vector<double>> ExponentialBuckets(double start, double factor, int count) {
  if (count < 1)
    return absl::InvalidArgumentError(absl::StrCat("ExponentialBuckets: count ", count, " < 1"));
  if (!(start > 0) || !(factor > 1) || !std::isfinite(start) || !std::isfinite(factor)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ExponentialBuckets: need start > 0 and factor > 1, got ", start, ", ", factor));
  }
  std::vector<double> b(count);
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b[i] = v;
  if (!std::isfinite(b.back()))
    return absl::InvalidArgumentError("ExponentialBuckets: overflows to +Inf");
  return b;
}

namespace internal {
namespace {

int32_t CeilDiv(int32_t a, int32_t n) { return a >= 0 ? (a + n - 1) / n : -((-a) / n); }

}  // namespace

absl::StatusOr<std::shared_ptr<const HistogramLayout>> HistogramLayout::Create(
    const HistogramConfig& config) {
  std::shared_ptr<HistogramLayout> layout(new HistogramLayout(config));
  if (absl::Status s = layout->Build(); !s.ok()) return s;
  return std::shared_ptr<const HistogramLayout>(std::move(layout));
}

absl::Status HistogramLayout::Build() {
  HistogramConfig& c = config_;
  if (c.schema < -4 || c.schema > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("histogram schema ", c.schema, " is outside [-4, 8]"));
  }
  if (c.min_exponent < -1022 || c.max_exponent > 1024 || c.min_exponent >= c.max_exponent) {
    return absl::InvalidArgumentError(absl::StrCat("histogram exponent range [", c.min_exponent,
                                                   ", ", c.max_exponent,
                                                   "] is empty or outside [-1022, 1024]"));
  }
  if (!(c.zero_threshold >= 0) || !(c.zero_threshold < std::ldexp(1.0, c.min_exponent))) {
    return absl::InvalidArgumentError(absl::StrCat("histogram zero_threshold ", c.zero_threshold,
                                                   " must be >= 0 and below 2^min_exponent"));
  }
  // A trailing +Inf is implied; accept it written out, as client_golang does.
  if (!c.buckets.empty() && c.buckets.back() == std::numeric_limits<double>::infinity())
    c.buckets.pop_back();
  for (size_t i = 0; i < c.buckets.size(); ++i) {
    double b = c.buckets[i];
    if (!std::isfinite(b)) {
      return absl::InvalidArgumentError(absl::StrCat("histogram bucket ", i, " is ", b,
                                                     "; boundaries must be finite"
                                                     " (+Inf is implied at the end)"));
    }
    if (i > 0 && !(c.buckets[i - 1] < b)) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram buckets must be strictly increasing: bucket ", i - 1, " = ",
                       c.buckets[i - 1], ", bucket ", i, " = ", b));
    }
  }

  // Native boundaries B_j and the native index range.
  const int s0 = std::max(c.schema, 0);
  const int per_octave = 1 << s0;
  bounds_.resize(per_octave + 1);
  for (int j = 0; j <= per_octave; ++j) {
    bounds_[j] = j == 0            ? 1.0
                 : j == per_octave ? 2.0
                                   : std::exp2(static_cast<double>(j) / per_octave);
  }
  const int32_t n = c.schema < 0 ? (1 << -c.schema) : 1;
  if (c.schema >= 0) {
    i_lo_ = c.min_exponent * per_octave;
    i_hi_ = c.max_exponent * per_octave;
  } else {
    i_lo_ = CeilDiv(c.min_exponent, n);
    i_hi_ = CeilDiv(c.max_exponent, n);
  }
  const uint32_t n_buckets = static_cast<uint32_t>(i_hi_ - i_lo_ + 1);
  const uint32_t n_ids = 2 * n_buckets + 1;

  // Slots in value order: each bucket, then one slot per classic boundary inside it.
  std::vector<std::vector<double>> splits(n_ids);
  for (double b : c.buckets) splits[BucketId(b)].push_back(b);  // ascending, as the list is
  const double inf = std::numeric_limits<double>::infinity();
  bucket_slot_.resize(n_ids);
  uint32_t classic = 0;
  for (uint32_t id = 0; id < n_ids; ++id) {
    SlotInfo info{0, 0, 0};
    if (id < n_buckets) {
      info = {-1, i_hi_ - static_cast<int32_t>(id), 0};
    } else if (id > n_buckets) {
      info = {+1, i_lo_ + static_cast<int32_t>(id - n_buckets - 1), 0};
    }
    bucket_slot_[id] = static_cast<uint32_t>(slots_.size());
    for (size_t k = 0; k <= splits[id].size(); ++k) {
      info.classic = classic;
      slots_.push_back(info);
      if (k < splits[id].size()) {
        upper_.push_back(splits[id][k]);
        ++classic;
      } else {
        upper_.push_back(inf);
      }
    }
  }
  nan_slot_ = static_cast<uint32_t>(slots_.size());
  slots_.push_back({0, 0, static_cast<uint32_t>(c.buckets.size())});
  upper_.push_back(inf);

  // The fast table: keys (exponent, top s0+1 mantissa bits) for positive values with exponents in
  // [fast_lo, max_exponent); below fast_lo a value may be at or under the zero threshold.
  int fast_lo = c.min_exponent;
  if (c.zero_threshold > 0) {
    int e;
    std::frexp(c.zero_threshold, &e);  // zero_threshold < 2^e
    fast_lo = std::max(fast_lo, e);
  }
  const int k = s0 + 1;
  key_shift_ = static_cast<uint32_t>(52 - k);
  key_lo_ = static_cast<uint64_t>(fast_lo + 1023) << k;
  // At most kMaxTableEntries (1.5 MiB): a fine schema over a huge range serves only the lowest
  // exponents of the range from the table; the rest take the slow path (same result, slower).
  const int fast_hi = std::min(c.max_exponent, fast_lo + static_cast<int>(kMaxTableEntries >> k));
  key_span_ = fast_lo < fast_hi ? static_cast<uint64_t>(fast_hi - fast_lo) << k : 0;
  table_.resize(key_span_);
  std::vector<double> thresholds;
  for (uint64_t key = 0; key < key_span_; ++key) {
    const int e = fast_lo + static_cast<int>(key >> k);
    const uint64_t p = key & ((uint64_t{1} << k) - 1);
    const double lo = std::ldexp(1.0 + std::ldexp(static_cast<double>(p), -k), e);
    const double hi = std::ldexp(1.0 + std::ldexp(static_cast<double>(p + 1), -k), e);
    // Every value in [lo, hi) is lo's slot plus the number of thresholds t in [lo, hi) below it.
    thresholds.clear();
    for (int j = 0; j < per_octave; ++j) {
      if (c.schema < 0 && (e & (n - 1)) != 0) break;  // below schema 0 only 2^(i n) bounds exist
      double t = std::ldexp(bounds_[j], e);
      if (t >= lo && t < hi) thresholds.push_back(t);
    }
    for (double b : c.buckets) {
      if (b >= lo && b < hi) thresholds.push_back(b);
    }
    std::sort(thresholds.begin(), thresholds.end());
    Entry& entry = table_[key];
    if (thresholds.size() > 2) {
      entry = {kNoThreshold, kNoThreshold, kSlowEntry};
      continue;
    }
    auto mantissa = [](double t) { return __builtin_bit_cast(uint64_t, t) & kMantissaMask; };
    entry.first = SlowSlot(lo);
    entry.t1 = thresholds.size() > 0 ? mantissa(thresholds[0]) : kNoThreshold;
    entry.t2 = thresholds.size() > 1 ? mantissa(thresholds[1]) : kNoThreshold;
  }
  return absl::OkStatus();
}

int32_t HistogramLayout::NativeIndexSlow(double abs_v) const {
  int exp;
  double frac = std::frexp(abs_v, &exp);  // abs_v = frac * 2^exp, frac in [0.5, 1)
  double x = 2 * frac;                    // abs_v = x * 2^(exp - 1), x in [1, 2)
  if (config_.schema >= 0) {
    int j = 0;
    while (x > bounds_[j]) ++j;
    return (exp - 1) * (1 << config_.schema) + j;
  }
  int32_t i0 = (exp - 1) + (x > 1 ? 1 : 0);  // schema-0 index: ceil(log2(abs_v))
  return CeilDiv(i0, 1 << -config_.schema);
}

uint32_t HistogramLayout::BucketId(double v) const {
  const uint32_t n_buckets = static_cast<uint32_t>(i_hi_ - i_lo_ + 1);
  const double a = std::fabs(v);
  if (a <= config_.zero_threshold) return n_buckets;
  const int32_t last = i_hi_ - i_lo_;
  int32_t rel;
  if (a >= std::ldexp(1.0, config_.max_exponent)) {
    rel = last;  // includes +-Inf
  } else if (a <= std::ldexp(1.0, config_.min_exponent)) {
    rel = 0;
  } else {
    rel = std::clamp(NativeIndexSlow(a) - i_lo_, 0, last);
  }
  return v < 0 ? n_buckets - 1 - static_cast<uint32_t>(rel)
               : n_buckets + 1 + static_cast<uint32_t>(rel);
}

uint32_t HistogramLayout::SlowSlot(double v) const {
  if (std::isnan(v)) return nan_slot_;
  uint32_t slot = bucket_slot_[BucketId(v)];
  while (v > upper_[slot]) ++slot;
  return slot;
}

}  // namespace internal
}  // namespace metrics
