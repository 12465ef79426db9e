// A throwaway PostgreSQL 15 cluster for tests: initdb and pg_ctl in a temp directory, the unix
// socket in that directory, no TCP listener. PostgreSQL refuses to run as root, so
// as root the directory is given to the `postgres` user and the binaries run under runuser.
// Header-only. Not thread-safe: start, use and stop it from the test's main thread.
#pragma once

#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <libpq-fe.h>

namespace metrics::test_support {

class PostgresCluster {
 public:
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";

  // Whether the PostgreSQL 15 server binaries are installed (else tests skip, saying so).
  static bool Installed() {
    const std::string bin = kBinDir;
    return access((bin + "/initdb").c_str(), X_OK) == 0 &&
           access((bin + "/pg_ctl").c_str(), X_OK) == 0 &&
           access((bin + "/postgres").c_str(), X_OK) == 0;
  }

  ~PostgresCluster() { Stop(); }

  // Creates and starts the cluster. Empty on success, else what failed (with the server's log).
  // `durable`: fsync on (benchmarks); the tests' default is off.
  std::string Start(bool durable = false) {
    char tmpl[] = "/tmp/pgtest-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    // No TCP listener, and the socket lives in dir_: any port will do, even one that two
    // clusters (parallel ctest) share; the pid only keeps the socket's name recognisable.
    port_ = 20000 + static_cast<int>(getpid() % 20000);
    std::string prefix;
    if (geteuid() == 0) {
      const passwd* pw = getpwnam("postgres");
      if (pw == nullptr) return "running as root and there is no `postgres` user to run PostgreSQL";
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) return "chown of " + dir_ + " failed";
      prefix = "runuser -u postgres -- ";
    }
    const std::string bin = kBinDir;
    std::string out;
    // fsync=off: the tests are about semantics, not power loss, and a shared disk made the
    // shutdown checkpoint after a run take ~10 s.
    if (Run(prefix + bin + "/initdb -D " + dir_ + "/data -U postgres -A trust -E UTF8 --no-sync",
            &out) != 0) {
      return "initdb failed: " + out;
    }
    if (Run(prefix + bin + "/pg_ctl -D " + dir_ + "/data -l " + dir_ +
                "/server.log -w -t 60 -o \"-p " + std::to_string(port_) + " -k " + dir_ +
                " -c listen_addresses='' -c max_connections=200 -c fsync=" +
                (durable ? "on" : "off") + "\" start",
            &out) != 0) {
      return "pg_ctl start failed: " + out + "\nserver.log:\n" + ReadLog();
    }
    prefix_ = prefix;
    started_ = true;
    return "";
  }

  // Restarts the server (fast shutdown: clients are disconnected). Empty on success.
  std::string Restart() {
    std::string out;
    if (Run(prefix_ + kBinDir + "/pg_ctl -D " + dir_ + "/data -l " + dir_ +
                "/server.log -m fast -w restart",
            &out) != 0) {
      return "pg_ctl restart failed: " + out + "\nserver.log:\n" + ReadLog();
    }
    return "";
  }

  // Stops the server (fast shutdown) and removes the directory. Idempotent.
  void Stop() {
    if (started_) {
      std::string out;
      Run(prefix_ + kBinDir + "/pg_ctl -D " + dir_ + "/data -m fast -w stop", &out);
      started_ = false;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  // libpq connection string for `db`.
  std::string ConnInfo(const std::string& db) const {
    return "host=" + dir_ + " port=" + std::to_string(port_) + " user=postgres dbname=" + db;
  }

  // CREATE DATABASE db. Empty on success, else PostgreSQL's message.
  std::string CreateDatabase(const std::string& db) const {
    PGconn* c = PQconnectdb(ConnInfo("postgres").c_str());
    std::string err;
    if (PQstatus(c) != CONNECTION_OK) {
      err = PQerrorMessage(c);
    } else {
      PGresult* r = PQexec(c, ("CREATE DATABASE " + db).c_str());
      if (PQresultStatus(r) != PGRES_COMMAND_OK) err = PQresultErrorMessage(r);
      PQclear(r);
    }
    PQfinish(c);
    return err;
  }

  std::string ReadLog() const {
    std::ifstream in(dir_ + "/server.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  static int Run(const std::string& cmd, std::string* out) {
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (p == nullptr) return -1;
    char buf[4096];
    size_t n;
    out->clear();
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, n);
    const int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  std::string dir_;
  std::string prefix_;
  int port_ = 0;
  bool started_ = false;
};

}  // namespace metrics::test_support
