#include "store/projections.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/internal/strings.h"

namespace metrics::store {
namespace {

using ::metrics::internal::AV;

// Parses `e.payload` as a JSON object and copies the named string fields (all required, non-empty)
// into *out, without exceptions.
absl::Status ParseStringFields(const Event& e, std::initializer_list<std::string_view> names,
                               std::vector<std::string>* out) {
  const nlohmann::json j =
      nlohmann::json::parse(e.payload, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(e.type), " at position ", e.position, ": payload is not valid JSON"));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(e.type), " at position ", e.position, ": payload is not a JSON object"));
  }
  out->clear();
  for (std::string_view name : names) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(AV(e.type), " at position ", e.position,
                                                     ": payload has no string field \"", AV(name),
                                                     "\""));
    }
    const std::string& v = it->get_ref<const std::string&>();
    if (v.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(AV(e.type), " at position ", e.position,
                                                     ": field \"", AV(name), "\" is empty"));
    }
    out->push_back(v);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TeamsProjection::Apply(const Event& e) {
  if (e.type != kEventType) return absl::OkStatus();
  std::vector<std::string> f;
  if (absl::Status s = ParseStringFields(e, {"team", "name"}, &f); !s.ok()) return s;
  std::lock_guard<std::mutex> lk(mu_);
  Team& t = teams_[f[0]];
  t.id = std::move(f[0]);
  t.name = std::move(f[1]);
  t.position = e.position;
  t.registered_at_ns = e.timestamp_ns;
  return absl::OkStatus();
}

std::vector<TeamsProjection::Team> TeamsProjection::Teams() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Team> out;
  out.reserve(teams_.size());
  for (const auto& [id, t] : teams_) out.push_back(t);
  return out;
}

std::optional<TeamsProjection::Team> TeamsProjection::Find(std::string_view id) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = teams_.find(id);
  if (it == teams_.end()) return std::nullopt;
  return it->second;
}

size_t TeamsProjection::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return teams_.size();
}

absl::Status TeamStatusProjection::Apply(const Event& e) {
  if (e.type != kEventType) return absl::OkStatus();
  std::vector<std::string> f;
  if (absl::Status s = ParseStringFields(e, {"team", "status"}, &f); !s.ok()) return s;
  std::lock_guard<std::mutex> lk(mu_);
  TeamStatus& t = status_[f[0]];
  t.team = std::move(f[0]);
  t.status = std::move(f[1]);
  t.position = e.position;
  t.updated_at_ns = e.timestamp_ns;
  ++t.updates;
  return absl::OkStatus();
}

std::vector<TeamStatusProjection::TeamStatus> TeamStatusProjection::All() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<TeamStatus> out;
  out.reserve(status_.size());
  for (const auto& [team, t] : status_) out.push_back(t);
  return out;
}

std::optional<TeamStatusProjection::TeamStatus> TeamStatusProjection::Find(
    std::string_view team) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = status_.find(team);
  if (it == status_.end()) return std::nullopt;
  return it->second;
}

}  // namespace metrics::store
