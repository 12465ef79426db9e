// Number formatting shared by the text writers: shortest round-trip digits laid out like Go's
// strconv.FormatFloat(v, 'g', -1, 64), which is what client_golang's expfmt writes.
#pragma once

#include <cstdint>
#include <string>

namespace metrics::exposition {

// Appends v: "NaN", "+Inf", "-Inf", or the shortest digits that read back as v, in %e style (at
// least two exponent digits, "1e+06") when the decimal exponent is < -4 or >= 6 (Go's rule for
// shortest %g), else in %f style ("0.0001", "123456").
void AppendDouble(std::string* out, double v);
// As AppendDouble, but an integral value keeps a ".0" ("1.0", "1e+06" stays), as OpenMetrics wants
// for `le`.
void AppendOpenMetricsFloat(std::string* out, double v);
void AppendUint(std::string* out, uint64_t v);

}  // namespace metrics::exposition
