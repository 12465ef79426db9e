// Test support for tests that run real processes: temp dirs, free loopback ports, and the peers
// (a Prometheus server, a Pushgateway, our event-store server) as children of the test, killed
// when the test ends. Header-only: each test binary includes it once.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace metrics::test_support {

inline bool Executable(const char* path) { return access(path, X_OK) == 0; }

// Creates a fresh directory /tmp/<prefix>-XXXXXX.
inline std::string TempDir(const std::string& prefix) {
  std::string templ = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) return "/tmp";
  return templ;
}

inline void WriteFile(const std::string& path, const std::string& body) {
  std::ofstream(path, std::ios::binary) << body;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command, returns its exit status and (merged) output.
inline int RunShell(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  output->clear();
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A loopback port that was free a moment ago (the peer binds it next; a race is possible but the
// peer then fails loudly in its log).
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Polls `ready` every 100 ms until it is true or `seconds` pass.
template <typename F>
bool Eventually(F ready, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ready();
}

// Sends `sig` to *pid and reaps it; returns the exit status, or -signal (-1 when there is none).
inline int KillAndReap(pid_t* pid, int sig) {
  if (*pid <= 0) return -1;
  kill(*pid, sig);
  int st = 0;
  waitpid(*pid, &st, 0);
  *pid = -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

// A child process with stdout and stderr in `log`; SIGTERM and reaped on destruction.
class Child {
 public:
  Child(std::vector<std::string> args, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      if (freopen(log.c_str(), "w", stdout) == nullptr ||
          freopen(log.c_str(), "a", stderr) == nullptr) {
        _exit(126);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { KillAndReap(&pid_, SIGTERM); }

 private:
  pid_t pid_ = -1;
};

// GET http://127.0.0.1:port/path: the body parsed as JSON whatever the HTTP status (Prometheus
// explains a 400 in JSON), or null when nothing or no JSON answers.
inline nlohmann::json GetJson(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1);
  c.set_read_timeout(5);
  auto res = c.Get(path);
  if (!res) return nullptr;
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  return j.is_discarded() ? nullptr : j;
}

// The value of the first sample line of a text exposition that starts with `series` (name and
// labels as written, e.g. `x_total{a="b"}`) and a space; -1 when there is none.
inline double MetricValue(const std::string& scrape, const std::string& series) {
  const size_t p = scrape.find("\n" + series + " ");
  return p == std::string::npos ? -1 : std::stod(scrape.substr(p + series.size() + 2));
}

// A peer binary (Prometheus, Pushgateway) run as a child listening on a free loopback port, with a
// scratch directory for its files and its log, removed when the peer is.
class LoopbackPeer {
 public:
  LoopbackPeer(const LoopbackPeer&) = delete;
  LoopbackPeer& operator=(const LoopbackPeer&) = delete;
  int port() const { return port_; }
  std::string Log() const { return ReadFile(dir_ + "/peer.log"); }

 protected:
  explicit LoopbackPeer(const std::string& prefix) : dir_(TempDir(prefix)), port_(FreePort()) {}
  ~LoopbackPeer() {
    child_.reset();
    std::string out;
    RunShell("rm -rf " + dir_, &out);
  }
  // Starts `binary` with `args` and the listen-address flag both peers share.
  void Start(const char* binary, std::vector<std::string> args) {
    args.insert(args.begin(), binary);
    args.push_back("--web.listen-address=127.0.0.1:" + std::to_string(port_));
    child_ = std::make_unique<Child>(std::move(args), dir_ + "/peer.log");
  }

  const std::string dir_;
  const int port_;

 private:
  std::unique_ptr<Child> child_;
};

// Debian's Prometheus server, from a prometheus.yml and the files it names (written next to it,
// so relative rule_files paths resolve).
class PrometheusServer : public LoopbackPeer {
 public:
  static constexpr const char* kBinary = "/usr/bin/prometheus";

  // `flags` go to the command line as they are, e.g.
  // "--enable-feature=native-histograms,exemplar-storage".
  explicit PrometheusServer(const std::string& config,
                            const std::map<std::string, std::string>& files = {},
                            const std::vector<std::string>& flags = {})
      : LoopbackPeer("metrics-prometheus") {
    WriteFile(dir_ + "/prometheus.yml", config);
    for (const auto& [name, body] : files) WriteFile(dir_ + "/" + name, body);
    std::vector<std::string> args = {"--config.file=" + dir_ + "/prometheus.yml",
                                     "--storage.tsdb.path=" + dir_ + "/data"};
    args.insert(args.end(), flags.begin(), flags.end());
    Start(kBinary, std::move(args));
  }

  // GET `path` on its API: the parsed JSON, or null.
  nlohmann::json Api(const std::string& path) { return GetJson(port_, path); }
  // A config that scrapes 127.0.0.1:`target_port` every second as job `job`.
  static std::string ScrapeConfig(const std::string& job, int target_port) {
    return "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
           "scrape_configs:\n  - job_name: " +
           job +
           "\n    static_configs:\n      - targets: ['127.0.0.1:" + std::to_string(target_port) +
           "']\n";
  }

  // An instant query: the JSON result array, or null (not up yet, or a query error).
  nlohmann::json Query(const std::string& promql) { return Data(QueryPath(promql), "result"); }

  // The query's error message (empty when it succeeds), for failure output.
  std::string QueryError(const std::string& promql) {
    auto j = GetJson(port_, QueryPath(promql));
    return j.is_null() ? "no answer" : j.value("error", "");
  }

  // Polls `promql` until it returns a non-empty vector or the deadline passes.
  nlohmann::json WaitFor(const std::string& promql, int seconds) {
    nlohmann::json r;
    if (Eventually([&] { return (r = Query(promql)).is_array() && !r.empty(); }, seconds)) return r;
    return nullptr;
  }

  // The pending and firing alerts (data.alerts of /api/v1/alerts).
  nlohmann::json Alerts() { return Data("/api/v1/alerts", "alerts"); }
  // The loaded rule groups (data.groups of /api/v1/rules).
  nlohmann::json RuleGroups() { return Data("/api/v1/rules", "groups"); }

 private:
  static std::string QueryPath(const std::string& promql) {
    return "/api/v1/query?query=" + httplib::detail::encode_query_param(promql);
  }
  // data.<field> of a successful API answer, else null.
  nlohmann::json Data(const std::string& path, const char* field) {
    auto j = GetJson(port_, path);
    if (j.is_null() || j.value("status", "") != "success") return nullptr;
    return j["data"][field];
  }
};

// Debian's prometheus-pushgateway, in memory (no persistence file).
class Pushgateway : public LoopbackPeer {
 public:
  static constexpr const char* kBinary = "/usr/bin/prometheus-pushgateway";

  Pushgateway() : LoopbackPeer("metrics-pushgateway") { Start(kBinary, {}); }
  bool WaitReady(int seconds) {
    return Eventually(
        [&] {
          httplib::Client c("127.0.0.1", port_);
          c.set_connection_timeout(1);
          auto r = c.Get("/-/ready");
          return r && r->status == 200;
        },
        seconds);
  }
  // Its own /metrics (text format), or "" when it does not answer.
  std::string Scrape() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(5);
    auto r = c.Get("/metrics");
    return r && r->status == 200 ? r->body : "";
  }
};

// Our eventstore-server binary as a child on a free port (it prints "listening PORT", and with
// --metrics-listen "metrics PORT", on stdout, which this reads); stderr is the test's. `env` adds
// variables to the child's environment (e.g. LD_PRELOAD). SIGKILLed on destruction unless stopped.
class EventStoreServer {
 public:
  EventStoreServer(const std::string& binary, const std::string& data_dir,
                   std::vector<std::string> extra = {}, std::vector<std::string> env = {}) {
    bool metrics_listener = false;
    for (const auto& a : extra) {
      if (a.rfind("--metrics-listen", 0) == 0 || a.rfind("--metrics_listen", 0) == 0) {
        metrics_listener = true;
      }
    }
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      for (auto& e : env) putenv(e.data());
      std::vector<std::string> args = {binary, "--data-dir", data_dir, "--listen", "127.0.0.1:0"};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[128];
    for (int lines = metrics_listener ? 2 : 1; f != nullptr && lines > 0; --lines) {
      if (std::fgets(line, sizeof(line), f) == nullptr) break;
      std::sscanf(line, "listening %d", &port_);
      std::sscanf(line, "metrics %d", &metrics_port_);
    }
    if (f != nullptr) std::fclose(f);
    if (metrics_port_ == 0) metrics_port_ = port_;
  }
  EventStoreServer(const EventStoreServer&) = delete;
  EventStoreServer& operator=(const EventStoreServer&) = delete;
  ~EventStoreServer() { KillAndReap(&pid_, SIGKILL); }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }  // = port() without --metrics-listen
  pid_t pid() const { return pid_; }
  // True while the process runs (not exited, not a zombie); does not reap it.
  bool Alive() const {
    if (pid_ <= 0 || kill(pid_, 0) != 0) return false;
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string pid, comm, state;
    in >> pid >> comm >> state;
    return state != "Z" && state != "X";
  }
  // Resident memory in KiB (VmRSS), 0 if unknown.
  long RssKib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    long kib = 0;
    while (in >> key) {
      if (key == "VmRSS:") {
        in >> kib;
        return kib;
      }
    }
    return 0;
  }
  // Sends `sig` and returns the exit status (or -signal).
  int Stop(int sig) { return KillAndReap(&pid_, sig); }
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10);
    return c;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
};

// A raw TCP connection to 127.0.0.1:port for sending what no HTTP client library would.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(fd_);
      fd_ = -1;
    }
    timeval tv{.tv_sec = 15, .tv_usec = 0};
    if (fd_ >= 0) setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  ~RawConnection() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // False once the peer has closed or reset the connection.
  bool Send(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  // Everything until the peer closes (or the 15 s receive timeout, or `max` bytes).
  std::string ReadAll(size_t max = 1 << 20) {
    std::string out;
    char buf[4096];
    while (out.size() < max) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // Reads until `needle` has arrived (or the peer closes / times out).
  std::string ReadUntil(const std::string& needle) {
    std::string out;
    char buf[4096];
    while (out.find(needle) == std::string::npos) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace metrics::test_support
