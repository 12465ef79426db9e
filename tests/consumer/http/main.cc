// Serves a registry on a free loopback port through the installed HTTP component and checks the
// route table of the installed instrument component; run.cmake checks the exit code.
#include <cstdio>
#include <memory>
#include <vector>

#include "engine/registry.h"
#include "exposition/http_exporter.h"
#include "instrument/route_table.h"

int main() {
  metrics::Registry registry;
  auto handler = std::make_shared<metrics::exposition::MetricsHandler>(
      std::vector<const metrics::Registry*>{&registry});
  auto exporter = metrics::exposition::HttpExporter::Start({.port = 0}, handler);
  if (!exporter.ok() || (*exporter)->port() <= 0) return 1;
  metrics::instrument::RouteTable routes;
  if (!routes.Add("/streams/{stream}").ok()) return 2;
  const std::string* t = routes.Match("/streams/red");
  if (t == nullptr || *t != "/streams/{stream}") return 3;
  std::printf("http consumer: served on port %d\n", (*exporter)->port());
  return 0;
}
