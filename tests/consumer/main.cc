// Registers a counter through the installed headers and prints one exposition line; run.cmake
// checks it.
#include <cstdio>
#include <string>

#include "engine/registry.h"
#include "exposition/text_format.h"

int main() {
  metrics::Registry registry;
  auto family = registry.AddCounter({.name = "consumer_events_total", .help = "Events."});
  if (!family.ok()) return 1;
  family->WithLabelValues().Inc(41);
  family->WithLabelValues().Inc();
  std::string text;
  metrics::exposition::WriteText(registry.Collect(), &text);
  std::fputs(text.c_str(), stdout);
  return text.find("consumer_events_total 42\n") == std::string::npos ? 1 : 0;
}
