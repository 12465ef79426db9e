#include "exposition/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace metrics::exposition {
namespace {

std::shared_ptr<const FamilyDesc> Desc(const char* name, const char* help, MetricType type) {
  auto d = std::make_shared<FamilyDesc>();
  d->name = name;
  d->help = help;
  d->type = type;
  return d;
}

void Add(std::vector<FamilySnapshot>& out, const std::shared_ptr<const FamilyDesc>& desc,
         double v) {
  AppendSample(AppendFamily(out, desc), {}, v);
}

// Fields of /proc/self/stat after the parenthesised command name (which may contain spaces).
bool ReadStat(std::vector<std::string>* fields) {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 2));
  std::string f;
  while (rest >> f) fields->push_back(f);
  return fields->size() > 21;
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value;
  while (in >> key) {
    if (key == "btime" && (in >> value)) return value;
    in.ignore(1 << 20, '\n');
  }
  return -1;
}

}  // namespace

ProcessCollector::ProcessCollector()
    : cpu_(Desc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                MetricType::kCounter)),
      virtual_(Desc("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                    MetricType::kGauge)),
      resident_(Desc("process_resident_memory_bytes", "Resident memory size in bytes.",
                     MetricType::kGauge)),
      start_(Desc("process_start_time_seconds",
                  "Start time of the process since unix epoch in seconds.", MetricType::kGauge)),
      open_fds_(Desc("process_open_fds", "Number of open file descriptors.", MetricType::kGauge)),
      max_fds_(Desc("process_max_fds", "Maximum number of open file descriptors.",
                    MetricType::kGauge)) {}

std::vector<FamilyDesc> ProcessCollector::Describe() const {
  return {*cpu_, *virtual_, *resident_, *start_, *open_fds_, *max_fds_};
}

void ProcessCollector::Collect(std::vector<FamilySnapshot>& out) const {
  std::vector<std::string> f;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  if (ReadStat(&f) && ticks > 0) {
    // After the command name, field k of proc(5) is f[k - 3]: utime 14, stime 15, starttime 22,
    // vsize 23, rss 24.
    Add(out, cpu_, (std::stod(f[11]) + std::stod(f[12])) / ticks);
    Add(out, virtual_, std::stod(f[20]));
    Add(out, resident_, std::stod(f[21]) * page);
    double boot = BootTimeSeconds();
    if (boot >= 0) Add(out, start_, boot + std::stod(f[19]) / ticks);
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    double n = 0;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(dir);
    Add(out, open_fds_, n - 1);  // less the descriptor opendir itself holds
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    Add(out, max_fds_, lim.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(lim.rlim_cur));
  }
}

void AppendProcessMetrics(Snapshot* snapshot) {
  Snapshot p;
  ProcessCollector().Collect(p.families);
  std::sort(
      p.families.begin(), p.families.end(),
      [](const FamilySnapshot& a, const FamilySnapshot& b) { return a.desc->name < b.desc->name; });
  MergeSnapshot(std::move(p), snapshot);
}

size_t MergeSnapshot(Snapshot&& from, Snapshot* into) {
  size_t dropped = 0;
  for (FamilySnapshot& f : from.families) {
    auto pos = std::lower_bound(
        into->families.begin(), into->families.end(), f.desc->name,
        [](const FamilySnapshot& a, const std::string& n) { return a.desc->name < n; });
    if (pos != into->families.end() && pos->desc->name == f.desc->name) {
      ++dropped;
      continue;
    }
    into->families.insert(pos, std::move(f));
  }
  return dropped;
}

}  // namespace metrics::exposition
