#include "instrument/route_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/internal/strings.h"

namespace metrics::instrument {
namespace {

bool IsParam(std::string_view seg) {
  return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
}

// Splits after the leading '/': "/a/b" -> {"a", "b"}; "/" -> {""}.
std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  for (absl::string_view seg : absl::StrSplit(metrics::internal::AV(path.substr(1)), '/')) {
    out.emplace_back(seg.data(), seg.size());
  }
  return out;
}

}  // namespace

absl::Status RouteTable::Add(std::string_view tmpl) {
  if (tmpl.empty() || tmpl.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("route template must start with '/': ", metrics::internal::AV(tmpl)));
  }
  if (std::find(templates_.begin(), templates_.end(), tmpl) != templates_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("route template added twice: ", metrics::internal::AV(tmpl)));
  }
  Route r;
  for (std::string_view seg : Segments(tmpl)) {
    const bool braces = seg.find_first_of("{}") != std::string_view::npos;
    if (braces && (!IsParam(seg) || seg.size() == 2 ||
                   seg.substr(1, seg.size() - 2).find_first_of("{}/") != std::string_view::npos)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "route template segment must be a literal or {name}: ", metrics::internal::AV(tmpl)));
    }
    r.segments.push_back({.param = braces, .literal = braces ? std::string() : std::string(seg)});
  }
  templates_.emplace_back(tmpl);
  routes_.push_back(std::move(r));
  return absl::OkStatus();
}

const std::string* RouteTable::Match(std::string_view path) const {
  if (path.empty() || path.front() != '/') return nullptr;
  for (size_t i = 0; i < routes_.size(); ++i) {
    const std::vector<Segment>& segs = routes_[i].segments;
    std::string_view rest = path.substr(1);
    bool ok = true;
    for (size_t k = 0; k < segs.size() && ok; ++k) {
      const size_t slash = rest.find('/');
      const bool last = k + 1 == segs.size();
      if (last != (slash == std::string_view::npos)) {
        ok = false;  // the path has fewer or more segments than the template
        break;
      }
      const std::string_view seg = rest.substr(0, slash);
      ok = segs[k].param ? !seg.empty() : seg == segs[k].literal;
      if (!last) rest = rest.substr(slash + 1);
    }
    if (ok) return &templates_[i];
  }
  return nullptr;
}

std::string RouteTable::ToRegex(std::string_view tmpl) {
  std::string re;
  for (std::string_view seg : Segments(tmpl)) {
    re += '/';
    if (IsParam(seg)) {
      re += "([^/]+)";
      continue;
    }
    for (char c : seg) {
      if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) re += '\\';
      re += c;
    }
  }
  return re;
}

}  // namespace metrics::instrument
