// Debian's Abseil is built with its own absl::string_view (not std::string_view): this bridges the
// two.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace metrics::internal {

inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace metrics::internal
