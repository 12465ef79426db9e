#include "proto_oracle.h"

#include <cmath>
#include <limits>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace metrics::testing {
namespace {

void AddLabel(google::protobuf::RepeatedPtrField<pb::LabelPair>* labels, const std::string& name,
              const std::string& value) {
  pb::LabelPair* p = labels->Add();
  p->set_name(name);
  p->set_value(value);
}

void FillExemplar(const Exemplar& x, pb::Exemplar* out) {
  for (const auto& [n, v] : x.labels) AddLabel(out->mutable_label(), n, v);
  out->set_value(x.value);
  const double secs = std::floor(x.timestamp);
  out->mutable_timestamp()->set_seconds(static_cast<int64_t>(secs));
  const auto nanos = static_cast<int32_t>((x.timestamp - secs) * 1e9);
  if (nanos > 0) out->mutable_timestamp()->set_nanos(std::min(nanos, 999999999));
}

// Native buckets of one side: spans as they are, counts as deltas from the previous bucket.
template <typename AddSpan, typename AddDelta>
void FillSide(const NativeBuckets& b, AddSpan add_span, AddDelta add_delta) {
  for (const BucketSpan& s : b.spans) {
    pb::BucketSpan* span = add_span();
    span->set_offset(s.offset);
    span->set_length(s.length);
  }
  int64_t prev = 0;
  for (uint64_t c : b.counts) {
    add_delta(static_cast<int64_t>(c) - prev);
    prev = static_cast<int64_t>(c);
  }
}

}  // namespace

bool ParseDelimited(std::string_view body, std::vector<pb::MetricFamily>* out, std::string* error) {
  google::protobuf::io::ArrayInputStream raw(body.data(), static_cast<int>(body.size()));
  google::protobuf::io::CodedInputStream in(&raw);
  while (in.CurrentPosition() < static_cast<int>(body.size())) {
    const int start = in.CurrentPosition();
    uint32_t len = 0;
    if (!in.ReadVarint32(&len)) {
      *error = "bad length prefix at byte " + std::to_string(start);
      return false;
    }
    if (in.CurrentPosition() - start > 5) {
      *error = "length prefix longer than 5 bytes at byte " + std::to_string(start);
      return false;
    }
    const auto limit = in.PushLimit(static_cast<int>(len));
    pb::MetricFamily f;
    if (!f.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage() || in.BytesUntilLimit() != 0) {
      *error = "MetricFamily at byte " + std::to_string(start) + " does not parse";
      return false;
    }
    in.PopLimit(limit);
    out->push_back(std::move(f));
  }
  return true;
}

std::vector<pb::MetricFamily> ExpectedFamilies(const Snapshot& snapshot) {
  std::vector<pb::MetricFamily> out;
  for (const FamilySnapshot& f : snapshot.families) {
    const FamilyDesc& d = *f.desc;
    pb::MetricFamily& mf = out.emplace_back();
    mf.set_name(d.type == MetricType::kInfo ? d.name + "_info" : d.name);
    if (!d.help.empty()) mf.set_help(d.help);
    mf.set_type(d.type == MetricType::kCounter     ? pb::COUNTER
                : d.type == MetricType::kHistogram ? pb::HISTOGRAM
                                                   : pb::GAUGE);
    for (size_t k = 0; k < f.samples.size(); ++k) {
      const SeriesSample& s = f.samples[k];
      pb::Metric* m = mf.add_metric();
      for (const auto& [n, v] : d.const_labels) AddLabel(m->mutable_label(), n, v);
      for (size_t i = 0; i < d.label_names.size(); ++i) {
        AddLabel(m->mutable_label(), d.label_names[i], (*s.label_values)[i]);
      }
      std::vector<const ExemplarSample*> exemplars;
      for (const ExemplarSample& x : f.exemplars) {
        if (x.sample == k) exemplars.push_back(&x);
      }
      switch (d.type) {
        case MetricType::kCounter:
          m->mutable_counter()->set_value(s.Total());
          if (!exemplars.empty()) {
            FillExemplar(*exemplars.front()->exemplar, m->mutable_counter()->mutable_exemplar());
          }
          break;
        case MetricType::kGauge:
          m->mutable_gauge()->set_value(s.value);
          break;
        case MetricType::kInfo:
          m->mutable_gauge()->set_value(1);
          break;
        case MetricType::kHistogram: {
          const HistogramSample& h = f.histograms[k];
          pb::Histogram* ph = m->mutable_histogram();
          ph->set_sample_count(h.count);
          ph->set_sample_sum(h.sum);
          const std::vector<double>& bounds = d.histogram->boundaries();
          for (size_t c = 0; c <= bounds.size(); ++c) {
            const ExemplarSample* ex = nullptr;
            for (const ExemplarSample* x : exemplars) {
              if (x->bucket == c) ex = x;
            }
            if (c == bounds.size() && ex == nullptr) break;
            pb::Bucket* b = ph->add_bucket();
            b->set_cumulative_count(h.cumulative[c]);
            b->set_upper_bound(c < bounds.size() ? bounds[c]
                                                 : std::numeric_limits<double>::infinity());
            if (ex != nullptr) FillExemplar(*ex->exemplar, b->mutable_exemplar());
          }
          if (h.native) {
            ph->set_schema(h.schema);
            ph->set_zero_threshold(h.zero_threshold);
            ph->set_zero_count(h.zero_count);
            FillSide(
                h.negative, [&] { return ph->add_negative_span(); },
                [&](int64_t d) { ph->add_negative_delta(d); });
            FillSide(
                h.positive, [&] { return ph->add_positive_span(); },
                [&](int64_t d) { ph->add_positive_delta(d); });
            if (h.zero_threshold <= 0 && h.zero_count == 0 && h.positive.spans.empty() &&
                h.negative.spans.empty()) {
              ph->add_positive_span();
            }
          }
          break;
        }
      }
    }
  }
  return out;
}

void SerializeDelimited(const Snapshot& snapshot, std::string* out) {
  for (const pb::MetricFamily& f : ExpectedFamilies(snapshot)) {
    const size_t len = f.ByteSizeLong();
    {
      google::protobuf::io::StringOutputStream s(out);
      google::protobuf::io::CodedOutputStream c(&s);
      c.WriteVarint32(static_cast<uint32_t>(len));
    }
    f.AppendToString(out);
  }
}

}  // namespace metrics::testing
