// The scheduler's HTTP API (server/scheduler.h), mounted by MountApi when a Scheduler is given:
//
//   POST   /schedules        {"due_at": <Unix seconds> | "delay_seconds": <n>, "stream", "type",
//                             "data": <any JSON, default null>, "id": "<UUID>" (optional)}
//                             201 {"id", "due_at"}; 400 naming the problem; 409 if the id exists;
//                             429 at the pending cap
//   GET    /schedules        200 {"schedules": [{"id", "due_at", "stream", "type"}, ...]} soonest
//   first DELETE /schedules/{id}   204; 404 when no such schedule is pending
//
// Thread contract: as the API's (handlers run concurrently; the Scheduler is thread-safe).
#pragma once

#include <httplib.h>

#include "server/scheduler.h"

namespace eventstore {

// Route templates, for the route table of the request metrics.
inline constexpr char kSchedulesRoute[] = "/schedules";
inline constexpr char kScheduleRoute[] = "/schedules/{id}";

void MountSchedules(httplib::Server& server, Scheduler* scheduler);

}  // namespace eventstore
