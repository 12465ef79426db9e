// Instrumented outbound HTTP calls — the ADR's "chat bot: outbound API calls" — as a thin layer
// over cpp-httplib's client, with retries:
//
//   outbound_requests_total{target,method,code}      counter: every attempt that got an answer
//   outbound_request_duration_seconds{target}        histogram: every attempt, answered or not
//   outbound_request_errors_total{target,reason}     counter: attempts without an answer; reason
//       connect | timeout | read | write | tls | canceled | other
//   outbound_retries_total{target}                   counter: attempts after the first
//
// `target` is a name the program configures ("slack", "pushgateway"), never a URL: it is checked
// at construction ([A-Za-z0-9_.-], at most 64 bytes), so the label's cardinality is the number of
// clients a program makes, whatever the URLs or the answers.
//
//   auto m = *OutboundMetrics::Create(registry);
//   OutboundClient slack(m.get(), {.target = "slack", .base_url = "https://hooks.slack.com"});
//   OutboundReply r = slack.Send("POST", "/services/T0/B0/x", body, "application/json");
//
// Retries (OutboundOptions::max_attempts > 1): after a transport error, a 5xx, or a 429; a 429 or
// 503 with Retry-After (seconds or an HTTP date) waits that long if it is at most
// max_retry_after, and otherwise gives up at once with that answer (the server asked for more
// patience than the caller has); other retries wait an exponential backoff with full jitter.
//
// Thread contract: OutboundMetrics is shared by any number of clients and threads. One
// OutboundClient serves one thread at a time (it keeps one keep-alive connection); make one per
// thread, or guard it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <httplib.h>

#include "absl/status/statusor.h"
#include "engine/registry.h"
#include "exposition/pushgateway.h"

namespace metrics::instrument {

class OutboundMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<OutboundMetrics>> Create(Registry& registry);

 private:
  friend class OutboundClient;
  OutboundMetrics(CounterFamily requests, CounterFamily errors, CounterFamily retries,
                  HistogramFamily duration)
      : requests_(std::move(requests)),
        errors_(std::move(errors)),
        retries_(std::move(retries)),
        duration_(std::move(duration)) {}
  CounterFamily requests_, errors_, retries_;
  HistogramFamily duration_;
};

struct OutboundOptions {
  std::string target;    // the label: [A-Za-z0-9_.-]{1,64}
  std::string base_url;  // scheme://host[:port], e.g. "http://127.0.0.1:9091"
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds timeout{10000};  // read and write, per attempt
  int max_attempts = 1;                      // 1: no retries
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds max_retry_after{30000};
  bool retry_5xx = true;
  httplib::Headers headers;  // sent with every request (e.g. Authorization)
};

struct OutboundReply {
  int status = 0;     // the HTTP status of the last attempt; 0 when none was answered
  std::string body;   // of the last answer
  std::string error;  // the transport error of the last attempt, when status is 0
  int attempts = 0;
  httplib::Headers headers;
  bool ok() const { return status >= 200 && status <= 299; }
};

class OutboundClient {
 public:
  // Checks the target and the URL: InvalidArgument naming the problem.
  static absl::StatusOr<std::unique_ptr<OutboundClient>> Create(OutboundMetrics* metrics,
                                                                OutboundOptions options);

  // One request with the retries the options allow; `body` and `content_type` are ignored for
  // GET and DELETE. Extra headers add to the options' headers.
  OutboundReply Send(std::string_view method, const std::string& path, const std::string& body = "",
                     const std::string& content_type = "", const httplib::Headers& extra = {});

  const std::string& target() const { return options_.target; }

  // Tests only: how the client sleeps between attempts (default: this_thread::sleep_for).
  void SetSleepForTesting(std::function<void(std::chrono::milliseconds)> sleep) {
    sleep_ = std::move(sleep);
  }

 private:
  OutboundClient(OutboundMetrics* metrics, OutboundOptions options);
  OutboundReply Attempt(std::string_view method, const std::string& path, const std::string& body,
                        const std::string& content_type, const httplib::Headers& headers);

  OutboundMetrics* metrics_;
  OutboundOptions options_;
  httplib::Client client_;
  Histogram duration_;
  Counter retries_;
  std::function<void(std::chrono::milliseconds)> sleep_;
};

// Routes a Pusher's requests (exposition/pushgateway.h, PushOptions::sender) through `client`, so
// pushes are counted as outbound_* with the client's target and retried as it retries. Pushes may
// come from any thread: the sender serialises them on the client.
exposition::PushSender PushSenderFor(std::shared_ptr<OutboundClient> client);

// The wait a Retry-After value asks for: delta-seconds, or an IMF-fixdate (RFC 9110) relative to
// `now`; nullopt when it is neither. Negative waits (a date in the past) are 0.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

}  // namespace metrics::instrument
