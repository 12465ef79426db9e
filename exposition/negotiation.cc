#include "exposition/negotiation.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "absl/strings/ascii.h"

namespace metrics::exposition {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(a[i]) != absl::ascii_tolower(b[i])) return false;
  }
  return true;
}

struct MediaRange {
  std::string_view type;      // e.g. "application/openmetrics-text"
  std::string_view version;   // the version parameter, if any
  std::string_view proto;     // protobuf: the message type
  std::string_view encoding;  // protobuf: "delimited" is the only one we write
  double q = 1;
  size_t order = 0;
};

// Splits "a;p=1;q=0.5, b" into ranges. Malformed q-values count as 0 (refused).
std::vector<MediaRange> Parse(std::string_view header) {
  std::vector<MediaRange> out;
  size_t order = 0;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    size_t semi = item.find(';');
    MediaRange r;
    r.type = Trim(item.substr(0, semi));
    r.order = order++;
    while (semi != std::string_view::npos) {
      item = item.substr(semi + 1);
      semi = item.find(';');
      std::string_view param = Trim(item.substr(0, semi));
      size_t eq = param.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view key = Trim(param.substr(0, eq));
      std::string_view value = Trim(param.substr(eq + 1));
      if (!value.empty() && value.front() == '"' && value.size() >= 2)
        value = value.substr(1, value.size() - 2);
      if (IEquals(key, "q")) {
        std::string v(value);
        char* end = nullptr;
        double q = std::strtod(v.c_str(), &end);
        r.q = (end == v.c_str() || *end != '\0' || !(q >= 0) || q > 1) ? 0 : q;
      } else if (IEquals(key, "version")) {
        r.version = value;
      } else if (IEquals(key, "proto")) {
        r.proto = value;
      } else if (IEquals(key, "encoding")) {
        r.encoding = value;
      }
    }
    if (!r.type.empty()) out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const MediaRange& a, const MediaRange& b) { return a.q > b.q; });
  return out;
}

}  // namespace

Format NegotiateFormat(std::string_view accept) {
  for (const MediaRange& r : Parse(accept)) {
    if (r.q <= 0) continue;
    if (IEquals(r.type, "application/vnd.google.protobuf") &&
        r.proto == "io.prometheus.client.MetricFamily" && IEquals(r.encoding, "delimited")) {
      return Format::kProtobuf;
    }
    if (IEquals(r.type, "application/openmetrics-text") &&
        (r.version.empty() || r.version == "1.0.0" || r.version == "0.0.1")) {
      return Format::kOpenMetrics;
    }
    if ((IEquals(r.type, "text/plain") && (r.version.empty() || r.version == "0.0.4")) ||
        r.type == "*/*" || IEquals(r.type, "text/*")) {
      return Format::kText;
    }
  }
  return Format::kText;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  for (const MediaRange& r : Parse(accept_encoding)) {
    if (r.q > 0 && (IEquals(r.type, "gzip") || r.type == "*")) return true;
  }
  return false;
}

absl::Status Gzip(std::string_view in, std::string* out, int level) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("deflateInit2 failed");
  }
  out->resize(deflateBound(&zs, in.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out->data());
  zs.avail_out = static_cast<uInt>(out->size());
  int rc = deflate(&zs, Z_FINISH);
  size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return absl::InternalError("deflate did not finish");
  out->resize(produced);
  return absl::OkStatus();
}

}  // namespace metrics::exposition
