#include "exposition/pushgateway.h"

#include <httplib.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/strings.h"
#include "engine/validate.h"
#include "exposition/text_format.h"

namespace metrics::exposition {
namespace {

bool Plain(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '~' ||
           c == '-';
  });
}

// "/<name>/<value>", or "/<name>@base64/<base64url(value)>" when the value is not a plain path
// segment; the empty value is "=" in that form, which the Pushgateway reads as "".
std::string Component(std::string_view name, std::string_view value) {
  if (Plain(value)) return absl::StrCat("/", internal::AV(name), "/", internal::AV(value));
  std::string encoded = value.empty() ? "=" : absl::WebSafeBase64Escape(internal::AV(value));
  return absl::StrCat("/", internal::AV(name), "@base64/", encoded);
}

absl::Status HttpError(std::string_view method, std::string_view url, int status,
                       std::string_view body) {
  std::string msg =
      absl::StrCat("pushgateway ", internal::AV(method), " ", internal::AV(url), " answered HTTP ",
                   status, ": ", internal::AV(body.substr(0, 512)));
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (status == 400) return absl::InvalidArgumentError(msg);
  if (status == 401 || status == 403) return absl::PermissionDeniedError(msg);
  if (status == 404) return absl::NotFoundError(msg);
  if (status >= 500) return absl::UnavailableError(msg);
  return absl::UnknownError(msg);
}

// The Pushgateway refuses a push whose series carry a grouping label themselves; say which.
absl::Status CheckNoGroupingLabels(const Snapshot& snapshot, const std::set<std::string>& names) {
  for (const auto& f : snapshot.families) {
    for (const auto& l : f.desc->label_names) {
      if (names.count(l) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pushed family ", f.desc->name, " has label \"", l, "\", which is a grouping label"));
      }
    }
    for (const auto& [l, v] : f.desc->const_labels) {
      if (names.count(l) != 0) {
        return absl::InvalidArgumentError(absl::StrCat("pushed family ", f.desc->name,
                                                       " has constant label \"", l,
                                                       "\", which is a grouping label"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Pusher> Pusher::Create(PushOptions options) {
  if (options.format == Format::kOpenMetrics) {
    return absl::InvalidArgumentError(
        "pushgateway: OpenMetrics bodies are not accepted; push text or protobuf");
  }
  std::string_view url = options.url;
  size_t scheme_end = url.find("://");
  std::string_view scheme = scheme_end == std::string_view::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("pushgateway url \"", options.url, "\": expected http:// or https://"));
  }
  std::string_view rest = url.substr(scheme_end + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("pushgateway url \"", options.url, "\": no query or fragment allowed"));
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  // A port follows the last ':' unless that is inside an IPv6 literal ("[::1]" has none).
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.back() == ']') colon = std::string_view::npos;
  std::string_view host = authority.substr(0, colon);
  if (host.empty() || (colon != std::string_view::npos &&
                       (authority.size() == colon + 1 ||
                        !std::all_of(authority.begin() + colon + 1, authority.end(),
                                     [](char c) { return c >= '0' && c <= '9'; })))) {
    return absl::InvalidArgumentError(
        absl::StrCat("pushgateway url \"", options.url, "\": expected scheme://host[:port]"));
  }
  if (options.job.empty()) return absl::InvalidArgumentError("pushgateway: job must not be empty");
  if (!IsValidUtf8(options.job)) return absl::InvalidArgumentError("pushgateway: job is not UTF-8");

  std::string path = absl::StrCat(internal::AV(prefix), "/metrics", Component("job", options.job));
  std::set<std::string> seen = {"job"};
  for (const auto& [name, value] : options.grouping) {
    if (absl::Status s = ValidateLabelName(name); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("pushgateway grouping: ", s.message()));
    }
    if (!IsValidUtf8(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("pushgateway grouping: the value of \"", name, "\" is not UTF-8"));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("pushgateway grouping: label \"", name, "\" given twice (or is \"job\")"));
    }
    path += Component(name, value);
  }
  std::string origin(url.substr(0, scheme_end + 3 + authority.size()));
  return Pusher(std::move(options), std::move(origin), std::move(path));
}

absl::Status Pusher::Push(const Snapshot& snapshot) const { return Send("PUT", &snapshot); }
absl::Status Pusher::Add(const Snapshot& snapshot) const { return Send("POST", &snapshot); }
absl::Status Pusher::Delete() const { return Send("DELETE", nullptr); }

absl::Status Pusher::Send(std::string_view method, const Snapshot* snapshot) const {
  std::string body;
  if (snapshot != nullptr) {
    std::set<std::string> grouping = {"job"};
    for (const auto& [name, value] : options_.grouping) grouping.insert(name);
    if (absl::Status s = CheckNoGroupingLabels(*snapshot, grouping); !s.ok()) return s;
    Write(options_.format, *snapshot, &body);
  }
  const std::string url = origin_ + path_;
  const std::string content_type(ContentType(options_.format));
  if (options_.sender) {
    const PushReply r = options_.sender(method, path_, body, content_type);
    if (r.status == 0) {
      return absl::UnavailableError(
          absl::StrCat("pushgateway ", internal::AV(method), " ", url, ": ", r.error));
    }
    if (r.status < 200 || r.status > 299) return HttpError(method, url, r.status, r.body);
    return absl::OkStatus();
  }
  httplib::Client client(origin_);
  client.set_connection_timeout(options_.timeout);
  client.set_read_timeout(options_.timeout);
  client.set_write_timeout(options_.timeout);
  if (!options_.basic_auth_user.empty()) {
    client.set_basic_auth(options_.basic_auth_user, options_.basic_auth_password);
  }
  httplib::Result res = method == "PUT"    ? client.Put(path_, body, content_type)
                        : method == "POST" ? client.Post(path_, body, content_type)
                                           : client.Delete(path_);
  if (!res) {
    return absl::UnavailableError(absl::StrCat("pushgateway ", internal::AV(method), " ", url, ": ",
                                               httplib::to_string(res.error())));
  }
  if (res->status < 200 || res->status > 299) {
    return HttpError(method, url, res->status, res->body);
  }
  return absl::OkStatus();
}

}  // namespace metrics::exposition
