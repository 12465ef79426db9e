// The projections of the domain this store serves (teams and their status), built from events by
// the store's projector thread and queried from any thread.
//
//   auto teams = std::make_shared<TeamsProjection>();
//   store->AddProjection(std::string(TeamsProjection::kName), AsProjection(teams));
//   store->WaitForProjections(store->LastPosition(), std::chrono::seconds(5));
//   std::optional<TeamsProjection::Team> red = teams->Find("red");
//
// Apply() is called by one thread at a time (the projector); the queries take a snapshot copy under
// a mutex, so they are safe from any thread at any time. A malformed payload of a relevant event is
// an apply error (InvalidArgument naming the position and the problem): the store retries it and
// then skips it, counted in projection_errors_total (store/event_store.h). Events of other types
// are ignored.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "store/event_store.h"

namespace metrics::store {

// Adapts a shared projection object to the store's ProjectionFn (the function keeps it alive).
template <typename P>
ProjectionFn AsProjection(std::shared_ptr<P> projection) {
  return [p = std::move(projection)](const Event& e) { return p->Apply(e); };
}

// Registered teams, from "team.registered" events with a JSON payload
// {"team": "<id>", "name": "<display name>"}. A second registration of the same id updates the
// name (last one wins).
class TeamsProjection {
 public:
  static constexpr std::string_view kName = "teams";
  static constexpr std::string_view kEventType = "team.registered";

  struct Team {
    std::string id;
    std::string name;
    uint64_t position = 0;         // of the event that set it
    int64_t registered_at_ns = 0;  // its timestamp

    friend bool operator==(const Team&, const Team&) = default;
  };

  absl::Status Apply(const Event& e);

  std::vector<Team> Teams() const;  // sorted by id
  std::optional<Team> Find(std::string_view id) const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Team, std::less<>> teams_;
};

// The latest status of each team, from "status.updated" events with a JSON payload
// {"team": "<id>", "status": "<status>"}.
class TeamStatusProjection {
 public:
  static constexpr std::string_view kName = "team_status";
  static constexpr std::string_view kEventType = "status.updated";

  struct TeamStatus {
    std::string team;
    std::string status;
    uint64_t position = 0;
    int64_t updated_at_ns = 0;
    uint64_t updates = 0;  // status events seen for this team

    friend bool operator==(const TeamStatus&, const TeamStatus&) = default;
  };

  absl::Status Apply(const Event& e);

  std::vector<TeamStatus> All() const;  // sorted by team
  std::optional<TeamStatus> Find(std::string_view team) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, TeamStatus, std::less<>> status_;
};

}  // namespace metrics::store
