#include "exposition/text_format.h"

#include <cstdio>
#include <string_view>

#include "exposition/format_float.h"
#include "exposition/protobuf_format.h"

namespace metrics::exposition {
namespace {

// Escapes \ and newline, and " when `quote`. Most values need nothing: scan first, copy once.
void AppendEscaped(std::string* out, std::string_view s, bool quote) {
  size_t i = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' || c == '\n' || (c == '"' && quote)) break;
  }
  if (i == s.size()) {
    out->append(s);
    return;
  }
  out->append(s.data(), i);
  size_t start = i;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    const char* rep = c == '\\'             ? "\\\\"
                      : c == '\n'           ? "\\n"
                      : (c == '"' && quote) ? "\\\""
                                            : nullptr;
    if (rep == nullptr) continue;
    out->append(s.data() + start, i - start);
    out->append(rep);
    start = i + 1;
  }
  out->append(s.data() + start, s.size() - start);
}

const char* TypeWord(MetricType t, bool om) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kInfo:
      return om ? "info" : "gauge";  // text 0.0.4 has no info type: a gauge named <name>_info
  }
  return "unknown";
}

class Writer {
 public:
  Writer(Format format, std::string* out) : om_(format == Format::kOpenMetrics), out_(out) {}

  void Family(const FamilySnapshot& f) {
    const FamilyDesc& d = *f.desc;
    std::string_view name = d.name;
    if (om_ && d.type == MetricType::kCounter && name.size() > 6 &&
        name.substr(name.size() - 6) == "_total") {
      name.remove_suffix(6);
    }
    // Info: the samples are <name>_info in both formats; so is the family in text 0.0.4.
    std::string_view sample_suffix = d.type == MetricType::kInfo ? "_info" : "";
    std::string_view family_suffix = om_ ? "" : sample_suffix;
    out_->append("# HELP ");
    out_->append(name);
    out_->append(family_suffix);
    out_->push_back(' ');
    AppendEscaped(out_, d.help, /*quote=*/om_);
    out_->append("\n# TYPE ");
    out_->append(name);
    out_->append(family_suffix);
    out_->push_back(' ');
    out_->append(TypeWord(d.type, om_));
    out_->push_back('\n');
    if (om_ && !d.unit.empty()) {
      out_->append("# UNIT ");
      out_->append(name);
      out_->push_back(' ');
      out_->append(d.unit);
      out_->push_back('\n');
    }
    PrepareLabels(d);
    switch (d.type) {
      case MetricType::kCounter: {
        size_t ex = 0;  // cursor into f.exemplars, sorted by sample
        for (size_t k = 0; k < f.samples.size(); ++k) {
          const SeriesSample& s = f.samples[k];
          Sample(name, om_ ? "_total" : "", d, s);
          if (s.IsInteger()) {
            AppendUint(out_, s.int_value);
          } else {
            Float(s.Total());
          }
          while (ex < f.exemplars.size() && f.exemplars[ex].sample < k) ++ex;
          if (om_ && ex < f.exemplars.size() && f.exemplars[ex].sample == k) {
            Exemplar(*f.exemplars[ex].exemplar);
          }
          out_->push_back('\n');
        }
        break;
      }
      case MetricType::kGauge:
        for (const SeriesSample& s : f.samples) {
          Sample(name, "", d, s);
          Float(s.value);
          out_->push_back('\n');
        }
        break;
      case MetricType::kHistogram:
        Histograms(name, f);
        break;
      case MetricType::kInfo:
        for (const SeriesSample& s : f.samples) {
          Sample(name, sample_suffix, d, s);
          out_->append("1\n");  // an info sample is always 1
        }
        break;
    }
  }

  void End() {
    if (om_) out_->append("# EOF\n");
  }

 private:
  void Float(double v) { om_ ? AppendOpenMetricsFloat(out_, v) : AppendDouble(out_, v); }

  // Per family: the constant labels rendered once, and `,name="` for each variable label.
  void PrepareLabels(const FamilyDesc& d) {
    const_labels_.clear();
    for (const auto& [n, v] : d.const_labels) {
      if (!const_labels_.empty()) const_labels_.push_back(',');
      const_labels_.append(n);
      const_labels_.append("=\"");
      AppendEscaped(&const_labels_, v, /*quote=*/true);
      const_labels_.push_back('"');
    }
    prefixes_.clear();
    for (const std::string& n : d.label_names) {
      prefixes_.push_back((prefixes_.empty() && const_labels_.empty() ? "" : ",") + n + "=\"");
    }
  }

  // Renders `a="x",b="y"` for a series once, reused for every line of the series.
  void RenderLabels(const FamilyDesc&, const std::vector<std::string>& values) {
    labels_ = const_labels_;
    for (size_t i = 0; i < prefixes_.size(); ++i) {
      labels_.append(prefixes_[i]);
      AppendEscaped(&labels_, values[i], /*quote=*/true);
      labels_.push_back('"');
    }
  }

  // "<name><suffix>{labels} " for a counter or gauge sample.
  void Sample(std::string_view name, std::string_view suffix, const FamilyDesc& d,
              const SeriesSample& s) {
    out_->append(name);
    out_->append(suffix);
    if (!d.const_labels.empty() || !d.label_names.empty()) {
      RenderLabels(d, *s.label_values);
      out_->push_back('{');
      out_->append(labels_);
      out_->push_back('}');
    }
    out_->push_back(' ');
  }

  void Histograms(std::string_view name, const FamilySnapshot& f) {
    const FamilyDesc& d = *f.desc;
    les_.clear();
    for (double b : d.histogram->boundaries()) {
      std::string le;
      om_ ? AppendOpenMetricsFloat(&le, b) : AppendDouble(&le, b);
      les_.push_back(std::move(le));
    }
    les_.push_back("+Inf");
    size_t ex = 0;  // cursor into f.exemplars, sorted by (sample, bucket)
    for (size_t k = 0; k < f.samples.size(); ++k) {
      RenderLabels(d, *f.samples[k].label_values);
      const HistogramSample& h = f.histograms[k];
      for (size_t c = 0; c < les_.size(); ++c) {
        out_->append(name);
        out_->append("_bucket{");
        out_->append(labels_);
        if (!labels_.empty()) out_->push_back(',');
        out_->append("le=\"");
        out_->append(les_[c]);
        out_->append("\"} ");
        AppendUint(out_, h.cumulative[c]);
        while (ex < f.exemplars.size() &&
               (f.exemplars[ex].sample < k ||
                (f.exemplars[ex].sample == k && f.exemplars[ex].bucket < c))) {
          ++ex;
        }
        if (om_ && ex < f.exemplars.size() && f.exemplars[ex].sample == k &&
            f.exemplars[ex].bucket == c) {
          Exemplar(*f.exemplars[ex].exemplar);
        }
        out_->push_back('\n');
      }
      Line(name, "_sum");
      Float(h.sum);
      out_->push_back('\n');
      Line(name, "_count");
      AppendUint(out_, h.count);
      out_->push_back('\n');
    }
  }

  // " # {a=\"x\"} value timestamp": OpenMetrics only, and only after a counter's _total or a
  // histogram's _bucket sample (Prometheus 2.42 fails the whole scrape on an exemplar elsewhere).
  void Exemplar(const metrics::Exemplar& x) {
    out_->append(" # {");
    for (size_t i = 0; i < x.labels.size(); ++i) {
      if (i > 0) out_->push_back(',');
      out_->append(x.labels[i].first);
      out_->append("=\"");
      AppendEscaped(out_, x.labels[i].second, /*quote=*/true);
      out_->push_back('"');
    }
    out_->append("} ");
    AppendOpenMetricsFloat(out_, x.value);
    // Milliseconds, which is what Prometheus keeps; fixed notation reads better than %g's 1.7e+09.
    char ts[32];
    const int n = std::snprintf(ts, sizeof ts, " %.3f", x.timestamp);
    if (n > 0) out_->append(ts, static_cast<size_t>(n));
  }

  void Line(std::string_view name, std::string_view suffix) {
    out_->append(name);
    out_->append(suffix);
    if (!labels_.empty()) {
      out_->push_back('{');
      out_->append(labels_);
      out_->push_back('}');
    }
    out_->push_back(' ');
  }

  const bool om_;
  std::string* out_;
  std::string labels_;
  std::string const_labels_;
  std::vector<std::string> prefixes_;
  std::vector<std::string> les_;
};

}  // namespace

std::string_view ContentType(Format format) {
  switch (format) {
    case Format::kOpenMetrics:
      return kOpenMetricsContentType;
    case Format::kProtobuf:
      return kProtobufContentType;
    case Format::kText:
      break;
  }
  return kTextContentType;
}

void Write(Format format, const Snapshot& snapshot, std::string* out) {
  if (format == Format::kProtobuf) return WriteProtobuf(snapshot, out);
  Writer w(format, out);
  for (const FamilySnapshot& f : snapshot.families) w.Family(f);
  w.End();
}

void WriteText(const Snapshot& snapshot, std::string* out) { Write(Format::kText, snapshot, out); }

void WriteOpenMetrics(const Snapshot& snapshot, std::string* out) {
  Write(Format::kOpenMetrics, snapshot, out);
}

}  // namespace metrics::exposition
