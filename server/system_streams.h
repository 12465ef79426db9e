// The streams the server keeps its own state in: "webhooks:..." (subscriptions, checkpoints) and
// "scheduler:..." (schedules). Only the server's services write them; the HTTP API refuses appends
// and schedules into them (a client's record there could start a subscription that skipped the
// API's checks, or stop the next start-up), and reads through the API never show a
// subscription's signing secret.
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "store/event_backend.h"

namespace eventstore {

// True for a stream only the server itself may write.
bool IsSystemStream(std::string_view stream);

// The payload as the read API shows it: e's own, except that a subscription record's "secret" is
// replaced by "(redacted)" (the redacted JSON is built in *scratch, which the view points into).
std::string_view ReadablePayload(const metrics::store::Event& e, std::string* scratch);

// At start-up, a record of a system stream that its service cannot use (an embedding program's or
// an imported store's): said on stderr by `service`, which then skips it.
void ReportForeignRecord(const char* service, const metrics::store::Event& e);

}  // namespace eventstore
