// Hands a short-lived job's metrics to a Prometheus Pushgateway before it exits, with the
// semantics of client_golang's push package: Push (PUT) replaces the whole group, Add (POST)
// replaces only the families it sends, Delete removes the group.
//
//   auto pusher = metrics::exposition::Pusher::Create(
//       {.url = "http://127.0.0.1:9091", .job = "nightly_bench", .grouping = {{"branch",
//       "main"}}});
//   if (!pusher.ok()) ...;
//   absl::Status s = pusher->Push(registry.Collect());   // PUT
//   /metrics/job/nightly_bench/branch/main
//
// The group's path is /metrics/job/<job>{/<label>/<value>}; a value that is empty or not plain
// [A-Za-z0-9._~-] is sent base64url-encoded (`<label>@base64/<value>`), as the Pushgateway
// specifies, so any UTF-8 value (with '/', spaces, quotes) round-trips.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/snapshot.h"
#include "exposition/text_format.h"

namespace metrics::exposition {

// What a push got back: the HTTP status and body, or status 0 and the transport error.
struct PushReply {
  int status = 0;
  std::string body;
  std::string error;
};
// Sends one request to the gateway: method, path (the group's, prefix included), body and
// Content-Type. Set PushOptions::sender to route pushes through a client of your own, e.g. the
// instrumented one of instrument/outbound.h (PushSenderFor), so that pushes show up in
// outbound_* metrics and get its retries. Called from whatever thread calls Push/Add/Delete.
using PushSender =
    std::function<PushReply(std::string_view method, const std::string& path,
                            const std::string& body, const std::string& content_type)>;

struct PushOptions {
  // http:// or https:// host[:port], optionally with a path prefix ("http://gw:9091/prefix").
  std::string url;
  // Required: the `job` grouping label.
  std::string job;
  // Further grouping labels, in path order. Names must be valid label names, not "job", unique.
  std::vector<std::pair<std::string, std::string>> grouping;
  std::chrono::milliseconds timeout{10000};
  // The body's format: text 0.0.4, or protobuf (delimited MetricFamily), the only one that carries
  // native histograms and exemplars; the Pushgateway (1.5+) keeps and serves both. OpenMetrics
  // is not accepted by the Pushgateway: InvalidArgument at Create.
  Format format = Format::kText;
  // Empty: a cpp-httplib client per call, with `timeout` and the basic auth below. Set: every
  // request goes through it instead (timeouts and authentication are then the sender's).
  PushSender sender;
  // HTTP basic auth, when user is non-empty.
  std::string basic_auth_user;
  std::string basic_auth_password;
};

// Cheap to copy; each call opens its own connection, so it may be used from any thread.
class Pusher {
 public:
  // InvalidArgument for a malformed URL, an empty job, or an invalid/duplicate grouping label.
  static absl::StatusOr<Pusher> Create(PushOptions options);

  // PUT: the group afterwards holds exactly `snapshot`'s families.
  absl::Status Push(const Snapshot& snapshot) const;
  // POST: families in `snapshot` replace those of the same name in the group; others stay.
  absl::Status Add(const Snapshot& snapshot) const;
  // DELETE: every family of the group is removed.
  absl::Status Delete() const;

  // The group's path, e.g. "/metrics/job/nightly_bench/branch/main".
  const std::string& path() const { return path_; }

 private:
  Pusher(PushOptions options, std::string origin, std::string path)
      : options_(std::move(options)), origin_(std::move(origin)), path_(std::move(path)) {}
  absl::Status Send(std::string_view method, const Snapshot* snapshot) const;

  PushOptions options_;
  std::string origin_;  // scheme://host[:port]
  std::string path_;    // prefix + /metrics/job/...
};

}  // namespace metrics::exposition
