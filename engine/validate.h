// Checks applied at registration and binding time (never on the hot path), each naming the bad
// input.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace metrics {

// [a-zA-Z_:][a-zA-Z0-9_:]*, and not starting with the reserved "__".
absl::Status ValidateMetricName(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not starting with the reserved "__".
absl::Status ValidateLabelName(std::string_view name);
// Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s);
// Label names valid, distinct from each other, from the constant labels' names, and from `reserved`
// (e.g. "le").
absl::Status ValidateLabels(std::string_view family, const std::vector<std::string>& label_names,
                            const std::vector<std::pair<std::string, std::string>>& const_labels,
                            const std::vector<std::string_view>& reserved = {});

}  // namespace metrics
