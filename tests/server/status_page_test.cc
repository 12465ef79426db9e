// The status page in a real browser: Debian's Chromium, headless, loads GET / from the server
// under demo load. No console message and no script error; the per-type numbers it shows lie
// between two /stats reads taken around the load (and equal /stats exactly for a type only this
// test appends); they change after new appends; with API tokens on, it asks for one and shows the
// figures once given it. Each run saves a screenshot next to the test binary (status-page.png).
#include <sys/stat.h>

#include <map>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/peers.h"

namespace {

using namespace ::metrics::test_support;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kChromium[] = "/usr/bin/chromium";

struct Page {
  std::string dom;
  std::string log;  // Chromium's stderr, console messages included
  int exit_code = -1;
};

// Loads `url` headless with `seconds` of virtual time (the page polls /stats every 2 s, so a few
// polls happen) and returns the DOM as it then is. With `screenshot`, saves a PNG instead of
// dumping the DOM (Chromium does one or the other).
Page Load(const std::string& url, const std::string& scratch, int seconds,
          const std::string& screenshot = "") {
  Page p;
  const std::string profile = TempDir("status-page-chromium");
  const std::string out = scratch + "/dom.html", err = scratch + "/chromium.log";
  std::string cmd = std::string("timeout 90 ") + kChromium +
                    " --headless --no-sandbox --disable-gpu --no-first-run"
                    " --disable-background-networking --hide-scrollbars --user-data-dir=" +
                    profile + " --enable-logging=stderr --v=0 --virtual-time-budget=" +
                    std::to_string(seconds * 1000) + " --window-size=1280,860 ";
  cmd += screenshot.empty() ? "--dump-dom " : "--screenshot=" + screenshot + " ";
  cmd += "'" + url + "' >" + out + " 2>" + err;
  std::string ignored;
  p.exit_code = RunShell(cmd, &ignored);
  p.dom = ReadFile(out);
  p.log = ReadFile(err);
  RunShell("rm -rf " + profile, &ignored);
  return p;
}

// Console messages the page caused (Chromium logs them as "...:CONSOLE(line)] "text", source:").
std::vector<std::string> ConsoleLines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find(":CONSOLE") != std::string::npos) out.push_back(line);
  }
  return out;
}

// The per-type counts the page shows: <tr data-type="T">...<td class="count" data-value="N">.
std::map<std::string, double> ShownTypes(const std::string& dom) {
  std::map<std::string, double> out;
  static const std::regex row(
      R"re(<tr data-type="([^"]*)">.*?<td class="count" data-value="([0-9.e+]+)")re");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), row); it != std::sregex_iterator();
       ++it) {
    out[(*it)[1]] = std::stod((*it)[2]);
  }
  return out;
}

std::string Attr(const std::string& dom, const std::string& element_re, const std::string& attr) {
  std::smatch m;
  if (std::regex_search(dom, m, std::regex(element_re + "[^>]*" + attr + R"re(="([^"]*)")re"))) {
    return m[1];
  }
  return "";
}

std::string BodyState(const std::string& dom) { return Attr(dom, "<body", "data-state"); }

json Stats(const EventStoreServer& s, const std::string& token = "") {
  httplib::Client c = s.Client();
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  auto r = c.Get("/stats", h);
  if (!r || r->status != 200) return nullptr;
  return json::parse(r->body, nullptr, false);
}

class StatusPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kChromium, X_OK) != 0) {
      GTEST_SKIP() << "SKIPPED LOUDLY: " << kChromium << " missing (apt-get install chromium)";
    }
    scratch_ = TempDir("status-page");
  }
  void TearDown() override {
    std::string out;
    if (!scratch_.empty()) RunShell("rm -rf " + scratch_, &out);
  }
  std::string scratch_;
};

TEST_F(StatusPageTest, ShowsWhatStatsSaysAndFollowsNewAppends) {
  EventStoreServer s(EVENTSTORE_SERVER, scratch_ + "/data", {"--demo-rate", "200"});
  ASSERT_GT(s.port(), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(s.port()) + "/";
  ASSERT_TRUE(Eventually([&] { return Stats(s).value("events_count_total", 0) > 50; }, 20));

  const json before = Stats(s);
  Page first = Load(url, scratch_, 5);
  const json after = Stats(s);
  ASSERT_EQ(first.exit_code, 0) << first.log;
  EXPECT_EQ(BodyState(first.dom), "ok") << first.dom.substr(0, 4000);
  EXPECT_THAT(ConsoleLines(first.log), ::testing::IsEmpty());
  EXPECT_THAT(first.dom, HasSubstr("<div id=\"errors\"></div>"));
  const std::map<std::string, double> shown = ShownTypes(first.dom);
  ASSERT_FALSE(shown.empty()) << first.dom.substr(0, 4000);
  for (const auto& [type, n] : before["events_by_type"].items()) {
    ASSERT_TRUE(shown.count(type)) << "type " << type << " of /stats is not on the page";
    EXPECT_GE(shown.at(type), n.get<double>()) << type;
    EXPECT_LE(shown.at(type), after["events_by_type"][type].get<double>()) << type;
  }
  for (const auto& [type, n] : shown) {
    EXPECT_TRUE(after["events_by_type"].contains(type)) << "the page invented " << type;
  }
  const double total = std::stod(Attr(first.dom, R"(id="events-total")", "data-value"));
  EXPECT_GE(total, before["events_count_total"].get<double>());
  EXPECT_LE(total, after["events_count_total"].get<double>());
  EXPECT_FALSE(Attr(first.dom, R"(id="append-latency")", "data-p99").empty());
  EXPECT_FALSE(Attr(first.dom, R"(id="ingest-rate")", "data-value").empty());

  // New appends of a type only this test writes: the page shows exactly what /stats says.
  httplib::Client c = s.Client();
  for (int i = 0; i < 7; ++i) {
    auto r = c.Post("/streams/browser/events", R"({"type":"browser.check"})", "application/json");
    ASSERT_TRUE(r && r->status == 201);
  }
  Page second = Load(url, scratch_, 3);
  ASSERT_EQ(second.exit_code, 0) << second.log;
  EXPECT_THAT(ConsoleLines(second.log), ::testing::IsEmpty());
  const std::map<std::string, double> shown2 = ShownTypes(second.dom);
  ASSERT_TRUE(shown2.count("browser.check")) << second.dom.substr(0, 4000);
  EXPECT_EQ(shown2.at("browser.check"), 7);
  EXPECT_EQ(Stats(s)["events_by_type"]["browser.check"], 7);
  EXPECT_FALSE(shown.count("browser.check"));
  EXPECT_GT(std::stod(Attr(second.dom, R"(id="events-total")", "data-value")), total);

  // The artifact: a screenshot of the page under load.
  const std::string png = std::string(STATUS_PAGE_SCREENSHOT);
  Page shot = Load(url, scratch_, 6, png);
  EXPECT_EQ(shot.exit_code, 0) << shot.log;
  const std::string bytes = ReadFile(png);
  ASSERT_GT(bytes.size(), 10000u) << "no screenshot at " << png;
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
}

TEST_F(StatusPageTest, AsksForTheTokenAndShowsFiguresOnceGivenIt) {
  WriteFile(scratch_ + "/tokens", "page-token-1\n");
  EventStoreServer s(EVENTSTORE_SERVER, scratch_ + "/data",
                     {"--demo-rate", "50", "--auth-token-file", scratch_ + "/tokens"});
  ASSERT_GT(s.port(), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(s.port()) + "/";
  // The page itself is open and pins its sources; /stats wants the token like the API.
  httplib::Client c = s.Client();
  auto page = c.Get("/");
  ASSERT_TRUE(page && page->status == 200);
  EXPECT_THAT(page->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(page->get_header_value("Content-Security-Policy"), HasSubstr("default-src 'none'"));
  auto denied = c.Get("/stats");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  ASSERT_FALSE(Stats(s, "page-token-1").is_null());

  Page locked = Load(url, scratch_, 3);
  EXPECT_EQ(BodyState(locked.dom), "need-token") << locked.dom.substr(0, 3000);
  EXPECT_TRUE(ShownTypes(locked.dom).empty());
  EXPECT_THAT(ConsoleLines(locked.log), ::testing::IsEmpty());

  Page wrong = Load(url + "#token=not-it", scratch_, 3);
  EXPECT_EQ(BodyState(wrong.dom), "need-token");
  EXPECT_THAT(wrong.dom, HasSubstr("that token was refused"));

  ASSERT_TRUE(
      Eventually([&] { return Stats(s, "page-token-1").value("events_count_total", 0) > 0; }, 20));
  Page open = Load(url + "#token=page-token-1", scratch_, 3);
  EXPECT_EQ(BodyState(open.dom), "ok") << open.dom.substr(0, 3000);
  EXPECT_FALSE(ShownTypes(open.dom).empty());
  EXPECT_THAT(ConsoleLines(open.log), ::testing::IsEmpty());
}

}  // namespace
