// Small pieces every handler file of the server shares: the JSON error reply the whole API
// answers with, and the wall clock its background work stamps (Unix seconds). Pure; thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <httplib.h>

#include "server/json_out.h"

namespace eventstore {

// res.status = status, body {"error": message}.
inline void ReplyError(httplib::Response& res, int status, std::string_view message) {
  res.status = status;
  std::string body = "{\"error\":";
  AppendJsonString(&body, message);
  body += "}\n";
  res.set_content(body, "application/json");
}

inline double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace eventstore
