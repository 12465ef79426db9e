#include "instrument/outbound.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace metrics::instrument {
namespace {

const char* Reason(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "connect";
    case httplib::Error::ConnectionTimeout:
      return "timeout";
    case httplib::Error::Read:
      return "read";  // includes a read timeout: cpp-httplib does not tell them apart
    case httplib::Error::Write:
      return "write";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
      return "tls";
    case httplib::Error::Canceled:
      return "canceled";
    default:
      return "other";
  }
}

bool ValidTarget(std::string_view t) {
  if (t.empty() || t.size() > 64) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// Full jitter (uniform in [0, backoff]): retries of many clients spread out instead of arriving
// together.
std::chrono::milliseconds Jitter(std::chrono::milliseconds backoff) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> d(0, std::max<int64_t>(backoff.count(), 0));
  return std::chrono::milliseconds(d(rng));
}

}  // namespace

std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    if (value.size() > 9) return std::chrono::milliseconds::max();  // > 31 years: "never"
    return std::chrono::seconds(std::stoll(std::string(value)));
  }
  // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
  struct tm tm = {};
  const std::string s(value);
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
  return std::max(wait, std::chrono::milliseconds(0));
}

absl::StatusOr<std::unique_ptr<OutboundMetrics>> OutboundMetrics::Create(Registry& registry) {
  auto requests = registry.AddCounter(
      {.name = "outbound_requests_total",
       .help = "Outbound HTTP attempts that got an answer, by target, method and status code.",
       .label_names = {"target", "method", "code"}});
  if (!requests.ok()) return requests.status();
  auto errors = registry.AddCounter(
      {.name = "outbound_request_errors_total",
       .help = "Outbound HTTP attempts that got no answer, by target and reason.",
       .label_names = {"target", "reason"}});
  if (!errors.ok()) return errors.status();
  auto retries = registry.AddCounter({.name = "outbound_retries_total",
                                      .help = "Outbound HTTP attempts after a request's first.",
                                      .label_names = {"target"}});
  if (!retries.ok()) return retries.status();
  auto duration =
      registry.AddHistogram({.name = "outbound_request_duration_seconds",
                             .help = "Time of each outbound HTTP attempt, answered or not.",
                             .label_names = {"target"}},
                            {.buckets = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
                             .schema = 0,
                             .min_exponent = -20,
                             .max_exponent = 12});
  if (!duration.ok()) return duration.status();
  return std::unique_ptr<OutboundMetrics>(new OutboundMetrics(
      *std::move(requests), *std::move(errors), *std::move(retries), *std::move(duration)));
}

absl::StatusOr<std::unique_ptr<OutboundClient>> OutboundClient::Create(OutboundMetrics* metrics,
                                                                       OutboundOptions options) {
  if (metrics == nullptr) return absl::InvalidArgumentError("outbound: no OutboundMetrics");
  if (!ValidTarget(options.target)) {
    return absl::InvalidArgumentError(
        absl::StrCat("outbound: target \"", options.target,
                     "\" must be a name of 1-64 characters [A-Za-z0-9_.-], not a URL"));
  }
  if (options.base_url.rfind("http://", 0) != 0 && options.base_url.rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("outbound: base_url \"", options.base_url, "\" must start with http(s)://"));
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("outbound: max_attempts must be at least 1");
  }
  return std::unique_ptr<OutboundClient>(new OutboundClient(metrics, std::move(options)));
}

OutboundClient::OutboundClient(OutboundMetrics* metrics, OutboundOptions options)
    : metrics_(metrics),
      options_(std::move(options)),
      client_(options_.base_url),
      duration_(metrics_->duration_.WithLabelValues(options_.target)),
      retries_(metrics_->retries_.WithLabelValues(options_.target)),
      sleep_([](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }) {
  client_.set_connection_timeout(options_.connect_timeout);
  client_.set_read_timeout(options_.timeout);
  client_.set_write_timeout(options_.timeout);
  client_.set_keep_alive(true);
  client_.set_tcp_nodelay(true);
}

OutboundReply OutboundClient::Attempt(std::string_view method, const std::string& path,
                                      const std::string& body, const std::string& content_type,
                                      const httplib::Headers& headers) {
  const auto start = std::chrono::steady_clock::now();
  httplib::Result res(nullptr, httplib::Error::Unknown);
  std::string_view label = method;
  if (method == "GET") {
    res = client_.Get(path, headers);
  } else if (method == "POST") {
    res = client_.Post(path, headers, body, content_type);
  } else if (method == "PUT") {
    res = client_.Put(path, headers, body, content_type);
  } else if (method == "PATCH") {
    res = client_.Patch(path, headers, body, content_type);
  } else if (method == "DELETE") {
    res = client_.Delete(path, headers);
  } else if (method == "HEAD") {
    res = client_.Head(path, headers);
  } else {
    label = "other";
  }
  duration_.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  OutboundReply r;
  if (res) {
    r.status = res->status;
    r.body = std::move(res->body);
    r.headers = res->headers;
    metrics_->requests_.WithLabelValues(options_.target, label, std::to_string(res->status)).Inc();
  } else {
    const httplib::Error e = label == "other" ? httplib::Error::Unknown : res.error();
    r.error = label == "other" ? absl::StrCat("unsupported method ", std::string(method))
                               : httplib::to_string(e);
    metrics_->errors_.WithLabelValues(options_.target, Reason(e)).Inc();
  }
  return r;
}

OutboundReply OutboundClient::Send(std::string_view method, const std::string& path,
                                   const std::string& body, const std::string& content_type,
                                   const httplib::Headers& extra) {
  httplib::Headers headers = options_.headers;
  headers.insert(extra.begin(), extra.end());
  std::chrono::milliseconds backoff = options_.initial_backoff;
  OutboundReply r;
  for (int attempt = 1;; ++attempt) {
    if (attempt > 1) retries_.Inc();
    r = Attempt(method, path, body, content_type, headers);
    r.attempts = attempt;
    const bool retryable = r.status == 0 || r.status == 429 ||
                           (options_.retry_5xx && r.status >= 500 && r.status <= 599);
    if (!retryable || attempt >= options_.max_attempts) return r;
    std::chrono::milliseconds wait = Jitter(backoff);
    if (r.status == 429 || r.status == 503) {
      auto it = r.headers.find("Retry-After");
      if (it != r.headers.end()) {
        auto asked = ParseRetryAfter(it->second, std::chrono::system_clock::now());
        if (asked.has_value()) {
          if (*asked > options_.max_retry_after) return r;  // more patience than we have
          wait = *asked;
        }
      }
    }
    sleep_(wait);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

exposition::PushSender PushSenderFor(std::shared_ptr<OutboundClient> client) {
  auto mu = std::make_shared<std::mutex>();
  return
      [client = std::move(client), mu](std::string_view method, const std::string& path,
                                       const std::string& body, const std::string& content_type) {
        std::lock_guard<std::mutex> lock(*mu);
        OutboundReply r = client->Send(method, path, body, content_type);
        return exposition::PushReply{r.status, std::move(r.body), std::move(r.error)};
      };
}

}  // namespace metrics::instrument
