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

void AppendLabels(std::string* out, const FamilyDesc& d, const std::vector<std::string>& values) {
  if (d.const_labels.empty() && d.label_names.empty()) return;
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
  out->push_back('}');
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
