#include "exposition/protobuf_format.h"

#include <cmath>
#include <cstring>
#include <string_view>

namespace metrics::exposition {
namespace {

// clang-format off
// Field numbers of prometheus/client_model's io/prometheus/client/metrics.proto (proto2).
//   MetricFamily: name 1, help 2, type 3, metric 4        Metric: label 1, gauge 2, counter 3, histogram 7
//   LabelPair: name 1, value 2     Gauge: value 1     Counter: value 1, exemplar 2
//   Histogram: sample_count 1, sample_sum 2, bucket 3, schema 5 (sint32), zero_threshold 6,
//              zero_count 7, negative_span 9, negative_delta 10 (sint64), positive_span 12,
//              positive_delta 13 (sint64)
//   Bucket: cumulative_count 1, upper_bound 2, exemplar 3     BucketSpan: offset 1 (sint32), length 2
//   Exemplar: label 1, value 2, timestamp 3                   Timestamp: seconds 1, nanos 2
// clang-format on
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2 };
enum ProtoType : uint64_t { kCounterType = 0, kGaugeType = 1, kHistogramType = 4 };

constexpr uint8_t Tag(uint32_t field, WireType w) { return static_cast<uint8_t>(field << 3 | w); }

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}

char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

// Appends fields to a string. Nested messages are written in place after a one-byte length
// placeholder; Close() fixes the length, moving the body right in the rare case it needs more than
// one byte (a message of 128 bytes or more: histograms, and each family once). That keeps one pass
// over the snapshot with no size pre-computation and no scratch copies.
class Encoder {
 public:
  explicit Encoder(std::string* out) : out_(out) {}

  void Varint(uint64_t v) {
    char buf[10];
    out_->append(buf, static_cast<size_t>(PutVarint(buf, v) - buf));
  }
  void VarintField(uint32_t field, uint64_t v) {
    out_->push_back(static_cast<char>(Tag(field, kVarint)));
    Varint(v);
  }
  void DoubleField(uint32_t field, double v) {
    char buf[9];
    buf[0] = static_cast<char>(Tag(field, kFixed64));
    uint64_t bits = __builtin_bit_cast(uint64_t, v);
    for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (8 * i));  // little-endian
    out_->append(buf, 9);
  }
  void BytesField(uint32_t field, std::string_view s) {
    out_->push_back(static_cast<char>(Tag(field, kLen)));
    Varint(s.size());
    out_->append(s);
  }
  void Raw(std::string_view s) { out_->append(s); }

  // Starts a length-delimited field (or, with field 0, a bare length prefix as the delimited
  // stream puts before each MetricFamily); returns what Close needs.
  size_t Open(uint32_t field) {
    if (field != 0) out_->push_back(static_cast<char>(Tag(field, kLen)));
    out_->push_back('\0');
    return out_->size();
  }
  void Close(size_t body) {
    const size_t len = out_->size() - body;
    if (len < 0x80) {
      (*out_)[body - 1] = static_cast<char>(len);
      return;
    }
    const size_t n = VarintSize(len);
    out_->insert(body, n - 1, '\0');
    PutVarint(out_->data() + body - 1, len);
  }

 private:
  std::string* out_;
};

class Writer {
 public:
  explicit Writer(std::string* out) : e_(out) {}

  void Family(const FamilySnapshot& f) {
    const FamilyDesc& d = *f.desc;
    const size_t family = e_.Open(0);
    if (d.type == MetricType::kInfo) {
      std::string name = d.name + "_info";
      e_.BytesField(1, name);
    } else {
      e_.BytesField(1, d.name);
    }
    if (!d.help.empty()) e_.BytesField(2, d.help);
    e_.VarintField(3, d.type == MetricType::kCounter     ? kCounterType
                      : d.type == MetricType::kHistogram ? kHistogramType
                                                         : kGaugeType);
    PrepareLabels(d);
    size_t next_exemplar = 0;
    for (size_t k = 0; k < f.samples.size(); ++k) {
      const SeriesSample& s = f.samples[k];
      const size_t metric = e_.Open(4);
      Labels(*s.label_values);
      // This series' exemplars: [first, last) of f.exemplars.
      const size_t first = next_exemplar;
      while (next_exemplar < f.exemplars.size() && f.exemplars[next_exemplar].sample == k) {
        ++next_exemplar;
      }
      switch (d.type) {
        case MetricType::kCounter: {
          const size_t counter = e_.Open(3);
          e_.DoubleField(1, s.Total());
          if (first != next_exemplar) Exemplar(2, *f.exemplars[first].exemplar);
          e_.Close(counter);
          break;
        }
        case MetricType::kGauge:
        case MetricType::kInfo: {
          const size_t gauge = e_.Open(2);
          e_.DoubleField(1, d.type == MetricType::kInfo ? 1.0 : s.value);
          e_.Close(gauge);
          break;
        }
        case MetricType::kHistogram:
          Histogram(d, f.histograms[k], f, first, next_exemplar);
          break;
      }
      e_.Close(metric);
    }
    e_.Close(family);
  }

 private:
  // Per family: the constant labels encoded once, and each variable label's name field.
  void PrepareLabels(const FamilyDesc& d) {
    const_labels_.clear();
    Encoder c(&const_labels_);
    for (const auto& [n, v] : d.const_labels) {
      const size_t pair = c.Open(1);
      c.BytesField(1, n);
      c.BytesField(2, v);
      c.Close(pair);
    }
    names_.resize(d.label_names.size());
    for (size_t i = 0; i < d.label_names.size(); ++i) {
      names_[i].clear();
      Encoder(&names_[i]).BytesField(1, d.label_names[i]);
    }
  }

  void Labels(const std::vector<std::string>& values) {
    e_.Raw(const_labels_);
    for (size_t i = 0; i < names_.size(); ++i) {
      const size_t pair = e_.Open(1);
      e_.Raw(names_[i]);
      e_.BytesField(2, values[i]);
      e_.Close(pair);
    }
  }

  void Exemplar(uint32_t field, const metrics::Exemplar& x) {
    const size_t ex = e_.Open(field);
    for (const auto& [n, v] : x.labels) {
      const size_t pair = e_.Open(1);
      e_.BytesField(1, n);
      e_.BytesField(2, v);
      e_.Close(pair);
    }
    e_.DoubleField(2, x.value);
    const double secs = std::floor(x.timestamp);
    const size_t ts = e_.Open(3);
    e_.VarintField(1, static_cast<uint64_t>(static_cast<int64_t>(secs)));
    const auto nanos = static_cast<int64_t>((x.timestamp - secs) * 1e9);
    if (nanos > 0) e_.VarintField(2, static_cast<uint64_t>(std::min<int64_t>(nanos, 999999999)));
    e_.Close(ts);
    e_.Close(ex);
  }

  void Histogram(const FamilyDesc& d, const HistogramSample& h, const FamilySnapshot& f,
                 size_t first_ex, size_t end_ex) {
    const size_t hist = e_.Open(7);
    e_.VarintField(1, h.count);
    e_.DoubleField(2, h.sum);
    const std::vector<double>& bounds = d.histogram->boundaries();
    size_t ex = first_ex;
    for (size_t c = 0; c <= bounds.size(); ++c) {
      const bool has_ex = ex < end_ex && f.exemplars[ex].bucket == c;
      if (c == bounds.size() && !has_ex) break;  // +Inf: implied by sample_count
      const size_t bucket = e_.Open(3);
      e_.VarintField(1, h.cumulative[c]);
      e_.DoubleField(2, c < bounds.size() ? bounds[c] : HUGE_VAL);
      if (has_ex) Exemplar(3, *f.exemplars[ex++].exemplar);
      e_.Close(bucket);
    }
    if (h.native) {
      e_.VarintField(5, ZigZag(h.schema));
      e_.DoubleField(6, h.zero_threshold);
      e_.VarintField(7, h.zero_count);
      Side(9, 10, h.negative);
      Side(12, 13, h.positive);
      if (h.zero_threshold <= 0 && h.zero_count == 0 && h.positive.spans.empty() &&
          h.negative.spans.empty()) {
        // client_model's marker of a native histogram with nothing to tell it from a classic one.
        const size_t span = e_.Open(12);
        e_.Close(span);
      }
    }
    e_.Close(hist);
  }

  void Side(uint32_t span_field, uint32_t delta_field, const NativeBuckets& b) {
    for (const BucketSpan& s : b.spans) {
      const size_t span = e_.Open(span_field);
      e_.VarintField(1, ZigZag(s.offset));
      e_.VarintField(2, s.length);
      e_.Close(span);
    }
    if (b.counts.empty()) return;
    const size_t packed = e_.Open(delta_field);  // packed repeated sint64
    int64_t prev = 0;
    for (uint64_t c : b.counts) {
      const auto count = static_cast<int64_t>(c);
      e_.Varint(ZigZag(count - prev));
      prev = count;
    }
    e_.Close(packed);
  }

  Encoder e_;
  std::string const_labels_;
  std::vector<std::string> names_;
};

}  // namespace

void WriteProtobuf(const Snapshot& snapshot, std::string* out) {
  Writer w(out);
  for (const FamilySnapshot& f : snapshot.families) w.Family(f);
}

}  // namespace metrics::exposition
