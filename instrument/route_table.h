// Route templates ("/streams/{stream}/events"): the `handler` label of request metrics, so that a
// label names a route, never a raw path (a scanner walking random paths cannot add series).
//
// A template is a path of '/'-separated segments; a segment "{name}" matches any one non-empty
// segment, any other segment only itself. Match() tries the templates in the order they were
// added. Thread contract: Add() before use; Match() and the accessors are const and may be called
// from any number of threads at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace metrics::instrument {

class RouteTable {
 public:
  // InvalidArgument for a template that does not start with '/', has an empty or malformed
  // "{...}" segment, or is already present.
  absl::Status Add(std::string_view tmpl);

  // The template that `path` matches, or nullptr. No allocation.
  const std::string* Match(std::string_view path) const;

  // A std::regex source for cpp-httplib's router matching exactly what the template matches, with
  // one capture group per "{name}" segment, in order.
  static std::string ToRegex(std::string_view tmpl);

  const std::vector<std::string>& templates() const { return templates_; }

 private:
  struct Segment {
    bool param = false;
    std::string literal;
  };
  struct Route {
    std::vector<Segment> segments;
  };
  std::vector<std::string> templates_;
  std::vector<Route> routes_;
};

}  // namespace metrics::instrument
