/* An LD_PRELOAD library that makes file I/O fail on purpose, for tests of what the store and the
 * server do when the disk says no. Configured by the environment of the process it is loaded in:
 *
 *   FAULT_CALLS   comma-separated calls to fail: write, pwrite, fsync, fdatasync (default none)
 *   FAULT_AFTER   this many matching calls succeed first (default 0)
 *   FAULT_COUNT   then this many fail, and later ones succeed again (default: all later ones fail)
 *   FAULT_ERRNO   EIO (default) or ENOSPC
 *   FAULT_SHORT   1: a failing write/pwrite writes half of its bytes and returns that count
 *                 instead of failing (a short write), once; later ones fail with FAULT_ERRNO
 *   FAULT_DELAY_MS  instead of failing, the selected calls sleep this long and then succeed (a slow
 *                 disk)
 *   FAULT_PATH    only descriptors whose /proc/self/fd link contains this string (default: any
 *                 regular file or directory, never a socket or pipe, so the HTTP server keeps
 *                 working)
 *
 * Thread-safe: the call counter is atomic. Calls pass through to libc via dlsym(RTLD_NEXT). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static atomic_long calls_seen;
static atomic_int short_done;

static int Configured(const char* call) {
  const char* list = getenv("FAULT_CALLS");
  if (list == NULL) return 0;
  size_t n = strlen(call);
  for (const char* p = list; (p = strstr(p, call)) != NULL; p += n) {
    if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
  }
  return 0;
}

static int Eligible(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) return 0;
  const char* want = getenv("FAULT_PATH");
  if (want == NULL || *want == '\0') return 1;
  char link[64], target[4096];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  ssize_t len = readlink(link, target, sizeof(target) - 1);
  if (len < 0) return 0;
  target[len] = '\0';
  return strstr(target, want) != NULL;
}

static int ShouldFail2(const char* call, int fd, int* err);

/* 1 when this call must fail (and sets errno's value in *err); a selected call under
 * FAULT_DELAY_MS sleeps instead and does not fail. */
static int ShouldFail(const char* call, int fd, int* err) {
  if (!ShouldFail2(call, fd, err)) return 0;
  const char* delay = getenv("FAULT_DELAY_MS");
  if (delay == NULL) return 1;
  usleep((useconds_t)atol(delay) * 1000);
  return 0;
}

static int ShouldFail2(const char* call, int fd, int* err) {
  if (!Configured(call) || !Eligible(fd)) return 0;
  const char* after = getenv("FAULT_AFTER");
  long n = atomic_fetch_add(&calls_seen, 1);
  const long first = after != NULL ? atol(after) : 0;
  if (n < first) return 0;
  const char* count = getenv("FAULT_COUNT");
  if (count != NULL && n >= first + atol(count)) return 0;
  const char* e = getenv("FAULT_ERRNO");
  *err = (e != NULL && strcmp(e, "ENOSPC") == 0) ? ENOSPC : EIO;
  return 1;
}

static int ShortOnce(void) {
  const char* s = getenv("FAULT_SHORT");
  if (s == NULL || strcmp(s, "1") != 0) return 0;
  return atomic_exchange(&short_done, 1) == 0;
}

ssize_t write(int fd, const void* buf, size_t count) {
  static ssize_t (*real)(int, const void*, size_t);
  if (real == NULL) real = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  int err;
  if (ShouldFail("write", fd, &err)) {
    if (count > 1 && ShortOnce()) return real(fd, buf, count / 2);
    errno = err;
    return -1;
  }
  return real(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static ssize_t (*real)(int, const void*, size_t, off_t);
  if (real == NULL) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  int err;
  if (ShouldFail("pwrite", fd, &err)) {
    if (count > 1 && ShortOnce()) return real(fd, buf, count / 2, offset);
    errno = err;
    return -1;
  }
  return real(fd, buf, count, offset);
}
ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) {
  return pwrite(fd, buf, count, offset);
}

int fsync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  int err;
  if (ShouldFail("fsync", fd, &err)) {
    errno = err;
    return -1;
  }
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  int err;
  if (ShouldFail("fdatasync", fd, &err)) {
    errno = err;
    return -1;
  }
  return real(fd);
}
