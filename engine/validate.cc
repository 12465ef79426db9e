#include "engine/validate.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace metrics {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Shows a name in an error message without letting control bytes or huge input through.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

}  // namespace

absl::Status ValidateMetricName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("metric name is empty");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!(IsAlpha(c) || c == ':' || (i > 0 && IsDigit(c)))) {
      return absl::InvalidArgumentError(absl::StrCat("metric name ", Quote(name),
                                                     ": invalid character at byte ", i,
                                                     " (allowed: [a-zA-Z_:][a-zA-Z0-9_:]*)"));
    }
  }
  if (name.substr(0, 2) == "__") {
    return absl::InvalidArgumentError(absl::StrCat(
        "metric name ", Quote(name), ": the prefix \"__\" is reserved for internal use"));
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("label name is empty");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!(IsAlpha(c) || (i > 0 && IsDigit(c)))) {
      return absl::InvalidArgumentError(absl::StrCat("label name ", Quote(name),
                                                     ": invalid character at byte ", i,
                                                     " (allowed: [a-zA-Z_][a-zA-Z0-9_]*)"));
    }
  }
  if (name.substr(0, 2) == "__") {
    return absl::InvalidArgumentError(absl::StrCat(
        "label name ", Quote(name), ": the prefix \"__\" is reserved for internal use"));
  }
  return absl::OkStatus();
}

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
    } else {
      return false;  // continuation byte first, overlong 2-byte lead (C0, C1), or beyond F4
    }
    if (end - p < len) return false;
    for (int i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;  // overlong
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += len;
  }
  return true;
}

absl::Status ValidateLabels(std::string_view family, const std::vector<std::string>& label_names,
                            const std::vector<std::pair<std::string, std::string>>& const_labels,
                            const std::vector<std::string_view>& reserved) {
  absl::flat_hash_set<std::string_view> seen;
  auto check = [&](std::string_view name) -> absl::Status {
    if (absl::Status s = ValidateLabelName(name); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("family ", Quote(family), ": ", s.message()));
    }
    for (std::string_view r : reserved) {
      if (name == r) {
        return absl::InvalidArgumentError(absl::StrCat("family ", Quote(family), ": label name ",
                                                       Quote(name),
                                                       " is reserved for this metric type"));
      }
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("family ", Quote(family), ": duplicate label name ", Quote(name)));
    }
    return absl::OkStatus();
  };
  for (const auto& [name, value] : const_labels) {
    if (absl::Status s = check(name); !s.ok()) return s;
    if (!IsValidUtf8(value)) {
      return absl::InvalidArgumentError(absl::StrCat("family ", Quote(family), ": constant label ",
                                                     Quote(name),
                                                     " has a value that is not valid UTF-8"));
    }
  }
  for (const std::string& name : label_names) {
    if (absl::Status s = check(name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace metrics
