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
  if (!c.native) {
    // The native fields mean nothing here: normalised, so that equal layouts compare equal.
    const HistogramConfig defaults;
    c.schema = defaults.schema;
    c.zero_threshold = defaults.zero_threshold;
    c.min_exponent.reset();
    c.max_exponent.reset();
    BuildClassicOnly();
    return absl::OkStatus();
  }
  return BuildNative();
}

namespace {

// The binade of x > 0: x in [2^e, 2^(e+1)).
int Binade(double x) {
  int e;
  std::frexp(x, &e);  // x = f * 2^e, f in [0.5, 1)
  return e - 1;
}

// Table binades past the range a layout resolves (native range, classic boundaries) on each side,
// so that values just outside it (clamped to the outermost native bucket, or below the first
// classic boundary) still take the fast path; fewer for fine keys, which cost 2^k entries a binade.
int TableMargin(int k) { return std::clamp(4096 >> k, 2, 32); }

}  // namespace

absl::Status HistogramLayout::BuildNative() {
  HistogramConfig& c = config_;
  if (c.schema < -4 || c.schema > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("histogram schema ", c.schema, " is outside [-4, 8]"));
  }
  // Positive classic boundaries span binades [core_lo, core_hi).
  int core_lo = 0, core_hi = 0;
  {
    auto pos = std::upper_bound(c.buckets.begin(), c.buckets.end(), 0.0);
    if (pos != c.buckets.end()) {
      core_lo = Binade(*pos);
      core_hi = Binade(c.buckets.back()) + 1;
    }
  }
  // The default native range: 4 binades either side of the classic boundaries (the header's
  // "Range"), or 2^-30 .. 2^40 when there is no positive boundary to go by.
  constexpr int kDefaultMargin = 4;
  const bool have_core = core_lo < core_hi;
  int derived_lo = have_core ? std::max(core_lo - kDefaultMargin, -1022) : -30;
  if (c.zero_threshold > 0 && std::isfinite(c.zero_threshold)) {
    int e;
    std::frexp(c.zero_threshold, &e);  // zero_threshold < 2^e: the lowest valid min_exponent
    derived_lo = std::max(derived_lo, e);
  }
  const int derived_hi =
      std::max(have_core ? std::min(core_hi + kDefaultMargin, 1024) : 40, derived_lo + 1);
  if (!c.min_exponent && !c.max_exponent) {
    c.min_exponent = derived_lo;
    c.max_exponent = derived_hi;
  } else if (!c.min_exponent) {
    c.min_exponent = std::min(derived_lo, *c.max_exponent - 1);
  } else if (!c.max_exponent) {
    c.max_exponent = std::max(derived_hi, *c.min_exponent + 1);
  }
  min_e_ = *c.min_exponent;
  max_e_ = *c.max_exponent;
  if (min_e_ < -1022 || max_e_ > 1024 || min_e_ >= max_e_) {
    return absl::InvalidArgumentError(absl::StrCat("histogram exponent range [", min_e_, ", ",
                                                   max_e_, "] is empty or outside [-1022, 1024]"));
  }
  if (!(c.zero_threshold >= 0) || !(c.zero_threshold < std::ldexp(1.0, min_e_))) {
    return absl::InvalidArgumentError(absl::StrCat("histogram zero_threshold ", c.zero_threshold,
                                                   " must be >= 0 and below 2^min_exponent"));
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
    i_lo_ = min_e_ * per_octave;
    i_hi_ = max_e_ * per_octave;
  } else {
    i_lo_ = CeilDiv(min_e_, n);
    i_hi_ = CeilDiv(max_e_, n);
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

  // The fast table: keys (exponent, top s0+1 mantissa bits) for positive values over the native
  // range and the classic boundaries' binades, plus a margin; never below the zero threshold's
  // binade (a value there may be at or under the threshold).
  const int k = s0 + 1;
  const int lo_all = have_core ? std::min(min_e_, core_lo) : min_e_;
  const int hi_all = have_core ? std::max(max_e_, core_hi) : max_e_;
  int fast_lo = std::max(lo_all - TableMargin(k), -1022);
  if (c.zero_threshold > 0) {
    int e;
    std::frexp(c.zero_threshold, &e);  // zero_threshold < 2^e
    fast_lo = std::max(fast_lo, e);
  }
  BuildTable(k, fast_lo, std::min(hi_all + TableMargin(k), 1024));
  return absl::OkStatus();
}

void HistogramLayout::BuildClassicOnly() {
  const std::vector<double>& b = config_.buckets;
  const uint32_t n = static_cast<uint32_t>(b.size());
  for (uint32_t i = 0; i <= n; ++i) {
    slots_.push_back({0, 0, i});
    upper_.push_back(i < n ? b[i] : std::numeric_limits<double>::infinity());
  }
  nan_slot_ = n;  // NaN: the +Inf bucket
  // Positive boundaries span binades [core_lo, core_hi); the fewest mantissa bits k that keep
  // every key interval at <= 2 of them (three consecutive boundaries never share a key).
  auto pos = std::upper_bound(b.begin(), b.end(), 0.0);
  int core_lo = 0, core_hi = 1;
  if (pos != b.end()) {
    core_lo = Binade(*pos);
    core_hi = Binade(b.back()) + 1;
  }
  constexpr int kMaxBits = 12;
  auto crowded = [&](int bits) {
    for (auto it = pos; b.end() - it >= 3; ++it) {
      if ((__builtin_bit_cast(uint64_t, it[0]) >> (52 - bits)) ==
          (__builtin_bit_cast(uint64_t, it[2]) >> (52 - bits))) {
        return true;
      }
    }
    return false;
  };
  const uint64_t core_binades = static_cast<uint64_t>(core_hi - core_lo);
  int k = 0;  // the finest that fits when none is uncrowded: crowded keys become slow entries
  while (k < kMaxBits && crowded(k) && (core_binades << (k + 1)) <= kMaxTableEntries) ++k;
  BuildTable(k, std::max(core_lo - TableMargin(k), -1022),
             std::min(core_hi + TableMargin(k), 1024));
}

void HistogramLayout::BuildTable(int k, int fast_lo, int fast_hi) {
  const HistogramConfig& c = config_;
  key_shift_ = static_cast<uint32_t>(52 - k);
  key_lo_ = static_cast<uint64_t>(fast_lo + 1023) << k;
  // At most kMaxTableEntries (1.5 MiB): a fine schema over a huge range serves only the lowest
  // exponents of the range from the table; the rest take the slow path (same result, slower).
  fast_hi = std::min(fast_hi, fast_lo + static_cast<int>(kMaxTableEntries >> k));
  key_span_ = fast_lo < fast_hi ? static_cast<uint64_t>(fast_hi - fast_lo) << k : 0;
  table_.resize(key_span_);
  const int per_octave = c.native ? 1 << std::max(c.schema, 0) : 0;
  const int32_t n = c.schema < 0 ? (1 << -c.schema) : 1;
  std::vector<double> thresholds;
  for (uint64_t key = 0; key < key_span_; ++key) {
    const int e = fast_lo + static_cast<int>(key >> k);
    const uint64_t p = key & ((uint64_t{1} << k) - 1);
    const double lo = std::ldexp(1.0 + std::ldexp(static_cast<double>(p), -k), e);
    const double hi = std::ldexp(1.0 + std::ldexp(static_cast<double>(p + 1), -k), e);
    // Every value in [lo, hi) is lo's slot plus the number of thresholds t in [lo, hi) below it.
    thresholds.clear();
    // Native boundaries split only inside the native range: below it every value is in the
    // innermost bucket, above it in the outermost.
    const bool in_range = c.native && e >= min_e_ && e < max_e_;
    for (int j = 0; in_range && j < per_octave; ++j) {
      if (c.schema < 0 && (e & (n - 1)) != 0) break;  // below schema 0 only 2^(i n) bounds exist
      double t = std::ldexp(bounds_[j], e);
      if (t >= lo && t < hi) thresholds.push_back(t);
    }
    for (auto it = std::lower_bound(c.buckets.begin(), c.buckets.end(), lo);
         it != c.buckets.end() && *it < hi; ++it) {
      thresholds.push_back(*it);
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
  if (a >= std::ldexp(1.0, max_e_)) {
    rel = last;  // includes +-Inf
  } else if (a <= std::ldexp(1.0, min_e_)) {
    rel = 0;
  } else {
    rel = std::clamp(NativeIndexSlow(a) - i_lo_, 0, last);
  }
  return v < 0 ? n_buckets - 1 - static_cast<uint32_t>(rel)
               : n_buckets + 1 + static_cast<uint32_t>(rel);
}

uint32_t HistogramLayout::SlowSlot(double v) const {
  if (std::isnan(v)) return nan_slot_;
  if (!config_.native) {
    // The first boundary b with v <= b (-Inf: the first), or the +Inf bucket.
    const std::vector<double>& b = config_.buckets;
    return static_cast<uint32_t>(std::lower_bound(b.begin(), b.end(), v) - b.begin());
  }
  uint32_t slot = bucket_slot_[BucketId(v)];
  while (v > upper_[slot]) ++slot;
  return slot;
}

}  // namespace internal
}  // namespace metrics
