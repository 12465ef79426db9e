#include "server/schedules_api.h"

#include <openssl/rand.h>

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "instrument/route_table.h"
#include "server/event_body.h"
#include "server/reply.h"
#include "server/system_streams.h"

namespace eventstore {
namespace {

// A random (version 4) UUID's 16 bytes.
bool NewId(std::string* out) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) return false;
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  out->assign(reinterpret_cast<const char*>(b), sizeof b);
  return true;
}

// The schedule a POST body describes, or a message naming what is wrong with it.
std::string ParseSchedule(const std::string& body, double now, Schedule* s) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "the body must be a JSON object";
  for (const auto& [k, v] : j.items()) {
    if (k != "due_at" && k != "delay_seconds" && k != "stream" && k != "type" && k != "data" &&
        k != "id") {
      return absl::StrCat("unknown field \"", k, "\"");
    }
  }
  const bool due = j.contains("due_at"), delay = j.contains("delay_seconds");
  if (due == delay) return "give exactly one of \"due_at\" (Unix seconds) and \"delay_seconds\"";
  const nlohmann::json& t = due ? j["due_at"] : j["delay_seconds"];
  if (!t.is_number() || !std::isfinite(t.get<double>())) {
    return absl::StrCat("\"", due ? "due_at" : "delay_seconds", "\" must be a number");
  }
  const double v = t.get<double>();
  if (delay && (v < 0 || v > 1e9)) return "\"delay_seconds\" must be from 0 to 1e9";
  if (due && (v < 0 || v > 1e11)) return "\"due_at\" must be Unix seconds from 0 to 1e11";
  s->due_at = due ? v : now + v;
  for (const char* k : {"stream", "type"}) {
    if (!j.contains(k) || !j[k].is_string() || j[k].get<std::string>().empty()) {
      return absl::StrCat("\"", k, "\" must be a non-empty string");
    }
  }
  s->stream = j["stream"];
  s->type = j["type"];
  if (IsSystemStream(s->stream)) {
    return "streams named webhooks:... and scheduler:... are the server's own";
  }
  s->data = j.contains("data") ? j["data"].dump() : "null";
  if (j.contains("id")) {
    if (!j["id"].is_string() || !ParseUuid(j["id"].get<std::string>(), &s->id)) {
      return "\"id\" must be a UUID string";
    }
  } else if (!NewId(&s->id)) {
    return "could not make an id";
  }
  return "";
}

}  // namespace

void MountSchedules(httplib::Server& server, Scheduler* scheduler) {
  using metrics::instrument::RouteTable;
  server.Post(kSchedulesRoute, [scheduler](const httplib::Request& req, httplib::Response& res) {
    Schedule s;
    if (std::string bad = ParseSchedule(req.body, WallSeconds(), &s); !bad.empty()) {
      return ReplyError(res, 400, bad);
    }
    absl::Status st = scheduler->Add(s);
    if (!st.ok()) {
      const int code = absl::IsAlreadyExists(st)       ? 409
                       : absl::IsResourceExhausted(st) ? 429
                       : absl::IsInvalidArgument(st)   ? 400
                                                       : 503;
      return ReplyError(res, code, std::string(st.message()));
    }
    res.status = 201;
    res.set_content(nlohmann::json({{"id", FormatUuid(s.id)}, {"due_at", s.due_at}}).dump(),
                    "application/json");
  });
  server.Get(kSchedulesRoute, [scheduler](const httplib::Request&, httplib::Response& res) {
    nlohmann::json list = nlohmann::json::array();
    for (const Schedule& s : scheduler->Pending()) {
      list.push_back(
          {{"id", FormatUuid(s.id)}, {"due_at", s.due_at}, {"stream", s.stream}, {"type", s.type}});
    }
    res.set_content(nlohmann::json({{"schedules", list}}).dump(), "application/json");
  });
  server.Delete(RouteTable::ToRegex(kScheduleRoute),
                [scheduler](const httplib::Request& req, httplib::Response& res) {
                  std::string id;
                  if (!ParseUuid(req.matches[1].str(), &id)) {
                    return ReplyError(res, 400, "the schedule id must be a UUID");
                  }
                  absl::Status st = scheduler->Cancel(id);
                  if (absl::IsNotFound(st)) return ReplyError(res, 404, std::string(st.message()));
                  if (!st.ok()) return ReplyError(res, 503, std::string(st.message()));
                  res.status = 204;
                });
}

}  // namespace eventstore
