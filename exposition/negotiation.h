// Content negotiation and compression for a scrape: which format an Accept header asks for, whether
// Accept-Encoding allows gzip, and gzip itself (zlib).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "exposition/text_format.h"

namespace metrics::exposition {

// The format to answer with: OpenMetrics when the client prefers application/openmetrics-text (any
// version we can produce: 1.0.0, 0.0.1 or none) over text/plain, by q-value and then by order;
// text 0.0.4 otherwise, including for a missing, empty or unparsable header. Entries with q=0 are
// refused.
Format NegotiateFormat(std::string_view accept);

// True when Accept-Encoding lists gzip (or *) with a q-value above 0.
bool AcceptsGzip(std::string_view accept_encoding);

// Replaces *out with the gzip (RFC 1952) compression of `in`. `out`'s capacity is reused.
absl::Status Gzip(std::string_view in, std::string* out, int level = 1);

}  // namespace metrics::exposition
