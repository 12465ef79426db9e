#include "server/event_body.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace eventstore {
namespace {

using nlohmann::json;

// Checks the shape and collects each event's type and the ordinal of its "data" member. Depth is
// counted here (nlohmann's SAX parser keeps its own stack on the heap and never recurses).
class Sax {
 public:
  struct Event {
    std::string type;
    std::string id;
    bool has_type = false;
    bool has_id = false;
    int data_member = -1;  // index among the event object's members, -1: absent
    int members = 0;
  };

  explicit Sax(const BodyLimits& limits) : limits_(limits) {}

  bool null() { return Scalar(); }
  bool boolean(bool) { return Scalar(); }
  bool number_integer(json::number_integer_t) { return Scalar(); }
  bool number_unsigned(json::number_unsigned_t) { return Scalar(); }
  bool number_float(json::number_float_t, const json::string_t&) { return Scalar(); }
  bool binary(json::binary_t&) { return Scalar(); }
  bool string(json::string_t& s) {
    if (AtEventLevel() && pending_ == Pending::kType) {
      events_.back().type = std::move(s);
      events_.back().has_type = true;
      pending_ = Pending::kNone;
      return true;
    }
    if (AtEventLevel() && pending_ == Pending::kId) {
      if (!ParseUuid(s, &events_.back().id)) {
        return Fail(Where() +
                    "\"id\" must be a UUID like \"1b4e28ba-2fa1-11d2-883f-0016d3cca427\"");
      }
      pending_ = Pending::kNone;
      return true;
    }
    return Scalar();
  }
  bool start_object(size_t) {
    if (!Enter()) return false;
    if (depth_ == 1) {
      top_is_array_ = false;
      return NewEvent();
    }
    if (top_is_array_ && depth_ == 2) return NewEvent();
    return Value(/*container=*/true);
  }
  bool start_array(size_t) {
    if (!Enter()) return false;
    if (depth_ == 1) {
      top_is_array_ = true;
      return true;
    }
    if (top_is_array_ && depth_ == 2) return NotAnObject();
    return Value(/*container=*/true);
  }
  bool end_object() { return Leave(); }
  bool end_array() { return Leave(); }
  bool key(json::string_t& k) {
    if (depth_ != EventDepth()) return true;  // a key inside `data`
    Event& e = events_.back();
    const int index = e.members++;
    if (k == "type") {
      if (e.has_type || saw_type_key_) return Fail(Where() + "\"type\" given twice");
      saw_type_key_ = true;
      pending_ = Pending::kType;
    } else if (k == "id") {
      if (e.has_id) return Fail(Where() + "\"id\" given twice");
      e.has_id = true;
      pending_ = Pending::kId;
    } else if (k == "data") {
      if (e.data_member >= 0) return Fail(Where() + "\"data\" given twice");
      e.data_member = index;
      pending_ = Pending::kData;
    } else {
      return Fail(absl::StrCat(Where(), "unknown field \"", k,
                               "\" (an event has \"type\", \"data\" and \"id\")"));
    }
    return true;
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& ex) {
    if (error_.empty()) error_ = absl::StrCat("request body is not valid JSON: ", ex.what());
    return false;
  }

  const std::string& error() const { return error_; }
  bool top_is_array() const { return top_is_array_; }
  std::vector<Event>& events() { return events_; }

  // After a successful parse: the document's own shape errors that need the whole of it.
  bool Finish() {
    if (!top_seen_) return Fail("expected an event object or a non-empty array of them");
    if (events_.empty()) return Fail("expected an event object or a non-empty array of them");
    for (size_t i = 0; i < events_.size(); ++i) {
      if (!events_[i].has_type) {
        return Fail(absl::StrCat(Prefix(i), "missing string \"type\""));
      }
    }
    return true;
  }

 private:
  enum class Pending { kNone, kType, kData, kId };

  size_t EventDepth() const { return top_is_array_ ? 2 : 1; }
  bool AtEventLevel() const { return depth_ == EventDepth() && !events_.empty(); }
  std::string Prefix(size_t i) const {
    return top_is_array_ ? absl::StrCat("event ", i, ": ") : std::string();
  }
  std::string Where() const { return Prefix(events_.empty() ? 0 : events_.size() - 1); }

  bool Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }
  bool Enter() {
    if (++depth_ > limits_.max_depth) {
      return Fail(absl::StrCat("JSON nested deeper than ", limits_.max_depth, " levels"));
    }
    return true;
  }
  bool Leave() {
    --depth_;
    return true;
  }
  bool NewEvent() {
    if (events_.size() >= limits_.max_events) {
      return Fail(absl::StrCat("more than ", limits_.max_events, " events in one request"));
    }
    events_.emplace_back();
    pending_ = Pending::kNone;
    saw_type_key_ = false;
    top_seen_ = true;
    return true;
  }
  bool NotAnObject() { return Fail(absl::StrCat("event ", events_.size(), " is not an object")); }
  // A value (scalar, or the start of a nested container) at the current depth.
  bool Value(bool container) {
    if (depth_ - (container ? 1 : 0) == EventDepth() && !events_.empty()) {
      if (pending_ == Pending::kType) return Fail(Where() + "\"type\" must be a string");
      if (pending_ == Pending::kId) return Fail(Where() + "\"id\" must be a UUID string");
      pending_ = Pending::kNone;
    }
    return true;
  }
  bool Scalar() {
    if (depth_ == 0) {
      top_seen_ = true;
      return Fail("expected an event object or a non-empty array of them");
    }
    if (top_is_array_ && depth_ == 1) return NotAnObject();
    return Value(/*container=*/false);
  }

  const BodyLimits& limits_;
  size_t depth_ = 0;
  bool top_is_array_ = false;
  bool top_seen_ = false;
  bool saw_type_key_ = false;
  Pending pending_ = Pending::kNone;
  std::vector<Event> events_;
  std::string error_;
};

// Scanning helpers over text the parser has accepted, so they need not validate anything.
size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

size_t SkipString(std::string_view s, size_t i) {  // s[i] == '"'; returns past the closing quote
  for (++i; s[i] != '"'; ++i) {
    if (s[i] == '\\') ++i;
  }
  return i + 1;
}

size_t SkipValue(std::string_view s, size_t i) {  // iterative: one counter, no recursion
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    size_t depth = 0;
    for (;;) {
      const char c = s[i];
      if (c == '"') {
        i = SkipString(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
  }
  while (i < s.size() && std::string_view(",]} \t\r\n").find(s[i]) == std::string_view::npos) ++i;
  return i;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool ParseUuid(std::string_view text, std::string* bytes) {
  if (text.size() != 36) return false;
  std::string out;
  out.reserve(16);
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i++] != '-') return false;
      continue;
    }
    const int hi = Hex(text[i]), lo = Hex(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi << 4 | lo));
    i += 2;
  }
  *bytes = std::move(out);
  return true;
}

std::string FormatUuid(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    const auto b = static_cast<unsigned char>(bytes[i]);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

absl::StatusOr<std::vector<ParsedEvent>> ParseEventsBody(std::string_view body,
                                                         const BodyLimits& limits) {
  Sax sax(limits);
  const bool ok = json::sax_parse(body.data(), body.data() + body.size(), &sax) && sax.Finish();
  if (!ok) {
    return absl::InvalidArgumentError(sax.error().empty() ? "request body is not valid JSON"
                                                          : sax.error());
  }
  std::vector<Sax::Event>& found = sax.events();
  std::vector<ParsedEvent> out(found.size());
  // Walk the accepted text to cut out each event's "data" member.
  size_t i = SkipSpace(body, 0);
  if (sax.top_is_array()) i = SkipSpace(body, i + 1);  // past '['
  for (size_t e = 0; e < found.size(); ++e) {
    out[e].type = std::move(found[e].type);
    out[e].id = std::move(found[e].id);
    out[e].data = "null";
    i = SkipSpace(body, i + 1);  // past '{'
    for (int m = 0; body[i] != '}'; ++m) {
      i = SkipSpace(body, SkipString(body, i));  // the key
      i = SkipSpace(body, i + 1);                // past ':'
      const size_t end = SkipValue(body, i);
      if (m == found[e].data_member) out[e].data.assign(body.substr(i, end - i));
      i = SkipSpace(body, end);
      if (body[i] == ',') i = SkipSpace(body, i + 1);
    }
    i = SkipSpace(body, i + 1);  // past '}'
    if (i < body.size() && body[i] == ',') i = SkipSpace(body, i + 1);
  }
  return out;
}

}  // namespace eventstore
