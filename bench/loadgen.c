/*
 * Load generator for the saslauthd benchmark (bench/run.ts compiles it with the system gcc).
 *
 * It behaves like libsasl2's saslauthd client: for every request a new Unix-socket
 * connection, one blocking write of the whole request, blocking reads of the u16 length and
 * the reply, close. N threads do this in a loop; every reply is compared with the expected
 * text. The same binary drives both daemons, so neither gets a different client.
 *
 * Usage: loadgen --socket PATH --clients N --warmup SEC --duration SEC
 *                --login L --password P --service S --realm R --expect TEXT
 *                [--users K]        login L<i>, password P<i>, i uniformly random in [0, K)
 *                [--guesses 1]      login L, a new password P<n> for every request (a guesser)
 *                [--idle M]         hold M connections open (sending nothing) during the run
 *                [--timeout-ms T]   connect/read/write timeout per request (default 5000)
 * Output: one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Largest request we build: 4 fields of at most 256 bytes, with their length prefixes. */
#define MAX_REQUEST 1100
/* Largest reply text we read (libsasl2 reads at most 1023 bytes). */
#define MAX_REPLY 1024
/* Upper bound of idle connections held. */
#define MAX_IDLE 10000

enum phase { WARMUP, MEASURE, STOP };

static const char *socket_path;
static int clients = 1, users = 0, guesses = 0, idle_target = 0, timeout_ms = 5000;
static _Atomic unsigned guess_counter;
static double warmup_s = 1, duration_s = 5;
static const char *login = "user", *password = "secret", *service = "imap", *realm = "", *expect = "OK";
static _Atomic int phase = WARMUP;
static struct sockaddr_un address;

struct thread_stats {
  uint64_t ok, no, errors, mismatches;
  uint32_t *latencies_us;
  size_t count, capacity;
  char first_mismatch[128];
  char first_error[64];
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t put_field(unsigned char *out, const char *text) {
  size_t length = strlen(text);
  out[0] = (unsigned char)(length >> 8);
  out[1] = (unsigned char)length;
  memcpy(out + 2, text, length);
  return length + 2;
}

static size_t build_request(unsigned char *out, unsigned seed) {
  char user[300], pass[300];
  if (users > 0) {
    unsigned index = seed % (unsigned)users;
    snprintf(user, sizeof user, "%s%u", login, index);
    snprintf(pass, sizeof pass, "%s%u", password, index);
  } else if (guesses) {
    snprintf(user, sizeof user, "%s", login);
    snprintf(pass, sizeof pass, "%s%u", password, atomic_fetch_add(&guess_counter, 1));
  } else {
    snprintf(user, sizeof user, "%s", login);
    snprintf(pass, sizeof pass, "%s", password);
  }
  size_t n = 0;
  n += put_field(out + n, user);
  n += put_field(out + n, pass);
  n += put_field(out + n, service);
  n += put_field(out + n, realm);
  return n;
}

static int open_socket(int nonblocking) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  if (!nonblocking) {
    /* SO_SNDTIMEO also bounds a blocking connect on a Unix socket whose backlog is full. */
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int read_exact(int fd, unsigned char *buffer, size_t length) {
  size_t got = 0;
  while (got < length) {
    ssize_t n = read(fd, buffer + got, length - got);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return -1;
    }
    got += (size_t)n;
  }
  return 0;
}

/* One request on a fresh connection. Returns 0 and the reply text, or -1 (with a reason). */
static int one_request(const unsigned char *request, size_t length, char *reply, const char **why) {
  int fd = open_socket(0);
  if (fd < 0) {
    *why = errno == EAGAIN ? "connect: backlog full (timeout)" : "connect failed";
    return -1;
  }
  if (write(fd, request, length) != (ssize_t)length) {
    *why = "write failed";
    close(fd);
    return -1;
  }
  unsigned char header[2];
  if (read_exact(fd, header, 2) != 0) {
    *why = errno == EAGAIN ? "read timeout" : "no reply";
    close(fd);
    return -1;
  }
  size_t size = ((size_t)header[0] << 8) | header[1];
  if (size >= MAX_REPLY || read_exact(fd, (unsigned char *)reply, size) != 0) {
    *why = "truncated reply";
    close(fd);
    return -1;
  }
  reply[size] = '\0';
  close(fd);
  return 0;
}

static void record(struct thread_stats *stats, double seconds) {
  if (stats->count == stats->capacity) {
    stats->capacity = stats->capacity ? stats->capacity * 2 : 65536;
    stats->latencies_us = realloc(stats->latencies_us, stats->capacity * sizeof *stats->latencies_us);
    if (!stats->latencies_us) abort();
  }
  double us = seconds * 1e6;
  stats->latencies_us[stats->count++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static void *client_thread(void *arg) {
  struct thread_stats *stats = arg;
  unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
  unsigned char request[MAX_REQUEST];
  char reply[MAX_REPLY];
  size_t length = build_request(request, seed);
  while (atomic_load(&phase) != STOP) {
    if (users > 0 || guesses) {
      seed = seed * 1103515245u + 12345u;
      length = build_request(request, seed >> 8);
    }
    int measured = atomic_load(&phase) == MEASURE;
    double start = now_s();
    const char *why = NULL;
    int rc = one_request(request, length, reply, &why);
    double elapsed = now_s() - start;
    if (!measured) continue; /* started in the window: counted even if it ends after it */
    record(stats, elapsed);
    if (rc != 0) {
      stats->errors++;
      if (!stats->first_error[0]) snprintf(stats->first_error, sizeof stats->first_error, "%s", why);
      continue;
    }
    if (strncmp(reply, "OK", 2) == 0) stats->ok++;
    else if (strncmp(reply, "NO", 2) == 0) stats->no++;
    if (strcmp(reply, expect) != 0) {
      stats->mismatches++;
      if (!stats->first_mismatch[0]) snprintf(stats->first_mismatch, sizeof stats->first_mismatch, "%.127s", reply);
    }
  }
  return NULL;
}

/* Keeps `idle_target` connections open without sending anything; reopens any the server closes. */
static _Atomic int idle_held;
static void *idle_thread(void *arg) {
  (void)arg;
  static struct pollfd fds[MAX_IDLE];
  for (int i = 0; i < idle_target; i++) fds[i].fd = -1;
  while (atomic_load(&phase) != STOP) {
    int held = 0;
    for (int i = 0; i < idle_target; i++) {
      if (fds[i].fd < 0) {
        fds[i].fd = open_socket(1);
        fds[i].events = POLLIN;
      }
      if (fds[i].fd >= 0) held++;
    }
    atomic_store(&idle_held, held);
    poll(fds, (nfds_t)idle_target, 50);
    for (int i = 0; i < idle_target; i++) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
  }
  for (int i = 0; i < idle_target; i++)
    if (fds[i].fd >= 0) close(fds[i].fd);
  return NULL;
}

static int compare_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double percentile_ms(const uint32_t *sorted, size_t count, double p) {
  if (count == 0) return 0;
  size_t index = (size_t)(p * (double)(count - 1) + 0.5);
  return sorted[index] / 1000.0;
}

static void json_string(const char *text) {
  putchar('"');
  for (const char *c = text; *c; c++) {
    if (*c == '"' || *c == '\\') printf("\\%c", *c);
    else if ((unsigned char)*c < 0x20) printf("\\u%04x", *c);
    else putchar(*c);
  }
  putchar('"');
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *key = argv[i], *value = argv[i + 1];
    if (!strcmp(key, "--socket")) socket_path = value;
    else if (!strcmp(key, "--clients")) clients = atoi(value);
    else if (!strcmp(key, "--warmup")) warmup_s = atof(value);
    else if (!strcmp(key, "--duration")) duration_s = atof(value);
    else if (!strcmp(key, "--login")) login = value;
    else if (!strcmp(key, "--password")) password = value;
    else if (!strcmp(key, "--service")) service = value;
    else if (!strcmp(key, "--realm")) realm = value;
    else if (!strcmp(key, "--expect")) expect = value;
    else if (!strcmp(key, "--users")) users = atoi(value);
    else if (!strcmp(key, "--guesses")) guesses = atoi(value);
    else if (!strcmp(key, "--idle")) idle_target = atoi(value);
    else if (!strcmp(key, "--timeout-ms")) timeout_ms = atoi(value);
    else {
      fprintf(stderr, "loadgen: unknown option %s\n", key);
      return 1;
    }
  }
  if (!socket_path || clients < 1 || idle_target > MAX_IDLE || strlen(socket_path) >= sizeof address.sun_path) {
    fprintf(stderr, "loadgen: bad arguments\n");
    return 1;
  }
  address.sun_family = AF_UNIX;
  strcpy(address.sun_path, socket_path);

  pthread_t idle;
  if (idle_target > 0) pthread_create(&idle, NULL, idle_thread, NULL);
  struct thread_stats *stats = calloc((size_t)clients, sizeof *stats);
  pthread_t *threads = calloc((size_t)clients, sizeof *threads);
  for (int i = 0; i < clients; i++) pthread_create(&threads[i], NULL, client_thread, &stats[i]);

  struct timespec pause = {(time_t)warmup_s, (long)((warmup_s - (time_t)warmup_s) * 1e9)};
  nanosleep(&pause, NULL);
  struct rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  double start = now_s();
  atomic_store(&phase, MEASURE);
  pause = (struct timespec){(time_t)duration_s, (long)((duration_s - (time_t)duration_s) * 1e9)};
  nanosleep(&pause, NULL);
  atomic_store(&phase, STOP);
  double elapsed = now_s() - start;
  getrusage(RUSAGE_SELF, &after);
  int held = atomic_load(&idle_held);
  for (int i = 0; i < clients; i++) pthread_join(threads[i], NULL);
  if (idle_target > 0) pthread_join(idle, NULL);
  /* Requests started in the window may finish long after it (queued behind failure delays):
     the rate at which a daemon checks passwords is measured over this whole span. */
  double drained = now_s() - start;

  uint64_t ok = 0, no = 0, errors = 0, mismatches = 0;
  size_t total = 0;
  const char *first_mismatch = "", *first_error = "";
  for (int i = 0; i < clients; i++) {
    ok += stats[i].ok;
    no += stats[i].no;
    errors += stats[i].errors;
    mismatches += stats[i].mismatches;
    total += stats[i].count;
    if (!first_mismatch[0] && stats[i].first_mismatch[0]) first_mismatch = stats[i].first_mismatch;
    if (!first_error[0] && stats[i].first_error[0]) first_error = stats[i].first_error;
  }
  uint32_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t at = 0;
  for (int i = 0; i < clients; i++) {
    if (stats[i].count) memcpy(all + at, stats[i].latencies_us, stats[i].count * sizeof *all);
    at += stats[i].count;
  }
  qsort(all, total, sizeof *all, compare_u32);
  double cpu = (after.ru_utime.tv_sec - before.ru_utime.tv_sec) + (after.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1e6 +
               (after.ru_stime.tv_sec - before.ru_stime.tv_sec) + (after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e6;

  printf("{\"requests\":%zu,\"ok\":%llu,\"no\":%llu,\"errors\":%llu,\"mismatches\":%llu,", total,
         (unsigned long long)ok, (unsigned long long)no, (unsigned long long)errors, (unsigned long long)mismatches);
  printf("\"seconds\":%.3f,\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,", elapsed,
         (double)(total - errors) / elapsed, percentile_ms(all, total, 0.50), percentile_ms(all, total, 0.99),
         total ? all[total - 1] / 1000.0 : 0.0);
  printf("\"drained_seconds\":%.3f,\"cpu_seconds\":%.3f,\"idle_held\":%d,\"first_mismatch\":", drained, cpu, held);
  json_string(first_mismatch);
  printf(",\"first_error\":");
  json_string(first_error);
  printf("}\n");
  return 0;
}
