// Registers a counter and appends to an in-memory event store through the installed core headers,
// prints the scrape; run.cmake checks the exit code.
#include <cstdio>
#include <string>

#include "engine/registry.h"
#include "exposition/text_format.h"
#include "store/event_store.h"

int main() {
  metrics::Registry registry;
  auto family = registry.AddCounter({.name = "consumer_events_total", .help = "Events."});
  if (!family.ok()) return 1;
  family->WithLabelValues().Inc(41);
  family->WithLabelValues().Inc();
  auto store = metrics::store::EventStore::Open({.registry = &registry});
  if (!store.ok()) return 2;
  auto r = (*store)->Append("consumer", metrics::store::ExpectedVersion::kNoStream,
                            {{.type = "consumer.started", .payload = "{}"}});
  if (!r.ok() || r->first_position != 1) return 3;
  std::string text;
  metrics::exposition::WriteText(registry.Collect(), &text);
  std::fputs(text.c_str(), stdout);
  if (text.find("events_stored_total{event_type=\"consumer.started\"} 1\n") == std::string::npos) {
    return 4;
  }
  return text.find("consumer_events_total 42\n") == std::string::npos ? 1 : 0;
}
