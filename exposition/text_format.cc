#include "exposition/text_format.h"

#include <string_view>

#include "exposition/format_float.h"

namespace metrics::exposition {
namespace {

void AppendEscaped(std::string* out, std::string_view s, bool quote) {
  for (char c : s) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '"':
        if (quote) {
          out->append("\\\"");
          break;
        }
        [[fallthrough]];
      default:
        out->push_back(c);
    }
  }
}

const char* TypeWord(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `le` (histogram buckets) comes last when given.
void AppendLabels(std::string* out, const FamilyDesc& d, const std::vector<std::string>& values,
                  const std::string* le = nullptr) {
  if (d.const_labels.empty() && d.label_names.empty() && le == nullptr) return;
  out->push_back('{');
  bool first = true;
  auto one = [&](std::string_view name, std::string_view value) {
    if (!first) out->push_back(',');
    first = false;
    out->append(name);
    out->append("=\"");
    AppendEscaped(out, value, /*quote=*/true);
    out->push_back('"');
  };
  for (const auto& [name, value] : d.const_labels) one(name, value);
  for (size_t i = 0; i < d.label_names.size(); ++i) one(d.label_names[i], values[i]);
  if (le != nullptr) one("le", *le);
  out->push_back('}');
}

void WriteHistogramSamples(const FamilySnapshot& f, std::string* out) {
  const FamilyDesc& d = *f.desc;
  const std::vector<double>& bounds = d.histogram->boundaries();
  std::vector<std::string> les;
  for (double b : bounds) {
    std::string le;
    AppendDouble(&le, b);
    les.push_back(std::move(le));
  }
  les.push_back("+Inf");
  for (size_t k = 0; k < f.samples.size(); ++k) {
    const std::vector<std::string>& values = *f.samples[k].label_values;
    const HistogramSample& h = f.histograms[k];
    for (size_t c = 0; c < les.size(); ++c) {
      out->append(d.name);
      out->append("_bucket");
      AppendLabels(out, d, values, &les[c]);
      out->push_back(' ');
      AppendUint(out, h.cumulative[c]);
      out->push_back('\n');
    }
    out->append(d.name);
    out->append("_sum");
    AppendLabels(out, d, values);
    out->push_back(' ');
    AppendDouble(out, h.sum);
    out->append("\n");
    out->append(d.name);
    out->append("_count");
    AppendLabels(out, d, values);
    out->push_back(' ');
    AppendUint(out, h.count);
    out->push_back('\n');
  }
}

}  // namespace

void WriteText(const Snapshot& snapshot, std::string* out) {
  for (const FamilySnapshot& f : snapshot.families) {
    const FamilyDesc& d = *f.desc;
    out->append("# HELP ");
    out->append(d.name);
    out->push_back(' ');
    AppendEscaped(out, d.help, /*quote=*/false);
    out->append("\n# TYPE ");
    out->append(d.name);
    out->push_back(' ');
    out->append(TypeWord(d.type));
    out->push_back('\n');
    if (d.type == MetricType::kHistogram) {
      WriteHistogramSamples(f, out);
      continue;
    }
    for (const SeriesSample& s : f.samples) {
      out->append(d.name);
      AppendLabels(out, d, *s.label_values);
      out->push_back(' ');
      if (d.type == MetricType::kCounter && s.IsInteger()) {
        AppendUint(out, s.int_value);
      } else if (d.type == MetricType::kCounter) {
        AppendDouble(out, s.Total());
      } else {
        AppendDouble(out, s.value);
      }
      out->push_back('\n');
    }
  }
}

}  // namespace metrics::exposition
