// Writing JSON responses by appending to a string: stored events go out with their payload bytes
// spliced in as they were stored (no tree, no recursion, however deep the payload nests).
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "store/event_store.h"

namespace eventstore {

// Appends s as a JSON string literal. s must be valid UTF-8 (stream ids and event types are).
void AppendJsonString(std::string* out, std::string_view s);

// Appends {"position", ["stream",] "version", "type", ["id",] "data", "timestamp_ns"}. A payload
// that is JSON text (everything the HTTP API stores) is spliced in as "data"; any other payload
// (bytes an embedding program stored) goes out as "data": null and "data_base64". A webhook
// subscription's secret is never written out (system_streams.h).
void AppendEvent(std::string* out, const metrics::store::Event& e, bool with_stream);

}  // namespace eventstore
