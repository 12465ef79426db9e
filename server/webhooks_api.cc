#include "server/webhooks_api.h"

#include <string>

#include <nlohmann/json.hpp>

#include "instrument/route_table.h"
#include "server/reply.h"

namespace eventstore {
namespace {

int HttpStatus(const absl::Status& s) {
  return absl::IsInvalidArgument(s)     ? 400
         : absl::IsNotFound(s)          ? 404
         : absl::IsAlreadyExists(s)     ? 409
         : absl::IsResourceExhausted(s) ? 429
                                        : 503;
}

// The subscription a POST body describes, or a message naming what is wrong with it.
std::string Parse(const std::string& body, Subscription* s) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "the body must be a JSON object";
  for (const auto& [k, v] : j.items()) {
    if (k != "name" && k != "url" && k != "event_types" && k != "stream_prefix" && k != "secret") {
      return "unknown field \"" + k + "\"";
    }
    if (k == "event_types") {
      if (!v.is_array() || v.empty() || v.size() > 100) {
        return "\"event_types\" must be a non-empty array of at most 100 strings";
      }
      for (const auto& t : v) {
        if (!t.is_string() || t.get<std::string>().empty()) {
          return "\"event_types\" must hold non-empty strings";
        }
        s->event_types.push_back(t);
      }
    } else if (!v.is_string()) {
      return "\"" + k + "\" must be a string";
    }
  }
  s->name = j.value("name", "");
  s->url = j.value("url", "");
  s->stream_prefix = j.value("stream_prefix", "");
  s->secret = j.value("secret", "");
  return "";
}

}  // namespace

void MountWebhooks(httplib::Server& server, WebhookService* webhooks) {
  using metrics::instrument::RouteTable;
  server.Post(kSubscriptionsRoute, [webhooks](const httplib::Request& req, httplib::Response& res) {
    Subscription s;
    if (std::string bad = Parse(req.body, &s); !bad.empty()) return ReplyError(res, 400, bad);
    absl::Status st = webhooks->Add(s);
    if (!st.ok()) return ReplyError(res, HttpStatus(st), std::string(st.message()));
    res.status = 201;
    res.set_content(nlohmann::json({{"name", s.name}}).dump(), "application/json");
  });
  server.Get(kSubscriptionsRoute, [webhooks](const httplib::Request&, httplib::Response& res) {
    nlohmann::json list = nlohmann::json::array();
    for (const SubscriptionStatus& st : webhooks->List()) {
      const Subscription& s = st.subscription;
      list.push_back({{"name", s.name},
                      {"url", s.url},
                      {"event_types", s.event_types},
                      {"stream_prefix", s.stream_prefix},
                      {"paused", s.paused},
                      {"position", st.position}});
    }
    res.set_content(nlohmann::json({{"subscriptions", list}}).dump(), "application/json");
  });
  server.Delete(RouteTable::ToRegex(kSubscriptionRoute),
                [webhooks](const httplib::Request& req, httplib::Response& res) {
                  absl::Status st = webhooks->Remove(req.matches[1]);
                  if (!st.ok()) return ReplyError(res, HttpStatus(st), std::string(st.message()));
                  res.status = 204;
                });
  for (bool pause : {true, false}) {
    server.Post(RouteTable::ToRegex(pause ? kSubscriptionPauseRoute : kSubscriptionResumeRoute),
                [webhooks, pause](const httplib::Request& req, httplib::Response& res) {
                  absl::Status st = webhooks->SetPaused(req.matches[1], pause);
                  if (!st.ok()) return ReplyError(res, HttpStatus(st), std::string(st.message()));
                  res.set_content(nlohmann::json({{"paused", pause}}).dump(), "application/json");
                });
  }
}

}  // namespace eventstore
