// Content negotiation and compression for a scrape: which format an Accept header asks for, whether
// Accept-Encoding allows gzip, and gzip itself (zlib).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "exposition/text_format.h"

namespace metrics::exposition {

// The format to answer with, the client's most preferred one we can produce (by q-value, then by
// order): protobuf for application/vnd.google.protobuf with proto=io.prometheus.client.MetricFamily
// and encoding=delimited (the other encodings, text and compact-text, are not offered);
// OpenMetrics for application/openmetrics-text (version 1.0.0, 0.0.1 or none); text 0.0.4 for
// text/plain (version 0.0.4 or none), text/* and */*, and for a missing, empty, unparsable or
// unmatched header. Entries with q=0 are refused.
Format NegotiateFormat(std::string_view accept);

// True when Accept-Encoding lists gzip (or *) with a q-value above 0.
bool AcceptsGzip(std::string_view accept_encoding);

// Replaces *out with the gzip (RFC 1952) compression of `in`. `out`'s capacity is reused.
absl::Status Gzip(std::string_view in, std::string* out, int level = 1);

}  // namespace metrics::exposition
