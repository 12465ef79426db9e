// libprotobuf's side of the protobuf exposition (exposition/protobuf_format.h): decoding a body
// into generated MetricFamily messages, and building the messages a snapshot should become, field
// by field from the snapshot's meaning. Tests compare the two; the scrape benchmark uses the
// builder plus SerializeToString as the libprotobuf encoder it measures ours against.
// Not thread-safe beyond what libprotobuf's messages are: one caller per object.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/snapshot.h"
#include "metrics.pb.h"

namespace metrics::testing {

namespace pb = ::io::prometheus::client;

// Splits a varint-delimited stream. Fails (returns false, with *error set) on a truncated message,
// a message libprotobuf cannot parse, or a length prefix longer than 5 bytes (Prometheus 2.42
// rejects those).
bool ParseDelimited(std::string_view body, std::vector<pb::MetricFamily>* out, std::string* error);

// What each family of the snapshot must decode to.
std::vector<pb::MetricFamily> ExpectedFamilies(const Snapshot& snapshot);

// libprotobuf's encoding of the snapshot, delimited: the benchmark's reference encoder.
void SerializeDelimited(const Snapshot& snapshot, std::string* out);

}  // namespace metrics::testing
